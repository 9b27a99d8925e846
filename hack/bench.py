"""`make bench`: speed and memory figures of the controller's hot paths, printed, not asserted.

Machines here are shared and noisy, so every figure comes with a reference measured in the same
run (a ratio means more than an absolute number):

- work-queue: adds with heavy duplication, then get/done of every distinct key;
- cache memory: 1000 StatefulSets held as raw JSON dicts (what our informers keep) versus the
  same objects deserialized into the `kubernetes` client's generated models (what a naive Python
  controller keeps);
- reconcile's pure part: desired objects for one notebook and the semantic "is there anything to
  apply" comparison against the apiserver-shaped object, per second;
- API requests: the client thread's CPU per request of `KubeClient` (its lean HTTP/1.1 pool)
  beside an aiohttp ClientSession (what it used before), against a loopback server that answers
  every request with the same 2 KB object.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from notebook_controller.api.models import Notebook
from notebook_controller.builders import meta, services, workload
from notebook_controller.runtime import diff
from notebook_controller.runtime.kube import KubeClient, ResourceKind
from notebook_controller.runtime.kubeconfig import Configuration
from notebook_controller.runtime.workqueue import WorkQueue

SEED_GPU_NOTEBOOK: dict[str, Any] = {
    "apiVersion": "tensorstack.dev/v1beta1",
    "kind": "Notebook",
    "metadata": {"name": "notebook-gpu-sample", "namespace": "demo", "uid": "u-1", "generation": 1},
    "spec": {
        "scheduler": {"t9kScheduler": {"queue": "default"}},
        "template": {
            "spec": {
                "containers": [
                    {
                        "image": "t9kpublic/tensorflow-2.11.0-notebook-gpu:latest",
                        "name": "gpu",
                        "resources": {
                            "requests": {
                                "cpu": "0.5",
                                "memory": "1.0Gi",
                                "tensorstack.dev/nvidia-gpu-percent": 30,
                            }
                        },
                    }
                ]
            }
        },
    },
}


def rate(label: str, count: int, seconds: float) -> None:
    print(f"  {label:<58} {count / seconds:>12,.0f} /s   ({count} in {seconds:.3f}s)")


def timed(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return time.perf_counter() - start


async def bench_workqueue(distinct: int = 20_000, duplicates: int = 5) -> None:
    print("work-queue")
    queue: WorkQueue[str] = WorkQueue("bench")
    keys = [f"ns-{i % 50}/nb-{i}" for i in range(distinct)]
    start = time.perf_counter()
    for _ in range(duplicates):
        for key in keys:
            queue.add(key)
    rate(f"add ({duplicates}x duplicated keys)", distinct * duplicates, time.perf_counter() - start)
    print(f"  {'depth after dedup':<58} {len(queue):>12,}")
    start = time.perf_counter()
    for _ in range(distinct):
        key = await queue.get()
        queue.done(key)
        queue.forget(key)
    rate("get + done + forget", distinct, time.perf_counter() - start)
    queue.shut_down()


def statefulset_like(index: int) -> dict[str, Any]:
    notebook = Notebook.model_validate(
        {**SEED_GPU_NOTEBOOK, "metadata": {**SEED_GPU_NOTEBOOK["metadata"], "name": f"nb-{index}"}}
    )
    obj = workload.statefulset(notebook)
    obj["metadata"].update(
        {"namespace": "demo", "uid": f"uid-{index}", "resourceVersion": str(1000 + index)}
    )
    obj["status"] = {"replicas": 1, "readyReplicas": 1, "currentRevision": "rev-1"}
    # The apiserver serializes every quantity as a string.
    for container in obj["spec"]["template"]["spec"]["containers"]:
        for group in container.get("resources", {}).values():
            group.update({name: str(value) for name, value in group.items()})
    return obj


def measure_memory(build: Callable[[], list[Any]]) -> tuple[int, list[Any]]:
    gc.collect()
    tracemalloc.start()
    held = build()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current, held


def bench_cache_memory(count: int = 1000) -> None:
    print(f"cache memory, {count} StatefulSets")
    payloads = [json.dumps(statefulset_like(i)) for i in range(count)]
    raw_bytes, raw = measure_memory(lambda: [json.loads(p) for p in payloads])
    try:
        from kubernetes import client as k8s_client
    except ImportError:
        print("  (the `kubernetes` package is not installed: no model comparison)")
        return
    api = k8s_client.ApiClient()

    def to_models() -> list[Any]:
        return [api.deserialize(p, "V1StatefulSet", "application/json") for p in payloads]

    model_bytes, models = measure_memory(to_models)
    model_seconds = timed(to_models, 1)
    raw_seconds = timed(lambda: [json.loads(p) for p in payloads], 1)
    print(f"  {'raw dicts (our informer store)':<58} {raw_bytes / count:>10,.0f} B/object")
    print(f"  {'generated client models':<58} {model_bytes / count:>10,.0f} B/object")
    print(f"  {'models / raw memory':<58} {model_bytes / raw_bytes:>12.1f}x")
    print(f"  {'models / raw decode time':<58} {model_seconds / raw_seconds:>12.1f}x")
    del raw, models


def bench_reconcile_pure(count: int = 2000) -> None:
    print("reconcile, pure part (one notebook)")
    notebook = Notebook.model_validate(SEED_GPU_NOTEBOOK)
    parse_seconds = timed(lambda: Notebook.model_validate(SEED_GPU_NOTEBOOK), count)
    rate("parse Notebook (pydantic)", count, parse_seconds)
    build_seconds = timed(
        lambda: (workload.statefulset(notebook), services.http_service(notebook)), count
    )
    rate("build StatefulSet + HTTP Service", count, build_seconds)
    desired = meta.with_applied_hash(workload.statefulset(notebook))
    actual = copy.deepcopy(desired)
    # What the apiserver hands back: normalized quantities and defaulted fields.
    container = actual["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["requests"].update({"cpu": "500m", "memory": "1Gi"})
    container["imagePullPolicy"] = "Always"
    container["terminationMessagePath"] = "/dev/termination-log"
    assert not diff.needs_apply(desired, actual), "bench input should be converged"
    compare_seconds = timed(lambda: diff.needs_apply(desired, actual), count)
    rate("needs_apply on a converged StatefulSet (no write)", count, compare_seconds)


WATCH_EVENTS = 2000


def serve_in_thread(body: bytes) -> int:
    """A keep-alive HTTP/1.1 server on loopback, in a thread of its own (its CPU is not the
    client thread's), answering every request with `body`, and a watch (`watch=true`) with
    WATCH_EVENTS events of it, one chunk each, a millisecond apart; returns its port."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    answer %= (len(body), body)
    event = b'{"type": "MODIFIED", "object": %s}\n' % body
    event_chunk = b"%x\r\n%s\r\n" % (len(event), event)
    ready: list[int] = []
    started = threading.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if b"watch=true" not in head.split(b"\r\n", 1)[0]:
                writer.write(answer)
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(WATCH_EVENTS):
                writer.write(event_chunk)
                await asyncio.sleep(0.001)
            writer.write(b"0\r\n\r\n")

    async def run() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        ready.append(int(server.sockets[0].getsockname()[1]))
        started.set()
        await asyncio.Event().wait()

    threading.Thread(target=asyncio.run, args=(run(),), daemon=True).start()
    started.wait()
    return ready[0]


async def client_cpu_per_request(one: Callable[[], Awaitable[object]], count: int) -> float:
    """Milliseconds of this thread's CPU per request, 8 in flight at a time."""
    for _ in range(50):
        await one()
    in_flight = asyncio.Semaphore(8)

    async def limited() -> None:
        async with in_flight:
            await one()

    start = time.thread_time()
    await asyncio.gather(*(limited() for _ in range(count)))
    return (time.thread_time() - start) * 1000 / count


async def bench_api_requests(count: int = 3000) -> None:
    print("API requests (client thread's CPU per request, 8 in flight, loopback server)")
    body = json.dumps(statefulset_like(0)).encode()
    host = f"http://127.0.0.1:{serve_in_thread(body)}"
    path = "/apis/apps/v1/namespaces/bench/statefulsets/bench-0"
    patch = {"metadata": {"labels": {"a": "b"}}}
    async with KubeClient(Configuration(host=host)) as client:
        get = await client_cpu_per_request(lambda: client.request("GET", path), count)
        patched = await client_cpu_per_request(
            lambda: client.request("PATCH", path, body=patch), count
        )
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def aiohttp_request(method: str, data: bytes | None) -> object:
            async with session.request(method, host + path, data=data) as response:
                return json.loads(await response.read())

        reference_get = await client_cpu_per_request(lambda: aiohttp_request("GET", None), count)
        reference_patch = await client_cpu_per_request(
            lambda: aiohttp_request("PATCH", json.dumps(patch).encode()), count
        )
    for verb, ours, reference in (("GET", get, reference_get), ("PATCH", patched, reference_patch)):
        print(
            f"  {verb:<5} KubeClient {ours:.3f} ms, aiohttp ClientSession {reference:.3f} ms"
            f" ({ours / reference:.2f}x)"
        )
    print(f"watch events (client thread's CPU per event, {WATCH_EVENTS} a millisecond apart)")
    watched = await client_cpu_per_event(lambda: kube_watch(host), WATCH_EVENTS)
    reference_watch = await client_cpu_per_event(lambda: aiohttp_watch(host), WATCH_EVENTS)
    print(
        f"  KubeClient.watch {watched * 1000:.1f} µs, aiohttp ClientSession lines"
        f" {reference_watch * 1000:.1f} µs ({watched / reference_watch:.2f}x)"
    )


STATEFULSETS = ResourceKind("apps", "v1", "statefulsets", "StatefulSet")


async def kube_watch(host: str) -> int:
    async with KubeClient(Configuration(host=host)) as client:
        events = client.watch(STATEFULSETS, "bench", resource_version="1")
        return len([event async for event in events])


async def aiohttp_watch(host: str) -> int:
    """What KubeClient.watch did on aiohttp: read the answer line by line, decode each."""
    url = host + STATEFULSETS.path("bench") + "?watch=true&resourceVersion=1"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return len([orjson.loads(line) async for line in response.content if line.strip()])


async def client_cpu_per_event(watch: Callable[[], Awaitable[int]], count: int) -> float:
    """Milliseconds of this thread's CPU per event of one watch."""
    start = time.thread_time()
    received = await watch()
    assert received == count, f"{received} events of {count}"
    return (time.thread_time() - start) * 1000 / count


def main() -> None:
    asyncio.run(bench_workqueue())
    bench_cache_memory()
    bench_reconcile_pure()
    asyncio.run(bench_api_requests())


if __name__ == "__main__":
    main()

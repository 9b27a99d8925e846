"""`make bench`: speed and memory figures of the controller's hot paths, printed, not asserted.

Machines here are shared and noisy, so every figure comes with a reference measured in the same
run (a ratio means more than an absolute number):

- work-queue: adds with heavy duplication, then get/done of every distinct key;
- cache memory: 1000 StatefulSets held as raw JSON dicts (what our informers keep) versus the
  same objects deserialized into the `kubernetes` client's generated models (what a naive Python
  controller keeps);
- reconcile's pure part: desired objects for one notebook and the semantic "is there anything to
  apply" comparison against the apiserver-shaped object, per second.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from notebook_controller.api.models import Notebook
from notebook_controller.builders import meta, services, workload
from notebook_controller.runtime import diff
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


def main() -> None:
    asyncio.run(bench_workqueue())
    bench_cache_memory()
    bench_reconcile_pure()


if __name__ == "__main__":
    main()

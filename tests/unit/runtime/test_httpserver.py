from __future__ import annotations

import gc
import re
import uuid

import aiohttp
from prometheus_client import REGISTRY

from notebook_controller.runtime import metrics
from notebook_controller.runtime.controller import Controller
from notebook_controller.runtime.httpserver import HealthServer, parse_address
from notebook_controller.runtime.reconcile import Request, Result
from notebook_controller.runtime.workqueue import WorkQueue


class Noop:
    name = "noop"

    async def reconcile(self, request: Request) -> Result:
        return Result()


async def fetch(server: HealthServer, path: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, await response.text()


async def scrape() -> tuple[int, str]:
    """GET /metrics from a health server started for it."""
    server = HealthServer("127.0.0.1:0")
    await server.start()
    try:
        return await fetch(server, "/metrics")
    finally:
        await server.stop()


async def test_readyz_fails_until_its_checks_pass() -> None:
    synced = False
    server = HealthServer("127.0.0.1:0", readiness={"informers-synced": lambda: synced})
    await server.start()
    try:
        status, body = await fetch(server, "/readyz")
        assert (status, body) == (500, "[-]informers-synced failed\n")
        synced = True
        assert await fetch(server, "/readyz") == (200, "ok")
        assert await fetch(server, "/healthz") == (200, "ok")
    finally:
        await server.stop()


async def test_metrics_exports_controller_runtime_names() -> None:
    name = f"metrics-{uuid.uuid4().hex[:6]}"
    controller = Controller(name, Noop(), queue=WorkQueue(name))
    controller.queue.add(Request("ns", "a"))
    await controller.reconcile_one(await controller.queue.get())
    status, text = await scrape()
    assert status == 200
    assert f'controller_runtime_reconcile_total{{controller="{name}",result="success"}} 1.0' in text
    assert f'controller_runtime_reconcile_time_seconds_count{{controller="{name}"}} 1.0' in text
    assert f'workqueue_adds_total{{name="{name}"}} 1.0' in text
    assert f'workqueue_depth{{name="{name}"}} 0.0' in text
    assert f'workqueue_queue_duration_seconds_count{{name="{name}"}} 1.0' in text
    for family in ("controller_runtime_reconcile_errors_total", "workqueue_retries_total"):
        assert f"# TYPE {family} counter" in text


async def test_metrics_hold_their_values_without_a_lock_and_export_them() -> None:
    name = f"lockless-{uuid.uuid4().hex[:6]}"
    controller = Controller(name, Noop(), queue=WorkQueue(name))
    for key in ("a", "b", "c"):
        controller.queue.add(Request("ns", key))
        await controller.reconcile_one(await controller.queue.get())
    child = metrics.RECONCILE_TOTAL.labels(name, "success")
    assert isinstance(child._value, metrics.LoopThreadValue)
    _, text = await scrape()
    assert f'controller_runtime_reconcile_total{{controller="{name}",result="success"}} 3.0' in text
    assert f'controller_runtime_reconcile_time_seconds_count{{controller="{name}"}} 3.0' in text
    assert f'workqueue_adds_total{{name="{name}"}} 3.0' in text


async def test_metrics_time_the_garbage_collector_by_generation() -> None:
    metrics.observe_gc()
    metrics.observe_gc()  # once per process, however often it is called
    gc.disable()  # only the collection asked for below
    try:
        before = REGISTRY.get_sample_value("python_gc_duration_seconds_count", {"generation": "2"})
        gc.collect()
        _, text = await scrape()
    finally:
        gc.enable()
    count = re.search(r'^python_gc_duration_seconds_count\{generation="2"\} (\S+)$', text, re.M)
    assert count is not None
    assert float(count.group(1)) == (before or 0) + 1
    total = re.search(r'^python_gc_duration_seconds_sum\{generation="2"\} (\S+)$', text, re.M)
    assert total is not None and float(total.group(1)) > 0


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:8081") == ("127.0.0.1", 8081)
    assert parse_address(":9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:8081") == ("::1", 8081)

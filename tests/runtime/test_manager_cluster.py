"""The manager against the real control plane: readiness, metrics, the CLI process."""

from __future__ import annotations

import asyncio
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from notebook_controller.runtime.controller import Controller
from notebook_controller.runtime.informer import Informer, ResourceKind
from notebook_controller.runtime.kinds import CONFIGMAPS
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.manager import Manager
from notebook_controller.runtime.reconcile import Request, Result
from tests.kube import Cluster
from tests.runtime.processes import Process
from tests.runtime.support import configmap, eventually

pytestmark = pytest.mark.cluster


async def fetch(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


@asynccontextmanager
async def running(manager: Manager) -> AsyncIterator[int]:
    """Run the manager; yield the port its HTTP server listens on."""
    async with asyncio.TaskGroup() as group:
        task = group.create_task(manager.run())
        await eventually(lambda: manager.http.port != 0 or task.done(), 30, "http server")
        try:
            yield manager.http.port
        finally:
            manager.stop()
        await asyncio.wait_for(task, timeout=30)


def widget_crd(group: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


async def test_readyz_fails_until_caches_sync(
    cluster: Cluster, kube: KubeClient, namespace: str
) -> None:
    group = f"rt{uuid.uuid4().hex[:8]}.example.com"
    kind = ResourceKind(group, "v1", "widgets", "Widget")
    manager = Manager(kube, health_address="127.0.0.1:0", handle_signals=False)
    manager.add_informer(Informer(kube, kind, namespaces=[namespace]))
    try:
        async with running(manager) as port:
            # The kind isn't served yet: the informer cannot list, so it cannot sync.
            await asyncio.sleep(2)
            assert await fetch(port, "/healthz") == (200, "ok")
            assert await fetch(port, "/readyz") == (500, "[-]informers-synced failed\n")
            await asyncio.to_thread(cluster.apply, widget_crd(group))
            await eventually(manager.caches_synced, 120, "informer sync after the CRD")
            assert await fetch(port, "/readyz") == (200, "ok")
    finally:
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--ignore-not-found", check=False)


class CountingReconciler:
    name = "counting"

    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def reconcile(self, request: Request) -> Result:
        self.seen.append(request)
        if request.name == "flaky" and self.seen.count(request) == 1:
            raise RuntimeError("first attempt fails")
        return Result()


async def test_metrics_show_reconciles_and_queue_activity(kube: KubeClient, namespace: str) -> None:
    name = f"metrics-{uuid.uuid4().hex[:6]}"
    informer = Informer(kube, CONFIGMAPS, namespaces=[namespace])
    reconciler = CountingReconciler()
    controller = Controller(name, reconciler, workers=2)
    controller.watch_primary(informer)
    manager = Manager(kube, health_address="127.0.0.1:0", handle_signals=False)
    manager.add_controller(controller)
    async with running(manager) as port:
        await kube.create(CONFIGMAPS, namespace, configmap("steady"))
        await kube.create(CONFIGMAPS, namespace, configmap("flaky"))
        await eventually(lambda: reconciler.seen.count(Request(namespace, "flaky")) == 2, 60)
        status, text = await fetch(port, "/metrics")
    assert status == 200
    for sample in (
        f'controller_runtime_reconcile_total{{controller="{name}",result="success"}}',
        f'controller_runtime_reconcile_total{{controller="{name}",result="error"}} 1.0',
        f'controller_runtime_reconcile_errors_total{{controller="{name}"}} 1.0',
        f'controller_runtime_reconcile_time_seconds_count{{controller="{name}"}}',
        f'workqueue_depth{{name="{name}"}}',
        f'workqueue_adds_total{{name="{name}"}}',
        f'workqueue_queue_duration_seconds_bucket{{le="+Inf",name="{name}"}}',
        f'workqueue_retries_total{{name="{name}"}} 1.0',
    ):
        assert sample in text, sample


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_cli_serves_health_and_exits_zero_on_sigterm(
    cluster: Cluster, namespace: str
) -> None:
    port = free_port()
    process = Process(
        "notebook_controller",
        [
            "run",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--namespaces={namespace}",
            f"--health-address=127.0.0.1:{port}",
            "--log-format=json",
            "--graceful-shutdown-timeout=5",
        ],
    )
    try:
        await asyncio.to_thread(process.wait_event, "serving health and metrics", 60)
        assert await fetch(port, "/healthz") == (200, "ok")
        status, text = await fetch(port, "/metrics")
        assert status == 200 and "# TYPE workqueue_adds_total counter" in text
        process.signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait_exit, 60) == 0
        assert process.event_time("manager stopped") is not None
    finally:
        process.stop()

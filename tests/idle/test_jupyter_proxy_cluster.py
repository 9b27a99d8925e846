"""The activity probe from outside the cluster: through the API server's Service proxy, with the
admin kubeconfig, to the standard notebook image running on the local cluster's real node.

This machine is not a pod: `*.svc` names don't resolve here and Service IPs aren't routed, so
this is what `make run` does. The first test drives the probe itself against a Pod and Service
named as the controller names them; the second runs the controller process with no
`--jupyter-url-template` and watches a real Notebook's `Idle` condition.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from notebook_controller.idle.jupyter import (
    NO_TRACK,
    ApiServerProxy,
    JupyterActivity,
    JupyterProbe,
    ProbeMode,
    choose_route,
    proxy_path,
)
from notebook_controller.runtime.clock import parse_rfc3339 as parse_time
from notebook_controller.runtime.kube import KubeClient, in_cluster
from tests.e2e.controller import ControllerProcess
from tests.idle.jupyter import free_port, notebook_prefix
from tests.kube import Cluster, condition, get, wait_condition, wait_for
from tests.realnode import REAL_NODE, wait_ready

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

T = TypeVar("T")

NB = "proxied"
POD = f"managed-notebook-{NB}-0"
SERVICE = f"managed-notebook-http-{NB}"
POLICY = "idle-policy"
# The image's nbctl_user_activity extension stops read-only requests from counting as activity
# at all, so with it a probe could never move last_activity, with or without no_track_activity.
# The first test turns it off (the image's own start script, one more argument to JupyterLab) so
# that "the probe does not move last_activity" can fail, and shows with a plain GET that it can.
WITHOUT_THE_EXTENSION = [
    "/usr/local/bin/start-notebook.sh",
    "--ServerApp.jpserver_extensions={'nbctl_user_activity': False}",
]
# jupyter_server wants an XSRF token on POSTs from a client without one of its tokens: a cookie
# and a header with the same value are what a browser sends.
XSRF = ["-H", "X-XSRFToken: nbctl-test", "-b", "_xsrf=nbctl-test"]


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[KubeClient]:
    """The controller's own client, with the admin kubeconfig."""
    async with await KubeClient.from_config(str(cluster.kubeconfig)) as client:
        yield client


def jupyter_pod(namespace: str, image: str, args: list[str] | None = None) -> dict[str, Any]:
    prefix = notebook_prefix(namespace, NB)
    container: dict[str, Any] = {
        "name": "notebook",
        "image": image,
        "env": [{"name": "NB_PREFIX", "value": prefix}],
        "ports": [{"name": "http", "containerPort": 8888}],
        "readinessProbe": {
            "httpGet": {"path": f"{prefix}api/status", "port": "http"},
            "periodSeconds": 1,
        },
    }
    if args:
        container["args"] = args
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "labels": {"app": NB}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
    }


def http_service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    """As the controller's: port 80 named http, to the pod's `http` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


async def post_in_pod(cluster: Cluster, namespace: str, api: str, body: str | None = None) -> Any:
    """What a JupyterLab user does by clicking: a POST to Jupyter, from inside the pod."""
    url = f"http://127.0.0.1:8888{notebook_prefix(namespace, NB)}{api}"
    data = ["-H", "Content-Type: application/json", "-d", body] if body else []
    command = ["curl", "-sS", "--fail", "-X", "POST", *XSRF, *data, url]
    proc = await asyncio.to_thread(
        cluster.kubectl, "-n", namespace, "exec", POD, "-c", "notebook", "--", *command
    )
    return json.loads(proc.stdout)


async def status_untracked(kube: KubeClient, namespace: str) -> dict[str, Any]:
    """api/status through the proxy without the probe's code: what the server itself says."""
    path = proxy_path(namespace=namespace, service=SERVICE, prefix=notebook_prefix(namespace, NB))
    answer = await kube.raw_get(path + "api/status", query=list(NO_TRACK.items()))
    assert answer.status == 200, answer
    found: dict[str, Any] = json.loads(answer.body)
    return found


async def test_the_probe_reads_jupyter_through_the_api_server_proxy(
    cluster: Cluster, real_namespace: str, notebook_image: str, kube: KubeClient
) -> None:
    namespace = real_namespace
    # This test process is where `make run` runs the controller: not a pod.
    route = choose_route(url_template=None, in_cluster=in_cluster())
    assert route.mode is ProbeMode.APISERVER_PROXY, route

    cluster.apply(jupyter_pod(namespace, notebook_image, WITHOUT_THE_EXTENSION), namespace)
    cluster.apply(http_service(SERVICE, {"app": NB}), namespace)
    pod = await asyncio.to_thread(wait_ready, cluster, namespace, POD, 240)
    assert pod["spec"]["nodeName"] == REAL_NODE

    api_server = str(kube.configuration.host)
    probe = JupyterProbe(ApiServerProxy(kube, api_server), timeout=10)
    prefix = notebook_prefix(namespace, NB)

    async def observe(service: str = SERVICE) -> JupyterActivity:
        return await probe.probe(namespace=namespace, service=service, prefix=prefix)

    expected_base = (
        f"{api_server}/api/v1/namespaces/{namespace}/services/{SERVICE}:80/proxy{prefix}"
    )
    assert probe.base_url(namespace=namespace, service=SERVICE, prefix=prefix) == expected_base

    # The Service answers as soon as the endpoint is published, which may trail Ready a moment.
    fresh = await wait_async(lambda: observe(), lambda seen: seen.reachable, within=30)
    assert (fresh.kernels, fresh.terminals, fresh.busy) == (0, 0, False)
    assert fresh.last_activity is None  # only the server's start so far
    assert fresh.started is not None

    # A user starts a kernel and opens a terminal; the probe sees both, through the proxy.
    kernel = await post_in_pod(cluster, namespace, "api/kernels", '{"name": "python3"}')
    terminal = await post_in_pod(cluster, namespace, "api/terminals")
    assert kernel["id"] and terminal["name"]

    previous: list[datetime | None] = [None]

    def settled(seen: JupyterActivity) -> bool:
        """Both seen, and the kernel's and terminal's start-up output is over."""
        steady = seen.last_activity is not None and seen.last_activity == previous[0]
        previous[0] = seen.last_activity
        return seen.reachable and (seen.kernels, seen.terminals) == (1, 1) and steady

    async def after_a_second() -> JupyterActivity:
        await asyncio.sleep(1)
        return await observe()

    seen = await wait_async(after_a_second, settled, within=60)
    assert seen.last_activity is not None and seen.started is not None
    assert seen.last_activity >= parse_time(kernel["last_activity"]) > seen.started

    # An idle notebook stays idle however often it is probed: no_track_activity=1 reaches
    # Jupyter through the proxy on every request.
    server_before = await status_untracked(kube, namespace)
    for _ in range(8):
        again = await observe()
        assert again.reachable and again.last_activity == seen.last_activity, again
        assert (again.kernels, again.terminals) == (1, 1)
        await asyncio.sleep(0.5)
    assert await status_untracked(kube, namespace) == server_before

    # The control: the same GET without no_track_activity is activity on this server.
    path = proxy_path(namespace=namespace, service=SERVICE, prefix=prefix)
    tracked = await kube.raw_get(path + "api/kernels")
    assert tracked.status == 200
    server_after = await status_untracked(kube, namespace)
    moved = parse_time(server_after["last_activity"])
    assert moved > parse_time(server_before["last_activity"])
    clicked = await observe()
    assert clicked.last_activity == max(moved, seen.last_activity)

    # Failures read as words. A Service with no pod behind it:
    cluster.apply(http_service("managed-notebook-http-nobody", {"app": "nobody"}), namespace)
    nobody = await observe("managed-notebook-http-nobody")
    assert (nobody.reachable, nobody.failure) == (False, "connection")
    assert 'no endpoints available for service "managed-notebook-http-nobody"' in nobody.detail
    assert "check the pod is Running and Jupyter listens on 8888 under NB_PREFIX" in nobody.detail
    # No Service at all:
    missing = await observe("managed-notebook-http-missing")
    assert (missing.reachable, missing.failure) == (False, "proxy")
    assert 'services "managed-notebook-http-missing" not found' in missing.detail
    # The right Service, the wrong base_url: Jupyter's own 404, through the proxy.
    wrong = await probe.probe(namespace=namespace, service=SERVICE, prefix="/somebody/else/")
    assert (wrong.reachable, wrong.failure) == (False, "http-404")
    assert "is NB_PREFIX Jupyter's base_url?" in wrong.detail


# --- the controller, run outside the cluster ----------------------------------------------


def notebook(namespace: str, image: str) -> dict[str, Any]:
    """A Notebook with the standard image, nothing overridden."""
    container = {"name": "notebook", "image": image}
    return {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "metadata": {"name": NB, "namespace": namespace},
        "spec": {"type": "jupyter", "template": {"spec": {"containers": [container]}}},
    }


@pytest.fixture
def controller(
    cluster: Cluster,
    real_namespace: str,
    notebook_crd: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ControllerProcess]:
    """The controller process as `make run` starts it: no --jupyter-url-template."""
    namespace = real_namespace
    policy = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": POLICY},
        "data": {
            "idleTimeout": "15s",
            "reclaimGrace": "1h",
            "probeInterval": "1s",
            "probeTimeout": "5s",
        },
    }
    cluster.apply(policy, namespace)
    running = ControllerProcess(
        cluster,
        namespace,
        tmp_path / "controller.log",
        extra_args=[
            f"--idle-policy-namespace={namespace}",
            f"--idle-policy-configmap={POLICY}",
            "--log-level=debug",
        ],
        health_port=free_port(),
    )
    running.start()
    yield running
    running.stop_and_report(request)


def test_the_controller_outside_the_cluster_probes_through_the_api_server(
    cluster: Cluster, real_namespace: str, notebook_image: str, controller: ControllerProcess
) -> None:
    namespace = real_namespace
    chosen = wait_for(
        lambda: [
            line
            for line in controller.log_lines()
            if line.get("event") == "idle reclaimer reaches Jupyter"
        ],
        timeout=60,
        message="the controller's log line naming how it reaches Jupyter",
    )
    assert chosen[0]["mode"] == "apiserver-proxy"
    assert chosen[0]["url"].endswith(
        "/api/v1/namespaces/{namespace}/services/{service}:80/proxy{prefix}"
    )

    cluster.apply(notebook(namespace, notebook_image), namespace)
    wait_condition(cluster, namespace, NB, "Ready", "True", timeout=240)
    # Idle=False needs an answer from Jupyter: a failed probe would be Unknown/ProbeFailed.
    active = wait_condition(cluster, namespace, NB, "Idle", "False", "RecentActivity", timeout=60)
    assert condition(active, "Idle")["message"] == "The Notebook is active"
    idle = wait_condition(cluster, namespace, NB, "Idle", "True", "NoActivity", timeout=90)
    assert "no activity since" in condition(idle, "Idle")["message"]
    found = get(cluster, namespace, "notebook", NB)
    assert found is not None and found["spec"].get("runMode", "running") == "running"
    metrics = controller.metrics()
    assert metrics['notebook_controller_activity_probe_duration_seconds_count{probe="jupyter"}'] > 3


async def wait_async(
    act: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, within: float
) -> T:
    """Run `act()` until `done(result)`; that result."""
    last: T | None = None
    try:
        async with asyncio.timeout(within):
            while True:
                last = await act()
                if done(last):
                    return last
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"not done within {within}s; last seen: {last}") from None

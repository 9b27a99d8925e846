"""The product as a user meets it, on the real node: the seed's CPU example (the product doc's
`notebook-example.yaml`, only the image swapped for the standard notebook image) becomes Ready
once JupyterLab answers under NB_PREFIX, and JupyterLab's UI renders in a headless browser
through the notebook's HTTP Service.

The seed asks for no resources and mounts no volume, so it runs as written on this 2-core node.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.controller import ControllerProcess
from tests.idle.jupyter import notebook_prefix
from tests.kube import Cluster, condition, get, wait_for
from tests.product.browser import JUPYTERLAB_RENDERED, Chromium
from tests.product.notebooks import (
    jupyter_status,
    lab_base,
    parse_time,
    pod_name,
    prepull,
    seed_notebook,
)
from tests.realnode import REAL_NODE

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

SEED = "notebook-example.yaml"
NB = "notebook-sample"  # the seed's name


def wait_controller_started(controller: ControllerProcess) -> None:
    wait_for(
        lambda: any(line.get("event") == "caches synced" for line in controller.log_lines()),
        timeout=60,
        message="the controller's caches to sync",
    )


def test_seed_cpu_example_opens_jupyterlab(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    chromium: Chromium,
    artifacts: Path,
) -> None:
    namespace = real_namespace
    manifest = seed_notebook(SEED, notebook_image)
    assert manifest["metadata"]["name"] == NB
    assert "resources" not in manifest["spec"]["template"]["spec"]["containers"][0]
    prepull(cluster, namespace, notebook_image)  # time to Ready is measured with the image cached
    wait_controller_started(controller)

    # kubectl apply, then watch the notebook's Ready and Jupyter on the pod's IP side by side
    started = time.monotonic()
    cluster.apply(manifest, namespace)
    first_answer: float | None = None
    ready_at: float | None = None
    ready_before_jupyter = False
    saw_not_ready_while_jupyter_down = False
    prefix = notebook_prefix(namespace, NB)
    while ready_at is None:
        assert time.monotonic() - started < 240, (
            f"notebook not Ready 240 s after apply; status: "
            f"{(get(cluster, namespace, 'notebook', NB) or {}).get('status')}"
        )
        pod = get(cluster, namespace, "pod", pod_name(NB)) or {}
        pod_ip = (pod.get("status") or {}).get("podIP")
        answering = False
        if pod_ip:
            try:
                jupyter_status(f"http://{pod_ip}:8888{prefix}", timeout=1)
                answering = True
                first_answer = first_answer or time.monotonic()
            except OSError:
                pass
        notebook = get(cluster, namespace, "notebook", NB)
        if condition(notebook, "Ready").get("status") == "True":
            ready_at = time.monotonic()
            ready_before_jupyter = first_answer is None
        elif pod_ip and not answering:
            saw_not_ready_while_jupyter_down = True
        else:
            time.sleep(0.2)
    to_ready = ready_at - started
    assert first_answer is not None
    print(
        f"\ntime from kubectl apply to Ready=True (image on the node): {to_ready:.1f} s; "
        f"Jupyter first answered on the pod IP {first_answer - started:.1f} s after apply; "
        f"seen not Ready while the container ran but Jupyter did not answer yet: "
        f"{saw_not_ready_while_jupyter_down}"
    )
    assert not ready_before_jupyter, "Ready=True before Jupyter answered on the pod's IP"

    notebook = get(cluster, namespace, "notebook", NB)
    assert notebook is not None
    assert notebook["status"]["phase"] == "Running"
    pod = cluster.get_json("pod", pod_name(NB), "-n", namespace)
    assert pod["spec"]["nodeName"] == REAL_NODE
    container = pod["spec"]["containers"][0]
    assert container["image"] == notebook_image
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == (f"{prefix}api/status", 8888), probe
    # the Ready transition came after the server inside started (same clock: the node is here)
    base = lab_base(cluster, namespace, NB)
    status = jupyter_status(base)
    ready_since = parse_time(condition(notebook, "Ready")["lastTransitionTime"])
    assert ready_since >= int(parse_time(status["started"])), (condition(notebook, "Ready"), status)
    created = parse_time(notebook["metadata"]["creationTimestamp"])
    print(
        f"Jupyter's server started {parse_time(status['started']) - created:.1f} s after the"
        f" notebook's creationTimestamp (second resolution); readiness probe every"
        f" {container['readinessProbe'].get('periodSeconds')} s"
    )

    # the user opens status.url (relative: the cluster has no external base) on the Service
    assert notebook["status"]["url"] == f"{prefix}lab", notebook["status"]
    url = base.removesuffix(prefix) + notebook["status"]["url"]
    screenshot = artifacts / "jupyterlab-seed-cpu-example.png"

    async def browse() -> dict[str, object]:
        async with aiohttp.ClientSession() as session, chromium.page(session) as page:
            began = time.monotonic()
            await page.navigate(url)
            await page.wait_for(JUPYTERLAB_RENDERED, within=120, what=f"JupyterLab's UI at {url}")
            rendered = time.monotonic() - began
            await asyncio.sleep(1)  # let the launcher's icons paint for the screenshot
            await page.screenshot(screenshot)
            cards = await page.evaluate(
                "[...document.querySelectorAll('.jp-LauncherCard')]"
                ".map(e => e.getAttribute('data-category') + ': ' + e.getAttribute('title'))"
            )
            return {
                "title": await page.evaluate("document.title"),
                "cards": cards,
                "location": await page.evaluate("location.href"),
                "rendered_s": round(rendered, 1),
            }

    seen = asyncio.run(browse())
    print(f"JupyterLab at {url}: {json.dumps(seen)}; screenshot {screenshot}")
    assert seen["title"] == "JupyterLab", seen
    assert seen["location"] == url, seen  # no redirect to a login page
    cards = seen["cards"]
    assert isinstance(cards, list)
    assert "Notebook: Python 3 (ipykernel)" in cards, cards
    assert "Notebook: TensorBoard" in cards, cards
    assert "Other: Start a new terminal session" in cards, cards
    assert screenshot.stat().st_size > 10_000

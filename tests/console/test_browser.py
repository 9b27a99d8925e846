"""The console in headless Chromium on the real node, as a user meets it: create a notebook
from the form, watch it turn Ready without reloading, open JupyterLab through the gateway,
pause it (pod gone, Paused shown), let the idle reclaimer pause it and read why, resume it with
one click, delete it after confirming. Screenshots in test-artifacts/console-*.png.

The console runs as `make run` starts it (the kubeconfig's user), limited to the test's
namespace; the controller runs with a short idle policy (idle 30 s, grace 20 s)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notebook_controller.api.models import RECLAIMED_AT_ANNOTATION
from tests.console.console import ConsoleProcess
from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster, get, wait_for
from tests.product.browser import JUPYTERLAB_RENDERED, Chromium, Page
from tests.product.notebooks import (
    idle_controller_args,
    idle_policy,
    pod_name,
    prepull,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

NB = "nb-console"
IDLE_TIMEOUT = 30
RECLAIM_GRACE = 20


@pytest.fixture
def controller_args(cluster: Cluster, namespace: str) -> list[str]:
    cluster.apply(
        idle_policy(idleTimeout=f"{IDLE_TIMEOUT}s", reclaimGrace=f"{RECLAIM_GRACE}s"), namespace
    )
    return idle_controller_args(namespace)


@pytest.fixture
def console_args(namespace: str) -> list[str]:
    return ["--identity=kubeconfig", f"--namespaces={namespace}"]


def cell(column: str) -> str:
    """JavaScript: the text of the notebook's row cell `column` ('' when there is no row)."""
    return (
        f"((document.querySelector('tr[data-notebook$=\"/{NB}\"] td.{column}') || {{}})"
        ".textContent || '')"
    )


async def type_into(page: Page, selector: str, text: str) -> None:
    await page.click(selector)
    await page.insert_text(text)


def test_create_open_pause_reclaim_resume_delete_in_the_browser(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    console: ConsoleProcess,
    notebook_image: str,
    chromium: Chromium,
    artifacts: Path,
) -> None:
    namespace = real_namespace
    prepull(cluster, namespace, notebook_image)
    shots: list[str] = []
    figures: dict[str, float] = {}

    async def shot(page: Page, name: str) -> None:
        await asyncio.sleep(0.5)  # let the last refresh paint
        path = await page.screenshot(artifacts / f"console-{name}.png")
        shots.append(path.name)

    async def browse() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with aiohttp.ClientSession() as session, chromium.page(session) as page:
            # Create from the form
            await page.navigate(f"{console.url}create?namespace={namespace}")
            await type_into(page, "#name", NB)
            await type_into(page, "#image", notebook_image)
            await type_into(page, "#cpu", "0.25")
            await type_into(page, "#memory", "512Mi")
            await shot(page, "1-create-form")
            began = time.monotonic()
            await page.click("#submit")
            await page.wait_for(
                f"location.pathname === '/' && {cell('name')} === '{NB}'",
                within=30,
                what="the new notebook's row in the list",
            )
            seen["requests"] = await page.evaluate(cell("requests"))
            seen["why while starting"] = await page.evaluate(cell("why"))
            await shot(page, "2-created")
            # it turns Ready live: no navigation, the list refreshes itself
            marker = await page.evaluate("window.__sameDocument = 42")
            await page.wait_for(
                f"{cell('ready')} === 'yes'", within=240, what="Ready=yes in the list"
            )
            figures["form submit to Ready shown"] = time.monotonic() - began
            seen["same document"] = await page.evaluate("window.__sameDocument") == marker
            seen["phase ready"] = await page.evaluate(cell("phase"))
            await shot(page, "3-ready")

            # Open: JupyterLab through the gateway
            href = await page.evaluate(
                f"document.querySelector('tr[data-notebook$=\"/{NB}\"] a.open').href"
            )
            seen["open href"] = href

            # (kube-proxy routes a just-Ready pod's Service a moment later)
            async def gateway_answers() -> bool:
                async with session.get(href.removesuffix("lab") + "api/status") as r:
                    return r.status == 200

            began = time.monotonic()
            while not await gateway_answers():
                assert time.monotonic() - began < 60, "the gateway did not reach Jupyter"
                await asyncio.sleep(0.5)
            async with chromium.page(session) as lab:
                began = time.monotonic()
                await lab.navigate(href)
                try:
                    await lab.wait_for(JUPYTERLAB_RENDERED, within=120, what="JupyterLab")
                    figures["JupyterLab rendered through the gateway"] = time.monotonic() - began
                finally:
                    await shot(lab, "4-jupyterlab")
                seen["lab title"] = await lab.evaluate("document.title")
                seen["lab location"] = await lab.evaluate("location.href")

            # Pause
            await page.click(f'button[data-action="pause"][data-name="{NB}"]')
            await page.wait_for(
                f"{cell('phase')} === 'Suspended'", within=60, what="phase Suspended"
            )
            seen["message after pause"] = await page.evaluate(
                "document.getElementById('message').textContent"
            )
            seen["why paused"] = await page.evaluate(cell("why"))
            await asyncio.to_thread(
                wait_for,
                lambda: get(cluster, namespace, "pod", pod_name(NB)) is None,
                timeout=60,
                message="the pod to go after Pause",
            )
            await shot(page, "5-paused")

            # Resume
            await page.click(f'button[data-action="resume"][data-name="{NB}"]')
            await page.wait_for(f"{cell('ready')} === 'yes'", within=240, what="Ready again")

            # Left alone: idle, then reclaimed, and the console says so
            began = time.monotonic()
            await page.wait_for(
                f"{cell('idle')}.includes('will be paused at')",
                within=IDLE_TIMEOUT + 60,
                what="the Idle reason in the list",
            )
            seen["idle"] = await page.evaluate(cell("idle"))
            await shot(page, "6-idle")
            await page.wait_for(
                f"{cell('why')}.includes('paused by the idle reclaimer')",
                within=RECLAIM_GRACE + 60,
                what="the reclaim reason in the list",
            )
            figures["Ready to reclaimed shown"] = time.monotonic() - began
            seen["why reclaimed"] = await page.evaluate(cell("why"))
            seen["ready reclaimed"] = await page.evaluate(cell("ready"))
            seen["reclaimed object"] = get(cluster, namespace, "notebook", NB)
            await asyncio.to_thread(
                wait_for,
                lambda: get(cluster, namespace, "pod", pod_name(NB)) is None,
                timeout=60,
                message="the pod to go after the reclaim",
            )
            await shot(page, "7-reclaimed")

            # one click: Resume
            began = time.monotonic()
            await page.click(f'button[data-action="resume"][data-name="{NB}"]')
            await page.wait_for(f"{cell('ready')} === 'yes'", within=240, what="resumed")
            figures["Resume click to Ready shown"] = time.monotonic() - began
            seen["resumed object"] = get(cluster, namespace, "notebook", NB)
            await shot(page, "8-resumed")

            # Delete, confirmed in a dialog
            await page.click(f'button[data-action="delete"][data-name="{NB}"]')
            await page.wait_for(
                "document.getElementById('confirm').open", within=10, what="the dialog"
            )
            seen["dialog"] = await page.evaluate("document.getElementById('confirm').textContent")
            await shot(page, "9-confirm-delete")
            await page.click("#confirm-yes")
            await page.wait_for(f"{cell('name')} === ''", within=60, what="the row to go")
            await shot(page, "10-deleted")
        return seen

    seen = asyncio.run(browse())
    print(f"\nfigures: {json.dumps({k: round(v, 1) for k, v in figures.items()})}")
    print(f"seen: {json.dumps({k: v for k, v in seen.items() if 'object' not in k})}")
    print(f"screenshots in {artifacts}: {shots}")
    assert seen["requests"] == "CPU 0.25 · memory 512Mi", seen["requests"]
    assert seen["same document"] is True  # Ready appeared without a reload
    assert seen["phase ready"] == "Running"
    assert seen["open href"] == (
        f"{console.url}t9k/notebooks/projects/{namespace}/name/{NB}/lab"
    ), seen["open href"]
    assert seen["lab title"] == "JupyterLab" and seen["lab location"] == seen["open href"]
    assert seen["message after pause"] == f"paused notebook {namespace}/{NB}"
    assert seen["why paused"].startswith("paused by a user: "), seen["why paused"]
    assert seen["why paused"].endswith("press Resume to start it again"), seen["why paused"]
    assert seen["idle"].startswith("The Notebook is idle: no activity since"), seen["idle"]
    reclaimed = seen["reclaimed object"]
    assert reclaimed["spec"]["runMode"] == "paused"
    at = reclaimed["metadata"]["annotations"][RECLAIMED_AT_ANNOTATION]
    assert seen["why reclaimed"].startswith(f"paused by the idle reclaimer at {at}")
    assert seen["ready reclaimed"] == "no"
    resumed = seen["resumed object"]
    assert resumed["spec"]["runMode"] == "running"
    assert RECLAIMED_AT_ANNOTATION not in (resumed["metadata"].get("annotations") or {})
    assert f"{namespace}/{NB}" in seen["dialog"]
    assert get(cluster, namespace, "notebook", NB) is None
    assert all((artifacts / name).stat().st_size > 5_000 for name in shots)

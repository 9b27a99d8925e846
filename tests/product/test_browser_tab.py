"""Does a JupyterLab tab left open in a browser keep a notebook active? Measured in headless
Chromium (a visible, focused, never-throttled page) against the standard image on the real
node, which ships the `nbctl_user_activity` server extension so that JupyterLab's read-only
polling is not activity (docs/image.md).

- untouched tab, JupyterLab's default layout (file browser open): `last_activity` should stay
  put and the notebook go Idle on time. The file browser's listing re-saves its column sizes
  after every 10 s refresh, which makes JupyterLab PUT the (unchanged) workspace: the image's
  nbctl_user_activity does not count a workspace save that changes nothing. The figures are
  printed and written to test-artifacts/.
- untouched tab with the file browser panel closed: `last_activity` stays put, Idle on time.
- typing a cell and running it (keyboard events in the page): activity, and KernelBusy.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster, condition, get, wait_condition
from tests.product.browser import JUPYTERLAB_RENDERED, Chromium, Page
from tests.product.notebooks import (
    idle_controller_args,
    idle_policy,
    lab_base,
    parse_time,
    seed_notebook,
    wait_jupyter,
    wait_notebook_ready,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

NB = "notebook-sample"  # the seed's name
IDLE_TIMEOUT = 60
SETTLE = 15  # after the page renders: its load-time saves are done
WINDOW = 120  # the tab sits untouched this long
FILE_BROWSER_HIDDEN = "document.querySelector('#filebrowser').offsetParent === null"


@pytest.fixture
def controller_args(cluster: Cluster, namespace: str) -> list[str]:
    cluster.apply(idle_policy(idleTimeout=f"{IDLE_TIMEOUT}s", reclaimGrace="1h"), namespace)
    return idle_controller_args(namespace)


def start_notebook(cluster: Cluster, namespace: str, image: str) -> str:
    cluster.apply(seed_notebook("notebook-example.yaml", image), namespace)
    wait_notebook_ready(cluster, namespace, NB)
    base = lab_base(cluster, namespace, NB)
    wait_jupyter(base)
    return base


async def api(session: aiohttp.ClientSession, base: str, path: str) -> Any:
    async with session.get(f"{base}api/{path}", params={"no_track_activity": "1"}) as response:
        response.raise_for_status()
        return await response.json()


async def open_lab(page: Page, base: str) -> None:
    await page.navigate(f"{base}lab")
    await page.wait_for(JUPYTERLAB_RENDERED, within=120, what="JupyterLab's UI")
    assert await page.evaluate("document.visibilityState") == "visible"


async def close_file_browser(page: Page) -> None:
    await page.click(".jp-SideBar li[data-id='filebrowser']")
    await page.wait_for(FILE_BROWSER_HIDDEN, within=10, what="the file browser panel to close")


def request_kinds(page: Page, since: float) -> dict[str, int]:
    """Requests the page sent since `since`, counted by method and API path."""
    counts: collections.Counter[str] = collections.Counter()
    for request in page.requests:
        if request.at >= since:
            path = urlsplit(request.url).path
            api_path = path[path.find("/api/") :] if "/api/" in path else path.rsplit("/", 1)[-1]
            counts[f"{request.method} {api_path}"] += 1
    return dict(sorted(counts.items()))


async def watch_untouched(
    cluster: Cluster, namespace: str, page: Page, session: aiohttp.ClientSession, base: str
) -> dict[str, Any]:
    """Leave the tab alone for WINDOW seconds; sample last_activity and the Idle condition."""
    await asyncio.sleep(SETTLE)
    start = time.time()
    first = (await api(session, base, "status"))["last_activity"]
    samples = []
    idle_at: float | None = None
    while time.time() - start < WINDOW:
        await asyncio.sleep(10)
        status = await api(session, base, "status")
        found = condition(get(cluster, namespace, "notebook", NB), "Idle")
        if idle_at is None and found.get("status") == "True":
            idle_at = time.time() - start
        samples.append(
            {
                "t": round(time.time() - start),
                "last_activity_age_s": round(time.time() - parse_time(status["last_activity"]), 1),
                "idle": f"{found.get('status')}/{found.get('reason')}",
            }
        )
    last = (await api(session, base, "status"))["last_activity"]
    return {
        "window_s": WINDOW,
        "idle_timeout_s": IDLE_TIMEOUT,
        "last_activity_at_start": first,
        "last_activity_at_end": last,
        "last_activity_moved": last != first,
        "idle_true_after_s": None if idle_at is None else round(idle_at),
        "visibility": await page.evaluate("document.visibilityState"),
        "requests": request_kinds(page, start),
        "samples": samples,
    }


def record(artifacts: Path, name: str, figures: dict[str, Any]) -> None:
    (artifacts / f"browser-tab-{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(figures)}")


def assert_stayed_idle(figures: dict[str, Any]) -> None:
    assert not figures["last_activity_moved"], (
        f"an untouched tab moved api/status last_activity "
        f"({figures['last_activity_at_start']} -> {figures['last_activity_at_end']}); "
        f"non-GET requests from the page: "
        f"{ {k: v for k, v in figures['requests'].items() if not k.startswith('GET')} }"
    )
    # Idle=True once idleTimeout passed since the page's own load-time saves (+ probe slack)
    assert figures["idle_true_after_s"] is not None, "never Idle=True with the tab open"
    assert figures["idle_true_after_s"] <= IDLE_TIMEOUT + 15, figures


def test_an_untouched_tab_leaves_the_notebook_idle(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    chromium: Chromium,
    artifacts: Path,
) -> None:
    namespace = real_namespace
    base = start_notebook(cluster, namespace, notebook_image)

    async def measure() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, chromium.page(session) as page:
            await open_lab(page, base)
            assert not await page.evaluate(FILE_BROWSER_HIDDEN)  # the default layout
            figures = await watch_untouched(cluster, namespace, page, session, base)
            await page.screenshot(artifacts / "browser-tab-untouched.png")
            return figures

    figures = asyncio.run(measure())
    record(artifacts, "untouched-default-layout", figures)
    assert_stayed_idle(figures)


def test_an_untouched_tab_with_the_file_browser_closed_leaves_the_notebook_idle(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    chromium: Chromium,
    artifacts: Path,
) -> None:
    namespace = real_namespace
    base = start_notebook(cluster, namespace, notebook_image)

    async def measure() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, chromium.page(session) as page:
            await open_lab(page, base)
            await close_file_browser(page)
            return await watch_untouched(cluster, namespace, page, session, base)

    figures = asyncio.run(measure())
    record(artifacts, "untouched-file-browser-closed", figures)
    assert_stayed_idle(figures)
    assert any(k.startswith("GET ") for k in figures["requests"]), "the page did not poll at all"


CELL = "print('cell started'); import time; time.sleep(45)"


def test_typing_and_running_a_cell_in_the_tab_is_activity(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    chromium: Chromium,
    artifacts: Path,
) -> None:
    namespace = real_namespace
    base = start_notebook(cluster, namespace, notebook_image)

    async def quiet_activity(session: aiohttp.ClientSession) -> str:
        """last_activity once it has not moved for 12 s (at most 60 s)."""
        deadline = time.monotonic() + 60
        value = (await api(session, base, "status"))["last_activity"]
        stable_since = time.monotonic()
        while time.monotonic() - stable_since < 12:
            assert time.monotonic() < deadline, "last_activity kept moving with nothing done"
            await asyncio.sleep(2)
            now = (await api(session, base, "status"))["last_activity"]
            if now != value:
                value, stable_since = now, time.monotonic()
        return str(value)

    async def use() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, chromium.page(session) as page:
            await open_lab(page, base)
            await close_file_browser(page)
            await page.click(".jp-LauncherCard[data-category='Notebook'][title^='Python 3']")
            await page.wait_for(
                "!!document.querySelector('.jp-NotebookPanel .jp-Cell .cm-content')",
                within=60,
                what="a new notebook with a cell",
            )
            kernels = []
            for _ in range(120):
                kernels = await api(session, base, "kernels")
                if kernels and kernels[0]["execution_state"] == "idle":
                    break
                await asyncio.sleep(0.5)
            assert kernels and kernels[0]["execution_state"] == "idle", kernels
            quiet = await quiet_activity(session)

            await page.click(".jp-NotebookPanel .jp-Cell .cm-content")
            await page.insert_text(CELL)
            await asyncio.sleep(5)
            after_typing = (await api(session, base, "status"))["last_activity"]
            typed = await page.evaluate(
                "document.querySelector('.jp-NotebookPanel .jp-Cell .cm-content').innerText"
            )
            assert "time.sleep(45)" in typed, typed

            pressed = time.time()
            await page.shift_enter()
            await page.wait_for(
                "[...document.querySelectorAll('.jp-OutputArea-output')]"
                ".some(e => e.innerText.includes('cell started'))",
                within=30,
                what="the cell's output",
            )
            kernels = await api(session, base, "kernels")
            status = await api(session, base, "status")
            await page.screenshot(artifacts / "browser-tab-cell-running.png")
            return {
                "quiet_last_activity": quiet,
                "after_typing_only": after_typing,
                "typing_moved_it": after_typing != quiet,
                "after_shift_enter": status["last_activity"],
                "moved_s_after_key": round(parse_time(status["last_activity"]) - pressed, 2),
                "kernel_state": kernels[0]["execution_state"],
            }

    figures = asyncio.run(use())
    record(artifacts, "typing-and-running-a-cell", figures)
    assert figures["kernel_state"] == "busy", figures
    assert parse_time(figures["after_shift_enter"]) > parse_time(figures["quiet_last_activity"])
    assert figures["moved_s_after_key"] > -1, figures  # moved by running the cell, not before
    wait_condition(cluster, namespace, NB, "Idle", "False", "KernelBusy", timeout=20)

"""A viewer (a Role with get and list only) in headless Chromium behind the trusted proxy (the
proxy's headers added by the browser, as the proxy would): Pause, Resume and Delete are disabled
with the reason as their tooltip, and an action forced from the page anyway is refused by the API
server, whose words the page shows. Screenshot: test-artifacts/console-viewer.png."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.console.console import ConsoleProcess, grant
from tests.kube import Cluster, get
from tests.product.browser import Chromium
from tests.product.notebooks import seed_notebook

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NB = "notebook-sample"


def test_a_viewer_sees_actions_disabled_and_a_forced_one_refused_in_words(
    cluster: Cluster,
    namespace: str,
    console: ConsoleProcess,
    chromium: Chromium,
    artifacts: Path,
) -> None:
    viewer = f"viewer-{namespace}"
    grant(cluster, namespace, viewer, ("get", "list", "watch"))
    cluster.apply(seed_notebook("notebook-example.yaml"), namespace)
    buttons = (
        f"[...document.querySelectorAll('tr[data-notebook=\"{namespace}/{NB}\"] button')]"
        ".map(b => [b.dataset.action, b.disabled, b.title])"
    )

    async def browse() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with aiohttp.ClientSession() as session, chromium.page(session) as page:
            await page.send("Network.setExtraHTTPHeaders", headers=console.headers(viewer))
            await page.navigate(console.url)
            await page.wait_for(
                f"!!document.querySelector('tr[data-notebook=\"{namespace}/{NB}\"]')",
                within=30,
                what="the notebook's row",
            )
            seen["user"] = await page.evaluate("document.getElementById('user').textContent")
            seen["buttons"] = await page.evaluate(buttons)
            # the buttons are a courtesy: the page's own action, forced, goes to the API server
            await page.evaluate(f"act({json.dumps(namespace)}, {json.dumps(NB)}, 'pause')")
            await page.wait_for(
                "document.getElementById('message').className === 'error'",
                within=30,
                what="the refusal shown",
            )
            seen["message"] = await page.evaluate("document.getElementById('message').textContent")
            await asyncio.sleep(0.5)
            await page.screenshot(artifacts / "console-viewer.png")
        return seen

    seen = asyncio.run(browse())
    print(f"\n{json.dumps(seen)}")
    assert seen["user"] == viewer
    assert seen["buttons"] == [
        ["pause", True, f"you may not patch notebooks in {namespace}"],
        ["resume", True, f"you may not patch notebooks in {namespace}"],
        ["delete", True, f"you may not delete notebooks in {namespace}"],
    ], seen["buttons"]
    assert seen["message"].startswith(
        f"pause {namespace}/{NB} refused by the API server: notebooks.tensorstack.dev"
    ), seen["message"]
    assert f'User "{viewer}" cannot patch resource "notebooks"' in seen["message"]
    assert (get(cluster, namespace, "notebook", NB) or {})["spec"]["runMode"] == "running"

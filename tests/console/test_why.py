"""Why a notebook is not Ready, in the console's words, on the real node: the seed's GPU example
waits for a GPU in its queue (the real node has none), and an image that does not exist says
the pull failed — each read from the console's list, not from kubectl."""

from __future__ import annotations

import asyncio
import re
from html import unescape

import aiohttp
import pytest

from tests.console.console import ConsoleProcess
from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster, wait_for
from tests.product.notebooks import seed_notebook

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture
def console_args(namespace: str) -> list[str]:
    return ["--identity=kubeconfig", f"--namespaces={namespace}"]


def why(console: ConsoleProcess, name: str) -> str:
    async def rows() -> str:
        async with aiohttp.ClientSession() as session, session.get(console.url + "rows") as r:
            return await r.text()

    fragment = asyncio.run(rows())
    found = re.search(
        rf'<tr data-notebook="[^"]+/{name}">.*?<td class="why">([^<]*)</td>', fragment
    )
    return unescape(found[1]) if found else ""


def why_saying(console: ConsoleProcess, name: str, words: str) -> str | None:
    """The notebook's reason once it contains `words`; None until then (for wait_for)."""
    reason = why(console, name)
    return reason if words in reason else None


def test_the_list_says_why_a_notebook_is_not_ready(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    console: ConsoleProcess,
) -> None:
    namespace = real_namespace
    gpu = seed_notebook("notebook-gpu-sample.yaml", "registry.nbctl.local/notebook:1")
    missing = seed_notebook("notebook-example.yaml", "registry.nbctl.local/no-such-image:1")
    missing["metadata"]["name"] = "nb-missing-image"
    cluster.apply(gpu, namespace)
    cluster.apply(missing, namespace)

    waiting = wait_for(
        lambda: why_saying(console, "notebook-gpu-sample", "in queue"),
        timeout=120,
        message=lambda: f"the GPU notebook's reason; shown: {why(console, 'notebook-gpu-sample')}",
    )
    pulling = wait_for(
        lambda: why_saying(console, "nb-missing-image", "cannot pull image"),
        timeout=180,
        message=lambda: f"the image pull reason; shown: {why(console, 'nb-missing-image')}",
    )
    print(f"\nGPU seed: {waiting}\nmissing image: {pulling}")
    assert waiting.startswith("waiting for resources in queue default: "), waiting
    assert "nvidia-gpu-percent" in waiting, waiting
    assert pulling.startswith("container tensorflow: cannot pull image"), pulling
    assert "registry.nbctl.local/no-such-image:1" in pulling, pulling

"""The gateway on the real node: a user allowed to `get` the notebook reaches its JupyterLab
through `status.url`'s path and runs a cell over a kernel WebSocket; a user without that Role
gets 403 (HTTP and WebSocket alike, saying the same whether the notebook exists); a user header
from outside the trusted proxy is ignored (401)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.console.console import ConsoleProcess, grant, run_cell, user_session
from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster
from tests.product.notebooks import seed_notebook, wait_notebook_ready

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

NB = "notebook-sample"  # the seed's name
BIG = 64 << 20
WRITE_BIG = (
    "import os\n"
    f"with open('big.bin', 'wb') as f:\n    f.write(os.urandom({BIG}))\n"
    "print(os.path.getsize('big.bin'))\n"
)


def peak_rss(console: ConsoleProcess) -> int:
    """The console process's peak resident memory (VmHWM), bytes."""
    assert console.process is not None
    for line in Path(f"/proc/{console.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def test_kernel_websocket_through_the_gateway_and_403_without_access(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    console: ConsoleProcess,
    notebook_image: str,
) -> None:
    namespace = real_namespace
    alice, mallory = f"alice-{namespace}", f"mallory-{namespace}"
    grant(cluster, namespace, alice, ("get", "list"))
    cluster.apply(seed_notebook("notebook-example.yaml", notebook_image), namespace)
    notebook = wait_notebook_ready(cluster, namespace, NB)
    path = notebook["status"]["url"].removesuffix("lab")  # relative: no external base
    lab = console.url.rstrip("/") + path
    ws_base = lab.replace("http://", "ws://")

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with user_session(console, alice) as session:
            began = time.monotonic()
            seen["output"] = await run_cell(session, lab, ws_base, "print(6 * 7)")
            seen["cell_s"] = round(time.monotonic() - began, 2)
            async with session.get(lab + "api/status") as r:
                seen["alice_status"] = r.status
            # a large download is streamed, not held in the console's memory
            written = await run_cell(session, lab, ws_base, WRITE_BIG)
            seen["written"] = written
            peak_before = peak_rss(console)
            began = time.monotonic()
            size = 0
            async with session.get(lab + "files/big.bin") as r:
                seen["download_status"] = r.status
                async for chunk in r.content.iter_chunked(1 << 20):
                    size += len(chunk)
            seen["download_s"] = round(time.monotonic() - began, 2)
            seen["downloaded"] = size
            seen["peak_rss_growth_mib"] = round((peak_rss(console) - peak_before) / 2**20, 1)
        async with user_session(console, mallory) as session:
            for target in (NB, "no-such-notebook"):
                url = lab.replace(f"/name/{NB}/", f"/name/{target}/") + "lab"
                async with session.get(url) as r:
                    seen[f"mallory_{target}"] = (r.status, await r.text())
            try:
                async with session.ws_connect(ws_base + "api/kernels/x/channels"):
                    seen["mallory_ws"] = "connected"
            except aiohttp.WSServerHandshakeError as error:
                seen["mallory_ws"] = error.status
        # alice's name without the proxy's secret: a forged header from elsewhere
        async with (
            aiohttp.ClientSession() as session,
            session.get(lab + "lab", headers={"X-Forwarded-User": alice}) as r,
        ):
            seen["forged"] = r.status
        return seen

    seen = asyncio.run(scenario())
    print(f"\nkernel cell through the gateway (start kernel, run, delete): {seen['cell_s']} s")
    print(
        f"{BIG >> 20} MiB download through the gateway: {seen['download_s']} s; the console's"
        f" peak RSS grew {seen['peak_rss_growth_mib']} MiB"
    )
    assert seen["output"] == "42\n", seen
    assert seen["alice_status"] == 200, seen
    assert seen["written"] == f"{BIG}\n", seen
    assert (seen["download_status"], seen["downloaded"]) == (200, BIG), seen
    # streamed: the console never held the file (a buffered copy alone would be 64 MiB)
    assert seen["peak_rss_growth_mib"] < 32, seen
    status, text = seen[f"mallory_{NB}"]
    assert status == 403, seen
    assert f"{mallory} may not open notebook {NB} in namespace {namespace}" in text, text
    # the same answer for a notebook that does not exist: existence is not revealed
    assert seen["mallory_no-such-notebook"] == (
        403,
        text.replace(f"notebook {NB} ", "notebook no-such-notebook "),
    ), seen
    assert seen["mallory_ws"] == 403, seen
    assert seen["forged"] == 401, seen

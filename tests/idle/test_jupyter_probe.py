"""The activity probe against a real jupyter_server, with the timing rules on shortened timeouts.

The user's side (kernels, cells, terminals) is driven over the same REST and websocket APIs
JupyterLab uses, so what counts as activity here is what counts for a person in the browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from prometheus_client import REGISTRY

from notebook_controller.idle.jupyter import JupyterActivity, JupyterProbe
from notebook_controller.idle.policy import policy_from_data
from notebook_controller.idle.rules import (
    FALSE,
    TRUE,
    ActivityState,
    Decision,
    Observation,
    PodState,
    Reason,
    decide,
)
from notebook_controller.runtime.clock import parse_rfc3339 as parse_time
from tests.idle.jupyter import JupyterServer, JupyterUser

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def probe(
    http: aiohttp.ClientSession, jupyter_server: JupyterServer
) -> AsyncIterator[JupyterProbe]:
    yield JupyterProbe(http, url_template=jupyter_server.url_template, timeout=5)


async def observe(probe: JupyterProbe, server: JupyterServer) -> JupyterActivity:
    return await probe.probe(namespace="probe-ns", service="ignored", prefix=server.prefix)


@dataclass
class Watcher:
    """The reconciler's loop in miniature: probe, decide on the wall clock, remember."""

    probe: JupyterProbe
    server: JupyterServer
    idle_timeout: str
    state: ActivityState = field(default_factory=ActivityState)

    async def once(self) -> Decision:
        jupyter = await observe(self.probe, self.server)
        policy = policy_from_data({"idleTimeout": self.idle_timeout, "reclaimGrace": "1h"})
        decision = decide(
            self.state,
            Observation(PodState.READY, "pod", jupyter),
            policy,
            datetime.now(UTC),
        )
        self.state = decision.state
        return decision

    async def for_seconds(self, seconds: float, interval: float = 0.25) -> list[Decision]:
        decisions = []
        async with asyncio.timeout(seconds + 30):
            end = asyncio.get_running_loop().time() + seconds
            while asyncio.get_running_loop().time() < end:
                decisions.append(await self.once())
                await asyncio.sleep(interval)
        return decisions

    async def until_idle(self, within: float) -> Decision:
        async with asyncio.timeout(within):
            while True:
                decision = await self.once()
                if decision.status == TRUE:
                    return decision
                await asyncio.sleep(0.2)


async def test_fresh_server_is_reachable_with_no_activity_yet(
    probe: JupyterProbe, jupyter_server: JupyterServer
) -> None:
    seen = await observe(probe, jupyter_server)
    assert seen.reachable and not seen.busy
    assert seen.last_activity is None  # only its start, which is not user activity
    assert seen.started is not None and seen.started <= datetime.now(UTC)
    assert (seen.kernels, seen.terminals) == (0, 0)


async def test_the_controllers_polling_is_not_activity(
    probe: JupyterProbe, jupyter_server: JupyterServer, jupyter_user: JupyterUser
) -> None:
    for _ in range(10):
        assert (await observe(probe, jupyter_server)).last_activity is None
    status = await jupyter_user.get_untracked("api/status")
    assert parse_time(status["last_activity"]) == parse_time(status["started"])
    # the same GET without no_track_activity is activity: the check above can fail
    before_click = datetime.now(UTC)
    await jupyter_user.get("api/kernels")
    clicked = await observe(probe, jupyter_server)
    assert clicked.last_activity is not None and clicked.last_activity >= before_click


async def test_idle_kernel_makes_the_notebook_idle_after_the_timeout(
    probe: JupyterProbe, jupyter_server: JupyterServer, jupyter_user: JupyterUser
) -> None:
    await jupyter_user.start_kernel()
    watcher = Watcher(probe, jupyter_server, idle_timeout="2s")
    first = await watcher.once()
    assert (first.status, first.reason) == (FALSE, Reason.RECENT_ACTIVITY)
    kernel_seen = watcher.state.last_activity
    assert kernel_seen is not None

    idle = await watcher.until_idle(within=10)
    assert datetime.now(UTC) - kernel_seen >= timedelta(seconds=2)
    assert idle.reason is Reason.NO_ACTIVITY
    assert f"no activity since {kernel_seen.strftime('%Y-%m-%dT%H:%M:%S')}" in idle.message


async def test_kernel_busy_in_sleep_keeps_the_notebook_active(
    probe: JupyterProbe, jupyter_server: JupyterServer, jupyter_user: JupyterUser
) -> None:
    kernel_id = await jupyter_user.start_kernel()
    watcher = Watcher(probe, jupyter_server, idle_timeout="1s")
    await watcher.until_idle(within=10)

    await jupyter_user.execute(kernel_id, "import time\ntime.sleep(5)")
    during = await watcher.for_seconds(3.5)
    assert {(d.status, d.reason) for d in during} == {(FALSE, Reason.KERNEL_BUSY)}

    await jupyter_user.wait_kernel_state(kernel_id, {"idle"}, within=30)
    finished = await watcher.once()
    assert finished.status == FALSE
    assert await watcher.until_idle(within=10)


async def test_terminal_io_keeps_the_notebook_active(
    probe: JupyterProbe, jupyter_server: JupyterServer, jupyter_user: JupyterUser
) -> None:
    terminal = await jupyter_user.open_terminal()
    watcher = Watcher(probe, jupyter_server, idle_timeout="2s")
    await watcher.until_idle(within=15)

    decisions: list[Decision] = []
    for _ in range(5):
        assert "hello" in await jupyter_user.type_in_terminal(terminal, "echo hello")
        decisions += await watcher.for_seconds(1)
    assert {d.status for d in decisions} == {FALSE}
    assert (await observe(probe, jupyter_server)).terminals == 1

    assert await watcher.until_idle(within=10)


async def test_unreachable_server_is_a_failed_probe_not_an_idle_one(
    http: aiohttp.ClientSession,
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept and stay silent until the client gives up

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    failures_before = REGISTRY.get_sample_value(
        "notebook_controller_activity_probe_failures_total", {"reason": "timeout"}
    )
    async with silent:
        probe = JupyterProbe(http, url_template=f"http://127.0.0.1:{port}{{prefix}}", timeout=0.5)
        started = asyncio.get_running_loop().time()
        seen = await probe.probe(namespace="n", service="s", prefix="/p/")
        assert asyncio.get_running_loop().time() - started < 3
    assert (seen.reachable, seen.failure) == (False, "timeout")
    failures_after = REGISTRY.get_sample_value(
        "notebook_controller_activity_probe_failures_total", {"reason": "timeout"}
    )
    assert failures_after == (failures_before or 0) + 1

    closed = JupyterProbe(http, url_template=f"http://127.0.0.1:{port}{{prefix}}", timeout=2)
    refused = await closed.probe(namespace="n", service="s", prefix="/p/")
    assert (refused.reachable, refused.failure) == (False, "connection")


async def test_wrong_base_url_is_a_failed_probe(
    http: aiohttp.ClientSession, jupyter_server: JupyterServer
) -> None:
    probe = JupyterProbe(http, url_template=jupyter_server.url_template, timeout=5)
    seen = await probe.probe(namespace="n", service="s", prefix="/somebody/else/")
    assert (seen.reachable, seen.failure) == (False, "http-404")

"""Leader-election timing rules against servers that fail: refused or silent connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.leader import (
    LeaderElectionConfig,
    LeaderElector,
    LeadershipLost,
)

CONFIG = LeaderElectionConfig(
    lease_name="lease",
    lease_namespace="ns",
    identity="me",
    lease_duration=1.5,
    renew_deadline=1.0,
    retry_period=0.2,
    request_timeout=0.3,
)


@pytest.mark.parametrize(
    ("durations", "problem"),
    [
        ({"lease_duration": 10, "renew_deadline": 10}, "lease_duration"),
        ({"renew_deadline": 2, "retry_period": 2}, "retry_period"),
        ({"request_timeout": 10}, "request_timeout"),
    ],
)
def test_config_enforces_the_ordering_of_durations(
    durations: dict[str, float], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        LeaderElectionConfig("lease", "ns", "me", **durations)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers: only client timeouts end a call."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def client_for(port: int) -> KubeClient:
    configuration = Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    return KubeClient(ApiClient(configuration), timeout=60)


async def test_leadership_is_lost_within_the_renew_deadline_when_calls_hang(
    silent_server: int,
) -> None:
    async with client_for(silent_server) as client:
        elector = LeaderElector(client, CONFIG)
        started = time.monotonic()
        with pytest.raises(LeadershipLost, match="renew deadline"):
            await elector.hold()
        elapsed = time.monotonic() - started
    # No attempt runs past the deadline, so leadership ends before the lease can expire.
    assert CONFIG.renew_deadline <= elapsed < CONFIG.lease_duration
    assert not elector.is_leader


async def test_acquire_keeps_retrying_while_the_server_is_unreachable(
    silent_server: int,
) -> None:
    async with client_for(silent_server) as client:
        elector = LeaderElector(client, CONFIG)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(elector.acquire(), timeout=1.5)
        assert not elector.is_leader

"""Leader-election timing rules against servers that fail: refused or silent connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
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


@pytest.fixture
async def lease_server() -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """A Lease held by "me" whose first write conflicts (a renewal landed after the read), as
    the API server answers; every PUT body is recorded."""
    puts: list[dict[str, Any]] = []
    version = {"value": 7}

    def lease() -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "lease",
                "namespace": "ns",
                "resourceVersion": str(version["value"]),
            },
            "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15},
        }

    async def get(_: web.Request) -> web.Response:
        return web.json_response(lease())

    async def put(request: web.Request) -> web.Response:
        body = await request.json()
        puts.append(body)
        if len(puts) == 1:
            version["value"] += 1  # the late renewal
            status = {"kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409,
                      "message": "the object has been modified"}  # fmt: skip
            return web.json_response(status, status=409)
        return web.json_response(body)

    app = web.Application()
    path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/lease"
    app.router.add_get(path, get)
    app.router.add_put(path, put)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    yield port, puts
    await runner.cleanup()


async def test_release_reads_again_and_retries_when_a_late_renewal_conflicts(
    lease_server: tuple[int, list[dict[str, Any]]],
) -> None:
    port, puts = lease_server
    async with client_for(port) as client:
        elector = LeaderElector(client, CONFIG)
        elector.is_leader = True
        await elector.release()
    assert len(puts) == 2
    assert [put["metadata"]["resourceVersion"] for put in puts] == ["7", "8"]
    assert puts[-1]["spec"]["holderIdentity"] is None
    assert puts[-1]["spec"]["leaseDurationSeconds"] == 1
    assert not elector.is_leader

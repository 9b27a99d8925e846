"""A status writer applies its part of `/status` as one server-side apply, and compares with
its own last write until the cache has caught up."""

import asyncio
from collections.abc import Callable
from typing import Any, cast

from notebook_controller.reconcilers.notebooks import idle_part
from notebook_controller.runtime.apply import SharedStatus, StatusApplier
from notebook_controller.runtime.kube import KubeClient, ResourceKind
from notebook_controller.runtime.reconcile import Request

KIND = ResourceKind("example.com", "v1", "widgets", "Widget")
REQUEST = Request("team-a", "nb")
WRITTEN_STATUS = {"conditions": [{"type": "Idle", "status": "Unknown", "reason": "ProbeFailed"}]}
IDLE = {"type": "Idle", "status": "False", "reason": "RecentActivity"}


class ApplyRecorder:
    def __init__(self, resource_version: str) -> None:
        self.resource_version = resource_version
        self.calls: list[tuple[Any, ...]] = []

    async def apply_status(self, *args: Any) -> dict[str, Any]:
        self.calls.append(args)
        return {"metadata": {"resourceVersion": self.resource_version}}


def cached(resource_version: str, status: dict[str, object]) -> dict[str, Any]:
    metadata = {"name": "nb", "namespace": "team-a", "resourceVersion": resource_version}
    return {"metadata": metadata, "status": status}


async def written_at(resource_version: str) -> tuple[StatusApplier, ApplyRecorder]:
    client = ApplyRecorder(resource_version)
    writer = StatusApplier(cast(KubeClient, client), KIND, "manager-x")
    await writer.apply(cached("9", {}), WRITTEN_STATUS)
    return writer, client


async def test_the_apply_sends_only_our_part_under_our_field_manager() -> None:
    _, client = await written_at("12")
    ((kind, namespace, name, body, manager),) = client.calls
    assert (kind, namespace, name, manager) == (KIND, "team-a", "nb", "manager-x")
    assert body == {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "nb", "namespace": "team-a"},
        "status": WRITTEN_STATUS,
    }


async def test_a_stale_cache_is_compared_with_what_was_written() -> None:
    writer, _ = await written_at("12")
    stale = cached("10", {"conditions": [{"type": "Idle", "status": "Unknown"}]})
    assert writer.status(REQUEST, stale) == WRITTEN_STATUS


async def test_once_the_cache_catches_up_it_is_trusted_again() -> None:
    writer, _ = await written_at("12")
    newer = cached("15", {"conditions": [{"type": "Idle", "status": "True"}]})
    assert writer.status(REQUEST, newer) == newer["status"]
    # and the memory is dropped: an older object later is read as it is
    assert writer.status(REQUEST, cached("11", {})) == {}


async def test_forgotten_and_unknown_objects_read_the_cache() -> None:
    writer, _ = await written_at("12")
    writer.forget(REQUEST)
    assert writer.status(REQUEST, cached("10", {"phase": "Running"})) == {"phase": "Running"}
    assert writer.status(Request("team-a", "other"), cached("1", {})) == {}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def coalescing(seconds: float = 5.0) -> tuple[StatusApplier, ApplyRecorder, Clock]:
    client, clock = ApplyRecorder("12"), Clock()
    writer = StatusApplier(
        cast(KubeClient, client), KIND, "manager-x", coalesce_seconds=seconds, clock=clock
    )
    return writer, client, clock


async def test_changes_within_the_window_are_held_then_sent_as_one_write() -> None:
    writer, client, clock = coalescing()
    assert writer.hold(REQUEST) == 5  # the first change opens the window
    clock.now += 3
    assert writer.hold(REQUEST) == 2  # a later change waits for the same window's end
    clock.now += 2
    assert writer.hold(REQUEST) is None  # due: the latest content goes out
    await writer.apply(cached("9", {}), WRITTEN_STATUS)
    assert len(client.calls) == 1
    assert writer.hold(REQUEST) == 5  # the write closed that window; a new change opens one


async def test_urgent_changes_and_settled_objects_are_not_held() -> None:
    writer, _, clock = coalescing()
    assert writer.hold(REQUEST) == 5
    assert writer.hold(REQUEST, urgent=True) is None
    writer.settled(REQUEST)  # nothing to send any more: the next change starts afresh
    clock.now += 4
    assert writer.hold(REQUEST) == 5
    assert writer.hold(REQUEST, window=30) == 30  # a longer window for this change


async def test_without_coalescing_nothing_is_held() -> None:
    writer, _ = await written_at("12")
    assert writer.hold(REQUEST) is None


class GatedApplies:
    """An API server whose status applies wait until let through; it stores each apply's body
    whole (one field manager: the last apply's fields are the status)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.version = 10
        self.then: Callable[[], object] | None = None
        """Called as soon as the first apply's answer has been taken in."""

    async def apply_status(self, *args: Any) -> dict[str, Any]:
        self.bodies.append(args[3])
        await self.gate.wait()
        self.version += 1
        if self.then is not None and self.version == 11:
            asyncio.get_running_loop().call_soon(self.then)
        return {"metadata": {"resourceVersion": str(self.version)}, "status": args[3]["status"]}


def shared_status(client: GatedApplies) -> SharedStatus:
    return SharedStatus(
        cast(KubeClient, client),
        KIND,
        "manager-x",
        {"status": lambda s: {"phase": s["phase"]} if "phase" in s else {}, "idle": idle_part},
    )


async def test_two_parts_written_side_by_side_dont_undo_each_other() -> None:
    client = GatedApplies()
    shared = shared_status(client)
    before = cached("10", {"phase": "Running", "conditions": [IDLE]})
    status_write = asyncio.create_task(shared.write(before, "status", {"phase": "Suspended"}))
    await asyncio.sleep(0)
    idle_write = asyncio.create_task(shared.write(before, "idle", {}))  # the Idle condition goes
    await asyncio.sleep(0)
    assert len(client.bodies) == 1  # the second waits for the first's answer
    client.gate.set()
    await asyncio.gather(status_write, idle_write)
    # the last write carries the first's part, not the status both began from
    assert client.bodies[-1]["status"] == {"phase": "Suspended"}
    assert shared.status(REQUEST, before) == {"phase": "Suspended"}


async def test_a_waiting_write_reads_the_last_write_even_once_the_cache_caught_up() -> None:
    client = GatedApplies()
    shared = shared_status(client)
    before = cached("10", {"phase": "Running", "conditions": [IDLE]})
    seen: list[object] = []
    # between the first write's answer and the second write's turn, a reconcile reads the cache
    # at the first write's version
    client.then = lambda: seen.append(shared.status(REQUEST, cached("11", {"phase": "Suspended"})))
    status_write = asyncio.create_task(shared.write(before, "status", {"phase": "Suspended"}))
    await asyncio.sleep(0)
    idle_write = asyncio.create_task(shared.write(before, "idle", {}))  # with the old cache
    await asyncio.sleep(0)
    client.gate.set()
    await asyncio.gather(status_write, idle_write)
    assert seen == [{"phase": "Suspended"}]
    assert client.bodies[-1]["status"] == {"phase": "Suspended"}

"""ChildApplier: apply only on a difference, and never twice while the cache catches up."""

from __future__ import annotations

from typing import Any

from notebook_controller.builders import workload
from notebook_controller.runtime.apply import ChildApplier
from notebook_controller.runtime.kinds import STATEFULSETS
from notebook_controller.runtime.kube import ResourceKind
from notebook_controller.runtime.reconcile import soonest
from tests.unit.builders.seeds import SEED_BASIC, served


class RecordingClient:
    """Stands in for KubeClient.apply: records the call, answers with a resourceVersion."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.version = 100

    async def apply(
        self, kind: ResourceKind, namespace: str, name: str, body: Any, field_manager: str
    ) -> dict[str, Any]:
        self.version += 1
        self.applied.append(name)
        return {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _cached(desired: dict[str, Any], version: int) -> dict[str, Any]:
    return {**desired, "metadata": {**desired["metadata"], "resourceVersion": str(version)}}


async def test_applies_once_while_the_cache_lags_then_trusts_the_cache() -> None:
    client, clock = RecordingClient(), Clock()
    applier = ChildApplier(client, "m", clock)  # type: ignore[arg-type]
    desired = workload.statefulset(served(SEED_BASIC))
    assert await applier.apply(STATEFULSETS, desired, None) is None
    assert client.applied == ["managed-notebook-notebook-sample"]

    # woken again before the informer delivered our write: no second apply, look again later
    clock.now = 1.0
    assert await applier.apply(STATEFULSETS, desired, None) == 4.0
    tampered_but_older = _cached(desired, 99)
    tampered_but_older["spec"] = {**desired["spec"], "replicas": 7}
    assert await applier.apply(STATEFULSETS, desired, tampered_but_older) == 4.0
    assert len(client.applied) == 1

    # the cache shows our write: nothing to do; then someone edits it: restored at once
    assert await applier.apply(STATEFULSETS, desired, _cached(desired, 101)) is None
    edited = _cached(desired, 102)
    edited["spec"] = {**desired["spec"], "replicas": 7}
    assert await applier.apply(STATEFULSETS, desired, edited) is None
    assert len(client.applied) == 2

    # a delete long after our write is not mistaken for cache lag
    clock.now = 60.0
    assert await applier.apply(STATEFULSETS, desired, None) is None
    assert len(client.applied) == 3


async def test_a_changed_desired_object_is_applied_even_right_after_a_write() -> None:
    client, clock = RecordingClient(), Clock()
    applier = ChildApplier(client, "m", clock)  # type: ignore[arg-type]
    notebook = served(SEED_BASIC)
    await applier.apply(STATEFULSETS, workload.statefulset(notebook), None)
    paused = served(SEED_BASIC.replace("runMode: running", "runMode: paused"))
    await applier.apply(STATEFULSETS, workload.statefulset(paused), None)
    assert len(client.applied) == 2


async def test_a_write_is_known_as_ours_for_five_seconds_from_its_latest_apply() -> None:
    client, clock = RecordingClient(), Clock()
    applier = ChildApplier(client, "m", clock)  # type: ignore[arg-type]
    first = workload.statefulset(served(SEED_BASIC))
    second = workload.statefulset(served(SEED_BASIC.replace("name: notebook-sample", "name: b")))
    await applier.apply(STATEFULSETS, first, None)  # 101 at 0 s
    clock.now = 3.0
    await applier.apply(STATEFULSETS, second, None)  # 102 at 3 s
    clock.now = 4.0
    changed = workload.statefulset(
        served(SEED_BASIC.replace("runMode: running", "runMode: paused"))
    )
    await applier.apply(STATEFULSETS, changed, None)  # 103 at 4 s: the first one, again
    clock.now = 8.5
    third = workload.statefulset(served(SEED_BASIC.replace("name: notebook-sample", "name: c")))
    await applier.apply(STATEFULSETS, third, None)  # 104: the write of 3 s ago is forgotten
    assert not applier.own_write(STATEFULSETS, _cached(second, 102))
    assert applier.own_write(STATEFULSETS, _cached(changed, 103))
    assert not applier.own_write(STATEFULSETS, _cached(first, 101))  # replaced by 103
    assert applier.own_write(STATEFULSETS, _cached(third, 104))


def test_soonest_requeue() -> None:
    assert soonest(None, None).requeue_after is None
    assert soonest(3.0, None, 1.5).requeue_after == 1.5

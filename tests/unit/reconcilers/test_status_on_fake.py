"""The status reconciler and the idle reclaimer, the notebook's two status writers, run
in-process on the fake API: one apply per change and none without one, transition times kept,
each writer's part kept by the other's writes (one field manager; the former idle manager's
fields released), Ready and the first idle verdict in one write, a lagging cache, and the idle
reclaimer's pause meeting a notebook the user changed meanwhile (409), and the echo of either's
write waking neither."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from notebook_controller.idle.jupyter import JupyterActivity
from notebook_controller.idle.policy_source import PolicySource
from notebook_controller.reconcilers.idle import CONFLICT_RETRY_SECONDS, IdleReconciler
from notebook_controller.reconcilers.notebooks import NOTEBOOKS, PART_IDLE
from notebook_controller.reconcilers.status import READY_MERGE_SECONDS
from notebook_controller.runtime.apply import StatusApplier
from notebook_controller.runtime.kinds import SERVICES
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.objects import JsonDict
from notebook_controller.runtime.reconcile import Request, Result
from notebook_controller.runtime.store import Store
from notebook_controller.wiring import not_written_by
from tests.fake.world import NS, REQUEST, World

STATUS_MANAGER = "notebook-controller-status"
IDLE_MANAGER = "notebook-controller-idle"
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
T0_TEXT = "2025-01-06T09:00:00Z"


def conditions(world: World) -> dict[str, JsonDict]:
    return {c["type"]: c for c in world.notebook()["status"]["conditions"]}


async def running_notebook(world: World, *, ready: bool = True) -> None:
    await world.create_notebook()
    await world.workload.reconcile(REQUEST)
    await world.services_reconciler.reconcile(REQUEST)
    await world.run_pod(ready=ready)


async def test_status_is_written_once_per_change_and_not_again() -> None:
    world = World()
    await running_notebook(world, ready=False)
    world.api.reset_writes()
    assert await world.status.reconcile(REQUEST) == Result()
    assert [w for w in world.writes() if w[0] != "create"] == [
        ("apply-status", "Notebook", STATUS_MANAGER)
    ]
    assert conditions(world)["Ready"]["status"] == "False"
    world.api.reset_writes()
    await world.status.reconcile(REQUEST)
    assert world.writes() == []


async def test_ready_moves_with_the_pod_and_keeps_its_transition_time() -> None:
    world = World()
    await running_notebook(world, ready=True)
    world.status.now = lambda: T0
    await world.status.reconcile(REQUEST)
    ready = conditions(world)["Ready"]
    assert (ready["status"], ready["lastTransitionTime"]) == ("True", "2025-01-06T09:00:00Z")
    assert world.notebook()["status"]["phase"] == "Running"
    assert [e["type"] for e in world.events("Ready")] == ["Normal"]

    # an hour later something unrelated moves (the user adds a label): Ready keeps its time
    world.status.now = lambda: T0 + timedelta(hours=1)
    await world.edit_notebook({"metadata": {"labels": {"team": "a"}}})
    world.api.reset_writes()
    await world.status.reconcile(REQUEST)
    assert world.writes() == []
    assert conditions(world)["Ready"]["lastTransitionTime"] == "2025-01-06T09:00:00Z"


async def test_a_tampered_status_is_written_back() -> None:
    world = World()
    await running_notebook(world)
    await world.status.reconcile(REQUEST)
    forged = {"status": {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}]}}
    await world.api.patch(NOTEBOOKS, NS, "nb", forged, "merge", "status", field_manager="someone")
    assert world.notebook()["status"]["phase"] == "Failed"
    world.api.reset_writes()
    await world.status.reconcile(REQUEST)
    notebook_writes = [w for w in world.writes() if w[1] == "Notebook"]
    assert notebook_writes == [("apply-status", "Notebook", STATUS_MANAGER)]
    assert world.notebook()["status"]["phase"] == "Running"
    assert conditions(world)["Ready"]["status"] == "True"


def idle_writer(world: World) -> StatusApplier:
    """The idle reclaimer's part of the status, as it writes it."""
    return StatusApplier(
        world.api,  # type: ignore[arg-type]
        NOTEBOOKS,
        STATUS_MANAGER,
        shared=world.statuses,
        part=PART_IDLE,
    )


IDLE = {
    "type": "Idle",
    "status": "False",
    "reason": "RecentActivity",
    "message": "busy",
    "lastTransitionTime": T0_TEXT,
}


async def test_the_two_status_writers_keep_each_others_parts() -> None:
    world = World()
    await running_notebook(world)
    await world.status.reconcile(REQUEST)
    raw = world.notebooks.get(NS, "nb")
    assert raw is not None
    world.api.reset_writes()
    await idle_writer(world).apply(raw, {"conditions": [IDLE]})
    assert set(conditions(world)) == {"Ready", "Suspended", "Idle"}
    assert world.writes() == [("apply-status", "Notebook", STATUS_MANAGER)]

    # the status reconciler's next pass sees its own part unchanged: no write, Idle stays
    world.api.reset_writes()
    await world.status.reconcile(REQUEST)
    assert world.writes() == []

    # a spec change makes it write again: its write keeps the idle reclaimer's part
    await world.edit_notebook({"spec": {"runMode": "paused"}})
    await world.status.reconcile(REQUEST)
    assert conditions(world)["Suspended"]["status"] == "True"
    assert conditions(world)["Idle"]["reason"] == "RecentActivity"

    # the idle reclaimer stops sending its condition: only Idle goes
    raw = world.notebooks.get(NS, "nb")
    assert raw is not None
    await idle_writer(world).apply(raw, {})
    assert set(conditions(world)) == {"Ready", "Suspended"}


async def test_an_idle_condition_of_the_former_idle_field_manager_is_released() -> None:
    """An upgrade: the Idle condition was written under notebook-controller-idle; when the idle
    reclaimer stops sending it, that manager's ownership is released too, so it goes."""
    world = World()
    await running_notebook(world)
    await world.status.reconcile(REQUEST)
    raw = world.notebooks.get(NS, "nb")
    assert raw is not None
    former = StatusApplier(world.api, NOTEBOOKS, IDLE_MANAGER)  # type: ignore[arg-type]
    await former.apply(raw, {"conditions": [IDLE], "ssh": {"lastSshClientActivity": T0_TEXT}})
    await world.status.reconcile(REQUEST)
    raw = world.notebooks.get(NS, "nb")
    assert raw is not None
    world.api.reset_writes()
    await idle_writer(world).apply(raw, {})
    assert world.writes() == [
        ("apply-status", "Notebook", STATUS_MANAGER),
        ("apply-status", "Notebook", IDLE_MANAGER),
    ]
    assert set(conditions(world)) == {"Ready", "Suspended"}
    assert "ssh" not in world.notebook()["status"]


async def test_a_lagging_notebook_cache_does_not_make_the_status_written_twice() -> None:
    world = World()
    await running_notebook(world)
    with world.api.lagging(NOTEBOOKS):
        await world.status.reconcile(REQUEST)
        world.api.reset_writes()
        await world.status.reconcile(REQUEST)  # the cache still shows no status
        assert [w for w in world.writes() if w[1] == "Notebook"] == []


# --- the idle reclaimer's pause -------------------------------------------------------------


@dataclass
class IdleForADay:
    async def probe(self, **_: object) -> JupyterActivity:
        return JupyterActivity(reachable=True, started=T0 - timedelta(days=3))


@dataclass
class Busy:
    async def probe(self, **_: object) -> JupyterActivity:
        return JupyterActivity(reachable=True, busy=True, started=T0 - timedelta(hours=1))


def idle_reconciler(world: World, now: datetime, probe: object | None = None) -> IdleReconciler:
    configmaps = Store()
    data = {"idleTimeout": "1h", "reclaimGrace": "1h", "probeInterval": "1m"}
    configmaps.upsert(
        {"metadata": {"name": "policy", "namespace": NS, "resourceVersion": "1"}, "data": data}
    )
    client: KubeClient = world.api  # type: ignore[assignment]
    return IdleReconciler(
        client,
        world.recorder,
        notebooks=world.notebooks,
        pods=world.pods,
        policies=PolicySource(configmaps, NS, "policy", world.recorder),
        probe=probe or IdleForADay(),  # type: ignore[arg-type]
        now=lambda: now,
        shared=world.statuses,
    )


async def test_the_pause_of_a_notebook_changed_meanwhile_is_a_conflict_and_looks_again() -> None:
    world = World()
    await running_notebook(world)
    reconciler = idle_reconciler(world, T0)
    with world.api.lagging(NOTEBOOKS):
        # the user changes the notebook; the reclaimer's cache hasn't seen it
        await world.edit_notebook({"metadata": {"labels": {"team": "a"}}})
        result = await reconciler.reconcile(REQUEST)
        assert result == Result(requeue_after=CONFLICT_RETRY_SECONDS)
        assert world.notebook()["spec"]["runMode"] == "running"
    # with fresh eyes the pause goes through
    assert await reconciler.reconcile(REQUEST) == Result()
    paused = world.notebook()
    assert paused["spec"]["runMode"] == "paused"
    assert "notebook.tensorstack.dev/reclaimed-at" in paused["metadata"]["annotations"]
    assert [e["reason"] for e in world.events("Reclaimed")] == ["Reclaimed"]


async def test_idle_writes_its_condition_once_beside_the_status_reconcilers() -> None:
    world = World()
    await running_notebook(world)
    await world.status.reconcile(REQUEST)
    reconciler = idle_reconciler(world, T0, Busy())
    world.api.reset_writes()
    assert await reconciler.reconcile(REQUEST) == Result(requeue_after=60)
    assert world.writes() == [("apply-status", "Notebook", STATUS_MANAGER)]
    idle = conditions(world)["Idle"]
    assert (idle["status"], idle["reason"]) == ("False", "KernelBusy")
    assert set(conditions(world)) == {"Ready", "Suspended", "Idle"}

    # the status reconciler's pass and idle's next one (before the probe is due) write nothing
    world.api.reset_writes()
    await world.status.reconcile(REQUEST)
    await reconciler.reconcile(REQUEST)
    assert world.writes() == []


async def test_idle_with_a_lagging_cache_does_not_write_its_condition_twice() -> None:
    world = World()
    await running_notebook(world)
    now = T0
    reconciler = idle_reconciler(world, now, Busy())
    with world.api.lagging(NOTEBOOKS):
        await reconciler.reconcile(REQUEST)
        reconciler.now = lambda: now + timedelta(minutes=2)  # probe due again, same verdict
        world.api.reset_writes()
        await reconciler.reconcile(REQUEST)
        assert world.writes() == []


async def test_coalescing_holds_the_way_up_but_not_a_ready_notebooks_news() -> None:
    """With coalescing on: a change before Ready waits for its window; Ready=True within a
    second (waiting for the idle reclaimer's verdict, when there is one, to go out with it); the
    SSH Service appearing on a notebook already Ready goes at once (who waited for Ready reads
    status.ssh next)."""
    world = World()
    clock = [T0]
    status = world.status_reconciler(now=lambda: clock[0], coalesce_seconds=10)
    await world.create_notebook(ssh=True)
    await world.edit_notebook({"spec": {"ssh": {"serviceType": "NodePort"}}})
    await world.workload.reconcile(REQUEST)
    world.api.reset_writes()
    held = await status.reconcile(REQUEST)
    assert held.requeue_after is not None and 0 < held.requeue_after <= 10
    assert world.writes() == []  # the way up: held

    await world.run_pod(ready=True)  # no SSH Service yet: the services reconciler is behind
    assert (await status.reconcile(REQUEST)) == Result(requeue_after=READY_MERGE_SECONDS)
    assert [w for w in world.writes() if w[1] == "Notebook"] == []
    clock[0] += timedelta(seconds=1)
    assert (await status.reconcile(REQUEST)) == Result()
    assert conditions(world)["Ready"]["status"] == "True"  # within a second, window or not
    assert "nodePort" not in (world.notebook()["status"].get("ssh") or {})

    await world.services_reconciler.reconcile(REQUEST)  # the SSH Service appears
    ssh_service = next(s for s in world.services.list(NS) if "-ssh-" in s["metadata"]["name"])
    ports = [{**port, "nodePort": 30022} for port in ssh_service["spec"]["ports"]]
    # as the API server does for a NodePort Service: a node port allocated
    await world.api.patch(
        SERVICES, NS, ssh_service["metadata"]["name"], {"spec": {"ports": ports}}, "merge"
    )
    world.api.reset_writes()
    assert (await status.reconcile(REQUEST)) == Result()
    assert [w for w in world.writes() if w[1] == "Notebook"] == [
        ("apply-status", "Notebook", STATUS_MANAGER)
    ]
    assert world.notebook()["status"]["ssh"]["nodePort"] == 30022


async def test_ready_and_the_first_idle_verdict_go_out_in_one_write() -> None:
    """The pod turns Ready: the status reconciler holds Ready=True for up to a second, the idle
    reclaimer probes at once and its verdict's write carries Ready=True along. The status
    reconciler's next pass writes nothing and records the Ready event."""
    world = World()
    clock = [T0]
    status = world.status_reconciler(now=lambda: clock[0], coalesce_seconds=10)
    idle = idle_reconciler(world, T0, Busy())
    await running_notebook(world)
    world.api.reset_writes()
    assert (await status.reconcile(REQUEST)) == Result(requeue_after=READY_MERGE_SECONDS)
    await idle.reconcile(REQUEST)
    assert [w for w in world.writes() if w[1] == "Notebook"] == [
        ("apply-status", "Notebook", STATUS_MANAGER)
    ]
    assert conditions(world)["Ready"]["status"] == "True"
    assert conditions(world)["Idle"]["reason"] == "KernelBusy"
    assert world.events("Ready") == []

    clock[0] += timedelta(seconds=1)
    world.api.reset_writes()
    assert (await status.reconcile(REQUEST)) == Result()
    assert [w for w in world.writes() if w[1] == "Notebook"] == []
    assert [e["type"] for e in world.events("Ready")] == ["Normal"]


async def test_the_echo_of_a_status_write_wakes_neither_status_writer() -> None:
    """The watch event of our own status write (either part's) is no news to the status or
    idle reconciler; another writer's status change or a user's edit is."""
    world = World()
    await running_notebook(world)
    wakes = not_written_by(world.statuses)
    before = world.notebooks.get(NS, "nb")
    await world.status.reconcile(REQUEST)
    written = world.notebooks.get(NS, "nb")
    assert before is not None and written is not None
    assert not wakes(before, written)

    await idle_writer(world).apply(written, {"conditions": [IDLE]})
    idle_written = world.notebooks.get(NS, "nb")
    assert idle_written is not None
    assert not wakes(written, idle_written)

    forged = {"status": {"phase": "Failed"}}
    await world.api.patch(NOTEBOOKS, NS, "nb", forged, "merge", "status", field_manager="someone")
    tampered = world.notebooks.get(NS, "nb")
    assert tampered is not None
    assert wakes(idle_written, tampered)

    await world.edit_notebook({"metadata": {"labels": {"team": "a"}}})
    edited = world.notebooks.get(NS, "nb")
    assert edited is not None
    assert wakes(tampered, edited)


@dataclass
class Unanswered:
    async def probe(self, **_: object) -> JupyterActivity:
        return JupyterActivity.unreachable("connection", "no endpoints available")


async def test_ready_waits_not_for_a_verdict_the_idle_reclaimer_holds_back() -> None:
    """The pod turns Ready, the first probe fails: the idle reclaimer holds its "can't tell
    yet" back and offers it; the status reconciler, told of the offer, writes Ready at once
    with it (one write, no second of waiting)."""
    world = World()
    clock = [T0]
    status = world.status_reconciler(now=lambda: clock[0], coalesce_seconds=10)
    told: list[tuple[Request, str]] = []
    world.statuses.on_offer = lambda request, part: told.append((request, part))
    idle = idle_reconciler(world, T0, Unanswered())
    await running_notebook(world)
    world.api.reset_writes()
    assert (await status.reconcile(REQUEST)) == Result(
        requeue_after=READY_MERGE_SECONDS
    )  # waits for idle
    await idle.reconcile(REQUEST)
    assert [w for w in world.writes() if w[1] == "Notebook"] == []  # held back, offered
    assert (REQUEST, PART_IDLE) in told
    assert (await status.reconcile(REQUEST)) == Result()
    assert [w for w in world.writes() if w[1] == "Notebook"] == [
        ("apply-status", "Notebook", STATUS_MANAGER)
    ]
    assert conditions(world)["Ready"]["status"] == "True"
    assert conditions(world)["Idle"]["reason"] == "ProbeFailed"
    assert [e["type"] for e in world.events("Ready")] == ["Normal"]


async def test_ready_still_waits_when_what_is_offered_judged_the_pod_before_it_was_ready() -> None:
    world = World()
    clock = [T0]
    status = world.status_reconciler(now=lambda: clock[0], coalesce_seconds=10)
    await running_notebook(world)
    not_ready = {**IDLE, "status": "Unknown", "reason": "NotReady"}
    world.statuses.offer(REQUEST, PART_IDLE, {"conditions": [not_ready]})
    world.api.reset_writes()
    assert (await status.reconcile(REQUEST)) == Result(requeue_after=READY_MERGE_SECONDS)
    assert world.writes() == []

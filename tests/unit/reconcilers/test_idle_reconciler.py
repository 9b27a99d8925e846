"""The idle reconciler over in-memory caches, a stand-in API server and a stand-in probe, on an
injected clock: when it probes, what it writes, and what it reads back after a restart (a new
reconciler with no memory, the same caches)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notebook_controller.api.models import NAME_LABEL, RECLAIMED_AT_ANNOTATION
from notebook_controller.builders.names import name_label_value
from notebook_controller.idle.jupyter import JupyterActivity
from notebook_controller.idle.policy_source import PolicySource
from notebook_controller.reconcilers.idle import IdleReconciler
from notebook_controller.runtime.clock import rfc3339
from notebook_controller.runtime.reconcile import Request
from notebook_controller.runtime.store import Store

NS = "team"
NB = "nb"
POD = f"managed-notebook-{NB}-0"
POLICY = "idle-policy"
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
REQUEST = Request(NS, NB)
PROC_NET_TCP_HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout"
    " inode\n"
)

JsonDict = dict[str, Any]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def event(self, obj: JsonDict, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


class ApiServer:
    """Just enough of the API server: status applies by our field manager (our fields replaced,
    fields we stop sending removed), merge patches of metadata and spec, and exec."""

    def __init__(self, notebooks: Store) -> None:
        self.notebooks = notebooks
        self.version = 100
        self.applied: list[JsonDict] = []
        self.patches: list[JsonDict] = []
        self.execs = 0

    def _store(self, obj: JsonDict) -> JsonDict:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.notebooks.upsert(obj)
        return obj

    async def apply_status(
        self, kind: Any, namespace: str, name: str, body: JsonDict, field_manager: str
    ) -> JsonDict:
        self.applied.append(copy.deepcopy(body["status"]))
        obj = copy.deepcopy(self.notebooks.get(namespace, name))
        assert obj is not None
        status = obj.setdefault("status", {})
        mine = body["status"]
        conditions = [c for c in status.get("conditions") or [] if c["type"] != "Idle"]
        status["conditions"] = conditions + list(mine.get("conditions") or [])
        ssh = {k: v for k, v in (status.get("ssh") or {}).items() if k != "lastSshClientActivity"}
        ssh.update(mine.get("ssh") or {})
        if ssh:
            status["ssh"] = ssh
        else:
            status.pop("ssh", None)
        return self._store(obj)

    async def patch(
        self, kind: Any, namespace: str, name: str, patch: JsonDict, field_manager: str
    ) -> JsonDict:
        self.patches.append(copy.deepcopy(patch))
        obj = copy.deepcopy(self.notebooks.get(namespace, name))
        assert obj is not None
        annotations = obj["metadata"].setdefault("annotations", {})
        for key, value in (patch.get("metadata") or {}).get("annotations", {}).items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        obj["spec"].update(patch.get("spec") or {})
        return self._store(obj)

    async def exec(
        self,
        namespace: str,
        name: str,
        container: str,
        command: Sequence[str],
        exec_timeout: float | None = None,
    ) -> str:
        self.execs += 1
        return PROC_NET_TCP_HEADER  # no SSH client connected


@dataclass
class Probe:
    answer: JupyterActivity
    calls: int = 0

    async def probe(
        self, *, namespace: str, service: str, prefix: str, request_timeout: float | None = None
    ) -> JupyterActivity:
        self.calls += 1
        return self.answer


@dataclass
class World:
    """The caches a reconciler reads; `restart()` gives a new reconciler (no memory) over them."""

    now: datetime = T0
    notebooks: Store = field(default_factory=Store)
    pods: Store = field(default_factory=Store)
    configmaps: Store = field(default_factory=Store)
    probe: Probe = field(
        default_factory=lambda: Probe(JupyterActivity(reachable=True, started=T0 - 48 * HOUR))
    )
    coalesce_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.api = ApiServer(self.notebooks)
        self.recorder = Recorder()
        self.reconciler = self.restart()

    def restart(self) -> IdleReconciler:
        self.reconciler = IdleReconciler(
            self.api,  # type: ignore[arg-type]
            self.recorder,  # type: ignore[arg-type]
            notebooks=self.notebooks,
            pods=self.pods,
            policies=PolicySource(self.configmaps, NS, POLICY, self.recorder),
            probe=self.probe,  # type: ignore[arg-type]
            now=lambda: self.now,
            coalesce_seconds=self.coalesce_seconds,
        )
        return self.reconciler

    def policy(self, **data: str) -> None:
        self.configmaps.upsert(
            {
                "metadata": {"name": POLICY, "namespace": NS, "resourceVersion": str(len(data))},
                "data": data,
            }
        )

    def notebook(self, *, ssh: bool = False, **extra: Any) -> JsonDict:
        spec: JsonDict = {
            "type": "jupyter",
            "runMode": "running",
            "template": {"spec": {"containers": [{"name": "notebook", "image": "jupyter:1"}]}},
        }
        if ssh:
            spec["ssh"] = {"enabled": True, "authorized_keys": ["key"]}
        obj: JsonDict = {
            "apiVersion": "tensorstack.dev/v1beta1",
            "kind": "Notebook",
            "metadata": {
                "name": NB,
                "namespace": NS,
                "uid": "nb-uid",
                "resourceVersion": "1",
                "generation": 1,
                "annotations": {},
            },
            "spec": spec,
            **extra,
        }
        self.notebooks.upsert(obj)
        return obj

    def pod(
        self,
        *,
        node: bool = True,
        ready: bool = True,
        since: datetime = T0,
        uid: str = "pod-1",
        started: datetime = T0 - 48 * HOUR,
        deleting: bool = False,
    ) -> None:
        metadata: JsonDict = {
            "name": POD,
            "namespace": NS,
            "uid": uid,
            "labels": {NAME_LABEL: name_label_value(NB)},
        }
        if deleting:
            metadata["deletionTimestamp"] = rfc3339(self.now)
        status: JsonDict = {
            "phase": "Running" if node else "Pending",
            "startTime": rfc3339(started),
        }
        if node:
            status["conditions"] = [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": rfc3339(since),
                }
            ]
        self.pods.upsert(
            {
                "metadata": metadata,
                "spec": {
                    "nodeName": "node-1" if node else None,
                    "containers": [{"name": "notebook"}],
                },
                "status": status,
            }
        )

    def idle(self) -> JsonDict:
        found = self.notebooks.get(NS, NB) or {}
        conditions = (found.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Idle"), {})

    async def reconcile(self) -> float | None:
        return (await self.reconciler.reconcile(REQUEST)).requeue_after


# --- 1. pod state changes are judged at once; probes stay rate-limited ----------------------


async def test_idle_follows_the_pod_at_once_while_probes_keep_their_interval() -> None:
    world = World()
    world.probe.answer = JupyterActivity(reachable=True, started=T0)
    world.notebook()
    assert await world.reconcile() == 300  # no pod yet: next look in 5 min
    assert world.idle() == {}  # a notebook that never ran has no Idle condition

    world.now += timedelta(seconds=2)  # the pod's events: bound to a node, then Ready
    world.pod(ready=False, since=world.now, started=world.now)
    assert await world.reconcile() == 10  # starting: "not Ready yet" is held for the grace
    assert world.idle() == {}
    world.now += timedelta(seconds=4)
    world.pod(ready=True, since=world.now, started=T0)
    # seen turning Ready: probed a moment later, when its Service's endpoints show it
    assert await world.reconcile() == 0.5
    assert (world.probe.calls, world.idle()) == (0, {})
    world.now += timedelta(seconds=0.5)
    await world.reconcile()
    assert (world.idle()["status"], world.idle()["reason"]) == ("False", "RecentActivity")
    assert world.probe.calls == 1

    # events that don't change the pod's state (our own status write, a label) probe nothing
    writes = len(world.api.applied)
    world.now += timedelta(seconds=5)
    assert await world.reconcile() == pytest.approx(295)
    assert (world.probe.calls, len(world.api.applied)) == (1, writes)

    # the pod stops: judged at once, no probe
    world.pod(deleting=True)
    await world.reconcile()
    assert world.idle()["reason"] == "NotRunning"
    # a replacement pod that is Ready is probed as soon as its endpoints may show it
    world.pod(uid="pod-2", started=world.now, since=world.now)
    assert await world.reconcile() == 0.5
    world.now += timedelta(seconds=0.5)
    await world.reconcile()
    assert world.idle()["reason"] == "RecentActivity" and world.probe.calls == 2


async def test_a_failed_probe_is_retried_sooner_then_at_the_interval() -> None:
    world = World()
    world.notebook()
    world.pod()
    world.probe.answer = JupyterActivity.unreachable("connection", "no endpoints available")
    delays = []
    for _ in range(10):
        delays.append(await world.reconcile())
        world.now += timedelta(seconds=delays[-1] or 0)
    # before a first verdict, no quick retry: the starting grace's end (10 s after the first
    # probe) probes afresh, then the interval
    assert delays == [10, 300, 300, 300, 300, 300, 300, 300, 300, 300]
    assert world.probe.calls == 10
    assert world.idle()["reason"] == "ProbeFailed"
    world.probe.answer = JupyterActivity(reachable=True, started=world.now)
    assert await world.reconcile() == 300
    assert world.idle()["reason"] == "RecentActivity"
    # a server that answered and then stops answering: 2 s, 8 s, then the interval
    world.probe.answer = JupyterActivity.unreachable("connection", "connection refused")
    failing: list[float | None] = [300]
    for _ in range(4):
        world.now += timedelta(seconds=failing[-1] or 0)
        failing.append(await world.reconcile())
    assert failing[1:] == [2, 8, 300, 300]


async def test_a_starting_notebook_costs_one_idle_write_its_first_verdict() -> None:
    world = World(coalesce_seconds=5)
    world.probe.answer = JupyterActivity(reachable=True, started=T0)
    world.notebook()
    assert await world.reconcile() == 300  # no pod yet: nothing to write
    world.now += timedelta(seconds=8)
    world.pod(ready=False, since=world.now, started=world.now)
    assert await world.reconcile() == 10  # NotReady: can't tell yet, held back
    world.now += timedelta(seconds=3)
    world.pod(ready=True, since=world.now, started=world.now)
    assert await world.reconcile() == 0.5  # the first probe waits for the endpoints
    world.now += timedelta(seconds=0.5)
    assert await world.reconcile() == 300  # the probe's verdict goes out at once
    assert (world.idle()["status"], world.idle()["reason"]) == ("False", "RecentActivity")
    assert len(world.api.applied) == 1


async def test_a_starting_notebook_whose_probes_fail_costs_one_idle_write() -> None:
    world = World(coalesce_seconds=5)
    world.probe.answer = JupyterActivity.unreachable("connection", "no endpoints available")
    world.notebook()
    assert await world.reconcile() == 300  # no pod yet: nothing to write
    world.now += timedelta(seconds=20)
    world.pod(ready=True, since=world.now, started=world.now)
    assert await world.reconcile() == 0.5  # the first probe waits for the endpoints
    world.now += timedelta(seconds=0.5)
    # failed: "can't tell yet" is held for the starting grace, and the next probe waits for its
    # end (a retry sooner would only show the verdict sooner, in a write of its own all the same)
    assert await world.reconcile() == 10
    assert world.api.applied == [] and world.probe.calls == 1
    world.now += timedelta(seconds=10)
    world.probe.answer = JupyterActivity.unreachable("connection", "connection refused")
    assert await world.reconcile() == 300  # failed again: written, next at the interval
    assert (world.idle()["reason"], len(world.api.applied)) == ("ProbeFailed", 1)
    assert world.probe.calls == 2


async def test_a_lagging_first_probe_gets_its_verdict_at_the_grace_end() -> None:
    world = World(coalesce_seconds=5)
    world.probe.answer = JupyterActivity.unreachable("connection", "no endpoints available")
    world.notebook()
    await world.reconcile()
    world.pod(ready=True, since=world.now, started=world.now)
    assert await world.reconcile() == 0.5
    world.now += timedelta(seconds=0.5)
    assert await world.reconcile() == 10  # the endpoints lag: "can't tell yet", held
    world.probe.answer = JupyterActivity(reachable=True, started=world.now)
    world.now += timedelta(seconds=10)
    assert await world.reconcile() == 300
    assert (world.idle()["reason"], len(world.api.applied)) == ("RecentActivity", 1)
    assert world.probe.calls == 2


async def test_held_news_still_arrives_when_nothing_else_happens() -> None:
    world = World(coalesce_seconds=5)
    world.notebook()
    world.pod(ready=False, since=world.now, started=world.now)  # starting, on a node
    delay = await world.reconcile()
    assert delay == 10 and world.api.applied == []
    world.now += timedelta(seconds=delay)
    await world.reconcile()
    assert world.idle()["reason"] == "NotReady"
    # a running (recently active, so not reclaimed) notebook's pod going away is news held for
    # the short window only
    world.probe.answer = JupyterActivity(reachable=True, started=world.now - timedelta(minutes=1))
    world.pod()
    assert await world.reconcile() == 0.5  # turned Ready: probed once its endpoints show it
    world.now += timedelta(seconds=0.5)
    await world.reconcile()
    assert world.idle()["reason"] == "RecentActivity"
    world.pod(deleting=True)
    assert await world.reconcile() == 5


async def test_a_paused_notebook_loses_its_idle_condition_at_once_even_when_coalescing() -> None:
    world = World(coalesce_seconds=5)
    world.notebook()
    world.pod()
    await world.reconcile()  # no activity for two days: Idle=True, then reclaimed (paused)
    assert world.notebooks.get(NS, NB)["spec"]["runMode"] == "paused"  # type: ignore[index]
    assert world.idle()["status"] == "True"
    world.pod(deleting=True)
    assert await world.reconcile() is None  # not held: "will be paused at" beside Suspended
    assert world.idle() == {}


# --- 2. leftovers ---------------------------------------------------------------------------


async def test_resume_clears_reclaimed_at_even_where_the_policy_no_longer_applies() -> None:
    world = World()
    world.policy(enabled="false")
    world.notebook()["metadata"]["annotations"][RECLAIMED_AT_ANNOTATION] = rfc3339(T0)
    await world.reconcile()
    assert world.api.patches == [{"metadata": {"annotations": {RECLAIMED_AT_ANNOTATION: None}}}]
    found = world.notebooks.get(NS, NB)
    assert found is not None and RECLAIMED_AT_ANNOTATION not in found["metadata"]["annotations"]


async def test_paused_notebook_keeps_its_reclaimed_at() -> None:
    world = World()
    nb = world.notebook()
    nb["spec"]["runMode"] = "paused"
    nb["metadata"]["annotations"][RECLAIMED_AT_ANNOTATION] = rfc3339(T0)
    await world.reconcile()
    assert world.api.patches == []


async def test_ssh_turned_off_stops_last_ssh_client_activity() -> None:
    world = World()
    world.notebook(
        status={
            "conditions": [
                {
                    "type": "Idle",
                    "status": "False",
                    "reason": "RecentActivity",
                    "message": "The Notebook is active",
                    "lastTransitionTime": rfc3339(T0),
                }
            ],
            "ssh": {"lastSshClientActivity": rfc3339(T0 - MINUTE)},
        }
    )
    world.probe.answer = JupyterActivity(reachable=True, started=T0 - MINUTE)
    world.pod(started=T0 - MINUTE)
    await world.reconcile()
    assert len(world.api.applied) == 1 and "ssh" not in world.api.applied[0]
    found = world.notebooks.get(NS, NB)
    assert found is not None and "ssh" not in found["status"]
    await world.reconcile()  # and nothing more to write
    assert len(world.api.applied) == 1


async def test_ssh_on_keeps_sending_the_recorded_time() -> None:
    world = World()
    world.notebook(ssh=True, status={"ssh": {"lastSshClientActivity": rfc3339(T0 - MINUTE)}})
    world.probe.answer = JupyterActivity(reachable=True, started=T0 - 2 * MINUTE)
    world.pod(started=T0 - 2 * MINUTE)
    await world.reconcile()
    assert world.api.applied[-1]["ssh"] == {"lastSshClientActivity": rfc3339(T0 - MINUTE)}


# --- 3. what a restarted controller reads back ----------------------------------------------


async def test_ssh_session_recorded_before_a_restart_keeps_the_notebook() -> None:
    """Used only over SSH, the session closed ten minutes before a failover; Jupyter untouched
    for two days. The new leader probes once and must not pause it."""
    world = World()
    seen = T0 - 10 * MINUTE
    world.notebook(ssh=True, status={"ssh": {"lastSshClientActivity": rfc3339(seen)}})
    world.pod(started=T0 - 48 * HOUR)
    await world.reconcile()
    assert world.api.execs == 1  # the SSH probe ran: nobody connected now
    assert [p for p in world.api.patches if "spec" in p] == []
    assert (world.idle()["status"], world.idle()["reason"]) == ("False", "RecentActivity")
    world.now = seen + HOUR
    world.restart()
    await world.reconcile()
    assert world.idle()["status"] == "True"
    assert f"no activity since {rfc3339(seen)}" in world.idle()["message"]


async def test_not_ready_clock_comes_from_the_pod_so_a_restart_keeps_it() -> None:
    world = World()
    world.notebook()
    world.pod(ready=False, since=T0, started=T0)
    world.now = T0 + 20 * HOUR  # a controller that starts 20 h into the crash loop
    assert await world.reconcile() == 10  # no Idle condition stored yet: the starting grace
    world.now += timedelta(seconds=10)
    await world.reconcile()
    assert world.idle()["message"] == (
        "The Notebook's server has not been ready since 2025-01-06T09:00:00Z"
    )
    world.now = T0 + 25 * HOUR
    world.restart()
    await world.reconcile()
    pauses = [p for p in world.api.patches if "spec" in p]
    assert len(pauses) == 1 and pauses[0]["spec"] == {"runMode": "paused"}
    assert world.recorder.events[-1][1] == "Reclaimed"
    assert "has not been ready" in world.recorder.events[-1][2]


async def test_a_failing_probe_keeps_its_first_words_until_the_failure_changes_kind() -> None:
    """What the network says of a server that doesn't answer changes from probe to probe; the
    Idle message keeps the first words of a streak of one kind: no status write per probe."""
    world = World()
    world.notebook()
    world.pod()
    world.probe.answer = JupyterActivity(reachable=True, started=world.now)
    assert await world.reconcile() == 300
    world.probe.answer = JupyterActivity.unreachable("connection", "no endpoints available")
    world.now += timedelta(seconds=300)
    assert await world.reconcile() == 2
    writes = len(world.api.applied)
    first = world.idle()["message"]
    assert world.idle()["reason"] == "ProbeFailed" and "no endpoints available" in first
    world.probe.answer = JupyterActivity.unreachable("connection", "no route to host")
    world.now += timedelta(seconds=2)
    assert await world.reconcile() == 8
    assert (world.idle()["message"], len(world.api.applied)) == (first, writes)
    world.probe.answer = JupyterActivity.unreachable("timeout", "no answer within 10s")
    world.now += timedelta(seconds=8)
    await world.reconcile()
    assert "no answer within 10s" in world.idle()["message"]
    assert len(world.api.applied) == writes + 1

"""What `wiring.py` wires: the controllers an event wakes, through the informers' own handlers
(the predicates are tested alone in test_wake_predicates.py; this checks they are the ones in
place). No API server: events are handed to the informers as a watch would deliver them."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from functools import partial
from typing import Any

from notebook_controller.api.models import NAME_LABEL
from notebook_controller.builders.names import (
    http_service_name,
    name_label_value,
    ssh_service_name,
)
from notebook_controller.reconcilers.notebooks import NOTEBOOKS, PART_IDLE, PART_STATUS
from notebook_controller.reconcilers.status import STATUS_EVENT_BATCH_SECONDS, StatusReconciler
from notebook_controller.runtime.apply import SharedStatus
from notebook_controller.runtime.controller import Controller
from notebook_controller.runtime.informer import Informer
from notebook_controller.runtime.kinds import SERVICES, STATEFULSETS
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.kubeconfig import Configuration
from notebook_controller.runtime.manager import Manager
from notebook_controller.runtime.objects import JsonDict
from notebook_controller.runtime.reconcile import Request
from notebook_controller.settings import Settings
from notebook_controller.wiring import build
from tests.fake.api import FakeApi

NS, NB = "team-a", "nb"
REQUEST = Request(NS, NB)
NOTEBOOK: JsonDict = {
    "apiVersion": "tensorstack.dev/v1beta1",
    "kind": "Notebook",
    "metadata": {"name": NB, "namespace": NS, "uid": "nb-1", "resourceVersion": "5"},
    "spec": {"template": {"spec": {"containers": [{"name": "notebook", "image": "j:1"}]}}},
}
OWNER = {"apiVersion": "tensorstack.dev/v1beta1", "kind": "Notebook", "name": NB, "uid": "nb-1"}
STATEFULSET: JsonDict = {
    "metadata": {
        "name": f"managed-notebook-{NB}",
        "namespace": NS,
        "uid": "sts-1",
        "resourceVersion": "6",
        "generation": 1,
        "ownerReferences": [{**OWNER, "controller": True}],
    },
    "spec": {"replicas": 1},
    "status": {"replicas": 1, "readyReplicas": 0, "observedGeneration": 1},
}
POD: JsonDict = {
    "metadata": {
        "name": f"managed-notebook-{NB}-0",
        "namespace": NS,
        "uid": "pod-1",
        "resourceVersion": "7",
        "labels": {NAME_LABEL: name_label_value(NB)},
    },
    "spec": {"nodeName": "node-1", "containers": [{"name": "notebook"}]},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]},
}


class FakeBacked(KubeClient):
    """The controller's client on the in-memory API server (tests/fake/api.py), which answers
    applies and status applies as the real one does. Each status write's answer waits for the
    next of `gates` when there are any; `before_answer` sees its result before the writer does
    (a watch faster than the answer)."""

    def __init__(self) -> None:
        super().__init__(Configuration(host="http://127.0.0.1:9"))
        self.api = FakeApi([NOTEBOOKS, STATEFULSETS, SERVICES])
        self.gates: list[asyncio.Event] = []
        self.before_answer: Callable[[JsonDict], object] | None = None

    async def apply(self, *args: Any, **kwargs: Any) -> JsonDict:
        return await self.api.apply(*args, **kwargs)

    async def apply_status(self, *args: Any, **kwargs: Any) -> JsonDict:
        if self.gates:
            await self.gates.pop(0).wait()
        written = await self.api.apply_status(*args, **kwargs)
        if self.before_answer is not None:
            self.before_answer(written)
        return written


class Wired:
    """The controllers as `wiring.build` makes them, over a fake API that holds the notebook
    (`notebook`, as the API server stored it)."""

    def __init__(self, client: FakeBacked, notebook: JsonDict) -> None:
        self.client = client
        self.notebook = notebook
        manager = Manager(client, handle_signals=False)
        build(manager, client, Settings.load([], {}))
        self.informers: dict[str, Informer] = {i.kind.kind: i for i in manager.informers}
        self.controllers: dict[str, Controller] = {c.name: c for c in manager.controllers}
        # events wake some controllers after a batch period (Controller.wake): seen here at once
        self._woken: set[str] = set()
        for controller in self.controllers.values():
            controller.wake = partial(self._wake, controller.name)  # type: ignore[method-assign]
        status = self.controllers["status"].reconciler
        assert isinstance(status, StatusReconciler)
        self.shared: SharedStatus = status.shared

    @classmethod
    async def start(cls) -> Wired:
        client = FakeBacked()
        return cls(client, await client.api.create(NOTEBOOKS, NS, NOTEBOOK))

    def deliver(self, kind: str, obj: JsonDict) -> JsonDict:
        """`obj` as the watch of its kind delivers it (an add, or an update of the cached one)."""
        informer = self.informers[kind]
        obj = copy.deepcopy(obj)
        old = informer.store.upsert(obj)
        if old is None:
            informer._dispatch("on_add", obj)
        else:
            informer._dispatch("on_update", old, obj)
        return obj

    def _wake(self, name: str, request: Request) -> None:
        assert request == REQUEST
        self._woken.add(name)

    async def woken(self) -> set[str]:
        """The controllers an event woke or with a key waiting, whose queues are then emptied."""
        names, self._woken = self._woken, set()
        for name, controller in self.controllers.items():
            while len(controller.queue):
                key = await controller.queue.get()
                controller.queue.done(key)
                names.add(name)
        return names


def edited(obj: JsonDict, version: str, **changes: Any) -> JsonDict:
    new = copy.deepcopy(obj)
    for path, value in changes.items():
        *parents, last = path.split("__")
        here = new
        for part in parents:
            here = here.setdefault(part, {})
        here[last] = value
    new["metadata"]["resourceVersion"] = version
    return new


async def test_a_statefulsets_replica_counts_wake_no_one_its_rollout_the_status() -> None:
    wired = await Wired.start()
    wired.deliver("Notebook", wired.notebook)
    wired.deliver("StatefulSet", STATEFULSET)
    await wired.woken()
    wired.deliver("StatefulSet", edited(STATEFULSET, "8", status__readyReplicas=1))
    assert await wired.woken() == set()
    wired.deliver("StatefulSet", edited(STATEFULSET, "9", status__observedGeneration=2))
    assert await wired.woken() == {"status"}


async def test_a_pods_probe_time_wakes_no_one_its_readiness_status_and_idle() -> None:
    wired = await Wired.start()
    wired.deliver("Notebook", wired.notebook)
    wired.deliver("Pod", POD)
    await wired.woken()
    probed = [{"type": "Ready", "status": "False", "lastProbeTime": "2026-11-27T01:00:00Z"}]
    wired.deliver("Pod", edited(POD, "8", status__conditions=probed))
    assert await wired.woken() == set()
    wired.deliver("Pod", edited(POD, "9", status__conditions=[{"type": "Ready", "status": "True"}]))
    assert await wired.woken() == {"status", "idle"}


async def test_a_new_pod_off_any_node_wakes_the_idle_reconciler_when_scheduled() -> None:
    wired = await Wired.start()
    wired.deliver("Notebook", wired.notebook)
    assert "idle" in await wired.woken()
    unscheduled = edited(POD, "7", spec={"containers": [{"name": "notebook"}]})
    unscheduled["status"] = {"phase": "Pending"}
    wired.deliver("Pod", unscheduled)
    assert await wired.woken() == {"status"}  # to idle, the same as no pod: nothing to judge
    wired.deliver("Pod", edited(unscheduled, "8", spec__nodeName="node-1"))
    assert "idle" in await wired.woken()
    wired.deliver("Pod", edited(POD, "9", status__conditions=[{"type": "Ready", "status": "True"}]))
    await wired.woken()
    going = edited(POD, "10", metadata__deletionTimestamp="2026-11-27T01:00:00Z")
    wired.deliver("Pod", going)
    assert "idle" in await wired.woken()  # off its node now: an update, judged


async def test_the_echo_of_our_status_write_wakes_no_one_a_users_edit_does() -> None:
    wired = await Wired.start()
    cached = wired.deliver("Notebook", wired.notebook)
    await wired.woken()
    written = await wired.shared.write(cached, PART_STATUS, {"phase": "Pending"})
    wired.deliver("Notebook", written)
    assert await wired.woken() == set()
    wired.deliver("Notebook", edited(written, "51", metadata__labels={"team": "a"}))
    assert await wired.woken() == {"status", "idle"}  # not the children's appliers


async def test_the_echo_of_our_status_write_before_its_answer_wakes_no_one() -> None:
    wired = await Wired.start()
    cached = wired.deliver("Notebook", wired.notebook)
    await wired.woken()
    wired.client.before_answer = lambda written: wired.deliver("Notebook", written)
    await wired.shared.write(cached, PART_STATUS, {"phase": "Pending"})
    assert await wired.woken() == set()
    wired.client.before_answer = lambda written: wired.deliver(
        "Notebook",
        edited(written, "51", status__phase="Running"),  # not what we sent
    )
    await wired.shared.write(cached, PART_STATUS, {"phase": "Failed"})
    assert await wired.woken() == {"status", "idle"}


async def test_two_status_writes_in_flight_at_once_keep_each_others_echo_quiet() -> None:
    wired = await Wired.start()
    cached = wired.deliver("Notebook", wired.notebook)
    await wired.woken()
    first, second = asyncio.Event(), asyncio.Event()
    wired.client.gates = [first, second]
    status_write = asyncio.create_task(wired.shared.write(cached, PART_STATUS, {"phase": "A"}))
    await asyncio.sleep(0)
    can_t_tell = {"conditions": [{"type": "Idle", "status": "Unknown", "reason": "ProbeFailed"}]}
    idle_write = asyncio.create_task(wired.shared.write(cached, PART_IDLE, can_t_tell))
    await asyncio.sleep(0)
    first.set()
    await status_write  # answered while the idle part's write is still on its way
    wired.client.before_answer = lambda written: wired.deliver("Notebook", written)
    second.set()
    await idle_write
    assert await wired.woken() == set()


async def test_an_idle_offer_wakes_the_status_reconciler_only_while_it_holds_back_too() -> None:
    wired = await Wired.start()
    wired.deliver("Notebook", wired.notebook)
    await wired.woken()
    can_t_tell = {"conditions": [{"type": "Idle", "status": "Unknown", "reason": "ProbeFailed"}]}
    wired.shared.offer(REQUEST, PART_IDLE, can_t_tell)
    assert await wired.woken() == set()
    wired.shared.offer(REQUEST, PART_STATUS, {"phase": "Running"})  # Ready held back
    wired.shared.offer(REQUEST, PART_IDLE, can_t_tell)
    assert await wired.woken() == {"status"}


async def test_the_echo_of_a_childs_apply_wakes_not_its_applier_another_version_does() -> None:
    wired = await Wired.start()
    wired.deliver("Notebook", wired.notebook)
    await wired.woken()
    for applier in ("workload", "services"):
        await wired.controllers[applier].reconciler.reconcile(REQUEST)
    statefulset = wired.deliver("StatefulSet", wired.client.api.objects(STATEFULSETS, NS)[0])
    http = wired.deliver("Service", wired.client.api.objects(SERVICES, NS)[0])
    assert await wired.woken() == {"status"}  # the StatefulSet: what the status shows of it
    wired.deliver("StatefulSet", edited(statefulset, "61", metadata__labels={"edited": "y"}))
    wired.deliver("Service", edited(http, "62", metadata__labels={"edited": "y"}))
    assert await wired.woken() == {"workload", "services", "status"}


async def test_only_the_ssh_service_wakes_the_status_reconciler() -> None:
    wired = await Wired.start()
    wired.deliver("Notebook", wired.notebook)
    await wired.woken()
    metadata = {"namespace": NS, "resourceVersion": "9", "uid": "svc-1",
                "ownerReferences": [{**OWNER, "controller": True}]}  # fmt: skip
    wired.deliver("Service", {"metadata": {**metadata, "name": http_service_name(NB)}})
    assert await wired.woken() == {"services"}
    wired.deliver("Service", {"metadata": {**metadata, "name": ssh_service_name(NB)}})
    assert await wired.woken() == {"services", "status"}


async def test_a_new_pod_wakes_the_ssh_reconciler_only_when_its_notebook_has_ssh_on() -> None:
    wired = await Wired.start()
    wired.deliver("Notebook", wired.notebook)
    await wired.woken()
    wired.deliver("Pod", POD)
    assert await wired.woken() == {"status", "idle"}
    with_ssh = edited(wired.notebook, "10", spec__ssh={"enabled": True}, metadata__generation=2)
    wired.deliver("Notebook", with_ssh)
    assert "ssh" in await wired.woken()
    wired.deliver("Pod", edited(POD, "11", metadata__uid="pod-2"))  # the StatefulSet's next pod
    assert "ssh" in await wired.woken()


async def test_events_wake_the_status_reconciler_after_its_batch_period_the_others_at_once() -> (
    None
):
    wired = await Wired.start()
    batches = {name: c.batch_seconds for name, c in wired.controllers.items()}
    assert batches == {"workload": 0, "services": 0, "ssh": 0, "idle": 0,
                       "status": STATUS_EVENT_BATCH_SECONDS}  # fmt: skip

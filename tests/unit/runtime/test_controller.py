"""Controller result handling and event mapping, with an in-process reconciler."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from typing import Any, cast

import pytest
import structlog
from prometheus_client import REGISTRY

from notebook_controller.runtime.clock import FakeClock
from notebook_controller.runtime.controller import Controller
from notebook_controller.runtime.informer import EventHandler, Informer
from notebook_controller.runtime.kube import ResourceKind
from notebook_controller.runtime.ratelimit import ExponentialFailureRateLimiter
from notebook_controller.runtime.reconcile import Request, Result, TerminalError
from notebook_controller.runtime.workqueue import WorkQueue

KEY = Request("ns", "nb")


class ScriptedReconciler:
    """Returns (or raises) the scripted outcomes in turn; records what it saw."""

    def __init__(self, *outcomes: Result | Exception) -> None:
        self.name = "scripted"
        self.outcomes = list(outcomes)
        self.calls: list[Request] = []
        self.contexts: list[dict[str, Any]] = []

    async def reconcile(self, request: Request) -> Result:
        self.calls.append(request)
        self.contexts.append(structlog.contextvars.get_contextvars())
        outcome = self.outcomes.pop(0) if self.outcomes else Result()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def make_controller(reconciler: Any, clock: FakeClock, workers: int = 1) -> Controller:
    name = f"test-{uuid.uuid4().hex[:8]}"
    queue: WorkQueue[Request] = WorkQueue(
        name, ExponentialFailureRateLimiter(base_delay=1.0, max_delay=60.0), clock=clock
    )
    return Controller(name, reconciler, workers=workers, queue=queue, log_key="notebook")


def reconcile_total(controller: Controller, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "controller_runtime_reconcile_total", {"controller": controller.name, "result": result}
    )
    return value or 0.0


def active_workers(controller: Controller) -> float | None:
    return REGISTRY.get_sample_value(
        "controller_runtime_active_workers", {"controller": controller.name}
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def run_briefly(controller: Controller, steps: list[Any]) -> None:
    """Run the controller while `steps` (awaitables) execute, then stop it."""
    async with asyncio.TaskGroup() as group:
        group.create_task(controller.run())
        await settle()
        for step in steps:
            await step
            await settle()
        controller.stop()


async def test_success_forgets_and_binds_log_context() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler(Result())
    controller = make_controller(reconciler, clock)
    controller.queue.add(KEY)
    await run_briefly(controller, [])
    assert reconciler.calls == [KEY]
    context = reconciler.contexts[0]
    assert context["notebook"] == "ns/nb"
    assert context["reconciler"] == controller.name
    assert re.fullmatch(r"[0-9a-f]{6}-[0-9a-f]{6,}", context["reconcile_id"])
    assert reconcile_total(controller, "success") == 1
    assert controller.queue.num_requeues(KEY) == 0


async def test_exception_is_retried_with_backoff_and_counted() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler(RuntimeError("boom"), RuntimeError("boom"), Result())
    controller = make_controller(reconciler, clock)
    controller.queue.add(KEY)
    await run_briefly(
        controller,
        [clock.advance(0.99), clock.advance(0.01), clock.advance(1.99), clock.advance(0.01)],
    )
    assert len(reconciler.calls) == 3
    assert reconcile_total(controller, "error") == 2
    assert reconcile_total(controller, "success") == 1
    errors = REGISTRY.get_sample_value(
        "controller_runtime_reconcile_errors_total", {"controller": controller.name}
    )
    assert errors == 2
    assert controller.queue.num_requeues(KEY) == 0  # forgotten after the success


async def test_each_attempt_has_its_own_reconcile_id() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler(RuntimeError("boom"), Result())
    controller = make_controller(reconciler, clock)
    controller.queue.add(KEY)
    await run_briefly(controller, [clock.advance(1)])
    ids = {context["reconcile_id"] for context in reconciler.contexts}
    assert len(ids) == 2


async def test_the_log_context_ends_with_the_reconcile() -> None:
    reconciler = ScriptedReconciler(Result(), RuntimeError("boom"))
    controller = make_controller(reconciler, FakeClock())
    with structlog.contextvars.bound_contextvars(notebook="outer/nb"):
        await controller.reconcile_one(KEY)
        await controller.reconcile_one(KEY)
        assert structlog.contextvars.get_contextvars() == {"notebook": "outer/nb"}
    assert [context["notebook"] for context in reconciler.contexts] == ["ns/nb", "ns/nb"]


async def test_terminal_error_is_not_retried() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler(TerminalError("bad spec"))
    controller = make_controller(reconciler, clock)
    controller.queue.add(KEY)
    await run_briefly(controller, [clock.advance(3600)])
    assert reconciler.calls == [KEY]
    terminal = REGISTRY.get_sample_value(
        "controller_runtime_terminal_reconcile_errors_total", {"controller": controller.name}
    )
    assert terminal == 1


async def test_requeue_after_adds_the_key_back_after_the_delay() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler(RuntimeError("boom"), Result(requeue_after=30), Result())
    controller = make_controller(reconciler, clock)
    controller.queue.add(KEY)
    await run_briefly(controller, [clock.advance(1), clock.advance(29.9)])
    assert len(reconciler.calls) == 2
    assert controller.queue.num_requeues(KEY) == 0  # the failure streak was forgotten
    await run_briefly(controller, [])  # the queue is shut down now: nothing more runs
    assert reconcile_total(controller, "requeue_after") == 1


async def test_a_key_is_never_reconciled_concurrently() -> None:
    clock = FakeClock()
    running: Counter[Request] = Counter()
    overlaps: list[Request] = []
    calls: list[Request] = []
    release = asyncio.Event()

    class Slow:
        name = "slow"

        async def reconcile(self, request: Request) -> Result:
            running[request] += 1
            if running[request] > 1:
                overlaps.append(request)
            calls.append(request)
            await release.wait()
            running[request] -= 1
            return Result()

    controller = make_controller(Slow(), clock, workers=4)
    other = Request("ns", "other")

    async def add_while_busy() -> None:
        controller.queue.add(KEY)
        await settle()
        controller.queue.add(KEY)  # KEY is in processing: must wait
        controller.queue.add(KEY)
        controller.queue.add(other)  # another key may run in parallel
        await settle()
        assert calls == [KEY, other]
        assert active_workers(controller) == 2
        release.set()

    await run_briefly(controller, [add_while_busy()])
    assert overlaps == []
    assert calls == [KEY, other, KEY]
    assert active_workers(controller) == 0


class RecordingInformer:
    """Stands in for an Informer: keeps the handler the controller registers."""

    def __init__(self) -> None:
        self.handlers: list[EventHandler] = []

    def add_handler(self, handler: EventHandler) -> None:
        self.handlers.append(handler)


NOTEBOOK_KIND = ResourceKind("tensorstack.dev", "v1beta1", "notebooks", "Notebook")


def child(
    owner_kind: str | None,
    *,
    controller: bool = True,
    api_version: str = "tensorstack.dev/v1beta1",
    others: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "nb-0", "namespace": "ns"}
    if owner_kind:
        reference = {"apiVersion": api_version, "kind": owner_kind, "name": "nb", "uid": "u"}
        metadata["ownerReferences"] = [*others, {**reference, "controller": controller}]
    return {"metadata": metadata}


async def drain(controller: Controller) -> list[Request]:
    controller.queue.shut_down()
    requests = []
    with pytest.raises(Exception, match=controller.name):
        while True:
            requests.append(await controller.queue.get())
    return requests


async def test_watch_owned_maps_children_to_their_controller_owner() -> None:
    controller = make_controller(ScriptedReconciler(), FakeClock())
    informer = RecordingInformer()
    controller.watch_owned(cast(Informer, informer), NOTEBOOK_KIND)
    (handler,) = informer.handlers
    handler.on_add(child("Notebook"))
    handler.on_update(child("Notebook"), child("Notebook"))
    handler.on_delete(child("StatefulSet", api_version="apps/v1"))
    handler.on_add(child("Notebook", controller=False))
    handler.on_add(child("Notebook", api_version="example.com/v1"))  # another group's Notebook
    handler.on_add(child(None))
    assert await drain(controller) == [KEY]


async def test_watch_owned_follows_the_controller_reference_not_the_first() -> None:
    controller = make_controller(ScriptedReconciler(), FakeClock())
    informer = RecordingInformer()
    controller.watch_owned(cast(Informer, informer), NOTEBOOK_KIND)
    bystander = {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "c"}
    informer.handlers[0].on_add(child("Notebook", others=(bystander,)))
    assert await drain(controller) == [KEY]


async def test_watch_owned_updates_pass_the_predicate() -> None:
    def labels_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
        return bool(old["metadata"].get("labels") != new["metadata"].get("labels"))

    labelled = child("Notebook")
    labelled["metadata"]["labels"] = {"a": "b"}
    woken = []
    for old, new in [(child("Notebook"), child("Notebook")), (child("Notebook"), labelled)]:
        controller = make_controller(ScriptedReconciler(), FakeClock())
        informer = RecordingInformer()
        controller.watch_owned(cast(Informer, informer), NOTEBOOK_KIND, labels_changed)
        informer.handlers[0].on_update(old, new)
        woken.append(await drain(controller))
    assert woken == [[], [KEY]]


async def test_watch_owned_ignores_adds_and_updates_of_what_ignore_names_not_deletes() -> None:
    echo, news = child("Notebook"), child("Notebook")
    echo["metadata"]["resourceVersion"] = "7"  # as our own write left it
    news["metadata"]["resourceVersion"] = "8"
    woken = {}
    for event, obj in [("add", echo), ("update", echo), ("delete", echo), ("add", news)]:
        controller = make_controller(ScriptedReconciler(), FakeClock())
        informer = RecordingInformer()
        controller.watch_owned(
            cast(Informer, informer),
            NOTEBOOK_KIND,
            ignore=lambda obj: obj["metadata"].get("resourceVersion") == "7",
        )
        (handler,) = informer.handlers
        if event == "add":
            handler.on_add(obj)
        elif event == "update":
            handler.on_update(child("Notebook"), obj)
        else:
            handler.on_delete(obj)
        woken[event, obj["metadata"]["resourceVersion"]] = await drain(controller)
    assert woken == {("add", "7"): [], ("update", "7"): [], ("delete", "7"): [KEY],
                     ("add", "8"): [KEY]}  # fmt: skip


async def test_watch_primary_updates_pass_the_predicate() -> None:
    controller = make_controller(ScriptedReconciler(), FakeClock())
    primary = RecordingInformer()

    def generation_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
        return bool(old["metadata"]["generation"] != new["metadata"]["generation"])

    controller.watch_primary(cast(Informer, primary), generation_changed)
    (handler,) = primary.handlers

    def notebook(name: str, generation: int) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ns", "generation": generation}}

    handler.on_update(notebook("status-only", 1), notebook("status-only", 1))
    handler.on_update(notebook("spec", 1), notebook("spec", 2))
    handler.on_delete(notebook("gone", 1))
    assert await drain(controller) == [Request("ns", "spec"), Request("ns", "gone")]


async def test_watch_primary_and_watch_mapped() -> None:
    controller = make_controller(ScriptedReconciler(), FakeClock())
    primary, mapped = RecordingInformer(), RecordingInformer()
    controller.watch_primary(cast(Informer, primary))
    controller.watch_mapped(
        cast(Informer, mapped), lambda obj: [Request("ns", "x"), Request("ns", "y")]
    )
    primary.handlers[0].on_add({"metadata": {"name": "a", "namespace": "ns"}})
    mapped.handlers[0].on_delete({"metadata": {"name": "secret", "namespace": "ns"}})
    assert await drain(controller) == [Request("ns", "a"), Request("ns", "x"), Request("ns", "y")]


async def test_events_within_the_batch_period_are_one_reconcile_after_it() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler()
    controller = make_controller(reconciler, clock)
    controller.batch_seconds = 0.25
    owned, mapped = RecordingInformer(), RecordingInformer()
    controller.watch_owned(cast(Informer, owned), NOTEBOOK_KIND)
    controller.watch_mapped(cast(Informer, mapped), lambda obj: [KEY])

    async def events() -> None:
        owned.handlers[0].on_add(child("Notebook"))  # its StatefulSet
        await clock.advance(0.1)
        mapped.handlers[0].on_add({"metadata": {"name": "nb-0", "namespace": "ns"}})  # its pod
        await clock.advance(0.1)
        owned.handlers[0].on_update(child("Notebook"), child("Notebook"))
        await settle()
        assert reconciler.calls == []  # the first event's batch period isn't over
        await clock.advance(0.05)

    await run_briefly(controller, [events()])
    assert reconciler.calls == [KEY]


async def test_the_primarys_own_events_are_not_batched() -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler()
    controller = make_controller(reconciler, clock)
    controller.batch_seconds = 0.25
    primary = RecordingInformer()
    controller.watch_primary(cast(Informer, primary))

    async def spec_change() -> None:
        notebook = {"metadata": {"name": "nb", "namespace": "ns"}}
        primary.handlers[0].on_update(notebook, notebook)
        await settle()
        assert reconciler.calls == [KEY]  # at once: who changed it waits for its status

    await run_briefly(controller, [spec_change()])


def test_request_is_ordered_and_prints_as_a_key() -> None:
    assert str(Request("ns", "nb")) == "ns/nb"
    assert sorted([Request("b", "a"), Request("a", "b")]) == [Request("a", "b"), Request("b", "a")]

"""Controller loop: informer events become queue keys; N workers reconcile keys.

What a controller watches is declared on it (`watch_primary`, `watch_owned`, `watch_mapped`, as
controller-runtime's `For`/`Owns`/`Watches`); what a reconciler returns and how it is handled
is `runtime.reconcile`.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Iterable

import structlog

from notebook_controller.runtime import metrics
from notebook_controller.runtime.informer import FunctionHandler, Informer
from notebook_controller.runtime.kube import ResourceKind
from notebook_controller.runtime.objects import JsonDict, api_group, controller_owner
from notebook_controller.runtime.reconcile import Reconciler, Request, TerminalError
from notebook_controller.runtime.workqueue import ShutDown, WorkQueue

log = structlog.get_logger(__name__)

# A reconcile's id in logs: this process's run, then a count (unique like controller-runtime's
# UUIDs, and in order; a UUID costs a system call for randomness per reconcile).
_RUN = secrets.token_hex(3)
_reconcile_count = itertools.count(1)


Mapper = Callable[[JsonDict], Iterable[Request]]
UpdatePredicate = Callable[[JsonDict, JsonDict], bool]
"""(old, new) -> whether this update should wake the controller."""
Ignore = Callable[[JsonDict], bool]
"""An object -> whether its add or update is no news to the controller (its own write's echo,
a kind of object it doesn't read)."""


class Controller:
    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        workers: int = 2,
        queue: WorkQueue[Request] | None = None,
        log_key: str = "request",
        batch_seconds: float = 0.0,
    ) -> None:
        """`batch_seconds`: an event of a watched child or mapped object wakes the reconciler
        that much later, so those that arrive together (a notebook's StatefulSet, its rollout,
        its pod) are one reconcile (as kube-controller-manager's
        --endpoint-updates-batch-period). The primary object's own events wake it at once: who
        changed it waits for its status to follow."""
        self.name = name
        self.batch_seconds = batch_seconds
        self.reconciler = reconciler
        self.workers = workers
        self.queue: WorkQueue[Request] = queue if queue is not None else WorkQueue(name)
        self.informers: list[Informer] = []
        self._log_key = log_key
        self._reconcile_total = {
            result: metrics.RECONCILE_TOTAL.labels(name, result)
            for result in ("success", "error", "requeue_after")
        }
        self._errors = metrics.RECONCILE_ERRORS.labels(name)
        self._terminal_errors = metrics.TERMINAL_RECONCILE_ERRORS.labels(name)
        self._time = metrics.RECONCILE_TIME.labels(name)
        # a worker is busy while it holds a key
        metrics.read_at_scrape(
            metrics.ACTIVE_WORKERS.labels(name), self.queue, lambda queue: len(queue.processing)
        )

    # --- event sources --------------------------------------------------------------------

    def watch_primary(self, informer: Informer, predicate: UpdatePredicate | None = None) -> None:
        """Each object of the informer is reconciled under its own key: on every add and
        delete, and on the updates `predicate(old, new)` lets through (all without one)."""

        def enqueue(obj: JsonDict) -> None:
            self.queue.add(Request.for_object(obj))

        def update(old: JsonDict, new: JsonDict) -> None:
            if predicate is None or predicate(old, new):
                enqueue(new)

        self._watch(informer, FunctionHandler(add=enqueue, update=update, delete=enqueue))

    def watch_owned(
        self,
        informer: Informer,
        owner: ResourceKind,
        predicate: UpdatePredicate | None = None,
        *,
        ignore: Ignore | None = None,
    ) -> None:
        """A child whose controller ownerReference is of the `owner` kind (group and kind)
        wakes its owner (on updates, those `predicate(old, new)` lets through; not on an add or
        update of an object `ignore` names)."""

        def owner_request(obj: JsonDict) -> list[Request]:
            reference = controller_owner(obj)
            if reference is None or (
                reference.get("kind"),
                api_group(str(reference.get("apiVersion", ""))),
            ) != (owner.kind, owner.group):
                return []
            return [Request(obj["metadata"].get("namespace", ""), reference["name"])]

        self.watch_mapped(informer, owner_request, predicate, ignore=ignore)

    def watch_mapped(
        self,
        informer: Informer,
        mapper: Mapper,
        predicate: UpdatePredicate | None = None,
        *,
        ignore: Ignore | None = None,
        ignore_add: Ignore | None = None,
    ) -> None:
        """Every request `mapper` returns for an object's old or new state is enqueued: on
        every add and delete, and on the updates `predicate(old, new)` lets through; but an add
        or update of an object `ignore` names (as it now is) wakes no one, nor does an add of
        one `ignore_add` names (its updates are the predicate's to judge)."""

        def enqueue(*objs: JsonDict) -> None:
            for obj in objs:
                for request in mapper(obj):
                    self.wake(request)

        def add(obj: JsonDict) -> None:
            if (ignore is None or not ignore(obj)) and (ignore_add is None or not ignore_add(obj)):
                enqueue(obj)

        def update(old: JsonDict, new: JsonDict) -> None:
            if (predicate is None or predicate(old, new)) and (ignore is None or not ignore(new)):
                enqueue(old, new)

        self._watch(informer, FunctionHandler(add=add, update=update, delete=enqueue))

    def wake(self, request: Request) -> None:
        """A child's or mapped object's event concerns `request`: reconcile it (after
        `batch_seconds`)."""
        if self.batch_seconds > 0:
            self.queue.add_after(request, self.batch_seconds)
        else:
            self.queue.add(request)

    def _watch(self, informer: Informer, handler: FunctionHandler) -> None:
        informer.add_handler(handler)
        if informer not in self.informers:
            self.informers.append(informer)

    # --- workers --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the workers until the queue is shut down (see `stop`) or the task is cancelled."""
        metrics.MAX_CONCURRENT_RECONCILES.labels(self.name).set(self.workers)
        log.info("starting workers", controller=self.name, workers=self.workers)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.workers):
                    group.create_task(self._worker())
        finally:
            self.queue.shut_down()

    def stop(self) -> None:
        """Let the workers finish what they hold and what is queued, then return from `run`."""
        self.queue.shut_down()

    async def _worker(self) -> None:
        while True:
            try:
                request = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.reconcile_one(request)
            finally:
                self.queue.done(request)

    async def reconcile_one(self, request: Request) -> None:
        # (bound and reset by token: `bound_contextvars` copies the whole context to restore it)
        tokens = structlog.contextvars.bind_contextvars(
            reconcile_id=f"{_RUN}-{next(_reconcile_count):06x}",
            reconciler=self.name,
            **{self._log_key: str(request)},
        )
        started = time.monotonic()
        try:
            result = await self.reconciler.reconcile(request)
        except TerminalError as error:
            self.queue.forget(request)
            self._terminal_errors.inc()
            self._errors.inc()
            self._reconcile_total["error"].inc()
            log.warning("reconcile failed permanently", error=str(error))
        except Exception:
            self.queue.add_rate_limited(request)
            self._errors.inc()
            self._reconcile_total["error"].inc()
            log.exception("reconcile failed", retries=self.queue.num_requeues(request))
        else:
            self.queue.forget(request)
            if result.requeue_after is not None:
                self.queue.add_after(request, result.requeue_after)
                self._reconcile_total["requeue_after"].inc()
            else:
                self._reconcile_total["success"].inc()
        finally:
            self._time.observe(time.monotonic() - started)
            structlog.contextvars.reset_contextvars(**tokens)

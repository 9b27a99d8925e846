"""Controller loop: informer events become queue keys; N workers reconcile keys.

Results, as in controller-runtime: an exception is retried with the queue's rate limit;
`requeue_after` forgets the failure streak and adds the key back after the delay; a
TerminalError (bad spec) is not retried — the reconciler records an event and a condition itself.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from notebook_controller.runtime import metrics
from notebook_controller.runtime.informer import FunctionHandler, Informer
from notebook_controller.runtime.store import controller_owner
from notebook_controller.runtime.workqueue import ShutDown, WorkQueue

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]


@dataclass(frozen=True, order=True)
class Request:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def for_object(cls, obj: JsonDict) -> Request:
        metadata = obj["metadata"]
        return cls(metadata.get("namespace", ""), metadata["name"])


@dataclass(frozen=True)
class Result:
    requeue_after: float | None = None


class TerminalError(Exception):
    """The object can't be reconciled as it is (bad spec): don't retry until it changes."""


class Reconciler(Protocol):
    name: str

    async def reconcile(self, request: Request) -> Result: ...


Mapper = Callable[[JsonDict], Iterable[Request]]


class Controller:
    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        workers: int = 2,
        queue: WorkQueue[Request] | None = None,
        log_key: str = "request",
    ) -> None:
        self.name = name
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
        self._active = metrics.ACTIVE_WORKERS.labels(name)

    # --- event sources --------------------------------------------------------------------

    def watch_primary(self, informer: Informer) -> None:
        """Each object of the informer is reconciled under its own key."""
        self.watch_mapped(informer, lambda obj: [Request.for_object(obj)])

    def watch_owned(self, informer: Informer, owner_kind: str) -> None:
        """A child with a controller ownerReference of `owner_kind` wakes its owner."""

        def owner_request(obj: JsonDict) -> list[Request]:
            owner = controller_owner(obj)
            if owner is None or owner.get("kind") != owner_kind:
                return []
            return [Request(obj["metadata"].get("namespace", ""), owner["name"])]

        self.watch_mapped(informer, owner_request)

    def watch_mapped(self, informer: Informer, mapper: Mapper) -> None:
        """Every request `mapper` returns for an object's old or new state is enqueued."""

        def enqueue(*objs: JsonDict) -> None:
            for obj in objs:
                for request in mapper(obj):
                    self.queue.add(request)

        informer.add_handler(FunctionHandler(add=enqueue, update=enqueue, delete=enqueue))
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
            self._active.inc()
            try:
                await self.reconcile_one(request)
            finally:
                self._active.dec()
                self.queue.done(request)

    async def reconcile_one(self, request: Request) -> None:
        reconcile_id = uuid.uuid4().hex[:12]
        bound = {self._log_key: str(request), "reconciler": self.name}
        with structlog.contextvars.bound_contextvars(reconcile_id=reconcile_id, **bound):
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

"""What a reconciler is given and returns, apart from the machinery that calls it (as
controller-runtime keeps its `reconcile` package apart from `controller`).

An exception is retried with the queue's rate limit; `requeue_after` forgets the failure streak
and looks again after the delay; a TerminalError (bad spec) is not retried — the reconciler
records an event and a condition itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from notebook_controller.runtime.objects import JsonDict


class Request(NamedTuple):
    """A notebook to reconcile. A tuple: hashed and compared in C, as keys of the queues', the
    rate limiter's and the reconcilers' dicts are, a few dozen times per reconcile."""

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


def soonest(*delays: float | None) -> Result:
    """One Result for several children: look again at the soonest requested time, if any."""
    wanted = [delay for delay in delays if delay is not None]
    return Result(requeue_after=min(wanted)) if wanted else Result()

"""Server-side apply, only when the cache shows a difference, remembering our own writes until
the cache shows them: a reconcile that runs before the watch has delivered its last write must
compare with what it wrote, not with the stale cache, or it writes the same thing again.

`ChildApplier` applies whole objects (a controller's children) under one field manager;
`StatusApplier` applies one field manager's part of an object's `/status`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import structlog

from notebook_controller.runtime.diff import content_hash, needs_apply
from notebook_controller.runtime.kube import KubeClient, ResourceKind
from notebook_controller.runtime.objects import JsonDict, older, resource_version
from notebook_controller.runtime.reconcile import Request

log = structlog.get_logger(__name__)

# How long a write of ours may take to show in the cache before we stop waiting for it.
RECENT_WRITE_SECONDS: Final = 5.0


@dataclass(frozen=True)
class _Write:
    resource_version: str
    digest: str
    at: float


class ChildApplier:
    """Server-side applies children under one field manager, only when the cache differs.

    It remembers its own writes for a few seconds: a reconcile woken by the event of one child
    may run before the informer has delivered the write of a sibling made in the same pass, and
    without the memory it would apply that sibling a second time.
    """

    def __init__(
        self,
        client: KubeClient,
        field_manager: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.field_manager = field_manager
        self.clock = clock
        self._writes: dict[tuple[str, str, str], _Write] = {}

    async def apply(
        self, kind: ResourceKind, desired: JsonDict, actual: JsonDict | None
    ) -> float | None:
        """Apply if needed. Returns None when done, or after how many seconds to look again
        because the cache doesn't show our last write of this object yet."""
        metadata = desired["metadata"]
        key = (kind.plural, metadata["namespace"], metadata["name"])
        digest = content_hash(desired)
        wait = self._cache_behind(key, digest, actual)
        if wait is not None:
            return wait
        if not needs_apply(desired, actual):
            return None
        written = await self.client.apply(
            kind, metadata["namespace"], metadata["name"], desired, self.field_manager
        )
        self._remember(key, _Write(resource_version(written), digest, self.clock()))
        log.info("applied", kind=kind.kind, name=metadata["name"], created=actual is None)
        return None

    def _cache_behind(
        self, key: tuple[str, str, str], digest: str, actual: JsonDict | None
    ) -> float | None:
        write = self._writes.get(key)
        if write is None or write.digest != digest:
            return None
        age = self.clock() - write.at
        if age >= RECENT_WRITE_SECONDS:
            return None
        if actual is None:
            # Not seen yet, or deleted since: look again once the window has passed.
            return RECENT_WRITE_SECONDS - age
        if older(resource_version(actual), write.resource_version):
            return RECENT_WRITE_SECONDS - age
        return None

    def _remember(self, key: tuple[str, str, str], write: _Write) -> None:
        expired = [k for k, w in self._writes.items() if write.at - w.at >= RECENT_WRITE_SECONDS]
        for old in expired:
            del self._writes[old]
        self._writes[key] = write


class StatusApplier:
    """One field manager's part of objects' `/status`: what to compare with, and the apply.

    `status()` is our pending write while the cache is older than it, else the cached status;
    `apply()` sends `content` as this manager's whole part (fields it stops sending are removed
    by the server) and remembers it until the cache catches up.

    Coalescing (`coalesce_seconds` > 0): `hold()` tells how long to keep a change back. The
    first change not yet sent opens a window; changes within it replace each other and one
    write at its end carries the latest, so a notebook passing through several states in a few
    seconds costs one write, not one per state. An urgent change (the one a user waits for) is
    sent at once. Every write wakes every watcher of the object, so this is worth a short delay.
    """

    def __init__(
        self,
        client: KubeClient,
        kind: ResourceKind,
        field_manager: str,
        *,
        coalesce_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.kind = kind
        self.field_manager = field_manager
        self.coalesce_seconds = coalesce_seconds
        self.clock = clock
        self._written: dict[Request, tuple[str, JsonDict]] = {}
        self._unsent_since: dict[Request, float] = {}

    def hold(
        self, request: Request, *, urgent: bool = False, window: float | None = None
    ) -> float | None:
        """Seconds to keep this object's changed status back, or None: send it now. `window`
        overrides `coalesce_seconds` for this change (when coalescing is on)."""
        if urgent or self.coalesce_seconds <= 0:
            return None
        now = self.clock()
        window = self.coalesce_seconds if window is None else window
        left = self._unsent_since.setdefault(request, now) + window - now
        return left if left > 0 else None

    def settled(self, request: Request) -> None:
        """Nothing to send any more (the world went back to what is stored): close the window."""
        self._unsent_since.pop(request, None)

    def status(self, request: Request, cached: JsonDict) -> JsonDict:
        pending = self._written.get(request)
        if pending is not None:
            version, content = pending
            if older(resource_version(cached), version):
                return content
            del self._written[request]  # the cache has caught up: trust it
        status: JsonDict = cached.get("status") or {}
        return status

    async def apply(self, cached: JsonDict, content: JsonDict) -> JsonDict:
        """Apply `content` as the status of the object `cached` is; returns the server's object."""
        request = Request.for_object(cached)
        body = {
            "apiVersion": cached.get("apiVersion", self.kind.api_version),
            "kind": cached.get("kind", self.kind.kind),
            "metadata": {"name": request.name, "namespace": request.namespace},
            "status": content,
        }
        written = await self.client.apply_status(
            self.kind, request.namespace, request.name, body, self.field_manager
        )
        self._written[request] = (resource_version(written), content)
        self._unsent_since.pop(request, None)
        return written

    def forget(self, request: Request) -> None:
        self._written.pop(request, None)
        self._unsent_since.pop(request, None)

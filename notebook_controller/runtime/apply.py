"""Server-side apply, only when the cache shows a difference, remembering our own writes until
the cache shows them: a reconcile that runs before the watch has delivered its last write must
compare with what it wrote, not with the stale cache, or it writes the same thing again.

`ChildApplier` applies whole objects (a controller's children) under one field manager;
`StatusApplier` applies one reconciler's part of an object's `/status` (`SharedStatus`: the parts
of several under one field manager).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
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
        # in the order written (a rewrite moves to the end): the expired ones are at the front
        self._writes: OrderedDict[tuple[str, str, str], _Write] = OrderedDict()

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

    def own_write(self, kind: ResourceKind, obj: JsonDict) -> bool:
        """`obj` is the object as our last apply of it left it (its resourceVersion is the one
        that apply returned): its watch event is the echo of our write, news to no one."""
        metadata = obj["metadata"]
        write = self._writes.get((kind.plural, metadata.get("namespace", ""), metadata["name"]))
        if write is None or not write.resource_version:
            return False
        return write.resource_version == resource_version(obj)

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
        """Keep `write` and forget those older than RECENT_WRITE_SECONDS (from the front: not a
        scan of every write, which a thousand notebooks created at once made quadratic)."""
        self._writes.pop(key, None)
        while self._writes:
            oldest = next(iter(self._writes.values()))
            if write.at - oldest.at < RECENT_WRITE_SECONDS:
                break
            self._writes.popitem(last=False)
        self._writes[key] = write


PartOf = Callable[[JsonDict], JsonDict]
"""A status -> the fields of one part in it (one reconciler's share)."""

WHOLE: Final = ""
"""The part name of a status written by one reconciler alone."""


class _Writers:
    """The status writes of one object under way: one sends, the others wait."""

    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.count = 0


class SharedStatus:
    """Objects' `/status` under one field manager, made of parts that different reconcilers
    compute (each through its own `StatusApplier`).

    A write carries every part: the writer's new content; another part's change that its
    reconciler is holding back (offered), which so goes out with it; else that part as stored.
    So two reconcilers' news arriving together cost one write, and a write never drops a part
    it did not compute. `legacy_managers` names the field manager a part was once written
    under: when a write leaves fields of that part in place which it no longer sends (that
    manager still owns them), an empty apply under that name releases them.
    """

    def __init__(
        self,
        client: KubeClient,
        kind: ResourceKind,
        field_manager: str,
        parts: Mapping[str, PartOf],
        *,
        legacy_managers: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.kind = kind
        self.field_manager = field_manager
        self.parts = dict(parts)
        self.legacy_managers = dict(legacy_managers or {})
        self._written: dict[Request, tuple[str, JsonDict]] = {}
        self._sending: dict[Request, JsonDict] = {}  # a write on its way: the status it sends
        self._offered: dict[Request, dict[str, JsonDict]] = {}
        self._writers: dict[Request, _Writers] = {}  # the writes of an object, one at a time
        self.on_offer: Callable[[Request, str], None] | None = None

    def own_write(self, obj: JsonDict) -> bool:
        """`obj` is the version our last status write made (its watch event is our echo).

        Whoever read the status to compute it knows what it says: a reconciler woken by the
        echo would find nothing to do. A part held back that the write took along is settled by
        its own reconciler's requeue, not by the echo."""
        # (the write is remembered until a reconcile sees the cache at its version, which can
        # only come after the informer has dispatched that version's event; the watch may
        # deliver it before the write's answer has come back, and then it shows what we send)
        request = Request.for_object(obj)
        pending = self._written.get(request)
        if pending is not None and pending[0] == resource_version(obj):
            return True
        sending = self._sending.get(request)
        return sending is not None and obj.get("status") == sending

    def status(self, request: Request, cached: JsonDict) -> JsonDict:
        """Our last write while the cache is older than it, else the cached status."""
        pending = self._written.get(request)
        if pending is not None:
            version, content = pending
            if older(resource_version(cached), version):
                return content
            if request not in self._writers:  # (a write waiting to go may bring an older cache)
                del self._written[request]  # the cache has caught up: trust it
        status: JsonDict = cached.get("status") or {}
        return status

    def offer(self, request: Request, part: str, content: JsonDict) -> None:
        """`part`'s change, held back by its reconciler: the next write of the object takes it
        (`on_offer(request, part)` is told: another part waiting for it may write now)."""
        self._offered.setdefault(request, {})[part] = content
        if self.on_offer is not None:
            self.on_offer(request, part)

    def offered(self, request: Request, part: str) -> JsonDict | None:
        """`part`'s change held back and offered, if any."""
        return self._offered.get(request, {}).get(part)

    def withdraw(self, request: Request, part: str) -> None:
        offered = self._offered.get(request)
        if offered is not None:
            offered.pop(part, None)
            if not offered:
                del self._offered[request]

    async def write(self, cached: JsonDict, part: str, content: JsonDict) -> JsonDict:
        """Apply `content` as `part` of the status of the object `cached` is, with the other
        parts; returns the server's object.

        One write per object at a time: a write that starts while another part's is on its
        way waits for it, then carries that write's parts. Begun side by side, each would carry
        the other part as it was before both, and whichever landed last would undo the other's
        change (under one field manager), its echo waking no one."""
        request = Request.for_object(cached)
        writers = self._writers.get(request)
        if writers is None:
            writers = self._writers[request] = _Writers()
        writers.count += 1
        try:
            async with writers.lock:
                return await self._write(request, cached, part, content)
        finally:
            writers.count -= 1
            if writers.count == 0:
                del self._writers[request]

    async def _write(
        self, request: Request, cached: JsonDict, part: str, content: JsonDict
    ) -> JsonDict:
        current = self.status(request, cached)
        offered = self._offered.get(request, {})
        pieces = {name: part_of(current) for name, part_of in self.parts.items()}
        pieces.update(offered)
        pieces[part] = content
        merged: JsonDict = {}
        for piece in pieces.values():
            merged = merge_status(merged, piece)
        self._sending[request] = merged
        try:
            written = await self._apply(request, cached, merged, self.field_manager)
            self._offered.pop(request, None)
            for name, manager in self.legacy_managers.items():
                left = _paths(self.parts[name](written.get("status") or {}))
                if left - _paths(pieces[name]):
                    log.info("releasing fields of a former field manager", manager=manager)
                    written = await self._apply(request, cached, {}, manager)
            self._written[request] = (resource_version(written), merged)
        finally:
            del self._sending[request]  # (writes of one object go one at a time: `write`)
        return written

    async def _apply(
        self, request: Request, cached: JsonDict, content: JsonDict, manager: str
    ) -> JsonDict:
        body = {
            "apiVersion": cached.get("apiVersion", self.kind.api_version),
            "kind": cached.get("kind", self.kind.kind),
            "metadata": {"name": request.name, "namespace": request.namespace},
            "status": content,
        }
        return await self.client.apply_status(
            self.kind, request.namespace, request.name, body, manager
        )

    def forget(self, request: Request) -> None:
        self._written.pop(request, None)
        self._offered.pop(request, None)


def merge_status(base: JsonDict, more: JsonDict) -> JsonDict:
    """Two parts of a status as one: maps merged key by key, lists (conditions) joined."""
    merged = dict(base)
    for key, value in more.items():
        have = merged.get(key)
        if isinstance(have, dict) and isinstance(value, dict):
            merged[key] = merge_status(have, value)
        elif isinstance(have, list) and isinstance(value, list):
            merged[key] = have + value
        else:
            merged[key] = value
    return merged


def _paths(value: object, prefix: tuple[object, ...] = ()) -> set[tuple[object, ...]]:
    """The fields of a status part: the paths to its leaves, a list's item named by its `type`
    (a condition is one field, whatever keys it has)."""
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in _paths(v, (*prefix, k))}
    if isinstance(value, list):
        return {(*prefix, i.get("type") if isinstance(i, dict) else i) for i in value}
    return {prefix}


class StatusApplier:
    """One reconciler's part of objects' `/status`: what to compare with, and the apply.

    `status()` is the pending write while the cache is older than it, else the cached status;
    `apply()` sends `content` as this reconciler's whole part (fields it stops sending are
    removed by the server) with the other parts of a `SharedStatus` (alone, its own).

    Coalescing (`coalesce_seconds` > 0): `hold()` tells how long to keep a change back. The
    first change not yet sent opens a window; changes within it replace each other and one
    write at its end carries the latest, so a notebook passing through several states in a few
    seconds costs one write, not one per state. An urgent change (the one a user waits for) is
    sent at once. A held change is offered to the shared status: another part's write takes it
    along. Every write wakes every watcher of the object, so this is worth a short delay.
    """

    def __init__(
        self,
        client: KubeClient,
        kind: ResourceKind,
        field_manager: str,
        *,
        coalesce_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedStatus | None = None,
        part: str = WHOLE,
    ) -> None:
        self.shared = shared or SharedStatus(client, kind, field_manager, {WHOLE: dict})
        self.part = part
        self.coalesce_seconds = coalesce_seconds
        self.clock = clock
        self._unsent_since: dict[Request, float] = {}

    def hold(
        self,
        request: Request,
        *,
        urgent: bool = False,
        window: float | None = None,
        content: JsonDict | None = None,
        even_if_off: bool = False,
    ) -> float | None:
        """Seconds to keep this object's changed status (`content`) back, or None: send it now.
        `window` overrides `coalesce_seconds` for this change (when coalescing is on, or
        `even_if_off`)."""
        if urgent or (self.coalesce_seconds <= 0 and not (even_if_off and window)):
            return None
        now = self.clock()
        window = self.coalesce_seconds if window is None else window
        left = self._unsent_since.setdefault(request, now) + window - now
        if left <= 0:
            return None
        if content is not None:
            self.offer(request, content)
        return left

    def offer(self, request: Request, content: JsonDict) -> None:
        """Our part's change, held back: another part's write takes it along."""
        self.shared.offer(request, self.part, content)

    def settled(self, request: Request) -> None:
        """Nothing to send any more (the world went back to what is stored, or another part's
        write took our change along): close the window."""
        self._unsent_since.pop(request, None)
        self.shared.withdraw(request, self.part)

    def status(self, request: Request, cached: JsonDict) -> JsonDict:
        return self.shared.status(request, cached)

    async def apply(self, cached: JsonDict, content: JsonDict) -> JsonDict:
        """Apply `content` as our part of the status of the object `cached` is; returns the
        server's object."""
        written = await self.shared.write(cached, self.part, content)
        self._unsent_since.pop(Request.for_object(cached), None)
        return written

    def forget(self, request: Request) -> None:
        self._unsent_since.pop(request, None)
        self.shared.forget(request)

"""Informer: list, then watch from the list's resourceVersion; an indexed cache of raw objects.

One reflector runs per scope (all namespaces, or each configured namespace). A watch that expires
(410 Gone, which comes as an ERROR event inside a 200 stream) re-lists and diffs the listing
against the cache, so keys that vanished meanwhile are delivered as deletes. A connection that
stays silent longer than `inactivity_timeout` is dropped and the watch resumes from the last
resourceVersion; bookmarks keep a healthy quiet watch talking. Failed connections retry with
jittered backoff.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import structlog

from notebook_controller.runtime import metrics
from notebook_controller.runtime.backoff import Backoff
from notebook_controller.runtime.kube import ApiError, KubeClient, ResourceKind
from notebook_controller.runtime.objects import JsonDict
from notebook_controller.runtime.store import (
    INDEX_CONTROLLER_UID,
    Indexer,
    Store,
    diff_listing,
    label_indexer,
    object_key,
)

__all__ = [
    "INDEX_CONTROLLER_UID",
    "EventHandler",
    "FunctionHandler",
    "Informer",
    "ResourceKind",
    "Store",
    "label_indexer",
]

log = structlog.get_logger(__name__)

_RETRIABLE = (ApiError, aiohttp.ClientError, OSError, ValueError)
_SHORT_WATCH = 1.0


class EventHandler(Protocol):
    def on_add(self, obj: JsonDict) -> None: ...

    def on_update(self, old: JsonDict, new: JsonDict) -> None: ...

    def on_delete(self, obj: JsonDict) -> None: ...


def _ignore(*_: JsonDict) -> None:
    return None


@dataclass(frozen=True)
class FunctionHandler:
    """An EventHandler from plain functions; a missing one ignores its events."""

    add: Callable[[JsonDict], None] = _ignore
    update: Callable[[JsonDict, JsonDict], None] = _ignore
    delete: Callable[[JsonDict], None] = _ignore

    def on_add(self, obj: JsonDict) -> None:
        self.add(obj)

    def on_update(self, old: JsonDict, new: JsonDict) -> None:
        self.update(old, new)

    def on_delete(self, obj: JsonDict) -> None:
        self.delete(obj)


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def strip_unread(obj: JsonDict) -> JsonDict:
    """`obj` without managedFields and kubectl's last-applied annotation: the bulk of many
    objects, and nothing a reconciler reads (controller-runtime's cache transforms drop them)."""
    metadata = obj.get("metadata")
    if metadata:
        metadata.pop("managedFields", None)
        annotations = metadata.get("annotations")
        if annotations and _LAST_APPLIED in annotations:
            del annotations[_LAST_APPLIED]
    return obj


_SHARED_STRING_LENGTH = 40
"""Strings up to this long are interned in cached objects: keys, and values such as a phase,
a condition's type, a node's or a label's name, a timestamp. Longer ones are mostly unique."""


def compact(value: Any) -> Any:
    """`value` (a decoded JSON document, changed in place) with its short strings interned, so
    that the thousand copies of `"True"`, `"Running"` or a node's name in a cache are one each:
    a cached pod takes half the memory (interned strings are freed when no object holds them).
    Keys are left as they are: the decoder (orjson) already hands out one string per key."""
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return value
    for key, item in items:
        if type(item) is str:
            if len(item) <= _SHARED_STRING_LENGTH:
                value[key] = sys.intern(item)
        elif type(item) is dict or type(item) is list:
            compact(item)
    return value


def _cached(transform: Callable[[JsonDict], JsonDict]) -> Callable[[JsonDict], JsonDict]:
    def prepare(obj: JsonDict) -> JsonDict:
        prepared = compact(transform(obj))
        assert isinstance(prepared, dict)
        return prepared

    return prepare


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): re-list."""


@dataclass
class _Scope:
    namespace: str | None
    resource_version: str | None = None
    backoff: Backoff = field(default_factory=Backoff)


class Informer:
    def __init__(
        self,
        client: KubeClient,
        kind: ResourceKind,
        *,
        namespaces: Sequence[str] | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: Mapping[str, Indexer] | None = None,
        inactivity_timeout: float = 120.0,
        watch_timeout_seconds: int = 300,
        page_size: int = 500,
        backoff_factory: Callable[[], Backoff] = Backoff,
        transform: Callable[[JsonDict], JsonDict] | None = None,
    ) -> None:
        """`transform` prepares each listed or watched object before it is cached and handed
        to handlers (default: `strip_unread`, which drops what no reader of a cache needs); its
        result is then compacted (`compact`)."""
        self.client = client
        self.kind = kind
        self.label_selector = label_selector
        # e.g. `metadata.name=<name>`: one object, which RBAC can grant by resourceNames
        self.field_selector = field_selector
        self.inactivity_timeout = inactivity_timeout
        self.watch_timeout_seconds = watch_timeout_seconds
        self.page_size = page_size
        self.transform = _cached(transform or strip_unread)
        self.store = Store(indexers)
        self._handlers: list[EventHandler] = []
        scopes = list(namespaces) if namespaces and kind.namespaced else [None]
        self._scopes = [_Scope(namespace, backoff=backoff_factory()) for namespace in scopes]
        self._listed: set[str | None] = set()
        self._synced = asyncio.Event()
        self.relists = 0
        self.watches_started = 0
        self._events_by_type = {
            event_type: metrics.INFORMER_EVENTS.labels(kind.plural, event_type)
            for event_type in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")
        }
        self._log = log.bind(
            kind=kind.kind, label_selector=label_selector, field_selector=field_selector
        )

    def add_handler(self, handler: EventHandler) -> None:
        """Handlers must not block: they map events to queue keys. Add them before `run`."""
        self._handlers.append(handler)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    async def run(self) -> None:
        """Keep the cache in step with the API server until cancelled."""
        async with asyncio.TaskGroup() as group:
            for scope in self._scopes:
                group.create_task(self._reflect(scope))

    # --- one scope ------------------------------------------------------------------------

    async def _reflect(self, scope: _Scope) -> None:
        logger = self._log.bind(namespace=scope.namespace or "*")
        while True:
            try:
                if scope.resource_version is None:
                    scope.resource_version = await self._list(scope)
                    self._mark_listed(scope)
                started = time.monotonic()
                if not await self._watch(scope) and time.monotonic() - started < _SHORT_WATCH:
                    # A server that closes watches at once must not be hammered in a loop.
                    await asyncio.sleep(scope.backoff.next())
            except WatchExpired:
                logger.info("watch expired, re-listing", resource_version=scope.resource_version)
                scope.resource_version = None
            except aiohttp.SocketTimeoutError:
                logger.info("watch silent too long, reconnecting", timeout=self.inactivity_timeout)
            except _RETRIABLE as error:
                delay = scope.backoff.next()
                logger.warning("list/watch failed, retrying", error=repr(error), retry_in=delay)
                await asyncio.sleep(delay)
            except Exception:
                # Unexpected content: start over from a fresh listing rather than die.
                delay = scope.backoff.next()
                logger.exception("informer failed, re-listing", retry_in=delay)
                scope.resource_version = None
                await asyncio.sleep(delay)

    async def _list(self, scope: _Scope) -> str:
        items: list[JsonDict] = []
        continue_token: str | None = None
        while True:
            page = await self.client.list(
                self.kind,
                scope.namespace,
                self.label_selector,
                field_selector=self.field_selector,
                limit=self.page_size,
                continue_token=continue_token,
            )
            items += page.get("items") or []
            continue_token = page.get("metadata", {}).get("continue") or None
            if continue_token is None:
                break
        for item in items:
            # Items of a list come without their type; watch events carry it.
            item.setdefault("apiVersion", self.kind.api_version)
            item.setdefault("kind", self.kind.kind)
        self._replace(scope.namespace, [self.transform(item) for item in items])
        self.relists += 1
        return str(page["metadata"]["resourceVersion"])

    def _replace(self, namespace: str | None, items: list[JsonDict]) -> None:
        cached = {key: obj for key in self.store.keys(namespace) if (obj := self.store.get(*key))}
        added, updated, deleted = diff_listing(cached, items)
        for obj in deleted:
            self.store.delete(object_key(obj))
            self._dispatch("on_delete", obj)
        for obj in added:
            self.store.upsert(obj)
            self._dispatch("on_add", obj)
        for old, new in updated:
            self.store.upsert(new)
            self._dispatch("on_update", old, new)

    async def _watch(self, scope: _Scope) -> int:
        """Apply watch events until the stream ends; return how many there were."""
        assert scope.resource_version is not None
        received = 0
        self.watches_started += 1
        # Spread watch restarts like client-go: between one and two server timeouts.
        server_timeout = int(self.watch_timeout_seconds * (1 + random.random()))
        try:
            events = self.client.watch(
                self.kind,
                scope.namespace,
                resource_version=scope.resource_version,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                timeout_seconds=server_timeout,
                inactivity_timeout=self.inactivity_timeout,
            )
            async with aclosing(events) as stream:
                async for event in stream:
                    self._apply(scope, event)
                    scope.backoff.reset()
                    received += 1
        except ApiError as error:
            if error.is_gone:
                raise WatchExpired(str(error)) from error
            raise
        return received

    def _apply(self, scope: _Scope, event: JsonDict) -> None:
        event_type = str(event.get("type"))
        counter = self._events_by_type.get(event_type)
        if counter is not None:
            counter.inc()
        obj: JsonDict = event.get("object") or {}
        if event_type == "ERROR":
            status = ApiError.from_status(obj)
            if status.is_gone:
                raise WatchExpired(status.message)
            raise status
        scope.resource_version = str(obj["metadata"]["resourceVersion"])
        if event_type == "BOOKMARK":
            return
        obj = self.transform(obj)
        if event_type in ("ADDED", "MODIFIED"):
            old = self.store.upsert(obj)
            if old is None:
                self._dispatch("on_add", obj)
            else:
                self._dispatch("on_update", old, obj)
        elif event_type == "DELETED":
            self.store.delete(object_key(obj))
            self._dispatch("on_delete", obj)

    def _mark_listed(self, scope: _Scope) -> None:
        self._listed.add(scope.namespace)
        if len(self._listed) == len(self._scopes) and not self._synced.is_set():
            self._log.info("cache synced", objects=len(self.store))
            self._synced.set()

    def _dispatch(self, method: str, *objs: JsonDict) -> None:
        for handler in self._handlers:
            try:
                getattr(handler, method)(*objs)
            except Exception:
                self._log.exception("event handler failed", handler_method=method)

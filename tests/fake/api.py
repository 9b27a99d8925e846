"""An in-memory API server for the part of `KubeClient` the reconcilers call, with the semantics
they rely on, and the informer caches it feeds.

What it keeps honest (`tests/fake/test_honest.py` runs the same operations on the real API
server and compares):

- every change bumps one global `resourceVersion`; a write that changes nothing (a no-op
  server-side apply) does not; `generation` moves with the spec only;
- server-side apply with field ownership: each field manager owns the fields it applied; a
  field it stops sending is removed unless another manager also owns it; lists of objects with a
  key (`type`, `name`, `uid`, ...) are merged per item, so two managers' conditions live side by
  side; `/status` applies touch only `status`, main applies never touch it; a conflict with
  another manager's field is a 409 unless forced;
- merge patches (RFC 7386) with an optional `metadata.resourceVersion` precondition (409 when
  stale), POST of an existing name (409 AlreadyExists), 404 for what isn't there, delete
  preconditions on the uid (409);
- a validation hook per kind answers 422 Invalid, as the API server's validation does;
  `forbidden` verbs answer 403, as RBAC does;
- deleting an owner deletes the objects it controls (garbage collection, at once).

Caches: `cache(kind)` is a `Store` fed by every write, as an informer's would be; `lagging(kind)`
holds its events back (the cache is behind) until the block ends or `deliver()` is called.
`writes` lists every mutating request; `reset_writes()` starts a new count.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from notebook_controller.runtime.kube import ApiError, ResourceKind
from notebook_controller.runtime.objects import JsonDict
from notebook_controller.runtime.store import Indexer, Store

PathStep = str | tuple[str, Any]
FieldPath = tuple[PathStep, ...]
Validator = Callable[[JsonDict], str | None]

# List items carrying one of these keys are merged by it (the schemas' list-map keys).
LIST_MAP_KEYS = ("type", "uid", "mountPath", "containerPort", "name", "port")
# What a server-side apply body may carry that is identity, not content.
_IDENTITY = {"apiVersion", "kind"}
_META_IDENTITY = {"name", "namespace", "resourceVersion", "uid"}
_SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp")


@dataclass(frozen=True)
class Write:
    verb: str  # create, apply, apply-status, patch, delete
    kind: str
    namespace: str
    name: str
    field_manager: str | None


@dataclass
class _Stored:
    obj: JsonDict
    owners: dict[FieldPath, set[str]] = field(default_factory=dict)


def _list_key(items: Sequence[Any]) -> str | None:
    if not items or not all(isinstance(item, Mapping) for item in items):
        return None
    return next((key for key in LIST_MAP_KEYS if all(key in item for item in items)), None)


def flatten(value: Any, prefix: FieldPath = ()) -> dict[FieldPath, Any]:
    """Leaf paths of `value`: dict keys, and `(key, value)` steps into keyed list items."""
    if isinstance(value, Mapping):  # an empty map sets nothing (it merges, never replaces)
        leaves: dict[FieldPath, Any] = {}
        for name, item in value.items():
            leaves.update(flatten(item, (*prefix, name)))
        return leaves
    if isinstance(value, list) and (key := _list_key(value)) is not None:
        leaves = {}
        for item in value:
            leaves.update(flatten(item, (*prefix, (key, item[key]))))
        return leaves
    return {prefix: copy.deepcopy(value)}


def _child(container: Any, step: PathStep, create: bool) -> Any:
    if isinstance(step, tuple):
        key, wanted = step
        if not isinstance(container, list):
            return None
        for item in container:
            if isinstance(item, dict) and item.get(key) == wanted:
                return item
        if not create:
            return None
        container.append({key: wanted})
        return container[-1]
    if not isinstance(container, dict):
        return None
    return container.get(step)


def get_path(obj: Any, path: FieldPath) -> Any:
    for step in path:
        obj = _child(obj, step, create=False)
        if obj is None:
            return None
    return obj


def set_path(obj: JsonDict, path: FieldPath, value: Any) -> None:
    container: Any = obj
    for step, following in zip(path, (*path[1:], None), strict=True):
        if following is None:
            if isinstance(step, tuple):
                _child(container, step, create=True)  # a keyed item with only its key
            else:
                container[step] = copy.deepcopy(value)
            return
        nested = _child(container, step, create=True)
        if nested is None and not isinstance(step, tuple):
            nested = [] if isinstance(following, tuple) else {}
            container[step] = nested
        container = nested


def del_path(obj: JsonDict, path: FieldPath) -> None:
    """Remove a leaf, then every map or keyed item it leaves with nothing but its key. A keyed
    item's key goes only with the item (when nothing else of it is left)."""
    if len(path) >= 2 and isinstance(path[-2], tuple) and path[-1] == path[-2][0]:
        item = get_path(obj, path[:-1])
        if isinstance(item, dict) and set(item) - {path[-1]}:
            return
        path = path[:-1]
    parents: list[tuple[Any, PathStep]] = []
    container: Any = obj
    for step in path:
        parents.append((container, step))
        container = _child(container, step, create=False)
        if container is None:
            return
    for depth, (parent, step) in enumerate(reversed(parents)):
        child = _child(parent, step, create=False)
        if depth > 0 and not _emptied(child, step):
            return
        if isinstance(step, tuple):
            parent.remove(child)
        else:
            del parent[step]


def _emptied(value: Any, step: PathStep) -> bool:
    if isinstance(step, tuple):
        return isinstance(value, dict) and set(value) <= {step[0]}
    return value in ({}, [])


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_PATH = re.compile(
    r"^/apis?/(?:(?P<group>[^/]+)/)?(?P<version>v[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)$"
)


class FakeApi:
    """Implements `get`, `create`, `apply`, `apply_status`, `patch`, `delete`, `exec` and a POST
    through `request`, as `KubeClient` does; answers errors as `ApiError`s."""

    def __init__(self, kinds: Sequence[ResourceKind] = ()) -> None:
        self.configuration = SimpleNamespace(host="https://fake-api-server")
        self.kinds: dict[str, ResourceKind] = {kind.plural: kind for kind in kinds}
        self.validators: dict[str, Validator] = {}
        self.forbidden: set[tuple[str, str]] = set()
        """(verb, plural) pairs RBAC refuses (403), verbs as in `Write.verb`."""
        self.writes: list[Write] = []
        self.exec_handler: Callable[[str, str, str, Sequence[str]], str] | None = None
        self._objects: dict[tuple[str, str, str], _Stored] = {}
        self._version = itertools.count(1000)
        self._uids = itertools.count(1)
        self._caches: dict[str, list[Store]] = {}
        self._held: set[str] = set()
        self._pending: list[tuple[str, str, JsonDict]] = []
        self.now = "2025-01-06T09:00:00Z"

    # --- caches ---------------------------------------------------------------------------

    def cache(self, kind: ResourceKind, indexers: Mapping[str, Indexer] | None = None) -> Store:
        """A Store holding every object of `kind` (now and after each write), as an informer's."""
        self.kinds.setdefault(kind.plural, kind)
        store = Store(indexers)
        for (plural, _, _), stored in self._objects.items():
            if plural == kind.plural:
                store.upsert(copy.deepcopy(stored.obj))
        self._caches.setdefault(kind.plural, []).append(store)
        return store

    @contextmanager
    def lagging(self, *kinds: ResourceKind) -> Iterator[None]:
        """The caches of `kinds` see nothing written in the block until it ends."""
        plurals = {kind.plural for kind in kinds}
        self._held |= plurals
        try:
            yield
        finally:
            self._held -= plurals
            self.deliver()

    def deliver(self) -> None:
        held, self._pending = (
            [event for event in self._pending if event[0] in self._held],
            [event for event in self._pending if event[0] not in self._held],
        )
        for plural, what, obj in self._pending:
            self._feed(plural, what, obj)
        self._pending = held

    def _notify(self, plural: str, what: str, obj: JsonDict) -> None:
        self._pending.append((plural, what, copy.deepcopy(obj)))
        self.deliver()

    def _feed(self, plural: str, what: str, obj: JsonDict) -> None:
        for store in self._caches.get(plural, []):
            if what == "delete":
                metadata = obj["metadata"]
                store.delete((metadata.get("namespace", ""), metadata["name"]))
            else:
                store.upsert(copy.deepcopy(obj))

    # --- reading --------------------------------------------------------------------------

    def stored(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonDict | None:
        """The object as the server holds it (for assertions)."""
        found = self._objects.get((kind.plural, namespace or "", name))
        return copy.deepcopy(found.obj) if found is not None else None

    def objects(self, kind: ResourceKind, namespace: str | None = None) -> list[JsonDict]:
        return [
            copy.deepcopy(stored.obj)
            for (plural, ns, _), stored in self._objects.items()
            if plural == kind.plural and namespace in (None, ns)
        ]

    def managers(self, kind: ResourceKind, namespace: str, name: str) -> dict[FieldPath, set[str]]:
        found = self._objects.get((kind.plural, namespace, name))
        return {} if found is None else copy.deepcopy(found.owners)

    def reset_writes(self) -> None:
        self.writes.clear()

    async def get(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonDict | None:
        return self.stored(kind, namespace, name)

    # --- writing --------------------------------------------------------------------------

    async def create(self, kind: ResourceKind, namespace: str | None, body: JsonDict) -> JsonDict:
        return self._create(kind, namespace or "", body, field_manager=None)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        **_: Any,
    ) -> JsonDict:
        match = _PATH.match(path)
        if method != "POST" or match is None or match["plural"] not in self.kinds:
            raise NotImplementedError(f"the fake API does not serve {method} {path}")
        manager = dict(query).get("fieldManager")
        return self._create(self.kinds[match["plural"]], match["ns"] or "", body, manager)

    async def apply(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        body: JsonDict,
        field_manager: str,
        force: bool = True,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        return self._apply(kind, namespace or "", name, body, field_manager, force, subresource)

    async def apply_status(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        body: JsonDict,
        field_manager: str,
    ) -> JsonDict:
        return self._apply(kind, namespace or "", name, body, field_manager, True, "status")

    async def patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        body: Any,
        patch_type: str = "merge",
        subresource: str | None = None,
        *,
        field_manager: str | None = None,
    ) -> JsonDict:
        if patch_type != "merge":
            raise NotImplementedError(f"the fake API does not serve {patch_type} patches")
        self.writes.append(Write("patch", kind.kind, namespace or "", name, field_manager))
        self._authorize("patch", kind, name)
        stored = self._existing(kind, namespace or "", name)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        current = stored.obj["metadata"]["resourceVersion"]
        if wanted is not None and wanted != current:
            raise _conflict(
                kind,
                name,
                "the object has been modified; please apply your "
                "changes to the latest version and try again",
            )
        patched = merge_patch(stored.obj, body)
        patched["metadata"]["resourceVersion"] = current
        if subresource == "status":
            patched = {**stored.obj, "status": patched.get("status")}
        elif _has_status_subresource(kind):
            patched["status"] = stored.obj.get("status")
        patched = {k: v for k, v in patched.items() if v is not None}
        owned = self._taken(stored, patched, field_manager or "unknown")
        return self._commit(kind, stored, patched, owned)

    async def delete(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        *,
        preconditions_uid: str | None = None,
        propagation_policy: str = "Background",
    ) -> None:
        self.writes.append(Write("delete", kind.kind, namespace or "", name, None))
        self._authorize("delete", kind, name)
        key = (kind.plural, namespace or "", name)
        stored = self._objects.get(key)
        if stored is None:
            return  # KubeClient.delete swallows the 404
        uid = stored.obj["metadata"]["uid"]
        if preconditions_uid is not None and preconditions_uid != uid:
            raise _conflict(
                kind,
                name,
                f"Precondition failed: UID in precondition: "
                f"{preconditions_uid}, UID in object meta: {uid}",
            )
        self._remove(key)

    async def exec(
        self, namespace: str, pod: str, container: str, command: Sequence[str], **_: Any
    ) -> str:
        if self.exec_handler is None:
            raise NotImplementedError("no exec_handler")
        return self.exec_handler(namespace, pod, container, command)

    # --- the server's side ----------------------------------------------------------------

    def _authorize(self, verb: str, kind: ResourceKind, name: str) -> None:
        if (verb, kind.plural) in self.forbidden:
            raise ApiError(403, "Forbidden", f'{kind.plural} "{name}" is forbidden ({verb})')

    def _existing(self, kind: ResourceKind, namespace: str, name: str) -> _Stored:
        stored = self._objects.get((kind.plural, namespace, name))
        if stored is None:
            raise ApiError(404, "NotFound", f'{kind.plural} "{name}" not found')
        return stored

    def _create(
        self, kind: ResourceKind, namespace: str, body: JsonDict, field_manager: str | None
    ) -> JsonDict:
        name = body["metadata"]["name"]
        self.writes.append(Write("create", kind.kind, namespace, name, field_manager))
        self._authorize("create", kind, name)
        if (kind.plural, namespace, name) in self._objects:
            raise ApiError(409, "AlreadyExists", f'{kind.plural} "{name}" already exists')
        stored = _Stored({})
        obj = copy.deepcopy(body)
        obj.setdefault("apiVersion", kind.api_version)
        obj.setdefault("kind", kind.kind)
        if _has_status_subresource(kind):
            obj.pop("status", None)
        owned = self._taken(stored, obj, field_manager or "unknown")
        return self._commit(kind, stored, obj, owned, namespace=namespace)

    def _apply(
        self,
        kind: ResourceKind,
        namespace: str,
        name: str,
        body: JsonDict,
        manager: str,
        force: bool,
        subresource: str | None,
    ) -> JsonDict:
        verb = "apply-status" if subresource == "status" else "apply"
        self.writes.append(Write(verb, kind.kind, namespace, name, manager))
        self._authorize(verb, kind, name)
        stored = self._objects.get((kind.plural, namespace, name))
        if stored is None and subresource == "status":
            raise ApiError(404, "NotFound", f'{kind.plural} "{name}" not found')
        if stored is None:
            stored = _Stored({})
            identity = {"name": name, "namespace": namespace}
            obj: JsonDict = {
                "apiVersion": kind.api_version,
                "kind": kind.kind,
                "metadata": identity,
            }
        else:
            obj = copy.deepcopy(stored.obj)
        owned = copy.deepcopy(stored.owners)
        in_scope = _scope(kind, subresource)
        sent = {path: value for path, value in flatten(_content(body)).items() if in_scope(path)}
        conflicts = [
            path
            for path, value in sent.items()
            if owned.get(path, {manager}) - {manager} and get_path(obj, path) != value
        ]
        if conflicts and not force:
            raise _conflict(kind, name, f"Apply failed with {len(conflicts)} conflicts")
        for path, owners in list(owned.items()):
            if manager in owners and path not in sent and in_scope(path):
                owners.discard(manager)
                if not owners:
                    del owned[path]
                    del_path(obj, path)
        for path, value in sent.items():
            owners = owned.setdefault(path, set())
            if get_path(obj, path) != value:
                owners.clear()
                set_path(obj, path, value)
            owners.add(manager)
        return self._commit(kind, stored, obj, owned, namespace=namespace)

    @staticmethod
    def _taken(stored: _Stored, new: JsonDict, manager: str) -> dict[FieldPath, set[str]]:
        """The owners after an update: it owns the fields it changed."""
        owned = copy.deepcopy(stored.owners)
        before = flatten(_content(stored.obj))
        after = flatten(_content(new))
        for path in set(before) - set(after):
            owned.pop(path, None)
        for path, value in after.items():
            if before.get(path, object()) != value:
                owned[path] = {manager}
        return owned

    def _commit(
        self,
        kind: ResourceKind,
        stored: _Stored,
        new: JsonDict,
        owned: dict[FieldPath, set[str]],
        *,
        namespace: str | None = None,
    ) -> JsonDict:
        old = stored.obj
        metadata = new.setdefault("metadata", {})
        if not old:
            metadata.update(
                namespace=namespace or "",
                uid=f"uid-{next(self._uids)}",
                creationTimestamp=self.now,
                generation=1,
            )
        else:
            for key in _SERVER_META:
                if key in old.get("metadata", {}):
                    metadata[key] = old["metadata"][key]
        if old and new == old:
            stored.owners = owned  # a no-op apply may still add an owner
            return copy.deepcopy(old)  # nothing changed: no new resourceVersion, no event
        if old and _spec(new) != _spec(old):
            metadata["generation"] = int(old["metadata"].get("generation", 1)) + 1
        message = (self.validators.get(kind.plural) or (lambda _: None))(new)
        if message is not None:
            raise ApiError(422, "Invalid", message)
        metadata["resourceVersion"] = str(next(self._version))
        stored.obj = new
        stored.owners = owned
        self._objects[(kind.plural, metadata["namespace"], metadata["name"])] = stored
        self._notify(kind.plural, "upsert", new)
        return copy.deepcopy(new)

    def _remove(self, key: tuple[str, str, str]) -> None:
        stored = self._objects.pop(key)
        self._notify(key[0], "delete", stored.obj)
        uid = stored.obj["metadata"]["uid"]
        for other_key, other in list(self._objects.items()):
            owners = other.obj["metadata"].get("ownerReferences") or []
            controlled = any(ref.get("uid") == uid and ref.get("controller") for ref in owners)
            if controlled and other_key in self._objects:
                self._remove(other_key)


def _content(obj: JsonDict) -> JsonDict:
    """An object's fields a writer can own (identity and server-set metadata left out)."""
    content = {key: value for key, value in obj.items() if key not in _IDENTITY}
    metadata = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in _META_IDENTITY and k not in _SERVER_META
    }
    if metadata:
        content["metadata"] = metadata
    else:
        content.pop("metadata", None)
    return content


def _spec(obj: JsonDict) -> JsonDict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", *_IDENTITY)}


def _has_status_subresource(kind: ResourceKind) -> bool:
    return kind.kind not in ("Secret", "ConfigMap", "Event", "Namespace", "Lease")


def _scope(kind: ResourceKind, subresource: str | None) -> Callable[[FieldPath], bool]:
    if subresource == "status":
        return lambda path: path[:1] == ("status",)
    if _has_status_subresource(kind):
        return lambda path: path[:1] != ("status",)
    return lambda path: True


def _conflict(kind: ResourceKind, name: str, why: str) -> ApiError:
    return ApiError(
        409, "Conflict", f'Operation cannot be fulfilled on {kind.plural} "{name}": {why}'
    )

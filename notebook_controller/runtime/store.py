"""In-memory cache of raw objects keyed by (namespace, name), with secondary indexes."""

from __future__ import annotations

import builtins
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from notebook_controller.runtime.objects import JsonDict, controller_owner

Key = tuple[str, str]
Indexer = Callable[[JsonDict], list[str]]

INDEX_CONTROLLER_UID = "controller-uid"

T = TypeVar("T")
_Values = dict[Callable[[JsonDict], Any], Any]
"""Values derived from one object, by the function that derived them."""


def object_key(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata", {})
    return metadata.get("namespace", ""), metadata["name"]


def controller_uid_indexer(obj: JsonDict) -> list[str]:
    owner = controller_owner(obj)
    return [owner["uid"]] if owner and owner.get("uid") else []


def label_indexer(label: str) -> Indexer:
    """Index objects by the value of one label (objects without the label are not indexed)."""

    def index(obj: JsonDict) -> list[str]:
        value = (obj.get("metadata", {}).get("labels") or {}).get(label)
        return [value] if value is not None else []

    return index


class Store:
    """The informer's cache. Objects handed out are the cached ones, not copies: read them,
    never mutate them (copy first to build a patch)."""

    def __init__(
        self, indexers: Mapping[str, Indexer] | None = None, *, derived_limit: int = 256
    ) -> None:
        """`derived_limit`: how many objects' derived values are kept (the most recently
        used); a parsed notebook takes kilobytes, and what reconcilers read together is read
        within milliseconds of each other. Unbounded values (`derived`) are not counted."""
        self._objects: dict[Key, JsonDict] = {}
        self._indexers: dict[str, Indexer] = {INDEX_CONTROLLER_UID: controller_uid_indexer}
        self._indexers.update(indexers or {})
        self._indexes: dict[str, dict[str, set[Key]]] = {name: {} for name in self._indexers}
        # the last used objects' values: (those that read the status, those that don't)
        self._derived: OrderedDict[Key, tuple[_Values, _Values]] = OrderedDict()
        self._derived_limit = derived_limit
        self._blind: dict[Key, _Values] = {}

    def get(self, namespace: str | None, name: str) -> JsonDict | None:
        return self._objects.get((namespace or "", name))

    def list(self, namespace: str | None = None) -> builtins.list[JsonDict]:
        if namespace is None:
            return list(self._objects.values())
        return [obj for (ns, _), obj in self._objects.items() if ns == namespace]

    def derived(
        self,
        namespace: str | None,
        name: str,
        derive: Callable[[JsonDict], T],
        *,
        reads_status: bool = True,
        bounded: bool = True,
    ) -> T | None:
        """`derive(object)` for the cached object, computed once per version of it while it is
        among the `derived_limit` last used (a parsed model that several reconcilers read);
        None when nothing is cached under that name. What `derive` returns is shared: read it,
        never mutate it.

        `reads_status=False` says `derive` reads nothing of the status: its value is kept
        through versions that changed only the status (a status write). With
        `bounded=False` too, it is kept for as long as the object is cached, not only while
        among the last used (a hash, a flag: keep such values small). A `derive` is called
        with the same flags wherever it is (its value is kept under them)."""
        key = (namespace or "", name)
        obj = self._objects.get(key)
        if obj is None:
            return None
        if not bounded and reads_status:
            raise ValueError("only a status-blind value is kept for as long as its object")
        if bounded:
            entry = self._derived.get(key)
            if entry is None:
                entry = self._derived[key] = ({}, {})
                if len(self._derived) > self._derived_limit:
                    self._derived.popitem(last=False)
            else:
                self._derived.move_to_end(key)
            known = entry[0] if reads_status else entry[1]
        else:
            known = self._blind.setdefault(key, {})
        if derive in known:
            found: T = known[derive]
            return found
        value = derive(obj)
        known[derive] = value
        return value

    def keys(self, namespace: str | None = None) -> set[Key]:
        return {key for key in self._objects if namespace is None or key[0] == namespace}

    def by_index(self, index_name: str, value: str) -> builtins.list[JsonDict]:
        keys = self._indexes[index_name].get(value, set())
        return [self._objects[key] for key in sorted(keys)]

    def __len__(self) -> int:
        return len(self._objects)

    def upsert(self, obj: JsonDict) -> JsonDict | None:
        """Store `obj`; return the object it replaced."""
        key = object_key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
            entry = self._derived.pop(key, None)
            blind = entry[1] if entry is not None else None
            if (blind or key in self._blind) and only_status_changed(old, obj):
                if blind:  # kept, as the last used
                    self._derived[key] = ({}, blind)
            else:
                self._blind.pop(key, None)
        self._objects[key] = obj
        self._index(key, obj)
        return old

    def delete(self, key: Key) -> JsonDict | None:
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)
            self._derived.pop(key, None)
            self._blind.pop(key, None)
        return old

    def _index(self, key: Key, obj: JsonDict) -> None:
        for name, indexer in self._indexers.items():
            for value in indexer(obj):
                self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, key: Key, obj: JsonDict) -> None:
        for name, indexer in self._indexers.items():
            index = self._indexes[name]
            for value in indexer(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


def only_status_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """`new` differs from `old` in its status and resourceVersion at most."""
    return _equal_but(old, new, "status", metadata=True)


def _equal_but(old: Mapping[str, Any], new: Mapping[str, Any], skip: str, metadata: bool) -> bool:
    for field in old.keys() | new.keys():
        if field == skip:
            continue
        before, after = old.get(field), new.get(field)
        if metadata and field == "metadata":
            if not _equal_but(before or {}, after or {}, "resourceVersion", metadata=False):
                return False
        elif before != after:
            return False
    return True


def diff_listing(
    cached: Mapping[Key, JsonDict], listed: Iterable[JsonDict]
) -> tuple[list[JsonDict], list[tuple[JsonDict, JsonDict]], list[JsonDict]]:
    """Compare a fresh listing with the cache: (added, updated as (old, new), deleted)."""
    added: list[JsonDict] = []
    updated: list[tuple[JsonDict, JsonDict]] = []
    deleted: list[JsonDict] = []
    seen: set[Key] = set()
    for obj in listed:
        key = object_key(obj)
        seen.add(key)
        old = cached.get(key)
        if old is None:
            added.append(obj)
        elif _uid(old) != _uid(obj):
            # Deleted and re-created under the same name while we weren't watching.
            deleted.append(old)
            added.append(obj)
        elif _resource_version(old) != _resource_version(obj):
            updated.append((old, obj))
    deleted += [obj for key, obj in cached.items() if key not in seen]
    return added, updated, deleted


def _uid(obj: Mapping[str, Any]) -> str | None:
    uid = obj.get("metadata", {}).get("uid")
    return str(uid) if uid is not None else None


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    version = obj.get("metadata", {}).get("resourceVersion")
    return str(version) if version is not None else None

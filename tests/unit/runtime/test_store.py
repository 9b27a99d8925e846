from __future__ import annotations

from typing import Any

import pytest

from notebook_controller.runtime.store import (
    INDEX_CONTROLLER_UID,
    Store,
    diff_listing,
    label_indexer,
    object_key,
)


def obj(
    name: str,
    *,
    namespace: str = "ns",
    rv: str = "1",
    uid: str | None = None,
    labels: dict[str, str] | None = None,
    owner_uid: str | None = None,
    controller: bool = True,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "resourceVersion": rv,
        "uid": uid or f"uid-{name}",
        "labels": labels or {},
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {"kind": "Notebook", "name": "owner", "uid": owner_uid, "controller": controller}
        ]
    return {"metadata": metadata}


def test_get_and_list_by_namespace() -> None:
    store = Store()
    store.upsert(obj("a", namespace="x"))
    store.upsert(obj("b", namespace="y"))
    assert store.get("x", "a") is not None
    assert store.get("y", "a") is None
    assert [o["metadata"]["name"] for o in store.list("y")] == ["b"]
    assert len(store.list()) == 2


def test_controller_uid_index_ignores_non_controller_owners() -> None:
    store = Store()
    store.upsert(obj("a", owner_uid="u1"))
    store.upsert(obj("b", owner_uid="u1", controller=False))
    store.upsert(obj("c"))
    assert [o["metadata"]["name"] for o in store.by_index(INDEX_CONTROLLER_UID, "u1")] == ["a"]


def test_label_index_follows_label_changes_and_deletes() -> None:
    store = Store({"by-app": label_indexer("app")})
    store.upsert(obj("a", labels={"app": "one"}))
    store.upsert(obj("b", labels={"app": "one"}))
    store.upsert(obj("a", rv="2", labels={"app": "two"}))
    assert [o["metadata"]["name"] for o in store.by_index("by-app", "one")] == ["b"]
    assert [o["metadata"]["name"] for o in store.by_index("by-app", "two")] == ["a"]
    store.delete(("ns", "b"))
    assert store.by_index("by-app", "one") == []


def test_upsert_returns_the_replaced_object() -> None:
    store = Store()
    assert store.upsert(obj("a")) is None
    old = store.upsert(obj("a", rv="2"))
    assert old is not None and old["metadata"]["resourceVersion"] == "1"


def test_diff_listing_reports_adds_updates_and_vanished_keys() -> None:
    cached = {object_key(o): o for o in (obj("kept"), obj("changed"), obj("gone"))}
    listed = [obj("kept"), obj("changed", rv="2"), obj("new")]
    added, updated, deleted = diff_listing(cached, listed)
    assert [o["metadata"]["name"] for o in added] == ["new"]
    assert [
        (old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"])
        for old, new in updated
    ] == [("1", "2")]
    assert [o["metadata"]["name"] for o in deleted] == ["gone"]


def test_diff_listing_treats_a_recreated_object_as_delete_and_add() -> None:
    cached = {("ns", "a"): obj("a", uid="old")}
    added, updated, deleted = diff_listing(cached, [obj("a", uid="new", rv="5")])
    assert [o["metadata"]["uid"] for o in deleted] == ["old"]
    assert [o["metadata"]["uid"] for o in added] == ["new"]
    assert updated == []


def test_a_derived_value_is_computed_once_per_version_of_the_object() -> None:
    store = Store()
    calls: list[str] = []

    def parse(o: dict[str, Any]) -> str:
        calls.append(o["metadata"]["resourceVersion"])
        return f"parsed {o['metadata']['resourceVersion']}"

    assert store.derived("ns", "a", parse) is None  # nothing cached: nothing derived
    store.upsert(obj("a", rv="1"))
    assert store.derived("ns", "a", parse) == "parsed 1"
    assert store.derived("ns", "a", parse) == "parsed 1"
    assert calls == ["1"]
    store.upsert(obj("a", rv="2"))  # a new version: derived afresh
    assert store.derived("ns", "a", parse) == "parsed 2"
    store.delete(("ns", "a"))
    assert store.derived("ns", "a", parse) is None
    store.upsert(obj("a", rv="3"))
    assert store.derived("ns", "a", parse) == "parsed 3"
    assert calls == ["1", "2", "3"]


def test_derived_values_are_kept_for_the_last_used_objects_only() -> None:
    store = Store(derived_limit=2)
    calls: list[str] = []

    def parse(o: dict[str, Any]) -> str:
        calls.append(o["metadata"]["name"])
        return str(o["metadata"]["name"])

    for name in "abc":
        store.upsert(obj(name))
    store.derived("ns", "a", parse)
    store.derived("ns", "b", parse)
    store.derived("ns", "a", parse)  # a is the last used: b goes when c comes
    store.derived("ns", "c", parse)
    store.derived("ns", "a", parse)
    store.derived("ns", "b", parse)
    assert calls == ["a", "b", "c", "b"]


def test_a_status_blind_value_outlives_status_writes_not_spec_or_metadata_changes() -> None:
    store = Store()
    calls: list[str] = []

    def spec_of(o: dict[str, Any]) -> str:
        calls.append(o["metadata"]["resourceVersion"])
        return str(o.get("spec"))

    def phase_of(o: dict[str, Any]) -> str:
        return str((o.get("status") or {}).get("phase"))

    def version(rv: str, *, spec: str = "a", labels: dict[str, str] | None = None,
                phase: str = "Pending") -> dict[str, Any]:  # fmt: skip
        new = obj("nb", rv=rv)
        new["spec"] = {"image": spec}
        new["status"] = {"phase": phase}
        if labels is not None:
            new["metadata"]["labels"] = labels
        return new

    store.upsert(version("1"))
    assert store.derived("ns", "nb", spec_of, reads_status=False) == "{'image': 'a'}"
    assert store.derived("ns", "nb", phase_of) == "Pending"
    store.upsert(version("2", phase="Running"))  # a status write
    assert store.derived("ns", "nb", spec_of, reads_status=False) == "{'image': 'a'}"
    assert store.derived("ns", "nb", phase_of) == "Running"  # what reads the status: afresh
    assert calls == ["1"]
    store.upsert(version("3", phase="Running", labels={"team": "a"}))  # metadata changed
    store.derived("ns", "nb", spec_of, reads_status=False)
    store.upsert(version("4", spec="b", labels={"team": "a"}))  # spec changed
    assert store.derived("ns", "nb", spec_of, reads_status=False) == "{'image': 'b'}"
    assert calls == ["1", "3", "4"]


def test_a_status_blind_value_is_kept_while_its_object_is_cached_however_many_are_used() -> None:
    store = Store(derived_limit=1)
    calls: list[str] = []

    def spec_of(o: dict[str, Any]) -> str:
        calls.append(o["metadata"]["name"])
        return str(o["metadata"]["name"])

    for name in "abc":
        store.upsert(obj(name))
        store.derived("ns", name, spec_of, reads_status=False, bounded=False)
    for name in "abc":  # past the limit of one, still kept
        store.derived("ns", name, spec_of, reads_status=False, bounded=False)
    assert calls == ["a", "b", "c"]
    store.delete(("ns", "a"))
    assert store.derived("ns", "a", spec_of, reads_status=False, bounded=False) is None
    store.upsert(obj("a"))  # another object under that name: derived afresh
    assert store.derived("ns", "a", spec_of, reads_status=False, bounded=False) == "a"
    assert calls == ["a", "b", "c", "a"]


def test_a_bounded_status_blind_value_survives_status_writes_but_not_the_limit() -> None:
    store = Store(derived_limit=2)
    calls: list[str] = []

    def spec_of(o: dict[str, Any]) -> str:
        calls.append(f"{o['metadata']['name']}@{o['metadata']['resourceVersion']}")
        return str(o.get("spec"))

    def version(name: str, rv: str, *, spec: str = "a", phase: str = "Pending") -> dict[str, Any]:
        new = obj(name, rv=rv)
        new["spec"] = {"image": spec}
        new["status"] = {"phase": phase}
        return new

    store.upsert(version("a", "1"))
    assert store.derived("ns", "a", spec_of, reads_status=False) == "{'image': 'a'}"
    store.upsert(version("a", "2", phase="Running"))  # a status write: kept
    assert store.derived("ns", "a", spec_of, reads_status=False) == "{'image': 'a'}"
    store.upsert(version("a", "3", spec="b", phase="Running"))  # the spec changed: afresh
    assert store.derived("ns", "a", spec_of, reads_status=False) == "{'image': 'b'}"
    assert calls == ["a@1", "a@3"]
    for name in "bc":  # two others used since: past the limit of two, "a" is dropped
        store.upsert(version(name, "1"))
        store.derived("ns", name, spec_of, reads_status=False)
    store.upsert(version("a", "4", spec="b", phase="Failed"))
    assert store.derived("ns", "a", spec_of, reads_status=False) == "{'image': 'b'}"
    assert calls == ["a@1", "a@3", "b@1", "c@1", "a@4"]
    with pytest.raises(ValueError, match="status-blind"):
        store.derived("ns", "a", spec_of, bounded=False)  # it reads the status

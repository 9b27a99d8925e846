"""A reconciler compares with its own last status write until the cache has caught up."""

from notebook_controller.reconcilers.common import OwnStatusWrites
from notebook_controller.runtime.controller import Request

REQUEST = Request("team-a", "nb")
WRITTEN_STATUS = {"conditions": [{"type": "Idle", "status": "Unknown", "reason": "ProbeFailed"}]}


def cached(resource_version: str, status: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"resourceVersion": resource_version}, "status": status}


def test_a_stale_cache_is_compared_with_what_was_written() -> None:
    writes = OwnStatusWrites()
    writes.remember(REQUEST, {"metadata": {"resourceVersion": "12"}}, WRITTEN_STATUS)
    stale = cached("10", {"conditions": [{"type": "Idle", "status": "Unknown"}]})
    assert writes.status(REQUEST, stale) == WRITTEN_STATUS


def test_once_the_cache_catches_up_it_is_trusted_again() -> None:
    writes = OwnStatusWrites()
    writes.remember(REQUEST, {"metadata": {"resourceVersion": "12"}}, WRITTEN_STATUS)
    newer = cached("15", {"conditions": [{"type": "Idle", "status": "True"}]})
    assert writes.status(REQUEST, newer) == newer["status"]
    # and the memory is dropped: an older object later is read as it is
    assert writes.status(REQUEST, cached("11", {})) == {}


def test_forgotten_and_unknown_notebooks_read_the_cache() -> None:
    writes = OwnStatusWrites()
    writes.remember(REQUEST, {"metadata": {"resourceVersion": "12"}}, WRITTEN_STATUS)
    writes.forget(REQUEST)
    assert writes.status(REQUEST, cached("10", {"phase": "Running"})) == {"phase": "Running"}
    assert writes.status(Request("team-a", "other"), cached("1", {})) == {}

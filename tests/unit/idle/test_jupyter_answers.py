"""How the three Jupyter answers become one observation (shapes as jupyter_server 2.x sends)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from notebook_controller.idle.jupyter import ProbeFailed, render_url, summarize

STARTED = "2025-01-06T09:00:00.000000Z"
STATUS = {"started": STARTED, "last_activity": STARTED, "connections": 0, "kernels": 0}


def kernel(last_activity: str, state: str = "idle") -> dict[str, Any]:
    return {
        "id": "k",
        "name": "python3",
        "last_activity": last_activity,
        "execution_state": state,
        "connections": 1,
    }


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, 6, hour, minute, tzinfo=UTC)


def test_untouched_server_has_no_activity_but_its_start() -> None:
    seen = summarize(STATUS, [], [])
    assert (seen.reachable, seen.busy, seen.last_activity, seen.started) == (
        True,
        False,
        None,
        at(9),
    )


def test_newest_of_server_kernels_and_terminals() -> None:
    status = {**STATUS, "last_activity": "2025-01-06T09:30:00Z"}
    kernels = [kernel("2025-01-06T09:10:00Z"), kernel("2025-01-06T09:20:00.5Z")]
    terminals = [{"name": "1", "last_activity": "2025-01-06T09:45:00+00:00"}]
    seen = summarize(status, kernels, terminals)
    assert seen.last_activity == at(9, 45)
    assert (seen.kernels, seen.terminals, seen.busy) == (2, 1, False)


def test_any_busy_kernel_is_busy() -> None:
    kernels = [kernel(STARTED), kernel(STARTED, "busy"), kernel(STARTED, "starting")]
    assert summarize(STATUS, kernels, []).busy
    assert not summarize(STATUS, [kernel(STARTED, "starting")], []).busy


@pytest.mark.parametrize(
    ("status", "kernels"),
    [
        ({"started": STARTED}, []),
        ({**STATUS, "last_activity": "yesterday"}, []),
        ({**STATUS, "last_activity": "2025-01-06T09:30:00"}, []),  # no timezone
        (STATUS, ["not-a-kernel"]),
        (STATUS, [{"last_activity": 17}]),
    ],
)
def test_unexpected_shapes_are_failed_probes(status: dict[str, Any], kernels: list[Any]) -> None:
    with pytest.raises(ProbeFailed) as failed:
        summarize(status, kernels, [])
    assert failed.value.failure == "bad-response"


def test_url_template() -> None:
    prefix = "/t9k/notebooks/projects/ns/name/nb/"
    default = "http://{service}.{namespace}.svc:80{prefix}"
    url = render_url(default, namespace="ns", service="managed-notebook-http-nb", prefix=prefix)
    assert url == "http://managed-notebook-http-nb.ns.svc:80/t9k/notebooks/projects/ns/name/nb/"
    assert render_url("http://127.0.0.1:8888", namespace="n", service="s", prefix="/p/") == (
        "http://127.0.0.1:8888/"
    )

"""builders/raw.py: what the kubectl plugin and the console both mean by paused, resume and the
main container."""

from __future__ import annotations

from typing import Any

from notebook_controller.api.models import RECLAIMED_AT_ANNOTATION
from notebook_controller.builders import raw


def notebook(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {"metadata": {"name": "nb", **metadata}, "spec": spec or {}}


def test_paused_in_either_spelling() -> None:
    assert raw.is_paused(notebook({"runMode": "paused"}))
    assert raw.is_paused(notebook({"suspend": True}))
    assert not raw.is_paused(notebook({"runMode": "running"}))
    assert not raw.is_paused(notebook())


def test_pause_and_resume_keep_suspend_in_step_and_resume_drops_the_reclaim_mark() -> None:
    assert raw.run_mode_patch(notebook(), paused=True) == {"spec": {"runMode": "paused"}}
    assert raw.run_mode_patch(notebook({"suspend": False}), paused=True) == {
        "spec": {"runMode": "paused", "suspend": True}
    }
    reclaimed = notebook(
        {"runMode": "paused"}, annotations={RECLAIMED_AT_ANNOTATION: "2026-11-26T10:00:00Z"}
    )
    assert raw.is_reclaimed(reclaimed)
    assert raw.run_mode_patch(reclaimed, paused=False) == {
        "spec": {"runMode": "running"},
        "metadata": {"annotations": {RECLAIMED_AT_ANNOTATION: None}},
    }
    # pausing a reclaimed notebook again leaves the mark alone
    assert "metadata" not in raw.run_mode_patch(reclaimed, paused=True)


def test_main_container_is_the_one_named_notebook_else_the_first() -> None:
    def with_containers(*names: str) -> dict[str, Any]:
        containers = [{"name": n} for n in names]
        return notebook({"template": {"spec": {"containers": containers}}})

    assert raw.main_container(with_containers("sidecar", "notebook"))["name"] == "notebook"
    assert raw.main_container(with_containers("lab", "sidecar"))["name"] == "lab"
    assert raw.main_container(notebook()) == {}


def test_condition_and_queue() -> None:
    nb = notebook({"scheduler": {"t9kScheduler": {"queue": "default"}}})
    nb["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert raw.condition(nb, "Ready")["status"] == "True"
    assert raw.condition(nb, "Idle") == {}
    assert raw.queue(nb) == "default"
    assert raw.queue(notebook()) is None

"""A Notebook as the API server returns it (a plain dict), read and patched by its clients —
the kubectl plugin and the console — with one meaning for "paused", "resume" and "the main
container" across both, the same the controller uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notebook_controller.api.models import RECLAIMED_AT_ANNOTATION
from notebook_controller.builders.workload import main_container_index
from notebook_controller.runtime.objects import JsonDict


def condition(notebook: Mapping[str, Any], type_: str) -> JsonDict:
    """The status condition of that type, or {} when the controller has not written it."""
    found = (notebook.get("status") or {}).get("conditions") or []
    return dict(next((c for c in found if c.get("type") == type_), {}))


def is_paused(notebook: Mapping[str, Any]) -> bool:
    """`runMode: paused`, or T9k's older `suspend: true` spelling."""
    spec = notebook.get("spec") or {}
    return spec.get("runMode") == "paused" or spec.get("suspend") is True


def is_reclaimed(notebook: Mapping[str, Any]) -> bool:
    """Paused by the idle reclaimer (docs/idle.md), not by a user."""
    annotations = (notebook.get("metadata") or {}).get("annotations") or {}
    return RECLAIMED_AT_ANNOTATION in annotations


def run_mode_patch(notebook: Mapping[str, Any], *, paused: bool) -> JsonDict:
    """A merge patch pausing or resuming `notebook`: runMode, and `suspend` too when the object
    uses it (the two must agree). A resume also drops the reclaimed-at annotation, as the idle
    reclaimer expects (docs/idle.md), so a later pause reads as the user's own."""
    spec: JsonDict = {"runMode": "paused" if paused else "running"}
    if "suspend" in (notebook.get("spec") or {}):
        spec["suspend"] = paused
    patch: JsonDict = {"spec": spec}
    if not paused and is_reclaimed(notebook):
        patch["metadata"] = {"annotations": {RECLAIMED_AT_ANNOTATION: None}}
    return patch


def main_container(notebook: Mapping[str, Any]) -> JsonDict:
    """The container named `notebook`, else the first (the one the controller serves)."""
    template = (notebook.get("spec") or {}).get("template") or {}
    containers: list[JsonDict] = (template.get("spec") or {}).get("containers") or [{}]
    return containers[main_container_index(containers)]


def queue(notebook: Mapping[str, Any]) -> str | None:
    """The T9k Scheduler queue the notebook asks for, if any."""
    scheduler = (notebook.get("spec") or {}).get("scheduler") or {}
    found = (scheduler.get("t9kScheduler") or {}).get("queue")
    return str(found) if found else None

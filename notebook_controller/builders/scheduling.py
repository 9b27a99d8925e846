"""Scheduler adapter: T9k Scheduler queue and GPU limits on the pod template."""

from __future__ import annotations

from typing import Any

from notebook_controller.api.models import (
    GPU_PERCENT_RESOURCE,
    GPU_RESOURCE,
    QUEUE_LABEL,
    T9K_SCHEDULER_NAME,
    Notebook,
)

_GPU_RESOURCES = (GPU_PERCENT_RESOURCE, GPU_RESOURCE)


def with_gpu_limits(container: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes requires an extended resource's limit to equal its request: add missing ones."""
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = dict(resources.get("limits") or {})
    missing = {r: requests[r] for r in _GPU_RESOURCES if r in requests and r not in limits}
    if not missing:
        return container
    return {**container, "resources": {**resources, "limits": {**limits, **missing}}}


def scheduled_pod_spec(notebook: Notebook, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """The pod spec with GPU limits completed and, under a queue, the T9k scheduler."""
    spec = dict(pod_spec)
    for field in ("containers", "initContainers"):
        if field in spec:
            spec[field] = [with_gpu_limits(c) for c in spec[field]]
    if notebook.spec.queue is not None:
        spec["schedulerName"] = T9K_SCHEDULER_NAME
    return spec


def scheduling_labels(notebook: Notebook) -> dict[str, str]:
    """Pod labels the scheduler reads (the queue; it can't change on a live pod)."""
    queue = notebook.spec.queue
    return {} if queue is None else {QUEUE_LABEL: queue}

"""Which updates wake which reconciler: a StatefulSet's status moving while its pod starts
wakes neither the workload nor the services reconciler, and the status reconciler only when its
rollout moves; a pod's container status moving within the same state doesn't wake the idle
reconciler, nor the status reconciler unless what it shows of the pod moves; a pod's updates
don't wake the SSH reconciler. Anything those reconcilers read still does."""

from __future__ import annotations

import copy
from typing import Any

from notebook_controller.reconcilers.idle import pod_news
from notebook_controller.reconcilers.status import pod_news as status_pod_news
from notebook_controller.reconcilers.status import statefulset_news
from notebook_controller.wiring import beyond_status_changed, replaced

STATEFULSET: dict[str, Any] = {
    "metadata": {
        "name": "managed-notebook-nb",
        "namespace": "ns",
        "uid": "sts-1",
        "resourceVersion": "10",
        "generation": 1,
        "labels": {"app": "nb"},
        "annotations": {"notebook.tensorstack.dev/applied-hash": "abc"},
    },
    "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "notebook"}]}}},
    "status": {"replicas": 1, "readyReplicas": 0, "observedGeneration": 1},
}

POD: dict[str, Any] = {
    "metadata": {"name": "managed-notebook-nb-0", "namespace": "ns", "uid": "pod-1"},
    "spec": {"nodeName": "node-1", "containers": [{"name": "notebook"}]},
    "status": {
        "phase": "Running",
        "startTime": "2026-11-26T10:00:00Z",
        "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-26T10:00:00Z"}
        ],
        "containerStatuses": [{"name": "notebook", "ready": False, "restartCount": 0}],
    },
}


def changed(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    *parents, last = path.split(".")
    here = new
    for part in parents:
        here = here.setdefault(part, {})
    here[last] = value
    new["metadata"]["resourceVersion"] = "11"
    return new


def test_a_statefulset_status_update_wakes_no_applier() -> None:
    assert not beyond_status_changed(STATEFULSET, changed(STATEFULSET, "status.readyReplicas", 1))


def test_what_an_applier_owns_or_reads_still_wakes_it() -> None:
    for path, value in [
        ("spec.replicas", 0),  # tampered with, or paused
        ("metadata.generation", 2),
        ("metadata.labels", {}),
        ("metadata.annotations", {}),  # the applied hash gone
        ("metadata.ownerReferences", []),
        ("metadata.deletionTimestamp", "2026-11-26T10:00:00Z"),
        ("metadata.uid", "sts-2"),
    ]:
        assert beyond_status_changed(STATEFULSET, changed(STATEFULSET, path, value)), path


def test_a_pod_update_wakes_the_ssh_reconciler_only_when_it_is_another_pod() -> None:
    assert not replaced(POD, changed(POD, "status.phase", "Succeeded"))
    assert replaced(POD, changed(POD, "metadata.uid", "pod-2"))


def test_a_container_status_moving_within_the_same_state_is_no_idle_news() -> None:
    restarted = changed(POD, "status.containerStatuses", [{"name": "notebook", "restartCount": 1}])
    assert not pod_news(POD, restarted)


def test_the_pod_facts_idle_reads_are_news() -> None:
    ready = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-26T10:01:00Z"}]
    not_ready_again = [
        {"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-26T10:05:00Z"}
    ]
    for path, value in [
        ("status.conditions", ready),
        ("status.conditions", not_ready_again),  # a new not-Ready stretch
        ("spec.nodeName", None),
        ("metadata.deletionTimestamp", "2026-11-26T10:00:00Z"),
        ("metadata.uid", "pod-2"),
        ("status.startTime", "2026-11-26T10:02:00Z"),
    ]:
        assert pod_news(POD, changed(POD, path, value)), path


def test_a_statefulset_replica_count_is_no_status_news_its_rollout_is() -> None:
    assert not statefulset_news(STATEFULSET, changed(STATEFULSET, "status.readyReplicas", 1))
    assert not statefulset_news(STATEFULSET, changed(STATEFULSET, "status.currentReplicas", 1))
    assert statefulset_news(STATEFULSET, changed(STATEFULSET, "status.observedGeneration", 2))
    assert statefulset_news(STATEFULSET, changed(STATEFULSET, "status.updateRevision", "r2"))


def test_a_pod_update_is_status_news_when_what_the_status_shows_of_it_moves() -> None:
    ready = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-26T10:01:00Z"}]
    waiting = [
        {"name": "notebook", "ready": False, "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    ]
    for path, value in [
        ("status.conditions", ready),
        ("status.phase", "Failed"),
        ("status.containerStatuses", waiting),
        ("metadata.uid", "pod-2"),
        ("metadata.labels", {"controller-revision-hash": "r2"}),
        ("metadata.ownerReferences", [{"uid": "sts-2", "controller": True}]),
        ("metadata.deletionTimestamp", "2026-11-26T10:00:00Z"),
    ]:
        assert status_pod_news(POD, changed(POD, path, value)), path
    for path, value in [
        ("status.podIP", "10.0.0.7"),
        ("status.startTime", "2026-11-26T10:02:00Z"),
        ("status.conditions", [{**POD["status"]["conditions"][0], "lastProbeTime": "now"}]),
    ]:
        assert not status_pod_news(POD, changed(POD, path, value)), path

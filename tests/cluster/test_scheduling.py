"""Pods for the T9k Scheduler stand-in (a second kube-scheduler profile) and GPU resources."""

from __future__ import annotations

import pytest

from tests.cluster.helpers import GPU_NODE, GPU_PERCENT, pod, wait_pod_running
from tests.kube import Cluster, wait_for

pytestmark = pytest.mark.cluster


def test_t9k_scheduler_puts_gpu_pod_on_gpu_node(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        pod("gpu-30", scheduler="t9k-scheduler", resources={GPU_PERCENT: "30", "cpu": "100m"}),
        namespace,
    )
    p = wait_pod_running(cluster, namespace, "gpu-30")
    assert p["spec"]["nodeName"] == GPU_NODE
    assert p["spec"]["schedulerName"] == "t9k-scheduler"
    assert p["status"]["podIP"]


def test_gpu_pod_larger_than_any_node_stays_pending(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        pod("gpu-900", scheduler="t9k-scheduler", resources={GPU_PERCENT: "900"}), namespace
    )

    def failed_scheduling() -> list[dict[str, object]]:
        return [
            e for e in cluster.events(namespace, "gpu-900") if e["reason"] == "FailedScheduling"
        ]

    events = wait_for(failed_scheduling, timeout=60, message="FailedScheduling event for gpu-900")
    assert "Insufficient " + GPU_PERCENT in str(events[0]["message"])
    p = cluster.get_json("pod", "-n", namespace, "gpu-900")
    assert p["status"]["phase"] == "Pending"
    assert not p["spec"].get("nodeName")


def test_default_scheduler_still_works(cluster: Cluster, namespace: str) -> None:
    cluster.apply(pod("plain"), namespace)
    p = wait_pod_running(cluster, namespace, "plain")
    assert p["spec"]["nodeName"].startswith("kwok-")

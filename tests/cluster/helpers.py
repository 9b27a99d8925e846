"""Small builders and waits shared by the cluster tests."""

from __future__ import annotations

from typing import Any

from tests.kube import Cluster, condition, wait_for

FAKE_NODES = {"kwok-cpu-0", "kwok-gpu-0"}
GPU_NODE = "kwok-gpu-0"
GPU_PERCENT = "tensorstack.dev/nvidia-gpu-percent"
GPU = "tensorstack.dev/nvidia-gpu"


def pod(
    name: str,
    *,
    scheduler: str | None = None,
    resources: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "busybox:1.36",
        "command": ["sleep", "inf"],
    }
    if resources:
        container["resources"] = {"requests": dict(resources), "limits": dict(resources)}
    spec: dict[str, Any] = {"containers": [container]}
    if scheduler:
        spec["schedulerName"] = scheduler
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": spec,
    }


def wait_pod_running(
    cluster: Cluster, namespace: str, name: str, timeout: float = 90
) -> dict[str, Any]:
    """Wait until the pod is Running and Ready with a pod IP; return it."""

    def check() -> dict[str, Any] | None:
        p: dict[str, Any] = cluster.get_json("pod", "-n", namespace, name)
        st = p.get("status", {})
        if (
            st.get("phase") == "Running"
            and condition(p, "Ready").get("status") == "True"
            and st.get("podIP")
        ):
            return p
        return None

    return wait_for(
        check,
        timeout=timeout,
        message=lambda: (
            f"pod {namespace}/{name} Running+Ready: "
            + cluster.kubectl("-n", namespace, "get", "pod", name, "-o", "wide", check=False).stdout
        ),
    )


def pods_with_label(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return items

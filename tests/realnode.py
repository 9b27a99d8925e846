"""Helpers for tests on the local cluster's real node (containerd + kubelet; see README)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.kube import ROOT, Cluster, wait_for

REAL_NODE = "real-node-0"
NODE_IP = "10.244.64.1"
NODE_TAINT_KEY = "nbctl.dev/real-node"
# what hack/node.py puts on namespaces whose pods run on the real node
REAL_NODE_NAMESPACE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": "type=real",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": NODE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    ),
}
TEST_IMAGE = "registry.nbctl.local/testimage:1"
# serves `real-node-ok` on 8080; prints a line to its log first
HTTP_COMMAND = [
    "sh",
    "-c",
    "mkdir -p /srv && echo real-node-ok > /srv/index.html && echo started-on-real-node"
    " && exec httpd -f -p 8080 -h /srv",
]


def pod(
    name: str,
    *,
    command: list[str] | None = None,
    image: str = TEST_IMAGE,
    labels: dict[str, str] | None = None,
    readiness_path: str | None = None,
    volumes: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "command": command if command is not None else HTTP_COMMAND,
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    if readiness_path:
        container["readinessProbe"] = {
            "httpGet": {"path": readiness_path, "port": 8080},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }
    if mounts:
        container["volumeMounts"] = mounts
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "containers": [container],
    }
    if volumes:
        spec["volumes"] = volumes
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": spec,
    }


def pod_json(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.get_json("pod", name, "-n", namespace)
    return result


def is_ready(p: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (p.get("status") or {}).get("conditions") or []
    )


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        p = pod_json(cluster, namespace, name)
        return p if is_ready(p) else None

    return wait_for(
        check,
        timeout=timeout,
        message=lambda: f"pod {name} Ready: {pod_json(cluster, namespace, name).get('status')}",
    )


def waiting_reason(p: dict[str, Any]) -> str | None:
    for status in (p.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason"))
    return None


def built_image(name: str) -> tuple[str, str]:
    """`hack/images.sh build NAME` (rebuilt only if its inputs changed, pushed if the registry
    lacks it), then the reference pinned to the pushed digest: tags are reused, and the real
    node may hold an older build under the same tag. Returns (pinned ref, the build's stderr)."""
    images = str(ROOT / "hack" / "images.sh")
    build = subprocess.run(
        [images, "build", name], capture_output=True, text=True, cwd=ROOT, timeout=1800
    )
    if build.returncode != 0:
        raise AssertionError(
            f"hack/images.sh build {name} failed (exit {build.returncode}):\n"
            f"{build.stderr[-3000:]}\n{build.stdout[-3000:]}"
        )
    pinned = subprocess.run(
        [images, "pinned", name], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    )
    return pinned.stdout.strip(), build.stderr

"""Notebooks on the real node (containerd + kubelet): a real container, a PVC that outlives
its pod, and a crash loop or a missing image surfacing on the Notebook's Ready condition."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster, condition, get, wait_condition, wait_for, warning_events
from tests.realnode import REAL_NODE, TEST_IMAGE

pytestmark = pytest.mark.cluster

NB = "real"
POD = "managed-notebook-real-0"
# a stand-in for Jupyter that answers the readiness probe (GET <NB_PREFIX>api/status on 8888)
FAKE_JUPYTER = (
    'mkdir -p "/srv${NB_PREFIX}api" && echo "{}" > "/srv${NB_PREFIX}api/status"'
    " && echo jupyter-stand-in-started && exec httpd -f -p 8888 -h /srv"
)


def real_notebook(
    name: str,
    *,
    command: list[str] | None = None,
    image: str = TEST_IMAGE,
    volumes: list[dict[str, Any]] | None = None,
) -> str:
    container: dict[str, Any] = {
        "name": "notebook",
        "image": image,
        "command": command or ["sh", "-c", FAKE_JUPYTER],
    }
    spec: dict[str, Any] = {"containers": [container]}
    if volumes:
        spec["volumes"] = volumes
        container["volumeMounts"] = [{"name": "workingdir", "mountPath": "/t9k/mnt"}]
    return json.dumps(
        {
            "apiVersion": "tensorstack.dev/v1beta1",
            "kind": "Notebook",
            "metadata": {"name": name},
            "spec": {"type": "jupyter", "template": {"spec": spec}},
        }
    )


def exec_pod(cluster: Cluster, namespace: str, *command: str) -> str:
    return cluster.kubectl("-n", namespace, "exec", POD, "-c", "notebook", "--", *command).stdout


def test_a_notebook_with_a_pvc_runs_a_real_container_and_keeps_its_files(
    cluster: Cluster, real_namespace: str, controller: ControllerProcess
) -> None:
    namespace = real_namespace
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "real-workingdir"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.apply(pvc, namespace)
    volumes = [{"name": "workingdir", "persistentVolumeClaim": {"claimName": "real-workingdir"}}]
    cluster.apply(real_notebook(NB, volumes=volumes), namespace)
    nb = wait_condition(cluster, namespace, NB, "Ready", "True", timeout=180)
    assert nb["status"]["phase"] == "Running"
    pod = cluster.get_json("pod", POD, "-n", namespace)
    assert pod["spec"]["nodeName"] == REAL_NODE
    assert "jupyter-stand-in-started" in cluster.kubectl("-n", namespace, "logs", POD).stdout
    claim = cluster.get_json("pvc", "real-workingdir", "-n", namespace)
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "local-path"
    # the controller's defaults reached the real process
    assert exec_pod(cluster, namespace, "pwd").strip() == "/t9k/mnt"
    env = exec_pod(cluster, namespace, "env")
    assert f"NB_PREFIX=/t9k/notebooks/projects/{namespace}/name/{NB}/" in env
    exec_pod(cluster, namespace, "sh", "-c", "echo kept-across-pods > /t9k/mnt/data.txt")

    old_uid = pod["metadata"]["uid"]
    cluster.kubectl("-n", namespace, "delete", "pod", POD, "--wait=true")

    def new_pod_ready() -> bool:
        found = get(cluster, namespace, "pod", POD)
        return bool(found and found["metadata"]["uid"] != old_uid) and (
            condition(get(cluster, namespace, "notebook", NB), "Ready").get("status") == "True"
        )

    wait_for(new_pod_ready, timeout=180, message="a new pod, Ready")
    wait_for(
        lambda: (
            exec_pod(cluster, namespace, "cat", "/t9k/mnt/data.txt").strip() == "kept-across-pods"
        ),
        timeout=30,
        message="the file written by the old pod",
    )


def test_a_crash_looping_notebook_surfaces_on_ready_and_in_events(
    cluster: Cluster, real_namespace: str, controller: ControllerProcess
) -> None:
    namespace = real_namespace
    cluster.apply(real_notebook(NB, command=["sh", "-c", "echo bad config; exit 1"]), namespace)
    nb = wait_condition(cluster, namespace, NB, "Ready", "False", "CrashLoopBackOff", timeout=180)
    assert (
        "container notebook keeps crashing (Error with code 1" in condition(nb, "Ready")["message"]
    )
    assert nb["status"]["phase"] == "Failed"
    wait_for(
        lambda: [
            e for e in warning_events(cluster, namespace, NB) if e["reason"] == "CrashLoopBackOff"
        ],
        timeout=60,
        message="a CrashLoopBackOff Warning event on the notebook",
    )


def test_a_missing_image_surfaces_on_ready_and_in_events(
    cluster: Cluster, real_namespace: str, controller: ControllerProcess
) -> None:
    namespace = real_namespace
    image = "registry.nbctl.local/no-such-notebook:1"
    cluster.apply(real_notebook(NB, image=image), namespace)
    nb = wait_condition(cluster, namespace, NB, "Ready", "False", "ImagePullBackOff", timeout=180)
    message = condition(nb, "Ready")["message"]
    assert f"container notebook: cannot pull image {image}" in message, message
    wait_for(
        lambda: [
            e for e in warning_events(cluster, namespace, NB) if e["reason"] == "ImagePullBackOff"
        ],
        timeout=60,
        message="an ImagePullBackOff Warning event on the notebook",
    )

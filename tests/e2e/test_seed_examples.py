"""The product document's three examples, applied verbatim, give exactly the documented objects."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.e2e.controller import ControllerProcess, seed
from tests.kube import Cluster, condition, get, items, wait_condition, wait_for, warning_events

MANAGED = "-l=app.kubernetes.io/managed-by=notebook-controller"


def _env(container: dict[str, object]) -> dict[str, object]:
    return {e["name"]: e.get("value") for e in container.get("env") or []}  # type: ignore[attr-defined]


def _names(objs: list[dict[str, object]]) -> set[str]:
    return {o["metadata"]["name"] for o in objs}  # type: ignore[index]


def public_key_secret(name: str) -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    data = base64.b64encode(text + b" e2e@test").decode()
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n"
        f"  labels: {{tensorstack.dev/resource: ssh}}\ndata:\n  ssh-publickey: {data}\n"
    )


def test_basic_example(cluster: Cluster, namespace: str, controller: ControllerProcess) -> None:
    cluster.apply(seed("notebook-example.yaml"), namespace)
    notebook = wait_condition(cluster, namespace, "notebook-sample", "Ready", "True")
    status = notebook["status"]
    assert status["phase"] == "Running"
    assert status["url"] == f"/t9k/notebooks/projects/{namespace}/name/notebook-sample/lab"
    assert status["observedGeneration"] == notebook["metadata"]["generation"]
    assert condition(notebook, "Suspended")["status"] == "False"
    assert not notebook["metadata"].get("finalizers")

    [sts] = items(cluster, namespace, "statefulsets", MANAGED)
    assert sts["metadata"]["name"] == "managed-notebook-notebook-sample"
    owner = sts["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == (
        "Notebook",
        notebook["metadata"]["uid"],
        True,
        True,
    )
    assert _names(items(cluster, namespace, "services", MANAGED)) == {
        "managed-notebook-http-notebook-sample"
    }
    assert items(cluster, namespace, "secrets", MANAGED) == []

    pod = get(cluster, namespace, "pod", "managed-notebook-notebook-sample-0")
    assert pod is not None and pod["status"]["phase"] == "Running"
    assert status["pod"]["reference"] == {
        "name": pod["metadata"]["name"],
        "uid": pod["metadata"]["uid"],
    }
    assert pod["metadata"]["labels"]["notebook.tensorstack.dev/name"] == "notebook-sample"
    [container] = pod["spec"]["containers"]
    assert container["image"] == "t9kpublic/tensorflow-2.11.0-notebook-cpu:latest"
    prefix = f"/t9k/notebooks/projects/{namespace}/name/notebook-sample/"
    assert _env(container) == {"NB_PREFIX": prefix, "ENABLE_SSH_SERVER": "false"}
    assert {"name": "http", "containerPort": 8888, "protocol": "TCP"} in container["ports"]
    assert container["readinessProbe"]["httpGet"]["path"] == f"{prefix}api/status"
    assert container["workingDir"] == "/t9k/mnt"

    service = get(cluster, namespace, "service", "managed-notebook-http-notebook-sample")
    assert service is not None
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (80, "http")
    assert service["spec"]["selector"] == {"notebook.tensorstack.dev/name": "notebook-sample"}


def test_gpu_example(cluster: Cluster, namespace: str, controller: ControllerProcess) -> None:
    cluster.apply(seed("notebook-gpu-sample.yaml"), namespace)
    wait_condition(cluster, namespace, "notebook-gpu-sample", "Ready", "True")
    pod = get(cluster, namespace, "pod", "managed-notebook-notebook-gpu-sample-0")
    assert pod is not None
    assert pod["spec"]["schedulerName"] == "t9k-scheduler"
    assert pod["metadata"]["labels"]["scheduler.tensorstack.dev/queue"] == "default"
    assert pod["spec"]["nodeName"] == "kwok-gpu-0"
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"tensorstack.dev/nvidia-gpu-percent": "30"}
    assert resources["requests"] == {
        "cpu": "500m",
        "memory": "1Gi",
        "tensorstack.dev/nvidia-gpu-percent": "30",
    }


def test_ssh_example_with_a_key_secret_that_appears_later(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    """By default the controller reads no Secret: the key Secrets are the kubelet's to mount
    (optional projected sources: a missing one is an absent file, filled in when it appears),
    and the notebook says nothing about them (no SSHKeysReady)."""
    cluster.apply(seed("notebook-ssh-sample.yaml"), namespace)
    # the key Secret doesn't exist yet: the notebook runs anyway
    notebook = wait_condition(cluster, namespace, "notebook-sample", "Ready", "True")
    assert condition(notebook, "SSHKeysReady") == {}

    service = get(cluster, namespace, "service", "managed-notebook-ssh-notebook-sample")
    assert service is not None and service["spec"]["type"] == "NodePort"
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (22, 2222)
    ssh = notebook["status"]["ssh"]
    assert ssh["serviceName"] == "managed-notebook-ssh-notebook-sample"
    assert (ssh["port"], ssh["protocol"], ssh["nodePort"]) == (22, "TCP", port["nodePort"])
    assert ssh["clusterIp"] == service["spec"]["clusterIP"]

    pod = get(cluster, namespace, "pod", "managed-notebook-notebook-sample-0")
    assert pod is not None
    container = pod["spec"]["containers"][0]
    assert _env(container)["ENABLE_SSH_SERVER"] == "true"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/t9k/authorized_keys"]["readOnly"] and mounts["/t9k/host_keys"]["readOnly"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    [source] = volumes[mounts["/t9k/authorized_keys"]["name"]]["projected"]["sources"]
    assert source["secret"]["name"] == "my-public-key" and source["secret"]["optional"] is True

    host_key = get(cluster, namespace, "secret", "managed-notebook-hostkey-notebook-sample")
    assert host_key is not None
    assert host_key["metadata"]["ownerReferences"][0]["uid"] == notebook["metadata"]["uid"]
    assert set(host_key["data"]) == {"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"}

    # the Secret appears: the kubelet fills the file in (tests/product/test_ssh.py logs in with
    # it on the real node); the notebook and its pod are left as they are
    cluster.apply(public_key_secret("my-public-key"), namespace)
    notebook = wait_condition(cluster, namespace, "notebook-sample", "Ready", "True")
    assert condition(notebook, "SSHKeysReady") == {}
    same_pod = get(cluster, namespace, "pod", "managed-notebook-notebook-sample-0")
    assert same_pod is not None and same_pod["metadata"]["uid"] == pod["metadata"]["uid"]
    assert warning_events(cluster, namespace, "notebook-sample") == []


@pytest.mark.controller_args("--check-key-secrets")
def test_ssh_key_secrets_checked_on_request(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    """With --check-key-secrets (and read access to Secrets) the key Secrets are checked: the
    SSHKeysReady condition and a Warning event name what is wrong, and heal by themselves."""
    cluster.apply(seed("notebook-ssh-sample.yaml"), namespace)
    notebook = wait_condition(cluster, namespace, "notebook-sample", "Ready", "True")
    notebook = wait_condition(
        cluster, namespace, "notebook-sample", "SSHKeysReady", "False", "SecretNotFound"
    )
    assert "my-public-key" in condition(notebook, "SSHKeysReady")["message"]
    wait_for(
        lambda: any(
            e["reason"] == "SecretNotFound" and "my-public-key" in e["message"]
            for e in warning_events(cluster, namespace, "notebook-sample")
        ),
        timeout=30,
        message="a Warning event naming the missing Secret",
    )
    pod = get(cluster, namespace, "pod", "managed-notebook-notebook-sample-0")
    assert pod is not None

    # the Secret appears: the condition heals by itself, and the pod was never restarted
    cluster.apply(public_key_secret("my-public-key"), namespace)
    wait_condition(cluster, namespace, "notebook-sample", "SSHKeysReady", "True", "KeysValid")
    same_pod = get(cluster, namespace, "pod", "managed-notebook-notebook-sample-0")
    assert same_pod is not None and same_pod["metadata"]["uid"] == pod["metadata"]["uid"]

    # a malformed key is reported the same way
    bad = base64.b64encode(b"not a key").decode()
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "secret",
        "my-public-key",
        "-p",
        f'{{"data":{{"ssh-publickey":"{bad}"}}}}',
    )
    wait_condition(cluster, namespace, "notebook-sample", "SSHKeysReady", "False", "KeyMalformed")


def test_ssh_off_and_on_keeps_the_host_identity(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    cluster.apply(public_key_secret("my-public-key"), namespace)
    cluster.apply(seed("notebook-ssh-sample.yaml"), namespace)
    wait_condition(cluster, namespace, "notebook-sample", "Ready", "True")
    host_key = get(cluster, namespace, "secret", "managed-notebook-hostkey-notebook-sample")
    assert host_key is not None

    def set_ssh(enabled: bool) -> None:
        patch = f'{{"spec":{{"ssh":{{"enabled":{str(enabled).lower()}}}}}}}'
        cluster.kubectl(
            "-n", namespace, "patch", "notebook", "notebook-sample", "--type=merge", "-p", patch
        )

    set_ssh(False)
    wait_for(
        lambda: get(cluster, namespace, "service", "managed-notebook-ssh-notebook-sample") is None,
        timeout=60,
        message="the SSH Service to be deleted",
    )
    notebook = wait_condition(cluster, namespace, "notebook-sample", "Ready", "True", timeout=180)
    assert "ssh" not in notebook["status"]
    assert condition(notebook, "SSHKeysReady") == {}
    pod = get(cluster, namespace, "pod", "managed-notebook-notebook-sample-0")
    assert pod is not None and _env(pod["spec"]["containers"][0])["ENABLE_SSH_SERVER"] == "false"

    set_ssh(True)
    wait_for(
        lambda: get(cluster, namespace, "service", "managed-notebook-ssh-notebook-sample"),
        timeout=60,
        message="the SSH Service to come back",
    )
    again = get(cluster, namespace, "secret", "managed-notebook-hostkey-notebook-sample")
    assert again is not None and again["data"] == host_key["data"]
    wait_condition(cluster, namespace, "notebook-sample", "Ready", "True", timeout=180)


def test_seed_examples_side_by_side(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    """The basic and the GPU example in one namespace: each gets its own objects."""
    for name in ("notebook-example.yaml", "notebook-gpu-sample.yaml"):
        cluster.apply(seed(name), namespace)
    for name in ("notebook-sample", "notebook-gpu-sample"):
        wait_condition(cluster, namespace, name, "Ready", "True")
    assert _names(items(cluster, namespace, "statefulsets", MANAGED)) == {
        "managed-notebook-notebook-sample",
        "managed-notebook-notebook-gpu-sample",
    }

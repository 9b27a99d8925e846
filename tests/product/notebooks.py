"""Helpers for the product tests: the seed examples with the standard image, reaching a
notebook's Jupyter from this machine (the HTTP Service's ClusterIP is routed here), SSH as a
user does it, and short idle policies."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.e2e.controller import SEEDS
from tests.idle.jupyter import JupyterUser, notebook_prefix
from tests.kube import ROOT, Cluster, condition, get, wait_for
from tests.realnode import NODE_IP, REAL_NODE

NOTEBOOK_IMAGE = "registry.nbctl.local/notebook:1"
ARTIFACTS = ROOT / "test-artifacts"
POLICY = "idle-policy"


# --- the seed examples -------------------------------------------------------------------


def seed_notebook(filename: str, image: str = NOTEBOOK_IMAGE) -> dict[str, Any]:
    """A seed example as the product doc shows it, with only the image swapped."""
    manifest: dict[str, Any] = yaml.safe_load((SEEDS / filename).read_text())
    for container in manifest["spec"]["template"]["spec"]["containers"]:
        container["image"] = image
    return manifest


def pod_name(notebook: str) -> str:
    return f"managed-notebook-{notebook}-0"


def http_service(notebook: str) -> str:
    return f"managed-notebook-http-{notebook}"


def ssh_service(notebook: str) -> str:
    return f"managed-notebook-ssh-{notebook}"


def host_key_secret(notebook: str) -> str:
    return f"managed-notebook-hostkey-{notebook}"


def lab_base(cluster: Cluster, namespace: str, notebook: str) -> str:
    """`http://<ClusterIP><NB_PREFIX>`: the notebook's Jupyter through its HTTP Service."""
    service = cluster.get_json("service", http_service(notebook), "-n", namespace)
    return f"http://{service['spec']['clusterIP']}{notebook_prefix(namespace, notebook)}"


def jupyter_status(base: str, timeout: float = 3) -> dict[str, Any]:
    """`api/status`, without counting as activity."""
    with urllib.request.urlopen(f"{base}api/status?no_track_activity=1", timeout=timeout) as r:
        found: dict[str, Any] = json.loads(r.read())
        return found


def wait_jupyter(base: str, timeout: float = 60) -> dict[str, Any]:
    """`api/status` through the Service once it answers (kube-proxy programs a new endpoint a
    moment after the pod is Ready)."""
    found: dict[str, Any] = wait_for(
        lambda: jupyter_status(base), timeout=timeout, message=f"Jupyter to answer at {base}"
    )
    return found


def is_ready(notebook: dict[str, Any] | None) -> bool:
    return condition(notebook, "Ready").get("status") == "True"


def prepull(cluster: Cluster, namespace: str, image: str) -> None:
    """Have `image` on the real node: a pod that runs `true` from it and is deleted."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "prepull"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "pull", "image": image, "command": ["true"]}],
        },
    }
    cluster.apply(pod, namespace)

    def done() -> bool:
        found = get(cluster, namespace, "pod", "prepull") or {}
        phase = (found.get("status") or {}).get("phase")
        if phase == "Failed":
            raise AssertionError(f"pre-pull pod failed: {found.get('status')}")
        return phase == "Succeeded"

    wait_for(
        done,
        timeout=600,
        interval=1,
        message=lambda: (
            f"{image} pulled on {REAL_NODE}: "
            f"{(get(cluster, namespace, 'pod', 'prepull') or {}).get('status')}"
        ),
    )
    cluster.kubectl("-n", namespace, "delete", "pod", "prepull", "--wait=true")


def wait_notebook_ready(
    cluster: Cluster, namespace: str, notebook: str, timeout: float = 240
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = get(cluster, namespace, "notebook", notebook)
        return found if is_ready(found) else None

    found: dict[str, Any] = wait_for(
        check,
        timeout=timeout,
        interval=0.5,
        message=lambda: (
            f"notebook {notebook} Ready=True; status: "
            f"{(get(cluster, namespace, 'notebook', notebook) or {}).get('status')}"
        ),
    )
    return found


def pod_uid(cluster: Cluster, namespace: str, notebook: str) -> str | None:
    found = get(cluster, namespace, "pod", pod_name(notebook))
    return found["metadata"]["uid"] if found else None


def wait_new_pod_ready(
    cluster: Cluster, namespace: str, notebook: str, old_uid: str | None, timeout: float = 240
) -> str:
    """Wait for a pod other than `old_uid`, Ready, and the notebook Ready; its uid."""

    def check() -> str | None:
        uid = pod_uid(cluster, namespace, notebook)
        if uid is None or uid == old_uid:
            return None
        return uid if is_ready(get(cluster, namespace, "notebook", notebook)) else None

    found: str = wait_for(
        check,
        timeout=timeout,
        interval=1,
        message=lambda: (
            f"a new Ready pod for {notebook} (old uid {old_uid}); notebook status: "
            f"{(get(cluster, namespace, 'notebook', notebook) or {}).get('status')}"
        ),
    )
    return found


def patch_spec(cluster: Cluster, namespace: str, notebook: str, spec: dict[str, Any]) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "notebook",
        notebook,
        "--type=merge",
        "-p",
        json.dumps({"spec": spec}),
    )


def pvc(name: str, size: str = "1Gi") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def with_pvc_at_workdir(manifest: dict[str, Any], claim: str) -> dict[str, Any]:
    """The notebook's main container gets the PVC mounted at /t9k/mnt (its home)."""
    spec = manifest["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "workingdir", "persistentVolumeClaim": {"claimName": claim}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "workingdir", "mountPath": "/t9k/mnt"}]
    return manifest


# --- SSH as a user does it ---------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    private: Path
    public: str


def keygen(path: Path) -> Key:
    """A fresh ed25519 key pair made with ssh-keygen."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return Key(path, path.with_suffix(".pub").read_text().strip())


def key_secret(name: str, key: Key) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {"ssh-publickey": key.public + "\n"},
    }


def node_port(cluster: Cluster, namespace: str, notebook: str) -> int:
    service = cluster.get_json("service", ssh_service(notebook), "-n", namespace)
    assert service["spec"]["type"] == "NodePort", service["spec"]
    port: int = service["spec"]["ports"][0]["nodePort"]
    return port


def host_public_key(cluster: Cluster, namespace: str, notebook: str) -> str:
    """The public half of the notebook's host key, from its host-key Secret."""
    secret = cluster.get_json("secret", host_key_secret(notebook), "-n", namespace)
    return base64.b64decode(secret["data"]["ssh_host_ed25519_key.pub"]).decode().strip()


def write_known_hosts(path: Path, port: int, host_key: str) -> Path:
    """A known_hosts file that trusts only `host_key` for the node's address and port."""
    key_type, blob = host_key.split()[:2]
    path.write_text(f"[{NODE_IP}]:{port} {key_type} {blob}\n")
    return path


def ssh_command(port: int, key: Key, known_hosts: Path, *extra: str) -> list[str]:
    return [
        "ssh",
        "-p",
        str(port),
        "-i",
        str(key.private),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",  # a changed or unknown host key fails the login
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
        *extra,
        f"t9kuser@{NODE_IP}",
    ]


_NOT_YET = ("Connection refused", "Connection reset", "Connection closed", "timed out")


def ssh(
    port: int, key: Key, known_hosts: Path, command: str, *, retry_for: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `command` over SSH; retried only while the server is not answering yet (a refused
    key or a wrong host key is returned at once, for the caller to check)."""
    deadline = time.monotonic() + retry_for
    while True:
        proc = subprocess.run(
            [*ssh_command(port, key, known_hosts), command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 255 or not any(s in proc.stderr for s in _NOT_YET):
            return proc
        if time.monotonic() > deadline:
            return proc
        time.sleep(2)


# --- Jupyter's REST API and kernels, as JupyterLab uses them ------------------------------


@dataclass(frozen=True)
class RemoteServer:
    """Stands in for tests.idle.jupyter.JupyterServer: JupyterUser only needs base_url."""

    base_url: str


@contextlib.asynccontextmanager
async def lab_user(base: str) -> AsyncIterator[JupyterUser]:
    """A JupyterUser against the notebook's server: loads the lab page first for the `_xsrf`
    cookie and sends it back as `X-XSRFToken`, as JupyterLab does (the image checks XSRF)."""
    wait_jupyter(base)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address host
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{base}lab") as page:
            page.raise_for_status()
        xsrf = next((c.value for c in jar if c.key == "_xsrf"), None)
        assert xsrf, f"no _xsrf cookie from {base}lab"
        session.headers["X-XSRFToken"] = xsrf
        server: Any = RemoteServer(base)  # duck-typed JupyterServer
        yield JupyterUser(session, server)


# --- idle policy -------------------------------------------------------------------------


def idle_policy(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": POLICY},
        "data": {"probeInterval": "2s", "probeTimeout": "5s", **data},
    }


def idle_controller_args(namespace: str) -> list[str]:
    """The controller reads the test's policy ConfigMap from the test namespace; the Jupyter
    probe uses the controller's default route (no --jupyter-url-template)."""
    return [
        f"--idle-policy-namespace={namespace}",
        f"--idle-policy-configmap={POLICY}",
        "--log-level=debug",
    ]


def parse_time(value: str) -> float:
    """An RFC 3339 time (Jupyter's or Kubernetes') as a POSIX timestamp."""
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

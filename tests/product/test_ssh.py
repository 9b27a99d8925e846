"""SSH as the product doc describes it, on the real node: the seed's SSH example (only the image
swapped), a key Secret made from a fresh `ssh-keygen` key, `ssh -p <nodePort>` to the node's
address with strict host-key checking against the notebook's host-key Secret, the same host key
after the pod is replaced, and a second key Secret added to `ssh.authorized_keys` later.

Adding a Secret to `ssh.authorized_keys` changes the pod template (the key Secrets are one
projected volume, one source per Secret), so the controller's StatefulSet rolls the pod: no
action by the user beyond editing the Notebook (docs/image.md, "SSH").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster, condition, get
from tests.product.notebooks import (
    Key,
    host_public_key,
    key_secret,
    keygen,
    node_port,
    patch_spec,
    pod_name,
    pod_uid,
    seed_notebook,
    ssh,
    wait_new_pod_ready,
    wait_notebook_ready,
    write_known_hosts,
)
from tests.realnode import REAL_NODE

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

SEED = "notebook-ssh-sample.yaml"
NB = "notebook-sample"  # the seed's name
KEY_SECRET = "my-public-key"  # the seed's key Secret
SECOND_SECRET = "my-second-key"


def login(port: int, key: Key, known_hosts: Path) -> list[str]:
    proc = ssh(port, key, known_hosts, "id -u; pwd")
    assert proc.returncode == 0, (
        f"ssh -p {port} t9kuser@node with {key.private.name} failed "
        f"(exit {proc.returncode}): {proc.stderr.strip()}"
    )
    return proc.stdout.split()


def test_seed_ssh_example_logs_in_and_keeps_its_host_key(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    tmp_path: Path,
) -> None:
    namespace = real_namespace
    first = keygen(tmp_path / "id_first")
    cluster.apply(key_secret(KEY_SECRET, first), namespace)
    manifest = seed_notebook(SEED, notebook_image)
    assert manifest["metadata"]["name"] == NB
    assert manifest["spec"]["ssh"] == {
        "authorized_keys": [KEY_SECRET],
        "enabled": True,
        "serviceType": "NodePort",
    }
    cluster.apply(manifest, namespace)
    notebook = wait_notebook_ready(cluster, namespace, NB)
    # the controller reads no Secret (docs/security.md): the keys are checked by logging in
    assert condition(notebook, "SSHKeysReady") == {}, notebook["status"]
    pod = cluster.get_json("pod", pod_name(NB), "-n", namespace)
    assert pod["spec"]["nodeName"] == REAL_NODE

    port = node_port(cluster, namespace, NB)
    host_key = host_public_key(cluster, namespace, NB)
    known_hosts = write_known_hosts(tmp_path / "known_hosts", port, host_key)
    print(
        f"\nssh -p {port} t9kuser@node; host key {host_key.split()[0]} {host_key.split()[1][:16]}…"
    )
    assert login(port, first, known_hosts) == ["1000", "/t9k/mnt"]

    # the pod goes and comes back (e.g. node drain, restart): same host identity
    old_uid = pod_uid(cluster, namespace, NB)
    cluster.kubectl("-n", namespace, "delete", "pod", pod_name(NB), "--wait=true")
    wait_new_pod_ready(cluster, namespace, NB, old_uid)
    assert host_public_key(cluster, namespace, NB) == host_key
    assert login(port, first, known_hosts) == ["1000", "/t9k/mnt"], "strict host-key check"

    # a second key, added later: refused until it is listed in the Notebook
    second = keygen(tmp_path / "id_second")
    cluster.apply(key_secret(SECOND_SECRET, second), namespace)
    refused = ssh(port, second, known_hosts, "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused
    old_uid = pod_uid(cluster, namespace, NB)
    began = time.monotonic()
    patch_spec(cluster, namespace, NB, {"ssh": {"authorized_keys": [KEY_SECRET, SECOND_SECRET]}})
    # the documented path: the key list is in the pod template, so the pod rolls by itself
    wait_new_pod_ready(cluster, namespace, NB, old_uid)
    rolled = time.monotonic() - began
    assert login(port, second, known_hosts) == ["1000", "/t9k/mnt"]
    assert login(port, first, known_hosts) == ["1000", "/t9k/mnt"]
    print(f"second key Secret added to ssh.authorized_keys: pod rolled, Ready in {rolled:.1f} s")
    rolled_notebook = get(cluster, namespace, "notebook", NB)
    assert condition(rolled_notebook, "SSHKeysReady") == {}, rolled_notebook
    assert host_public_key(cluster, namespace, NB) == host_key

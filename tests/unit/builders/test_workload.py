from __future__ import annotations

from typing import Any

from notebook_controller.api.models import Notebook
from notebook_controller.builders import workload
from notebook_controller.builders.meta import APPLIED_HASH_ANNOTATION
from tests.unit.builders.seeds import SEED_BASIC, served, with_spec


def _main(sts: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = sts["spec"]["template"]["spec"]["containers"]
    return containers[workload.main_container_index(containers)]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container["env"]}


def test_seed_example_gets_the_jupyter_defaults(basic: Notebook) -> None:
    sts = workload.statefulset(basic)
    assert sts["metadata"]["name"] == "managed-notebook-notebook-sample"
    assert sts["spec"]["replicas"] == 1
    container = _main(sts)
    prefix = "/t9k/notebooks/projects/proj/name/notebook-sample/"
    assert container["name"] == "tensorflow"  # the first container when none is `notebook`
    assert _env(container) == {"NB_PREFIX": prefix, "ENABLE_SSH_SERVER": "false"}
    assert container["ports"] == [{"name": "http", "containerPort": 8888, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": f"{prefix}api/status", "port": 8888}
    assert container["workingDir"] == "/t9k/mnt"
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert labels["notebook.tensorstack.dev/name"] == "notebook-sample"
    assert sts["spec"]["selector"]["matchLabels"] == {
        "notebook.tensorstack.dev/name": "notebook-sample"
    }


def test_child_is_controlled_by_the_notebook(basic: Notebook) -> None:
    [owner] = workload.statefulset(basic)["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "name": "notebook-sample",
        "uid": basic.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_user_settings_win_over_defaults(basic: Notebook) -> None:
    containers = [
        {"name": "sidecar", "image": "busybox"},
        {
            "name": "notebook",
            "image": "jupyter",
            "env": [{"name": "JUPYTER_ENABLE_LAB", "value": "yes"}],
            "ports": [{"name": "http", "containerPort": 9999}],
            "readinessProbe": {"tcpSocket": {"port": 9999}},
            "workingDir": "/home/me",
        },
    ]
    nb = with_spec(basic, template={"spec": {"containers": containers}})
    sts = workload.statefulset(nb)
    sidecar, main = sts["spec"]["template"]["spec"]["containers"]
    assert sidecar == {"name": "sidecar", "image": "busybox"}  # only the main one is touched
    assert _env(main) == {
        "JUPYTER_ENABLE_LAB": "yes",
        "NB_PREFIX": "/t9k/notebooks/projects/proj/name/notebook-sample/",
        "ENABLE_SSH_SERVER": "false",
    }
    assert main["ports"] == [{"name": "http", "containerPort": 9999}]
    assert main["readinessProbe"] == {"tcpSocket": {"port": 9999}}
    assert main["workingDir"] == "/home/me"


def test_the_readiness_probe_follows_the_users_http_port(basic: Notebook) -> None:
    # a user serving on 8080 (port named `http`): the probe must ask 8080, not 8888, or the pod
    # is never Ready (and later reclaimed as Unreachable)
    ports = [{"name": "http", "containerPort": 8080}]
    containers = [{"name": "notebook", "image": "jupyter", "ports": ports}]
    main = _main(
        workload.statefulset(with_spec(basic, template={"spec": {"containers": containers}}))
    )
    assert main["ports"] == ports
    prefix = "/t9k/notebooks/projects/proj/name/notebook-sample/"
    assert main["readinessProbe"]["httpGet"] == {"path": f"{prefix}api/status", "port": 8080}


def test_rstudio_gets_its_own_port_and_probe(basic: Notebook) -> None:
    main = _main(workload.statefulset(with_spec(basic, type="rstudio")))
    assert main["ports"] == [{"name": "http", "containerPort": 8787, "protocol": "TCP"}]
    assert main["readinessProbe"]["tcpSocket"] == {"port": 8787}


def test_paused_notebook_keeps_its_statefulset_at_zero_replicas(basic: Notebook) -> None:
    assert workload.statefulset(with_spec(basic, runMode="paused"))["spec"]["replicas"] == 0
    assert workload.statefulset(with_spec(basic, suspend=True))["spec"]["replicas"] == 0
    running = workload.statefulset(basic)
    paused = workload.statefulset(with_spec(basic, suspend=True))
    # resuming brings back the very same pod template (same volumes)
    assert paused["spec"]["template"] == running["spec"]["template"]


def test_a_template_change_changes_the_pod_template_and_the_applied_hash(basic: Notebook) -> None:
    before = workload.statefulset(basic)
    containers = [{"name": "tensorflow", "image": "t9kpublic/other:1"}]
    after = workload.statefulset(with_spec(basic, template={"spec": {"containers": containers}}))
    assert before["spec"]["template"] != after["spec"]["template"]
    hashes = {s["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] for s in (before, after)}
    assert len(hashes) == 2
    # rolling a not-Ready pod needs the Parallel policy (see module docstring)
    assert after["spec"]["podManagementPolicy"] == "Parallel"


def test_ssh_enabled_mounts_keys_and_turns_the_server_on(ssh: Notebook) -> None:
    sts = workload.statefulset(ssh)
    main = _main(sts)
    assert _env(main)["ENABLE_SSH_SERVER"] == "true"
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/t9k/authorized_keys"]["readOnly"] is True
    assert mounts["/t9k/host_keys"]["readOnly"] is True
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    host = volumes[mounts["/t9k/host_keys"]["name"]]
    assert host["secret"]["secretName"] == "managed-notebook-hostkey-notebook-sample"
    keys = volumes[mounts["/t9k/authorized_keys"]["name"]]
    [source] = keys["projected"]["sources"]
    # optional: a missing key Secret must not keep the pod from starting
    assert source["secret"] == {
        "name": "my-public-key",
        "optional": True,
        "items": [{"key": "ssh-publickey", "path": "my-public-key"}],
    }


def test_longest_name_gives_a_valid_statefulset() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    sts = workload.statefulset(served(SEED_BASIC, name=name))
    assert len(sts["metadata"]["name"]) <= 52
    label = sts["spec"]["template"]["metadata"]["labels"]["notebook.tensorstack.dev/name"]
    assert len(label) <= 63
    prefix = _env(_main(sts))["NB_PREFIX"]
    assert prefix == f"/t9k/notebooks/projects/proj/name/{name}/"

"""`kubectl notebook` against notebooks whose pods run on the KWOK nodes (nothing runs in
them; the controller and the API server are real): what each command prints and returns."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from notebook_controller.api.models import RECLAIMED_AT_ANNOTATION
from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster, condition, get, wait_condition, wait_for
from tests.kubectl.support import SCRIPTS, Plugin, ok, one_line_error, plugin_env
from tests.product.notebooks import keygen, seed_notebook

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

IMAGE = "registry.nbctl.local/notebook:1"  # never pulled: KWOK runs no containers
SEED = "notebook-sample"  # the seed examples' name


def stored(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The Notebook as the API server has it (it must exist)."""
    found = get(cluster, namespace, "notebook", name)
    assert found is not None, f"notebook {name} not found"
    return found


def test_create_list_describe_pause_resume_delete(
    cluster: Cluster, namespace: str, controller: ControllerProcess, plugin: Plugin, tmp_path: Path
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    created = plugin(
        "create",
        "gpu-nb",
        "-n",
        namespace,
        "--image",
        IMAGE,
        "--cpu",
        "500m",
        "--memory",
        "1Gi",
        "--gpu-percent",
        "30",
        "--ssh-key",
        str(key.private),  # the .pub is found
    )
    assert ok(created).splitlines() == [
        "notebook.tensorstack.dev/gpu-nb created",
        "secret/notebook-ssh-key-gpu-nb created",
    ]
    assert "waiting for notebook gpu-nb" in created.stderr
    assert "notebook gpu-nb is Ready" in created.stderr, created.stderr
    print("create, as printed on stderr:\n" + created.stderr)
    notebook = get(cluster, namespace, "notebook", "gpu-nb")
    assert notebook is not None and condition(notebook, "Ready")["status"] == "True"
    container = notebook["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "1Gi",
        "tensorstack.dev/nvidia-gpu-percent": 30,
    }
    assert notebook["spec"]["ssh"] == {
        "enabled": True,
        "serviceType": "ClusterIP",
        "authorized_keys": ["notebook-ssh-key-gpu-nb"],
    }
    secret = get(cluster, namespace, "secret", "notebook-ssh-key-gpu-nb")
    assert secret is not None
    assert base64.b64decode(secret["data"]["ssh-publickey"]).decode().strip() == key.public
    assert [o["uid"] for o in secret["metadata"]["ownerReferences"]] == [
        notebook["metadata"]["uid"]
    ]

    cluster.apply(seed_notebook("notebook-example.yaml", IMAGE), namespace)  # a seed-style one
    wait_condition(cluster, namespace, SEED, "Ready", "True")

    listed = json.loads(ok(plugin("list", "-n", namespace, "-o", "json")))
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["gpu-nb", SEED]
    assert {i["status"]["phase"] for i in listed["items"]} == {"Running"}
    table = ok(plugin("list", "-n", namespace)).splitlines()
    assert table[0].split() == ["NAME", "TYPE", "PHASE", "READY", "IDLE", "GPU", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    for item in listed["items"]:  # IDLE is the Idle condition, as one word
        idle = condition(item, "Idle")
        idle_cell = f"{idle['status']}/{idle['reason']}" if idle else "-"
        gpu = "30%" if item["metadata"]["name"] == "gpu-nb" else "-"
        expected = ["jupyter", "Running", "True", idle_cell, gpu]
        assert rows[item["metadata"]["name"]][1:6] == expected, table
    wide = ok(plugin("list", "-n", namespace, "-o", "wide")).splitlines()
    assert wide[0].split()[-5:] == ["PAUSED-AT", "QUEUE", "SSH", "IMAGE", "URL"]
    assert f"/t9k/notebooks/projects/{namespace}/name/gpu-nb/lab" in wide[1]
    everywhere = json.loads(ok(plugin("list", "-A", "-o", "json")))["items"]
    assert {(namespace, "gpu-nb"), (namespace, SEED)} <= {
        (i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere
    }
    all_table = ok(plugin("list", "--all-namespaces")).splitlines()
    assert all_table[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [namespace, "gpu-nb"] for line in all_table)
    as_yaml = yaml.safe_load(ok(plugin("list", "-n", namespace, "-o", "yaml")))
    assert [i["metadata"]["name"] for i in as_yaml["items"]] == ["gpu-nb", SEED]

    described = ok(plugin("describe", "gpu-nb", "-n", namespace))
    print(described)
    assert (
        "URL:" in described and f"/t9k/notebooks/projects/{namespace}/name/gpu-nb/lab" in described
    )
    assert f"SSH:       kubectl notebook ssh gpu-nb -n {namespace}" in described
    assert "Conditions:" in described and "Ready" in described

    # the controller's events on the notebook (a Normal `Ready` when it became Ready)
    def described_events() -> list[dict[str, str]] | None:
        shown = json.loads(ok(plugin("describe", "gpu-nb", "-n", namespace, "-o", "json")))
        found: list[dict[str, str]] = shown["events"]
        return found if any(e["object"] == "Notebook" for e in found) else None

    events = wait_for(described_events, timeout=30, message="the notebook's event in describe")
    kinds = {(e["object"], e["type"], e["reason"]) for e in events}
    assert ("Notebook", "Normal", "Ready") in kinds, events
    assert ("Pod", "Normal", "Scheduled") in kinds, events  # the pod's events too
    page = ok(plugin("describe", "gpu-nb", "-n", namespace)).splitlines()
    events_at = page.index("Events:")
    assert page[events_at + 1].split() == ["OBJECT", "TYPE", "REASON", "AGE", "COUNT", "MESSAGE"]
    assert any(line.split()[:3] == ["Notebook", "Normal", "Ready"] for line in page[events_at:])
    as_json = json.loads(ok(plugin("describe", SEED, "-n", namespace, "-o", "json")))
    assert as_json["name"] == SEED and as_json["ready"] == "True" and as_json["ssh"] is False
    assert as_json["commands"] == {"open": f"kubectl notebook open {SEED} -n {namespace}"}
    assert {c["type"]: c["status"] for c in as_json["conditions"]}["Ready"] == "True"

    # pause: the seed notebook (runMode) is paused; list shows when
    assert ok(plugin("pause", SEED, "-n", namespace)) == f"notebook.tensorstack.dev/{SEED} paused\n"
    assert stored(cluster, namespace, SEED)["spec"]["runMode"] == "paused"
    wait_condition(cluster, namespace, SEED, "Suspended", "True", "Suspended")
    paused = json.loads(ok(plugin("describe", SEED, "-n", namespace, "-o", "json")))
    assert paused["paused"] is True and paused["reclaimed"] is False and paused["paused_at"]
    row = next(r for r in ok(plugin("list", "-n", namespace)).splitlines() if r.startswith(SEED))
    assert row.split()[4].startswith("Paused/"), row

    # a reclaim as the idle reclaimer writes it: resume clears it and waits for Ready
    cluster.kubectl(
        "-n",
        namespace,
        "annotate",
        "notebook",
        SEED,
        f"{RECLAIMED_AT_ANNOTATION}=2026-01-01T00:00:00Z",
    )
    reclaimed = json.loads(ok(plugin("describe", SEED, "-n", namespace, "-o", "json")))
    assert reclaimed["reclaimed"] is True and reclaimed["paused_at"] == "2026-01-01T00:00:00Z"
    assert "Reclaimed/" in next(
        r for r in ok(plugin("list", "-n", namespace)).splitlines() if r.startswith(SEED)
    )
    resumed = plugin("resume", SEED, "-n", namespace)
    assert ok(resumed) == f"notebook.tensorstack.dev/{SEED} resumed\n"
    assert f"notebook {SEED} is Ready" in resumed.stderr
    after = stored(cluster, namespace, SEED)
    assert after["spec"]["runMode"] == "running"
    assert RECLAIMED_AT_ANNOTATION not in (after["metadata"].get("annotations") or {})
    assert condition(after, "Ready")["status"] == "True"

    # delete: the notebook, and (garbage collection) its key Secret
    assert ok(plugin("delete", "gpu-nb", "-n", namespace)) == (
        'notebook.tensorstack.dev "gpu-nb" deleted\n'
    )
    assert get(cluster, namespace, "notebook", "gpu-nb") is None
    wait_for(
        lambda: get(cluster, namespace, "secret", "notebook-ssh-key-gpu-nb") is None,
        timeout=60,
        message="the key Secret garbage-collected with its notebook",
    )


def test_suspend_style_seed_notebook_pauses_with_both_fields(
    cluster: Cluster, namespace: str, controller: ControllerProcess, plugin: Plugin
) -> None:
    manifest = seed_notebook("notebook-gpu-sample.yaml", IMAGE)
    manifest["spec"]["suspend"] = False  # the newer spelling: pause and resume keep it in step
    cluster.apply(manifest, namespace)
    name = manifest["metadata"]["name"]
    ok(plugin("pause", name, "-n", namespace))
    spec = stored(cluster, namespace, name)["spec"]
    assert (spec["suspend"], spec["runMode"]) == (True, "paused")
    ok(plugin("resume", name, "-n", namespace, "--no-wait"))
    spec = stored(cluster, namespace, name)["spec"]
    assert (spec["suspend"], spec["runMode"]) == (False, "running")


def test_missing_notebook_is_one_line_and_exit_1(
    namespace: str, notebook_crd: str, plugin: Plugin
) -> None:
    for command in (
        ["describe", "nope"],
        ["pause", "nope"],
        ["resume", "nope"],
        ["open", "nope"],
        ["ssh", "nope", "--", "true"],
        ["ssh-config", "nope"],
        ["logs", "nope"],
        ["delete", "nope"],
    ):
        line = one_line_error(plugin("-n", namespace, *command))  # flags before the command too
        assert line == f'error: notebook "nope" not found in namespace "{namespace}"', command


def test_usage_errors_exit_2(plugin: Plugin) -> None:
    for command in (["frobnicate"], ["describe"], ["create", "x"], ["list", "-o", "xml"]):
        proc = plugin(*command)
        assert proc.returncode == 2, (command, proc.stderr)
        assert "usage: kubectl notebook" in proc.stderr


def test_dry_run_server_creates_nothing_and_shows_the_servers_refusals(
    cluster: Cluster, namespace: str, notebook_crd: str, plugin: Plugin, tmp_path: Path
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    args = [
        "create",
        "dry",
        "-n",
        namespace,
        "--image",
        IMAGE,
        "--ssh-key",
        str(key.private) + ".pub",
    ]
    shown = yaml.safe_load(ok(plugin(*args, "--dry-run=server", "-o", "yaml")))
    assert [o["kind"] for o in shown["items"]] == ["Notebook", "Secret"]
    notebook, secret = shown["items"]
    assert notebook["metadata"]["namespace"] == namespace and notebook["metadata"]["uid"]
    assert notebook["spec"]["ssh"]["authorized_keys"] == [secret["metadata"]["name"]]
    assert get(cluster, namespace, "notebook", "dry") is None
    assert get(cluster, namespace, "secret", secret["metadata"]["name"]) is None
    # client-side: the same objects, made without asking the server
    local = yaml.safe_load(ok(plugin(*args, "--dry-run=client")))
    assert local["items"][0]["spec"] == notebook["spec"]
    # the API server's validation answers the server-side dry run
    line = one_line_error(plugin(*args, "--gpu-percent", "150", "--dry-run=server"))
    assert "must be a whole number from 1 to 100" in line, line
    assert get(cluster, namespace, "notebook", "dry") is None


def test_no_permission_shows_the_api_servers_message(
    cluster: Cluster, namespace: str, notebook_crd: str, plugin: Plugin
) -> None:
    """A ServiceAccount whose Role may read pods only (impersonated with --as, as kubectl does)."""
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "reader")
    cluster.kubectl(
        "-n", namespace, "create", "role", "pods-only", "--verb=get,list", "--resource=pods"
    )
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "reader",
        "--role=pods-only",
        f"--serviceaccount={namespace}:reader",
    )
    user = f"system:serviceaccount:{namespace}:reader"
    line = one_line_error(plugin("list", "-n", namespace, f"--as={user}"))
    assert line == (
        f'error: notebooks.tensorstack.dev is forbidden: User "{user}" cannot list resource '
        f'"notebooks" in API group "tensorstack.dev" in the namespace "{namespace}"'
    )
    line = one_line_error(plugin("create", "x", "-n", namespace, "--image", IMAGE, f"--as={user}"))
    assert f'User "{user}" cannot create resource "notebooks"' in line, line
    line = one_line_error(plugin("describe", "x", "-n", namespace, f"--as={user}"))
    assert f'User "{user}" cannot get resource "notebooks"' in line, line


def test_context_and_kubeconfig_flags(
    cluster: Cluster, namespace: str, notebook_crd: str, plugin: Plugin
) -> None:
    context = cluster.kubectl("config", "current-context").stdout.strip()
    flags = [f"--kubeconfig={cluster.kubeconfig}", f"--context={context}", "-n", namespace]
    ok(plugin("list", *flags))
    line = one_line_error(plugin("list", "--context=no-such-context", "-n", namespace))
    assert "no-such-context" in line, line
    line = one_line_error(plugin("list", f"--kubeconfig={namespace}-missing.yaml"))
    assert "kubeconfig" in line, line


def test_completion(
    cluster: Cluster, namespace: str, controller: ControllerProcess, plugin: Plugin
) -> None:
    cluster.apply(seed_notebook("notebook-example.yaml", IMAGE), namespace)
    script = ok(plugin("completion", "bash"))
    assert "complete -F _kubectl_notebook kubectl-notebook" in script
    env = plugin_env(cluster)

    def complete(*words: str) -> list[str]:
        # what kubectl runs for `kubectl notebook <TAB>` (kubectl_complete-<plugin>)
        proc = subprocess.run(
            [str(SCRIPTS / "kubectl_complete-notebook"), *words],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    assert complete("des") == ["describe", ":4"]
    assert complete("describe", "-n", namespace, "") == [SEED, ":4"]
    assert complete("-n", namespace, "ssh", "note") == [SEED, ":4"]
    assert complete("list", "-o", "") == ["json", "yaml", "wide", ":4"]
    # and through kubectl's own completion, which finds kubectl_complete-notebook on PATH
    proc = subprocess.run(
        [cluster.kubectl_path, "__complete", "notebook", "pause", "-n", namespace, ""],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.stdout.splitlines()[:1] == [SEED], (proc.stdout, proc.stderr)

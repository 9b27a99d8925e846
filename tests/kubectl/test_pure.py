"""The plugin's pure parts: what it shows, what it creates, the ssh options it pins, completion
of commands and flags, durations. No cluster."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notebook_controller.api.models import RECLAIMED_AT_ANNOTATION
from notebook_controller.kubectl import sshaccess, views
from notebook_controller.kubectl.cli import duration, parser
from notebook_controller.kubectl.completion import candidates
from notebook_controller.kubectl.connection import Target, context_namespace
from notebook_controller.kubectl.manifests import (
    NotebookRequest,
    key_secret_manifest,
    key_secret_name,
    notebook_manifest,
    public_key_error,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICXsnLc/gd51UoP9ToFGXZBnWHtG0iBrVcMxLG/y49Lk me@host"
)


def iso(delta: timedelta) -> str:
    return (NOW - delta).isoformat().replace("+00:00", "Z")


def notebook(**spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": "nb", "namespace": "ns", "creationTimestamp": iso(timedelta(hours=3))},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "side"},
                        {
                            "name": "notebook",
                            "image": "img",
                            "resources": {"requests": {"tensorstack.dev/nvidia-gpu-percent": 30}},
                        },
                    ]
                }
            },
            **spec,
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Idle", "status": "True", "reason": "NoActivity", "message": "m"},
            ],
        },
    }


def test_summary_of_a_running_notebook() -> None:
    summary = views.Summary.of(notebook())
    assert (summary.phase, summary.ready, summary.gpu, summary.image) == (
        "Running",
        "True",
        "30%",
        "img",  # the main container is `notebook`, not the first
    )
    assert summary.idle_text(NOW) == "True/NoActivity"
    assert views.age(summary.created, NOW) == "3h"


def test_summary_of_a_paused_and_a_reclaimed_notebook() -> None:
    paused = notebook(runMode="paused")
    paused["status"]["conditions"].append(  # type: ignore[index]
        {"type": "Suspended", "status": "True", "lastTransitionTime": iso(timedelta(minutes=5))}
    )
    assert views.Summary.of(paused).idle_text(NOW) == "Paused/5m"
    paused["metadata"]["annotations"] = {RECLAIMED_AT_ANNOTATION: iso(timedelta(days=3))}  # type: ignore[index]
    summary = views.Summary.of(paused)
    assert summary.reclaimed and summary.paused_at == iso(timedelta(days=3))
    assert summary.idle_text(NOW) == "Reclaimed/3d"
    # a reclaimed-at left on a running notebook (before the reclaimer drops it) is no pause
    running = notebook()
    running["metadata"]["annotations"] = {RECLAIMED_AT_ANNOTATION: iso(timedelta(days=3))}  # type: ignore[index]
    assert views.Summary.of(running).paused_at is None


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(5, "5s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"), (48 * 3600, "2d")],
)
def test_ages_as_kubectl_prints_them(seconds: int, shown: str) -> None:
    assert views.age(iso(timedelta(seconds=seconds)), NOW) == shown


def test_create_manifests() -> None:
    request = NotebookRequest(
        name="nb",
        namespace="ns",
        image="img",
        cpu="1",
        memory="2Gi",
        gpu_percent=30,
        queue="q",
        public_key=PUBLIC_KEY,
        rstudio=True,
    )
    manifest = notebook_manifest(request)
    spec = manifest["spec"]
    assert spec["type"] == "rstudio" and spec["scheduler"] == {"t9kScheduler": {"queue": "q"}}
    container = spec["template"]["spec"]["containers"][0]
    assert container["name"] == "notebook"
    assert (
        container["resources"]["limits"]
        == container["resources"]["requests"]
        == {
            "cpu": "1",
            "memory": "2Gi",
            "tensorstack.dev/nvidia-gpu-percent": 30,
        }
    )
    assert spec["ssh"]["authorized_keys"] == ["notebook-ssh-key-nb"]
    secret = key_secret_manifest(request, {"metadata": {"uid": "u1"}})
    assert secret["stringData"] == {"ssh-publickey": PUBLIC_KEY + "\n"}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert "ownerReferences" not in key_secret_manifest(request, None)["metadata"]
    plain = notebook_manifest(NotebookRequest(name="nb", namespace="ns", image="img"))
    assert "resources" not in plain["spec"]["template"]["spec"]["containers"][0]
    assert "ssh" not in plain["spec"]


def test_key_secret_names_stay_valid_for_any_notebook_name() -> None:
    long = "a." * 126 + "b"  # 253 characters, dots
    name = key_secret_name(long)
    assert len(name) <= 253 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert key_secret_name(long) == name != key_secret_name(long[:-1] + "c")


def test_public_key_check_refuses_a_private_key() -> None:
    assert public_key_error(PUBLIC_KEY + "\n", "k.pub") is None
    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    assert "is not an OpenSSH public key" in (public_key_error(private, "k") or "")


def test_ssh_options_pin_the_host_key() -> None:
    alias = sshaccess.host_alias("nb", "ns", None)
    assert alias == "nb.ns.notebook"
    options = dict(sshaccess.ssh_options(alias, Path("/kh"), ["kubectl", "x y"], "/id"))
    assert options["StrictHostKeyChecking"] == "yes"
    assert options["UserKnownHostsFile"] == "/kh" and options["GlobalKnownHostsFile"] == "/dev/null"
    assert options["HostKeyAlias"] == alias and options["User"] == "t9kuser"
    assert options["ProxyCommand"] == "kubectl 'x y'"
    block = sshaccess.config_block(alias, list(options.items()))
    assert block.splitlines()[0] == "Host nb.ns.notebook"
    assert "    StrictHostKeyChecking yes" in block.splitlines()


def test_completion_of_commands_flags_and_values() -> None:
    top = parser()
    assert candidates(top, ["re"]) == ["resume"]
    assert "ssh-proxy" not in candidates(top, [""])  # the ProxyCommand is not for typing
    assert "--dry-run" in candidates(top, ["create", "x", "--d"])
    assert candidates(top, ["create", "x", "--dry-run", ""]) == ["none", "client", "server"]
    assert candidates(top, ["list", "-o", "y"]) == ["yaml"]
    assert candidates(top, ["completion", ""]) == ["bash", "zsh"]
    assert candidates(top, ["describe", "nb", ""]) == []  # one name only: nothing more


def test_durations() -> None:
    assert [duration(t) for t in ("90", "30s", "5m", "1h", "500ms")] == [90, 30, 300, 3600, 0.5]
    with pytest.raises(argparse.ArgumentTypeError):
        duration("soon")


def test_namespace_from_the_merged_kubeconfig_files(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(
        "current-context: dev\n"
        "contexts:\n- name: dev\n  context: {cluster: c, user: u, namespace: team}\n"
    )
    second.write_text(
        "current-context: prod\n"
        "contexts:\n- name: dev\n  context: {cluster: c, user: u, namespace: ignored}\n"
        "- name: prod\n  context: {cluster: c, user: u}\n"
    )
    assert context_namespace([first, second], None) == "team"  # the first file wins
    assert context_namespace([first, second], "prod") is None  # none set: `default`
    assert context_namespace([tmp_path / "missing.yaml", second], None) is None


async def test_as_adds_impersonation_to_the_kubeconfig_credentials(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters:\n- name: k\n  cluster: {server: 'http://127.0.0.1:1'}\n"
        "users:\n- name: u\n  user: {token: secret-token}\n"
        "contexts:\n- name: c\n  context: {cluster: k, user: u, namespace: team}\n"
        "- name: other\n  context: {cluster: k, user: u}\n"
    )
    target = Target(kubeconfig=str(kubeconfig), impersonate="alice")
    async with await target.client() as client:
        headers, _ = await client.configuration.auth()
    assert headers == {"Authorization": "Bearer secret-token", "Impersonate-User": "alice"}
    assert target.resolved_namespace() == "team"
    plain = Target(kubeconfig=str(kubeconfig), context="other")
    async with await plain.client() as client:
        headers, _ = await client.configuration.auth()
    assert headers == {"Authorization": "Bearer secret-token"}
    assert plain.resolved_namespace() == "default"
    assert plain.kubectl_flags() == [f"--kubeconfig={kubeconfig}", "--context=other"]

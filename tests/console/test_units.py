"""The console's pure parts, without a cluster: who is asking, the "why" sentences, the patches
Pause and Resume send, SSH command lines, and the Create form's Notebook and error placement."""

from __future__ import annotations

from typing import Any

from notebook_controller.api.models import RECLAIMED_AT_ANNOTATION
from notebook_controller.builders.raw import run_mode_patch
from notebook_controller.console.forms import CreateForm
from notebook_controller.console.identity import IdentitySettings, identify
from notebook_controller.console.kubeapi import User
from notebook_controller.console.views import view

SECRET = "s3cret-s3cret-s3cret"
HEADER_MODE = IdentitySettings(mode="header", proxy_secret=SECRET)


def test_kubeconfig_mode_acts_as_the_kubeconfig_user() -> None:
    user = identify(IdentitySettings(), {"X-Forwarded-User": "mallory"})
    assert user is not None and user.impersonate is False and user.name != "mallory"


def test_header_mode_trusts_the_user_header_only_with_the_proxy_secret() -> None:
    proxy = {"X-Console-Proxy-Secret": SECRET}
    assert identify(HEADER_MODE, {**proxy, "X-Forwarded-User": "alice"}) == User("alice")
    assert identify(
        HEADER_MODE, {**proxy, "X-Forwarded-User": "alice", "X-Forwarded-Groups": "a, b,"}
    ) == User("alice", ("a", "b"))
    assert identify(HEADER_MODE, {"X-Forwarded-User": "alice"}) is None  # forged
    wrong = {"X-Console-Proxy-Secret": "guess", "X-Forwarded-User": "alice"}
    assert identify(HEADER_MODE, wrong) is None
    assert identify(HEADER_MODE, proxy) is None  # the proxy named nobody
    assert identify(HEADER_MODE, {**proxy, "X-Forwarded-User": "system:admin"}) is None
    groups = {**proxy, "X-Forwarded-User": "bob", "X-Forwarded-Groups": "system:masters,dev"}
    assert identify(HEADER_MODE, groups) == User("bob", ("dev",))
    assert identify(IdentitySettings(mode="header"), {"X-Forwarded-User": "a"}) is None
    assert SECRET not in repr(HEADER_MODE)


def test_impersonation_headers_carry_every_group() -> None:
    headers = User("alice", ("a", "b")).headers()
    assert headers.getall("Impersonate-Group") == ["a", "b"]
    assert headers["Impersonate-User"] == "alice"
    assert not User("x", impersonate=False).headers()


def notebook(**extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "metadata": {"name": "nb", "namespace": "ns", "annotations": {}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {},
    }
    for key, value in extra.items():
        found[key] = {**found[key], **value}
    return found


def test_why_a_notebook_is_paused_or_not_ready() -> None:
    reclaimed = notebook(
        metadata={"annotations": {RECLAIMED_AT_ANNOTATION: "2026-01-01T14:02:00Z"}},
        spec={"runMode": "paused"},
    )
    assert view(reclaimed).why.startswith("paused by the idle reclaimer at 2026-01-01T14:02:00Z")
    assert view(reclaimed).paused and view(reclaimed).phase == "Suspended"
    # Ready=True lingers while the pod terminates: a paused notebook is not offered to Open
    going = notebook(
        spec={"runMode": "paused"}, status={"conditions": [{"type": "Ready", "status": "True"}]}
    )
    assert not view(going).ready
    by_user = notebook(spec={"runMode": "paused"})
    assert view(by_user).why.startswith("paused by a user: ")
    pulling = notebook(
        status={
            "phase": "Failed",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "ImagePullBackOff",
                    "message": "container c: cannot pull image i: not found",
                }
            ],
        }
    )
    assert view(pulling).why == "container c: cannot pull image i: not found"
    queued = notebook(
        spec={"scheduler": {"t9kScheduler": {"queue": "default"}}},
        status={
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available",
                }
            ]
        },
    )
    assert view(queued).why == "waiting for resources in queue default: 0/3 nodes are available"
    idle = notebook(
        status={
            "conditions": [
                {"type": "Ready", "status": "True"},
                {
                    "type": "Idle",
                    "status": "True",
                    "message": "The Notebook is idle: no activity since t",
                },
            ]
        }
    )
    assert view(idle).ready and view(idle).idle.startswith("The Notebook is idle")


def test_pause_and_resume_patches() -> None:
    assert run_mode_patch(notebook(), paused=True) == {"spec": {"runMode": "paused"}}
    assert run_mode_patch(notebook(spec={"suspend": False}), paused=True) == {
        "spec": {"runMode": "paused", "suspend": True}
    }
    reclaimed = notebook(
        metadata={"annotations": {RECLAIMED_AT_ANNOTATION: "t"}}, spec={"runMode": "paused"}
    )
    assert run_mode_patch(reclaimed, paused=False) == {
        "spec": {"runMode": "running"},
        "metadata": {"annotations": {RECLAIMED_AT_ANNOTATION: None}},
    }
    assert run_mode_patch(notebook(spec={"suspend": True}), paused=False) == {
        "spec": {"runMode": "running", "suspend": False}
    }


def test_ssh_command_lines() -> None:
    node_port = notebook(status={"ssh": {"serviceName": "svc", "port": 22, "nodePort": 31022}})
    assert view(node_port, ssh_host="192.0.2.9").ssh == "ssh -p 31022 t9kuser@192.0.2.9"
    cluster_ip = notebook(status={"ssh": {"serviceName": "svc", "port": 22}})
    assert view(cluster_ip).ssh.startswith("kubectl -n ns port-forward svc/svc 2222:22")
    assert view(notebook()).ssh == ""


def test_form_makes_the_seed_gpu_notebook_and_places_the_api_servers_causes() -> None:
    form = CreateForm.from_post(
        {
            "namespace": "ns",
            "name": "nb",
            "image": "img",
            "cpu": "0.5",
            "memory": "1Gi",
            "gpu_percent": "30",
            "queue": "default",
            "ssh": "on",
            "ssh_key_secret": "key",
        }
    )
    spec = form.notebook()["spec"]
    assert spec["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "0.5",
        "memory": "1Gi",
        "tensorstack.dev/nvidia-gpu-percent": 30,
    }
    assert spec["scheduler"] == {"t9kScheduler": {"queue": "default"}}
    assert spec["ssh"] == {"enabled": True, "authorized_keys": ["key"], "serviceType": "NodePort"}
    minimal = CreateForm.from_post({"namespace": "ns", "name": "nb", "image": "img"}).notebook()
    assert "resources" not in minimal["spec"]["template"]["spec"]["containers"][0]
    assert "ssh" not in minimal["spec"] and "scheduler" not in minimal["spec"]

    causes = [
        {"field": "metadata.name", "message": 'Invalid value: "A": bad'},
        {
            "field": "spec.template.spec.containers[0].resources.requests.cpu",
            "message": 'Invalid value: "x": should match',
        },
        {
            "field": "spec.template.spec.containers[0].resources.requests."
            "tensorstack.dev/nvidia-gpu-percent",
            "message": "bad gpu",
        },
        {"field": "<nil>", "message": "some validation rules were not checked"},
    ]
    form.add_refusal(422, "Notebook is invalid", {"details": {"causes": causes}})
    assert form.errors == {
        "name": 'metadata.name: Invalid value: "A": bad',
        "cpu": 'spec.template.spec.containers[0].resources.requests.cpu: Invalid value: "x":'
        " should match",
        "gpu_percent": "spec.template.spec.containers[0].resources.requests."
        "tensorstack.dev/nvidia-gpu-percent: bad gpu",
    }
    refused = CreateForm.empty("ns")
    refused.add_refusal(403, 'notebooks is forbidden: User "v" cannot create', {})
    assert refused.errors == {"": 'refused: notebooks is forbidden: User "v" cannot create'}
    assert not CreateForm.empty().check_local()


def test_the_consoles_cookie_is_not_sent_to_notebooks() -> None:
    from notebook_controller.console.gateway import _without_cookie

    header = "_xsrf=2|abc; console_csrf=token; username-x=y"
    assert _without_cookie(header, "console_csrf") == "_xsrf=2|abc; username-x=y"
    assert _without_cookie("console_csrf=token", "console_csrf") == ""

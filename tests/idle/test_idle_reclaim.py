"""The idle reclaimer end to end: the controller process against the local control plane, its
probe pointed (`--jupyter-url-template`) at a real jupyter_server serving under the notebook's
base_url. KWOK runs no containers, so the notebook pods are Ready without a server in them; the
test's server stands in for the one the pod would run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from notebook_controller.api.models import RECLAIMED_AT_ANNOTATION
from notebook_controller.idle.policy import OPT_OUT_ANNOTATION
from tests.e2e.controller import ControllerProcess, audit_position, controller_writes, iso_now
from tests.idle.jupyter import (
    JupyterServer,
    JupyterUser,
    free_port,
    notebook_prefix,
    start_jupyter_server,
)
from tests.kube import Cluster, condition, get, wait_condition, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

T = TypeVar("T")
NB = "idle-nb"
POD = f"managed-notebook-{NB}-0"
HTTP_SERVICE = f"managed-notebook-http-{NB}"
POLICY = "idle-policy"
IDLE_TIMEOUT = 8
RECLAIM_GRACE = 8


def notebook(
    name: str, type_: str = "jupyter", annotations: dict[str, str] | None = None, **run: Any
) -> dict[str, Any]:
    """A notebook; `run` is its run-mode field (default `runMode: running`)."""
    return {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "type": type_,
            **(run or {"runMode": "running"}),
            "template": {"spec": {"containers": [{"name": "notebook", "image": "jupyter:1"}]}},
        },
    }


def policy(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": POLICY},
        "data": {"probeInterval": "1s", "probeTimeout": "2s", **data},
    }


def patch_notebook(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl(
        "-n", namespace, "patch", "notebook", name, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def as_user(server: JupyterServer, action: Callable[[JupyterUser], Awaitable[T]]) -> T:
    async def act() -> T:
        async with aiohttp.ClientSession() as session:
            return await action(JupyterUser(session, server))

    return asyncio.run(act())


@pytest.fixture
def server(namespace: str, tmp_path: Path) -> Iterator[JupyterServer]:
    started = start_jupyter_server(tmp_path / "jupyter", notebook_prefix(namespace, NB))
    yield started
    started.stop()


@pytest.fixture
def controller(
    cluster: Cluster,
    namespace: str,
    notebook_crd: str,
    server: JupyterServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ControllerProcess]:
    cluster.apply(
        policy(idleTimeout=f"{IDLE_TIMEOUT}s", reclaimGrace=f"{RECLAIM_GRACE}s"), namespace
    )
    running = ControllerProcess(
        cluster,
        namespace,
        tmp_path / "controller.log",
        extra_args=[
            f"--jupyter-url-template={server.url_template}",
            f"--idle-policy-namespace={namespace}",
            f"--idle-policy-configmap={POLICY}",
            "--log-level=debug",
        ],
        health_port=free_port(),
    )
    running.start()
    yield running
    running.stop_and_report(request)


def idle_condition(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return condition(get(cluster, namespace, "notebook", name), "Idle")


def test_busy_then_idle_notebook_is_reclaimed_and_resumes(
    cluster: Cluster, namespace: str, server: JupyterServer, controller: ControllerProcess
) -> None:
    for body in (notebook(NB), notebook("no-server-nb"), notebook("rstudio-nb", "rstudio")):
        cluster.apply(body, namespace)
    wait_condition(cluster, namespace, NB, "Ready", "True")

    # A cell sleeping longer than idle timeout + grace keeps the notebook active throughout.
    kernel_id = as_user(server, lambda user: user.start_kernel())
    as_user(server, lambda user: user.execute(kernel_id, "import time\ntime.sleep(25)"))
    wait_condition(cluster, namespace, NB, "Idle", "False", "KernelBusy", timeout=30)
    # the neighbour's first verdict (its probes fail: Unknown) may wait for a few failures
    wait_condition(cluster, namespace, "no-server-nb", "Idle", "Unknown", timeout=60)
    since = audit_position()
    deadline = time.monotonic() + IDLE_TIMEOUT + RECLAIM_GRACE + 2
    while time.monotonic() < deadline:
        seen = get(cluster, namespace, "notebook", NB)
        assert seen is not None and seen["spec"]["runMode"] == "running"
        assert condition(seen, "Idle").get("reason") == "KernelBusy"
        time.sleep(1)
    # ~18 probes of a steadily busy notebook (and of its failing neighbour): nothing to write
    writes = controller_writes(namespace, since)
    assert [w["requestURI"] for w in writes if w["objectRef"]["resource"] == "notebooks"] == []

    # The cell ends; nothing else happens: Idle, then paused.
    idle = wait_condition(cluster, namespace, NB, "Idle", "True", "NoActivity", timeout=60)
    last_activity = as_user(server, lambda user: user.kernel(kernel_id))["last_activity"]
    assert f"no activity since {last_activity[:19]}Z" in condition(idle, "Idle")["message"]

    def paused_notebook() -> dict[str, Any] | None:
        found = get(cluster, namespace, "notebook", NB)
        return found if found is not None and found["spec"]["runMode"] == "paused" else None

    paused = wait_for(paused_notebook, timeout=60, message="the idle notebook to be paused")
    assert paused is not None
    assert RECLAIMED_AT_ANNOTATION in paused["metadata"]["annotations"]
    reclaimed = [e for e in cluster.events(namespace, NB) if e["reason"] == "Reclaimed"]
    assert len(reclaimed) == 1 and reclaimed[0]["type"] == "Normal"
    assert "no activity since" in reclaimed[0]["message"]
    wait_for(lambda: get(cluster, namespace, "pod", POD) is None, timeout=60, message="pod removed")
    assert get(cluster, namespace, "service", HTTP_SERVICE) is not None
    wait_condition(cluster, namespace, NB, "Suspended", "True", "IdleReclaimed")
    assert idle_condition(cluster, namespace, NB) == {}  # nothing to probe while paused

    # Neighbours: a failed probe is Unknown and never reclaimed; rstudio is never probed.
    no_server = get(cluster, namespace, "notebook", "no-server-nb")
    assert no_server is not None and no_server["spec"]["runMode"] == "running"
    assert condition(no_server, "Idle")["status"] == "Unknown"
    assert condition(no_server, "Idle")["reason"] == "ProbeFailed"
    assert "http-404" in condition(no_server, "Idle")["message"]
    assert idle_condition(cluster, namespace, "rstudio-nb") == {}

    # Resume: the user sets it running; a fresh idle clock starts with the new pod.
    patch_notebook(cluster, namespace, NB, {"runMode": "running"})
    wait_condition(cluster, namespace, NB, "Ready", "True", timeout=60)
    fresh = wait_condition(cluster, namespace, NB, "Idle", "False", "RecentActivity", timeout=30)
    assert RECLAIMED_AT_ANNOTATION not in (fresh["metadata"].get("annotations") or {})
    assert fresh["spec"]["runMode"] == "running"

    metrics = controller.metrics()
    assert metrics['notebook_controller_notebooks_reclaimed_total{reason="Idle"}'] == 1
    assert metrics['notebook_controller_activity_probe_failures_total{reason="http-404"}'] > 10
    assert (
        metrics['notebook_controller_activity_probe_duration_seconds_count{probe="jupyter"}'] > 20
    )
    assert "notebook_controller_notebooks_idle" in metrics


def test_suspend_field_opt_out_and_policy_hot_reload(
    cluster: Cluster, namespace: str, server: JupyterServer, controller: ControllerProcess
) -> None:
    opt_out = {OPT_OUT_ANNOTATION: "disabled"}
    cluster.apply(notebook(NB, suspend=False), namespace)
    cluster.apply(notebook("opted-out-nb", annotations=opt_out), namespace)
    # The policy doesn't allow opting out (yet): the annotation is ignored and it is probed.
    wait_condition(cluster, namespace, "opted-out-nb", "Idle", "Unknown", "ProbeFailed")

    # Hot reload: allow opting out, shorter timeouts.
    cluster.apply(policy(idleTimeout="3s", reclaimGrace="3s", allowOptOut="true"), namespace)
    wait_for(
        lambda: idle_condition(cluster, namespace, "opted-out-nb") == {},
        timeout=30,
        message="the opted-out notebook's Idle condition to go",
    )

    # A notebook written with `suspend` is paused with `suspend: true`, not with runMode.
    def suspended() -> dict[str, Any] | None:
        found = get(cluster, namespace, "notebook", NB)
        return found if found is not None and found["spec"].get("suspend") is True else None

    paused = wait_for(suspended, timeout=60, message="the idle notebook to be suspended")
    assert paused is not None and "runMode" not in paused["spec"]
    assert RECLAIMED_AT_ANNOTATION in paused["metadata"]["annotations"]
    opted_out = get(cluster, namespace, "notebook", "opted-out-nb")
    assert opted_out is not None and opted_out["spec"]["runMode"] == "running"

    patch_notebook(cluster, namespace, NB, {"suspend": False})
    wait_condition(cluster, namespace, NB, "Idle", "False", "RecentActivity", timeout=60)

    # A bad edit is reported on the ConfigMap and changes nothing: the notebook still idles.
    cluster.apply(policy(idleTimeout="soon", reclaimGrace="1h"), namespace)
    warning = wait_for(
        lambda: [
            e for e in cluster.events(namespace, POLICY) if e["reason"] == "InvalidIdlePolicy"
        ],
        timeout=30,
        message="a Warning event on the policy ConfigMap",
    )
    assert warning[0]["type"] == "Warning"
    assert "idleTimeout: 'soon' is not a duration" in warning[0]["message"]
    wait_condition(cluster, namespace, NB, "Idle", "True", "NoActivity", timeout=30)

    # Turning reclamation off removes the Idle condition; nothing is paused any more.
    cluster.apply(policy(enabled="false"), namespace)
    wait_for(
        lambda: idle_condition(cluster, namespace, NB) == {},
        timeout=30,
        message="Idle to go once the policy is disabled",
    )
    time.sleep(4)
    still = get(cluster, namespace, "notebook", NB)
    assert still is not None and still["spec"]["suspend"] is False


def paused(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    found = get(cluster, namespace, "notebook", name)
    return found if found is not None and found["spec"].get("runMode") == "paused" else None


def policy_loaded(controller: ControllerProcess, **fields: Any) -> bool:
    """The controller logged loading a policy with these values (after any earlier one)."""
    loads = [line for line in controller.log_lines() if line.get("event") == "idle policy loaded"]
    return bool(loads) and all(loads[-1].get(key) == value for key, value in fields.items())


def test_a_pause_after_resuming_a_reclaimed_notebook_is_the_users(
    cluster: Cluster, namespace: str, server: JupyterServer, controller: ControllerProcess
) -> None:
    """reclaimed-at goes on resume even where the policy no longer applies, so a later pause by
    the user reads as Suspended, not IdleReclaimed."""
    cluster.apply(notebook(NB), namespace)
    wait_for(lambda: paused(cluster, namespace, NB), timeout=90, message="the notebook reclaimed")
    wait_condition(cluster, namespace, NB, "Suspended", "True", "IdleReclaimed", timeout=30)

    # the admin turns reclamation off; then the user resumes the notebook
    cluster.apply(policy(enabled="false"), namespace)
    wait_for(
        lambda: policy_loaded(controller, enabled=False),
        timeout=30,
        message="the controller to load the disabled policy",
    )
    patch_notebook(cluster, namespace, NB, {"runMode": "running"})

    def annotation_gone() -> bool:
        found = get(cluster, namespace, "notebook", NB) or {}
        return RECLAIMED_AT_ANNOTATION not in (found.get("metadata", {}).get("annotations") or {})

    wait_for(annotation_gone, timeout=30, message="reclaimed-at removed on resume")
    wait_condition(cluster, namespace, NB, "Ready", "True", timeout=60)

    # the user pauses it: their pause, not a reclaim
    patch_notebook(cluster, namespace, NB, {"runMode": "paused"})
    wait_condition(cluster, namespace, NB, "Suspended", "True", "Suspended", timeout=30)
    found = get(cluster, namespace, "notebook", NB)
    assert found is not None
    assert RECLAIMED_AT_ANNOTATION not in (found["metadata"].get("annotations") or {})


def test_turning_ssh_off_removes_status_ssh(
    cluster: Cluster, namespace: str, server: JupyterServer, controller: ControllerProcess
) -> None:
    """status.ssh.lastSshClientActivity is the idle manager's; with SSH off it stops sending it
    and server-side apply removes it (with the rest of status.ssh, the status manager's)."""
    cluster.apply(policy(idleTimeout="5m", reclaimGrace="5m"), namespace)
    body = notebook(NB)
    body["spec"]["ssh"] = {"enabled": True, "authorized_keys": ["user-key"]}
    cluster.apply(body, namespace)
    # KWOK runs no kubelet to exec in: the SSH probe fails there, nothing is idle
    wait_condition(cluster, namespace, NB, "Idle", "Unknown", "SshProbeFailed", timeout=60)

    # What the idle reclaimer of an earlier version wrote when its probe saw an SSH client, under
    # its own field manager (the real node shows a probe seeing one; here the apply is made for
    # it): turning SSH off must still remove status.ssh, that manager's ownership released.
    seen = get(cluster, namespace, "notebook", NB)
    own = {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "metadata": {"name": NB},
        "status": {
            "conditions": [condition(seen, "Idle")],
            "ssh": {"lastSshClientActivity": iso_now()},
        },
    }
    cluster.kubectl(
        "-n",
        namespace,
        "apply",
        "--server-side",
        "--subresource=status",
        "--field-manager=notebook-controller-idle",
        "-f",
        "-",
        input=json.dumps(own),
    )
    found = get(cluster, namespace, "notebook", NB)
    assert found is not None and "lastSshClientActivity" in found["status"]["ssh"]
    assert "serviceName" in found["status"]["ssh"]

    patch_notebook(cluster, namespace, NB, {"ssh": {"enabled": False}})
    wait_for(
        lambda: "ssh" not in ((get(cluster, namespace, "notebook", NB) or {}).get("status") or {}),
        timeout=30,
        message="status.ssh to go once SSH is off",
    )
    # and the probe goes on without SSH
    wait_condition(cluster, namespace, NB, "Idle", "False", "RecentActivity", timeout=30)

"""The idle reclaimer on the real node, with its default probe route (out of the cluster: the API
server's Service proxy) and real pods: the standard notebook image, and testimage crash-looping.

- `Idle` follows the pod within seconds of it turning Ready, or being replaced, with the default
  five-minute probe interval (probes are rate-limited, state changes are not);
- a restart of the controller in the middle of a crash loop doesn't restart the Unreachable
  clock: it is the pod's Ready condition's lastTransitionTime, not the process's memory;
- a restart after an SSH-only session doesn't forget it: the recorded
  `status.ssh.lastSshClientActivity` is read back as activity.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from notebook_controller.runtime.clock import parse_rfc3339 as parse_time
from tests.e2e.controller import ControllerProcess, sleep_until
from tests.idle.jupyter import free_port
from tests.kube import Cluster, condition, get, wait_condition, wait_for
from tests.realnode import NODE_IP, TEST_IMAGE

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

POLICY = "idle-policy"


@pytest.fixture
def controller(
    cluster: Cluster,
    real_namespace: str,
    notebook_crd: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ControllerProcess]:
    """The controller as `make run` starts it (no URL template), not started yet: each test
    applies its policy first."""
    running = ControllerProcess(
        cluster,
        real_namespace,
        tmp_path / "controller.log",
        extra_args=[
            f"--idle-policy-namespace={real_namespace}",
            f"--idle-policy-configmap={POLICY}",
            "--log-level=debug",
        ],
        health_port=free_port(),
    )
    yield running
    running.stop_and_report(request)


def policy(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": POLICY},
        "data": {"probeTimeout": "5s", **data},
    }


def notebook(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "metadata": {"name": name},
        "spec": {
            "type": "jupyter",
            "runMode": "running",
            "template": {"spec": {"containers": [{"name": "notebook", **container}]}},
            **spec,
        },
    }


def pod_of(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    return get(cluster, namespace, "pod", f"managed-notebook-{name}-0")


def ready_since(pod: dict[str, Any] | None) -> datetime | None:
    """The pod's Ready condition's lastTransitionTime, when it is True."""
    found = condition(pod, "Ready")
    return parse_time(found["lastTransitionTime"]) if found.get("status") == "True" else None


def idle_of(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return condition(get(cluster, namespace, "notebook", name), "Idle")


def running(cluster: Cluster, namespace: str, name: str) -> bool:
    found = get(cluster, namespace, "notebook", name)
    return found is not None and found["spec"].get("runMode") == "running"


def test_idle_follows_the_pod_within_seconds_with_the_default_interval(
    cluster: Cluster, real_namespace: str, notebook_image: str, controller: ControllerProcess
) -> None:
    """The reported case: Ready in seconds, `IDLE Unknown` (NotRunning) for the whole 5 min."""
    namespace, name = real_namespace, "follows"
    cluster.apply(policy(probeInterval="5m"), namespace)
    controller.start()
    cluster.apply(notebook(name, {"image": notebook_image}), namespace)
    wait_condition(cluster, namespace, name, "Ready", "True", timeout=180)
    active = wait_condition(cluster, namespace, name, "Idle", "False", "RecentActivity", timeout=30)
    ready_at = ready_since(pod_of(cluster, namespace, name))
    assert ready_at is not None
    lag = parse_time(condition(active, "Idle")["lastTransitionTime"]) - ready_at
    print(f"\nIdle=False/RecentActivity {lag.total_seconds():.0f} s after the pod turned Ready")
    assert lag.total_seconds() <= 15

    # The pod is replaced: Idle shows it gone, then the new pod is probed at once.
    old = pod_of(cluster, namespace, name)
    assert old is not None
    cluster.kubectl("-n", namespace, "delete", "pod", old["metadata"]["name"], "--wait=false")

    def new_pod_ready() -> dict[str, Any] | None:
        found = pod_of(cluster, namespace, name)
        fresh = found is not None and found["metadata"]["uid"] != old["metadata"]["uid"]
        return found if fresh and ready_since(found) is not None else None

    new = wait_for(new_pod_ready, timeout=120, message="the replacement pod Ready")
    again = wait_condition(cluster, namespace, name, "Idle", "False", "RecentActivity", timeout=30)
    new_ready_at = ready_since(new)
    assert new_ready_at is not None
    relag = parse_time(condition(again, "Idle")["lastTransitionTime"]) - new_ready_at
    print(f"replaced pod: Idle=False {relag.total_seconds():.0f} s after it turned Ready")
    assert relag.total_seconds() <= 15
    # in between it said so (the controller's writes, from its log)
    written = [
        line.get("reason")
        for line in controller.log_lines()
        if line.get("event") == "idle status applied"
    ]
    assert "RecentActivity" in written
    gap = written[written.index("RecentActivity") + 1 :]
    assert {"NotRunning", "NotReady"} & set(gap), written


def test_a_restart_does_not_restart_the_unreachable_clock(
    cluster: Cluster, real_namespace: str, controller: ControllerProcess
) -> None:
    """A crash-looping notebook is paused `idleTimeout + reclaimGrace` after its pod stopped
    being Ready, even though the controller restarted two thirds of the way through."""
    namespace, name = real_namespace, "crashing"
    cluster.apply(policy(probeInterval="2s", idleTimeout="20s", reclaimGrace="20s"), namespace)
    controller.start()
    crashing = {"image": TEST_IMAGE, "command": ["sh", "-c", "echo crashing; exit 1"]}
    cluster.apply(notebook(name, crashing), namespace)
    wait_condition(cluster, namespace, name, "Idle", "Unknown", "NotReady", timeout=120)
    noticed = time.monotonic()

    def names_the_pods_clock() -> str | None:
        # the pod's Ready condition's lastTransitionTime (until the kubelet posts it, the time
        # the controller first saw the pod on its node)
        since = condition(pod_of(cluster, namespace, name), "Ready").get("lastTransitionTime")
        found = idle_of(cluster, namespace, name).get("message", "")
        return found if found == f"The Notebook's server has not been ready since {since}" else None

    message = wait_for(names_the_pods_clock, timeout=30, message="NotReady since the pod's time")

    sleep_until(noticed + 20)
    assert running(cluster, namespace, name)
    controller.stop()
    sleep_until(noticed + 28)
    controller.start()  # 28 s in: a fresh clock would pause it 40 s from now
    messages: list[str] = []

    def paused() -> bool:
        messages.append(idle_of(cluster, namespace, name).get("message", message))
        return not running(cluster, namespace, name)

    wait_for(paused, timeout=120, interval=1, message="the crash-looping notebook paused")
    after = time.monotonic() - noticed
    print(f"\npaused {after:.0f} s after Idle=NotReady was seen (policy: 20s + 20s)")
    assert after < 56, f"paused {after:.0f} s in: the restart restarted the clock"
    assert set(messages) == {message}  # the same clock before and after the restart
    events = [e for e in cluster.events(namespace, name) if e["reason"] == "Reclaimed"]
    assert len(events) == 1 and "has not been ready" in events[0]["message"], events


def test_a_restart_remembers_an_ssh_only_session(
    cluster: Cluster,
    real_namespace: str,
    notebook_image: str,
    controller: ControllerProcess,
    tmp_path: Path,
) -> None:
    """Jupyter untouched since it started; an SSH session, closed just before the controller
    restarts. The new process must count the session, not pause the notebook."""
    namespace, name = real_namespace, "ssh-only"
    key = tmp_path / "id_user"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "user-key"},
        "stringData": {"ssh-publickey": key.with_suffix(".pub").read_text()},
    }
    cluster.apply(secret, namespace)
    cluster.apply(policy(probeInterval="2s", idleTimeout="20s", reclaimGrace="20s"), namespace)
    controller.start()
    ssh_spec = {"enabled": True, "serviceType": "NodePort", "authorized_keys": ["user-key"]}
    cluster.apply(notebook(name, {"image": notebook_image}, ssh=ssh_spec), namespace)
    wait_condition(cluster, namespace, name, "Ready", "True", timeout=180)
    service = cluster.get_json("service", f"managed-notebook-ssh-{name}", "-n", namespace)
    port = service["spec"]["ports"][0]["nodePort"]
    # Jupyter alone says idle (nobody used it since it started)
    wait_condition(cluster, namespace, name, "Idle", "True", "NoActivity", timeout=60)

    session = subprocess.Popen(
        [
            "ssh",
            *("-p", str(port), "-i", str(key)),
            *("-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"),
            *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
            *("-o", "LogLevel=ERROR"),
            f"t9kuser@{NODE_IP}",
            "sleep 8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_condition(cluster, namespace, name, "Idle", "False", "SshSession", timeout=20)
    finally:
        _, err = session.communicate(timeout=30)
    assert session.returncode == 0, err
    found = get(cluster, namespace, "notebook", name)
    assert found is not None
    recorded = found["status"]["ssh"]["lastSshClientActivity"]

    # The session is over; the controller restarts before noticing anything else.
    controller.stop()
    time.sleep(2)
    controller.start()
    restarted = time.monotonic()
    deadline = restarted + 10
    while time.monotonic() < deadline:  # Jupyter says idle for 40+ s: without the record, paused
        assert running(cluster, namespace, name)
        time.sleep(1)
    assert idle_of(cluster, namespace, name).get("status") == "False"

    idle = wait_condition(cluster, namespace, name, "Idle", "True", "NoActivity", timeout=40)
    assert f"no activity since {recorded}" in condition(idle, "Idle")["message"]
    assert running(cluster, namespace, name)

"""Idle reclamation of real notebooks on the real node, with short policy durations (the policy
ConfigMap in the test namespace, docs/idle.md). The controller runs with its default probe
route (no --jupyter-url-template): it reaches each notebook's Jupyter on its own.

- untouched: `Idle=True`, then paused (runMode, pod gone, Services kept); resumed, it has the
  same SSH host key and the files on its PVC at /t9k/mnt;
- a kernel running the product doc's keep-alive loop (`while True: time.sleep(60)`) stays
  active past idle timeout + grace;
- an open SSH session (the exec probe reads the real pod's /proc/net/tcp) keeps it active; once
  the session closes it goes idle.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from notebook_controller.api.models import RECLAIMED_AT_ANNOTATION
from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster, condition, get, wait_condition, wait_for
from tests.product.notebooks import (
    host_public_key,
    http_service,
    idle_controller_args,
    idle_policy,
    key_secret,
    keygen,
    lab_base,
    lab_user,
    node_port,
    patch_spec,
    pod_name,
    pvc,
    seed_notebook,
    ssh,
    ssh_command,
    ssh_service,
    wait_notebook_ready,
    with_pvc_at_workdir,
    write_known_hosts,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

NB = "notebook-sample"  # the seeds' name
KEY_SECRET = "my-public-key"  # the SSH seed's key Secret
IDLE_TIMEOUT = 30
RECLAIM_GRACE = 20
KEEP_ALIVE = "import time\n\nwhile True:\n    time.sleep(60)\n"  # the product doc's cell


@pytest.fixture
def controller_args(cluster: Cluster, namespace: str) -> list[str]:
    cluster.apply(
        idle_policy(idleTimeout=f"{IDLE_TIMEOUT}s", reclaimGrace=f"{RECLAIM_GRACE}s"), namespace
    )
    return idle_controller_args(namespace)


def idle(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return condition(get(cluster, namespace, "notebook", NB), "Idle")


def hold_active(cluster: Cluster, namespace: str, reason: str, seconds: float) -> list[str]:
    """For `seconds`: the notebook stays running with its pod, Idle=False for `reason`."""
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        notebook = get(cluster, namespace, "notebook", NB)
        assert notebook is not None
        found = condition(notebook, "Idle")
        spec = notebook["spec"]
        assert spec.get("runMode", "running") == "running" and not spec.get("suspend"), spec
        assert (found.get("status"), found.get("reason")) == ("False", reason), found
        assert get(cluster, namespace, "pod", pod_name(NB)) is not None
        seen.append(found["message"])
        time.sleep(2)
    return seen


def test_untouched_notebook_is_paused_and_resumes_with_host_key_and_files(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    tmp_path: Path,
) -> None:
    namespace = real_namespace
    key = keygen(tmp_path / "id_user")
    cluster.apply(key_secret(KEY_SECRET, key), namespace)
    cluster.apply(pvc("workingdir"), namespace)
    cluster.apply(
        with_pvc_at_workdir(
            seed_notebook("notebook-ssh-sample.yaml", notebook_image), "workingdir"
        ),
        namespace,
    )
    wait_notebook_ready(cluster, namespace, NB)
    port = node_port(cluster, namespace, NB)
    host_key = host_public_key(cluster, namespace, NB)
    known_hosts = write_known_hosts(tmp_path / "known_hosts", port, host_key)
    wrote = ssh(port, key, known_hosts, "echo kept-on-the-pvc > /t9k/mnt/kept.txt && id -u")
    assert (wrote.returncode, wrote.stdout.strip()) == (0, "1000"), wrote

    # nobody touches it
    began = time.monotonic()
    idle_nb = wait_condition(
        cluster, namespace, NB, "Idle", "True", "NoActivity", timeout=IDLE_TIMEOUT + 60
    )
    to_idle = time.monotonic() - began
    message = condition(idle_nb, "Idle")["message"]

    def paused() -> dict[str, Any] | None:
        found = get(cluster, namespace, "notebook", NB)
        return found if found and found["spec"].get("runMode") == "paused" else None

    reclaimed = wait_for(paused, timeout=RECLAIM_GRACE + 60, message="the idle notebook paused")
    to_paused = time.monotonic() - began
    print(
        f"\nuntouched: Idle=True {to_idle:.0f} s and paused {to_paused:.0f} s after the last"
        f" SSH login (policy: idleTimeout {IDLE_TIMEOUT}s, reclaimGrace {RECLAIM_GRACE}s);"
        f" Idle message: {message}"
    )
    assert RECLAIMED_AT_ANNOTATION in reclaimed["metadata"]["annotations"]
    wait_for(
        lambda: get(cluster, namespace, "pod", pod_name(NB)) is None,
        timeout=60,
        message="the pod to go",
    )
    sts = cluster.get_json("statefulset", f"managed-notebook-{NB}", "-n", namespace)
    assert sts["spec"]["replicas"] == 0
    for service in (http_service(NB), ssh_service(NB)):
        assert get(cluster, namespace, "service", service) is not None, f"{service} was deleted"
    wait_condition(cluster, namespace, NB, "Suspended", "True", "IdleReclaimed", timeout=30)
    events = [e for e in cluster.events(namespace, NB) if e["reason"] == "Reclaimed"]
    assert len(events) == 1 and "no activity since" in events[0]["message"], events

    # the user resumes it: same host key (strict check), same files
    patch_spec(cluster, namespace, NB, {"runMode": "running"})
    resumed = wait_notebook_ready(cluster, namespace, NB)
    assert RECLAIMED_AT_ANNOTATION not in (resumed["metadata"].get("annotations") or {})
    assert node_port(cluster, namespace, NB) == port
    assert host_public_key(cluster, namespace, NB) == host_key
    back = ssh(port, key, known_hosts, "id -u; pwd; cat /t9k/mnt/kept.txt")
    assert back.returncode == 0, f"login after resume failed: {back.stderr.strip()}"
    assert back.stdout.split() == ["1000", "/t9k/mnt", "kept-on-the-pvc"], back.stdout
    fresh = wait_condition(cluster, namespace, NB, "Idle", "False", timeout=30)
    assert fresh["spec"]["runMode"] == "running"


def test_a_kernel_running_the_keep_alive_loop_stays_active(
    cluster: Cluster, real_namespace: str, controller: ControllerProcess, notebook_image: str
) -> None:
    namespace = real_namespace
    cluster.apply(seed_notebook("notebook-example.yaml", notebook_image), namespace)
    wait_notebook_ready(cluster, namespace, NB)
    base = lab_base(cluster, namespace, NB)

    async def run_cell() -> str:
        async with lab_user(base) as user:
            kernel_id = await user.start_kernel()
            await user.execute(kernel_id, KEEP_ALIVE)
            return kernel_id

    kernel_id = asyncio.run(run_cell())
    wait_condition(cluster, namespace, NB, "Idle", "False", "KernelBusy", timeout=30)
    messages = hold_active(cluster, namespace, "KernelBusy", IDLE_TIMEOUT + RECLAIM_GRACE + 10)
    print(f"\nkernel {kernel_id} in the keep-alive loop: Idle=False/KernelBusy ({messages[-1]})")

    async def kernel_state() -> str:
        async with lab_user(base) as user:
            return str((await user.kernel(kernel_id))["execution_state"])

    assert asyncio.run(kernel_state()) == "busy"


def test_an_open_ssh_session_keeps_it_active(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    tmp_path: Path,
) -> None:
    namespace = real_namespace
    key = keygen(tmp_path / "id_user")
    cluster.apply(key_secret(KEY_SECRET, key), namespace)
    cluster.apply(seed_notebook("notebook-ssh-sample.yaml", notebook_image), namespace)
    wait_notebook_ready(cluster, namespace, NB)
    port = node_port(cluster, namespace, NB)
    known_hosts = write_known_hosts(
        tmp_path / "known_hosts", port, host_public_key(cluster, namespace, NB)
    )
    assert ssh(port, key, known_hosts, "true").returncode == 0

    # an interactive shell, left open and idle (a PTY, nothing typed)
    session = subprocess.Popen(
        [*ssh_command(port, key, known_hosts, "-tt")],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_condition(cluster, namespace, NB, "Idle", "False", "SshSession", timeout=30)
        assert session.poll() is None, "the SSH session ended by itself"
        hold_active(cluster, namespace, "SshSession", IDLE_TIMEOUT + RECLAIM_GRACE + 10)
        notebook = get(cluster, namespace, "notebook", NB)
        assert notebook is not None
        seen_at = notebook["status"]["ssh"].get("lastSshClientActivity")
        assert seen_at, notebook["status"]
        print(f"\nopen SSH session: Idle=False/SshSession; lastSshClientActivity {seen_at}")
    finally:
        session.terminate()
        session.wait(timeout=30)

    # closed: idle after the timeout, counted from the last probe that saw the session
    began = time.monotonic()
    wait_condition(cluster, namespace, NB, "Idle", "True", "NoActivity", timeout=IDLE_TIMEOUT + 40)
    print(f"session closed: Idle=True {time.monotonic() - began:.0f} s later")

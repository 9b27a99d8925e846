"""`down` leaves the machine as it found it; `up` recovers from a SIGKILLed cluster.

These take the shared local cluster down, so they run last in the session (marker `last`)
and only when this test run started the cluster itself (hack/test.sh says so with
NBCTL_TEST_OWNS_CLUSTER=1): a cluster someone else is using is not torn down."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from tests.kube import CLUSTER_SH, LOCAL_KUBECONFIG, ROOT, Cluster, cluster_sh, wait_for
from tests.realnode import REAL_NODE, is_ready, pod

pytestmark = [pytest.mark.cluster, pytest.mark.last]

STATE = ROOT / ".cluster" / "state.json"


def leftovers() -> str:
    proc = subprocess.run([str(CLUSTER_SH), "leftovers"], capture_output=True, text=True)
    return proc.stdout.strip()


def test_up_after_a_sigkilled_cluster_then_down_leaves_nothing(
    cluster: Cluster, real_node: str
) -> None:
    if os.environ.get("NBCTL_TEST_OWNS_CLUSTER") != "1":
        pytest.skip("the cluster was not started by this test run (hack/test.sh): not torn down")
    # a running pod: containers, a veth, mounts and cgroups for `up` and `down` to clean
    cluster.apply(pod("survivor"), "default")
    wait_for(
        lambda: is_ready(cluster.get_json("pod", "survivor", "-n", "default")),
        timeout=120,
        message="pod survivor Ready",
    )
    state = json.loads(STATE.read_text())
    for comp in state["components"].values():
        if comp.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(comp["pid"], signal.SIGKILL)
    time.sleep(1)
    assert leftovers() != "none"  # the crashed cluster's node is still there

    started = time.monotonic()
    assert cluster_sh("up", timeout=600).stdout.strip() == "started"
    print(f"up after SIGKILL: {time.monotonic() - started:.1f}s")
    fresh = Cluster(LOCAL_KUBECONFIG, local=True, bin_dir=cluster.bin_dir)
    node = fresh.get_json("node", REAL_NODE)
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    fresh.apply(pod("again"), "default")
    wait_for(
        lambda: is_ready(fresh.get_json("pod", "again", "-n", "default")),
        timeout=120,
        message="a pod Ready on the restarted real node",
    )

    cluster_sh("down", timeout=300)
    assert leftovers() == "none"

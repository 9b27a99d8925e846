"""Two controller processes on one Lease: only the leader reconciles; failover and release."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.kube import Cluster, wait_for
from tests.runtime.processes import Process

pytestmark = pytest.mark.cluster

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0


@pytest.fixture
def lease_name() -> str:
    return f"leader-test-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def candidates(cluster: Cluster, namespace: str, lease_name: str) -> Iterator[list[Process]]:
    started: list[Process] = []

    def start() -> Process:
        process = Process(
            "tests.runtime.candidate",
            [
                f"--kubeconfig={cluster.kubeconfig}",
                f"--namespaces={namespace}",
                "--leader-elect",
                f"--lease-name={lease_name}",
                f"--lease-namespace={namespace}",
                f"--lease-duration={LEASE_DURATION}",
                f"--renew-deadline={RENEW_DEADLINE}",
                f"--retry-period={RETRY_PERIOD}",
                "--health-address=127.0.0.1:0",
                "--log-format=json",
                "--graceful-shutdown-timeout=5",
            ],
        )
        started.append(process)
        return process

    first = start()
    first.wait_event("became leader", within=90)
    second = start()
    second.wait_event("waiting for leadership", within=90)
    yield [first, second]
    for process in started:
        process.stop()


def lease_spec(cluster: Cluster, namespace: str, name: str) -> dict[str, object]:
    spec: dict[str, object] = cluster.get_json("lease", "-n", namespace, name)["spec"]
    return spec


def parse_time(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def test_only_the_leader_reconciles_and_the_other_takes_over_after_sigkill(
    cluster: Cluster, namespace: str, lease_name: str, candidates: list[Process]
) -> None:
    leader, follower = candidates
    for name in ("one", "two"):
        cluster.kubectl("-n", namespace, "create", "configmap", name)
    wait_for(lambda: {f"{namespace}/one", f"{namespace}/two"} <= leader.reconciled(), 60)
    time.sleep(2 * RETRY_PERIOD)
    assert follower.reconciled() == set(), "a follower must not reconcile"

    renewed_before_kill = parse_time(lease_spec(cluster, namespace, lease_name)["renewTime"])
    killed_at = time.monotonic()
    leader.signal(signal.SIGKILL)
    took_over_at = follower.wait_event("became leader", within=LEASE_DURATION * 3)
    takeover = took_over_at - killed_at
    spec = lease_spec(cluster, namespace, lease_name)
    since_last_renewal = (parse_time(spec["acquireTime"]) - renewed_before_kill).total_seconds()
    print(
        f"\nleader takeover after SIGKILL: {takeover:.2f}s after the kill, "
        f"{since_last_renewal:.2f}s after the old leader's last renewal "
        f"(lease {LEASE_DURATION:.0f}s, renew deadline {RENEW_DEADLINE:.0f}s, "
        f"retry {RETRY_PERIOD:.0f}s)"
    )
    # A successor waits one lease duration from when it last saw the lease change, and polls
    # every retry period (with up to 120% jitter).
    assert since_last_renewal >= LEASE_DURATION - RETRY_PERIOD
    assert since_last_renewal <= LEASE_DURATION + 2 * RETRY_PERIOD * 2.2
    assert spec["leaseTransitions"] == 1

    cluster.kubectl("-n", namespace, "create", "configmap", "three")
    expected = {f"{namespace}/{name}" for name in ("one", "two", "three")}
    wait_for(lambda: expected <= follower.reconciled(), 60)


def test_graceful_stop_releases_the_lease_for_a_fast_handover(
    cluster: Cluster, namespace: str, lease_name: str, candidates: list[Process]
) -> None:
    leader, follower = candidates
    stopped_at = time.monotonic()
    leader.signal(signal.SIGTERM)
    assert leader.wait_exit(within=30) == 0
    took_over_at = follower.wait_event("became leader", within=LEASE_DURATION * 2)
    handover = took_over_at - stopped_at
    print(f"\nleader handover after SIGTERM (lease released): {handover:.2f}s")
    assert handover < LEASE_DURATION, "a released lease is free at once"
    assert leader.event_time("released the lease") is not None


def test_losing_the_lease_ends_the_process_non_zero(
    cluster: Cluster, namespace: str, lease_name: str, candidates: list[Process]
) -> None:
    leader, _ = candidates
    now = datetime.now().astimezone().isoformat(timespec="microseconds")
    patch = (
        '{"spec": {"holderIdentity": "thief", "leaseDurationSeconds": 3600,'
        f' "renewTime": "{now}", "acquireTime": "{now}"}}}}'
    )
    cluster.kubectl("-n", namespace, "patch", "lease", lease_name, "--type=merge", "-p", patch)
    assert leader.wait_exit(within=RENEW_DEADLINE + 10) == 1
    assert leader.event_time("lost leadership") is not None

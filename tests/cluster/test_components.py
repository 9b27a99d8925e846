"""Control-plane lifecycle hooks other tests rely on (local cluster only)."""

from __future__ import annotations

import pytest

from tests.kube import Cluster, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def local(cluster: Cluster) -> Cluster:
    if not cluster.can_control_components:
        pytest.skip("components of an external cluster can't be controlled")
    return cluster


def test_apiserver_restart_keeps_data(local: Cluster, namespace: str) -> None:
    local.kubectl("-n", namespace, "create", "configmap", "survivor", "--from-literal=k=v")
    local.stop_component("kube-apiserver")
    try:
        assert not local.reachable()
    finally:
        local.start_component("kube-apiserver")
    wait_for(local.reachable, timeout=60, message="apiserver back")
    cm = local.get_json("configmap", "-n", namespace, "survivor")
    assert cm["data"] == {"k": "v"}


def test_etcdctl_reaches_etcd(local: Cluster) -> None:
    out = local.etcdctl("endpoint", "status", "-w", "json").stdout
    assert '"revision"' in out


def test_apiserver_metrics_and_audit_log(local: Cluster, namespace: str) -> None:
    metrics = local.kubectl("get", "--raw=/metrics").stdout
    assert "apiserver_request_total" in metrics
    local.kubectl("-n", namespace, "create", "configmap", "audited")
    audit = local.kubeconfig.parent / "audit.log"
    wait_for(
        lambda: any(
            '"create"' in line and "audited" in line and namespace in line
            for line in audit.read_text().splitlines()
        ),
        timeout=30,
        message="audit event for the configmap create",
    )

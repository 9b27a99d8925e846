"""Built-in controllers on the local cluster: Deployment, StatefulSet, garbage collection."""

from __future__ import annotations

import pytest

from tests.cluster.helpers import FAKE_NODES, pods_with_label, wait_pod_running
from tests.kube import Cluster, wait_for

pytestmark = pytest.mark.cluster


def deployment(name: str, replicas: int = 1) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: main, image: "busybox:1.36", command: [sleep, inf]}}]
"""


def test_deployment_pod_runs_on_a_kwok_node(cluster: Cluster, namespace: str) -> None:
    cluster.apply(deployment("web"), namespace)
    pods = wait_for(lambda: pods_with_label(cluster, namespace, "app=web"), timeout=60)
    p = wait_pod_running(cluster, namespace, pods[0]["metadata"]["name"])
    assert p["spec"]["nodeName"] in FAKE_NODES
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=60s")


def test_statefulset_pod_zero_runs_and_goes_away_when_scaled_to_zero(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(
        """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: main, image: "busybox:1.36", command: [sleep, inf]}]
""",
        namespace,
    )
    p = wait_pod_running(cluster, namespace, "db-0")
    assert p["spec"]["nodeName"] in FAKE_NODES
    cluster.kubectl("-n", namespace, "scale", "statefulset/db", "--replicas=0")
    wait_for(
        lambda: cluster.kubectl("-n", namespace, "get", "pod", "db-0", check=False).returncode != 0,
        timeout=90,
        message="pod db-0 to go away after scaling to 0",
    )


def test_deleting_a_deployment_garbage_collects_replicasets_and_pods(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(deployment("gc", replicas=2), namespace)
    wait_for(
        lambda: (
            len(
                [
                    p
                    for p in pods_with_label(cluster, namespace, "app=gc")
                    if p["status"].get("phase") == "Running"
                ]
            )
            == 2
        ),
        timeout=90,
        message="2 running pods of deployment gc",
    )
    rs = cluster.get_json("replicasets", "-n", namespace, "-l", "app=gc")["items"]
    assert len(rs) == 1
    assert rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"

    # background cascading deletion: the garbage collector removes the dependents
    cluster.kubectl("-n", namespace, "delete", "deployment", "gc", "--cascade=background")
    wait_for(
        lambda: not cluster.get_json("replicasets", "-n", namespace, "-l", "app=gc")["items"],
        timeout=90,
        message="ReplicaSet of gc to be garbage-collected",
    )
    wait_for(
        lambda: not pods_with_label(cluster, namespace, "app=gc"),
        timeout=90,
        message="pods of gc to be garbage-collected",
    )


def test_nodeport_service_gets_a_node_port(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        """
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  selector: {app: np}
  ports: [{port: 80, targetPort: 8080}]
""",
        namespace,
    )
    svc = cluster.get_json("service", "-n", namespace, "np")
    assert svc["spec"]["clusterIP"].startswith("10.96.")
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767

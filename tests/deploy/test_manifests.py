"""The in-cluster install (deploy/controller) applies to a real apiserver and grants the
controller's ServiceAccount what it uses, and no more than that."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube import Cluster, wait_for

pytestmark = pytest.mark.cluster

SYSTEM_NAMESPACE = "notebook-controller-system"
SERVICE_ACCOUNT = f"system:serviceaccount:{SYSTEM_NAMESPACE}:notebook-controller"

# (verb, resource, namespace or None for "any namespace") the controller needs.
GRANTED = [
    ("watch", "notebooks.tensorstack.dev", None),
    ("patch", "notebooks.tensorstack.dev", "team-a"),
    ("patch", "notebooks.tensorstack.dev/status", "team-a"),
    ("update", "notebooks.tensorstack.dev/finalizers", "team-a"),
    ("create", "statefulsets.apps", "team-a"),
    ("patch", "statefulsets.apps", "team-a"),
    ("delete", "services", "team-a"),
    ("create", "secrets", "team-a"),
    ("watch", "secrets", None),
    ("watch", "pods", None),
    ("create", "pods/exec", "team-a"),
    ("create", "events", "team-a"),
    ("watch", "configmaps", None),
    ("update", "leases.coordination.k8s.io", SYSTEM_NAMESPACE),
]

# Least privilege: what the controller must never be able to do.
DENIED = [
    ("delete", "notebooks.tensorstack.dev", "team-a"),
    ("create", "notebooks.tensorstack.dev", "team-a"),
    ("delete", "secrets", "team-a"),
    ("delete", "pods", "team-a"),
    ("update", "leases.coordination.k8s.io", "kube-system"),
    ("create", "clusterroles.rbac.authorization.k8s.io", None),
]


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[Cluster]:
    cluster.kubectl("apply", "-k", "deploy/controller")
    yield cluster
    cluster.kubectl("delete", "-k", "deploy/controller", "--ignore-not-found", "--wait=false")


def can_i(cluster: Cluster, verb: str, resource: str, namespace: str | None) -> str:
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    resource, _, subresource = resource.partition("/")
    sub = [f"--subresource={subresource}"] if subresource else []
    got = cluster.kubectl(
        "auth", "can-i", verb, resource, *sub, *scope, f"--as={SERVICE_ACCOUNT}", check=False
    )
    return got.stdout.strip()


@pytest.mark.parametrize(("verb", "resource", "namespace"), GRANTED)
def test_service_account_may(
    installed: Cluster, verb: str, resource: str, namespace: str | None
) -> None:
    assert can_i(installed, verb, resource, namespace) == "yes"


@pytest.mark.parametrize(("verb", "resource", "namespace"), DENIED)
def test_service_account_may_not(
    installed: Cluster, verb: str, resource: str, namespace: str | None
) -> None:
    assert can_i(installed, verb, resource, namespace) == "no"


def test_deployment_rolls_out_with_the_idle_policy(installed: Cluster) -> None:
    policy = installed.get_json(
        "configmap", "notebook-controller-idle-policy", "-n", SYSTEM_NAMESPACE
    )
    assert policy["data"]["idleTimeout"] == "1h"
    assert policy["data"]["reclaimGrace"] == "24h"

    def available() -> bool:
        deployment = installed.get_json("deployment", "notebook-controller", "-n", SYSTEM_NAMESPACE)
        return int(deployment.get("status", {}).get("availableReplicas", 0)) == 2

    wait_for(available, timeout=120, message="the controller Deployment's 2 replicas")
    pods = installed.get_json(
        "pods", "-n", SYSTEM_NAMESPACE, "-l", "app.kubernetes.io/name=notebook-controller"
    )["items"]
    assert {pod["spec"]["serviceAccountName"] for pod in pods} == {"notebook-controller"}
    assert all(pod["spec"]["securityContext"]["runAsNonRoot"] for pod in pods)

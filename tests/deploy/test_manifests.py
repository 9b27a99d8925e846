"""The in-cluster install (deploy/controller) applies to a real apiserver and grants the
controller's ServiceAccount what it uses, and no more than that; the namespace-scoped overlay
(deploy/namespaced) and the check-key-secrets component render as documented.
tests/deploy/test_rbac_audit.py shows, from the audit log, that each granted rule is used."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import ROOT, Cluster, wait_for

pytestmark = pytest.mark.cluster

SYSTEM_NAMESPACE = "notebook-controller-system"
SERVICE_ACCOUNT = f"system:serviceaccount:{SYSTEM_NAMESPACE}:notebook-controller"

POLICY = "notebook-controller-idle-policy"
LEASE = "notebook-controller"

# (verb, resource, namespace or None for "any namespace" / cluster-scoped, object name or None)
# the controller needs: exactly the rules of deploy/controller/rbac.yaml.
GRANTED = [
    ("watch", "notebooks.tensorstack.dev", None, None),
    ("patch", "notebooks.tensorstack.dev", "team-a", None),
    ("patch", "notebooks.tensorstack.dev/status", "team-a", None),
    ("update", "notebooks.tensorstack.dev/finalizers", "team-a", None),
    ("create", "statefulsets.apps", "team-a", None),
    ("patch", "statefulsets.apps", "team-a", None),
    ("watch", "statefulsets.apps", None, None),
    ("delete", "services", "team-a", None),
    ("watch", "services", None, None),
    ("create", "secrets", "team-a", None),
    ("watch", "pods", None, None),
    ("create", "pods/exec", "team-a", None),
    ("get", "pods/exec", "team-a", None),
    ("create", "events", "team-a", None),
    ("patch", "events", "team-a", None),
    ("get", "namespaces", None, "team-a"),
    ("create", "leases.coordination.k8s.io", SYSTEM_NAMESPACE, None),
    ("update", "leases.coordination.k8s.io", SYSTEM_NAMESPACE, LEASE),
    ("list", "configmaps", SYSTEM_NAMESPACE, POLICY),
    ("watch", "configmaps", SYSTEM_NAMESPACE, POLICY),
    ("create", "events", SYSTEM_NAMESPACE, None),
]

# Least privilege: what the controller must never be able to do.
DENIED = [
    ("delete", "notebooks.tensorstack.dev", "team-a", None),
    ("create", "notebooks.tensorstack.dev", "team-a", None),
    ("get", "notebooks.tensorstack.dev", "team-a", None),
    ("delete", "statefulsets.apps", "team-a", None),
    ("update", "statefulsets.apps", "team-a", None),
    # no Secret is read or changed: only the host key is created
    ("get", "secrets", "team-a", None),
    ("list", "secrets", None, None),
    ("watch", "secrets", None, None),
    ("patch", "secrets", "team-a", None),
    ("delete", "secrets", "team-a", None),
    ("create", "pods", "team-a", None),
    ("delete", "pods", "team-a", None),
    ("get", "pods", "team-a", None),
    # no ConfigMap but the idle policy, and only in the controller's namespace
    ("list", "configmaps", SYSTEM_NAMESPACE, None),
    ("get", "configmaps", SYSTEM_NAMESPACE, POLICY),
    ("update", "configmaps", SYSTEM_NAMESPACE, POLICY),
    ("list", "configmaps", None, None),
    ("list", "configmaps", "team-a", POLICY),
    # one Namespace at a time, never all of them
    ("list", "namespaces", None, None),
    ("watch", "namespaces", None, None),
    ("update", "namespaces", None, "team-a"),
    ("update", "leases.coordination.k8s.io", SYSTEM_NAMESPACE, "someone-elses-lease"),
    ("update", "leases.coordination.k8s.io", "kube-system", LEASE),
    ("create", "clusterroles.rbac.authorization.k8s.io", None, None),
]


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[Cluster]:
    cluster.kubectl("apply", "-k", "deploy/controller")
    yield cluster
    cluster.kubectl("delete", "-k", "deploy/controller", "--ignore-not-found", "--wait=false")


def can_i(
    cluster: Cluster,
    verb: str,
    resource: str,
    namespace: str | None,
    name: str | None,
    service_account: str = SERVICE_ACCOUNT,
) -> str:
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    resource, _, subresource = resource.partition("/")
    sub = [f"--subresource={subresource}"] if subresource else []
    target = f"{resource}/{name}" if name else resource
    if resource == "namespaces" and name:
        # a Namespace is its own namespace to the authorizer (a Role can grant get on it)
        scope = ["-n", name]
    got = cluster.kubectl(
        "auth", "can-i", verb, target, *sub, *scope, f"--as={service_account}", check=False
    )
    return got.stdout.strip()


@pytest.mark.parametrize(("verb", "resource", "namespace", "name"), GRANTED)
def test_service_account_may(
    installed: Cluster, verb: str, resource: str, namespace: str | None, name: str | None
) -> None:
    assert can_i(installed, verb, resource, namespace, name) == "yes"


@pytest.mark.parametrize(("verb", "resource", "namespace", "name"), DENIED)
def test_service_account_may_not(
    installed: Cluster, verb: str, resource: str, namespace: str | None, name: str | None
) -> None:
    assert can_i(installed, verb, resource, namespace, name) == "no"


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


# --- rendered overlays ----------------------------------------------------------------------


def render(cluster: Cluster, directory: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", str(directory)).stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, namespace: str | None = None) -> dict[str, Any]:
    [found] = [
        d
        for d in docs
        if d["kind"] == kind and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]
    return found


def test_namespaced_overlay_grants_the_same_rules_per_tenant_and_nothing_cluster_wide(
    cluster: Cluster,
) -> None:
    cluster_wide = render(cluster, ROOT / "deploy" / "controller")
    namespaced = render(cluster, ROOT / "deploy" / "namespaced")
    kinds = {d["kind"] for d in namespaced}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, kinds
    # each tenant namespace: a Role with the ClusterRole's rules, bound to the ServiceAccount
    tenant_roles = [
        d
        for d in namespaced
        if d["kind"] == "Role" and d["metadata"]["namespace"] != SYSTEM_NAMESPACE
    ]
    assert {r["metadata"]["namespace"] for r in tenant_roles} == {"team-a"}
    cluster_role = one(cluster_wide, "ClusterRole")
    assert all(r["rules"] == cluster_role["rules"] for r in tenant_roles)
    binding = one(namespaced, "RoleBinding", "team-a")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "notebook-controller", "namespace": SYSTEM_NAMESPACE}
    ]
    # the controller's own namespace: the same Role as the cluster-wide install
    assert one(namespaced, "Role", SYSTEM_NAMESPACE) == one(cluster_wide, "Role", SYSTEM_NAMESPACE)
    # it watches exactly the tenant namespaces
    [container] = one(namespaced, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert set(env["NBC_NAMESPACES"].split(",")) == {"team-a"}


def test_check_key_secrets_component_adds_the_flag_and_secret_reads(
    cluster: Cluster, tmp_path: Path
) -> None:
    component = ROOT / "deploy" / "components" / "check-key-secrets"
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "deploy" / "controller", tmp_path)],
        "components": [os.path.relpath(component, tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    docs = render(cluster, tmp_path)
    [container] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--check-key-secrets" in container["args"]
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    assert roles["notebook-controller-key-secrets"]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}
    ]
    # the default install reads no Secret
    secret_rules = [
        rule for rule in roles["notebook-controller"]["rules"] if "secrets" in rule["resources"]
    ]
    assert secret_rules == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]

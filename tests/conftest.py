"""Root fixtures: a real Kubernetes cluster and a throw-away namespace per test.

``cluster`` (session): reuses the cluster ``$KUBECONFIG`` points at when it is set and
reachable (fast local iteration), otherwise runs ``hack/cluster.sh up`` (which builds the
binaries on a brand-new machine) and leaves the cluster running for the next run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.kube import Cluster, external_cluster, local_cluster, wait_for
from tests.realnode import REAL_NODE, REAL_NODE_NAMESPACE_ANNOTATIONS, built_image

# Fixtures shared across directories, found by every test without importing them.
pytest_plugins = ["tests.crd", "tests.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs a real Kubernetes control plane (the `cluster` fixture)"
    )
    config.addinivalue_line(
        "markers", "last: takes the shared cluster down, so runs after every other test"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"report_{report.when}", report)  # read by fixtures that dump logs on failure
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # whatever uses the cluster, however indirectly, is marked: `-m "not cluster"` runs
        # everything a machine without Kubernetes can
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)  # stable


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    found = external_cluster()
    if found is not None:
        return found
    c = local_cluster()
    os.environ["KUBECONFIG"] = str(c.kubeconfig)  # for clients created later in this session
    return c


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, deleted (and waited for) after the test."""
    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-") or "test"
    name = f"t-{base}-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"nbctl-test": "true"}},
    }
    # retried: the shared local cluster's apiserver may be restarting under another test
    wait_for(
        lambda: (
            cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False).returncode
            == 0
        ),
        timeout=60,
        message=f"namespace {name} to be created",
    )
    # pods need the namespace's default service account (created by the controller-manager)
    wait_for(
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
        timeout=60,
        message=f"default service account in {name}",
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
    wait_for(
        lambda: cluster.kubectl("get", "namespace", name, check=False).returncode != 0,
        timeout=120,
        message=f"namespace {name} to be deleted",
    )


def _api_client(cluster: Cluster) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def core_v1(cluster: Cluster) -> Any:
    from kubernetes import client

    return client.CoreV1Api(_api_client(cluster))


@pytest.fixture(scope="session")
def apps_v1(cluster: Cluster) -> Any:
    from kubernetes import client

    return client.AppsV1Api(_api_client(cluster))


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> str:
    """The real node's name; fails (never skips) when the cluster should have one and has not."""
    found = cluster.kubectl("get", "node", REAL_NODE, check=False)
    if found.returncode != 0:
        if os.environ.get("NBCTL_REAL_NODE", "1") in ("0", "false", "no"):
            pytest.skip("NBCTL_REAL_NODE=0: the local cluster runs KWOK nodes only")
        raise AssertionError(f"no node {REAL_NODE} in the cluster: {found.stderr.strip()}")
    return REAL_NODE


@pytest.fixture
def real_namespace(cluster: Cluster, namespace: str, real_node: str) -> str:
    """A fresh namespace whose pods run on the real node (PodNodeSelector and
    PodTolerationRestriction annotations, as `hack/cluster.sh up` sets on `default`)."""
    cluster.kubectl(
        "annotate",
        "namespace",
        namespace,
        *(f"{k}={v}" for k, v in REAL_NODE_NAMESPACE_ANNOTATIONS.items()),
    )
    return namespace


@pytest.fixture(scope="session")
def notebook_image(cluster: Cluster) -> str:
    """The standard notebook image in the local registry, pinned to its pushed digest."""
    return built_image("notebook")[0]

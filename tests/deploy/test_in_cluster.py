"""The controller running in the cluster as deployed: `kubectl apply -k` of deploy/local (the
image `hack/images.sh` pushed to the local registry, on the real node), two replicas, one leader,
reconciling Notebooks with its own ServiceAccount; a successor takes over when the leader's pod
is deleted.

The install is scoped so it leaves the rest of the session alone: a generated overlay on top of
deploy/local puts it in its own namespace, prefixes its names (the ClusterRole and its binding
are cluster-wide) and has it watch one namespace only (`NBC_NAMESPACES`); everything it applied
is deleted at the end. The Notebook CRD is shared with the other tests and is left installed.

Run with `-s` to see the figures it measures (image size, apply-to-Ready, takeover).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import project_version, report
from tests.e2e.controller import AUDIT_LOG, WRITE_VERBS, audit_position, seed
from tests.kube import ROOT, Cluster, condition, get, items, wait_for
from tests.realnode import REAL_NODE, is_ready

# the first test also builds the image (fast when its inputs did not change)
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]

LOCAL_OVERLAY = ROOT / "deploy" / "local"
APP_SELECTOR = "app.kubernetes.io/name=notebook-controller"
LEASE = "notebook-controller"
USER_AGENT = "notebook-controller"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
# GET a path of the controller's health server from inside its container (the image's Python)
IN_POD_GET = """
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:8081" + sys.argv[1], timeout=10) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
print(status)
print(body.decode(), end="")
"""


@dataclass(frozen=True)
class Install:
    cluster: Cluster
    namespace: str  # where the controller runs
    watched: str  # the only namespace it reconciles
    prefix: str  # of every name the overlay creates
    manifest: Path  # what was applied (deleted again at the end)

    @property
    def service_account(self) -> str:
        return f"{self.prefix}notebook-controller"

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def pods(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.cluster.get_json(
            "pods", "-n", self.namespace, "-l", APP_SELECTOR
        )["items"]
        return [p for p in found if not p["metadata"].get("deletionTimestamp")]

    def holder(self) -> str:
        got = self.cluster.kubectl(
            "get",
            "lease",
            LEASE,
            "-n",
            self.namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
            check=False,
        )
        return got.stdout.strip() if got.returncode == 0 else ""

    def in_pod_get(self, pod: str, path: str) -> tuple[int, str]:
        got = self.cluster.kubectl(
            "exec", "-n", self.namespace, pod, "-c", "controller", "--",
            "python", "-c", IN_POD_GET, path,
        )  # fmt: skip
        status, _, body = got.stdout.partition("\n")
        return int(status), body


def holder_pod(identity: str) -> str:
    """The pod of a Lease holder identity (`<hostname>_<random>`; a pod's hostname is its name)."""
    return identity.rpartition("_")[0]


def sample(metrics: str, name: str) -> float:
    """The value of one exposed sample `name` (with its labels, as exposed)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rpartition(" ")[2])
    raise AssertionError(f"no sample {name} in /metrics")


def reconcile_successes(metrics: str) -> float:
    pattern = re.compile(r'^controller_runtime_reconcile_total\{.*result="success".*\} (\S+)$')
    return sum(float(m.group(1)) for line in metrics.splitlines() if (m := pattern.match(line)))


# --- the install ---------------------------------------------------------------------------


def overlay(directory: Path, install: Install) -> str:
    """A kustomization on top of deploy/local scoping the install (kustomize needs a relative
    path to its base)."""
    base = os.path.relpath(LOCAL_OVERLAY, directory)
    env = [
        {"name": "NBC_NAMESPACES", "value": install.watched},
        {
            "name": "NBC_IDLE_POLICY_CONFIGMAP",
            "value": f"{install.prefix}notebook-controller-idle-policy",
        },
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": install.namespace,
        "namePrefix": install.prefix,
        "labels": [{"pairs": {"nbctl-test": "true"}}],  # not in selectors
        "resources": [base],
        "patches": [
            {
                "target": {"kind": "Deployment", "name": "notebook-controller"},
                "patch": json.dumps(
                    [
                        {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": e}
                        for e in env
                    ]
                ),
            }
        ],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return str(directory)


@pytest.fixture(scope="module")
def installed(
    cluster: Cluster,
    controller_image: str,
    notebook_crd: str,
    real_node: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Install]:
    suffix = uuid.uuid4().hex[:6]
    directory = tmp_path_factory.mktemp("in-cluster")
    install = Install(
        cluster=cluster,
        namespace=f"t-in-cluster-{suffix}",
        watched=f"t-in-cluster-nb-{suffix}",
        prefix=f"t-in-cluster-{suffix}-",
        manifest=directory / "rendered.yaml",
    )
    rendered = cluster.kubectl("kustomize", overlay(directory, install)).stdout
    assert f"image: {controller_image}" in rendered
    install.manifest.write_text(rendered)
    watched = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": install.watched, "labels": {"nbctl-test": "true"}},
    }
    try:
        cluster.apply(watched)
        # what a user runs, but with the generated overlay: `kubectl apply -k <dir>`
        cluster.kubectl("apply", "-k", str(directory))
        yield install
    finally:
        # the install first (namespace, RBAC incl. the ClusterRole and binding), then the
        # namespace it watched; the CRD stays
        cluster.kubectl(
            "delete", "-f", str(install.manifest), "--ignore-not-found", "--wait=true",
            check=False, timeout=300,
        )  # fmt: skip
        cluster.kubectl(
            "delete", "namespace", install.watched, "--ignore-not-found", "--wait=true",
            check=False, timeout=300,
        )  # fmt: skip
        left = set(
            cluster.kubectl(
                "get", "clusterrole,clusterrolebinding,namespace", "-o", "name", check=False
            ).stdout.split()
        )
        ours = {
            f"clusterrole.rbac.authorization.k8s.io/{install.prefix}notebook-controller",
            f"clusterrolebinding.rbac.authorization.k8s.io/{install.prefix}notebook-controller",
            f"namespace/{install.namespace}",
            f"namespace/{install.watched}",
        }
        assert not ours & left, f"left behind: {ours & left}"


@pytest.fixture(scope="module")
def running(installed: Install) -> Install:
    """The install with both replicas Ready and a leader."""

    def both_ready() -> bool:
        pods = installed.pods()
        return len(pods) == 2 and all(is_ready(p) for p in pods)

    def describe() -> str:
        return "both controller pods Ready: " + "; ".join(
            f"{p['metadata']['name']} on {p['spec'].get('nodeName')}: "
            f"{json.dumps(p.get('status', {}).get('containerStatuses'))}"
            for p in installed.pods()
        )

    wait_for(both_ready, timeout=300, interval=1, message=describe)
    wait_for(installed.holder, timeout=60, message="a Lease holder")
    return installed


def apply_notebook(install: Install, name: str) -> float:
    """Apply a Notebook (KWOK-friendly: lands on an untainted KWOK node) and wait until it is
    Ready; returns the seconds from `kubectl apply` to Ready=True."""
    manifest = yaml.safe_load(seed("notebook-example.yaml"))
    manifest["metadata"]["name"] = name
    started = time.monotonic()
    install.cluster.apply(manifest, namespace=install.watched)
    # `kubectl wait` watches, so it returns as soon as the condition is there
    install.cluster.kubectl(
        "wait", "-n", install.watched, f"notebook/{name}", "--for=condition=Ready",
        "--timeout=120s", timeout=150,
    )  # fmt: skip
    return time.monotonic() - started


def controller_writes(install: Install, since: int, expected: set[str]) -> list[dict[str, Any]]:
    """Audited writes in the watched namespace by the controller (its user agent), waiting until
    ones to each of `expected` (resource[/subresource]) are there."""

    def collect() -> list[dict[str, Any]]:
        writes = []
        with AUDIT_LOG.open("rb") as log:
            log.seek(since)
            for raw in log:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                ref = event.get("objectRef") or {}
                if (
                    event.get("stage") == "ResponseComplete"
                    and event.get("verb") in WRITE_VERBS
                    and ref.get("namespace") == install.watched
                    and event.get("userAgent", "").startswith(USER_AGENT)
                ):
                    writes.append(event)
        return writes

    def resources(writes: list[dict[str, Any]]) -> set[str]:
        return {
            "/".join(filter(None, [w["objectRef"]["resource"], w["objectRef"].get("subresource")]))
            for w in writes
        }

    def complete() -> list[dict[str, Any]]:
        writes = collect()
        return writes if expected <= resources(writes) else []

    return wait_for(
        complete,
        timeout=30,
        message=lambda: f"controller writes to {expected}; got {resources(collect())}",
    )


# --- the tests -----------------------------------------------------------------------------


def test_local_overlay_uses_the_project_version() -> None:
    kustomization = yaml.safe_load((LOCAL_OVERLAY / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["newName"] == "registry.nbctl.local/notebook-controller"
    assert image["newTag"] == project_version()


def test_two_replicas_on_the_real_node_one_leader(running: Install) -> None:
    pods = running.pods()
    assert {p["spec"]["nodeName"] for p in pods} == {REAL_NODE}
    assert {p["spec"]["serviceAccountName"] for p in pods} == {running.service_account}
    assert all(
        p["spec"]["containers"][0]["image"].startswith("registry.nbctl.local/") for p in pods
    )
    names = {p["metadata"]["name"] for p in pods}
    assert holder_pod(running.holder()) in names
    # each replica says from inside whether it leads: exactly one does
    leading = {
        name: sample(
            running.in_pod_get(name, "/metrics")[1],
            f'leader_election_master_status{{name="{LEASE}"}}',
        )
        for name in names
    }
    assert sorted(leading.values()) == [0.0, 1.0], leading
    assert max(leading, key=lambda n: leading[n]) == holder_pod(running.holder())


def test_reconciles_notebooks_as_its_service_account(running: Install) -> None:
    assert AUDIT_LOG.exists(), "the local cluster's audit log"
    since = audit_position()
    seconds = apply_notebook(running, "in-cluster-a")
    report(f"notebook in-cluster-a: kubectl apply -> Ready=True in {seconds:.2f}s")
    notebook = get(running.cluster, running.watched, "notebook", "in-cluster-a")
    assert condition(notebook, "Ready")["status"] == "True"
    assert get(running.cluster, running.watched, "statefulset", "managed-notebook-in-cluster-a")
    assert get(running.cluster, running.watched, "service", "managed-notebook-http-in-cluster-a")

    writes = controller_writes(running, since, {"statefulsets", "services", "notebooks/status"})
    assert {w["user"]["username"] for w in writes} == {running.username}
    leader = holder_pod(running.holder())
    assert {w["user"].get("extra", {}).get(POD_NAME_EXTRA, [None])[0] for w in writes} == {leader}
    assert all(
        w["responseStatus"]["code"] < 400
        for w in writes
        if w["objectRef"]["resource"] in {"statefulsets", "services"}
    )


def test_health_and_metrics_answered_in_the_pod(running: Install) -> None:
    leader = holder_pod(running.holder())
    notebooks = items(running.cluster, running.watched, "notebooks")
    for pod in running.pods():
        name = pod["metadata"]["name"]
        assert running.in_pod_get(name, "/readyz")[0] == 200
        assert running.in_pod_get(name, "/healthz")[0] == 200
        status, metrics = running.in_pod_get(name, "/metrics")
        assert status == 200
        assert "controller_runtime_reconcile_total" in metrics
        if name == leader:
            if notebooks:  # reconciled by now
                assert reconcile_successes(metrics) > 0
        else:  # a standby reconciles nothing
            assert reconcile_successes(metrics) == 0


def test_a_successor_takes_over_when_the_leader_pod_is_deleted(running: Install) -> None:
    before = running.holder()
    leader = holder_pod(before)
    standby = {p["metadata"]["name"] for p in running.pods()} - {leader}
    assert len(standby) == 1
    # the leader's log, followed until its container is gone
    follow = subprocess.Popen(
        [running.cluster.kubectl_path, f"--kubeconfig={running.cluster.kubeconfig}",
         "logs", "-f", "-n", running.namespace, leader, "-c", "controller", "--since=1s"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(1)  # let it attach
        started = time.monotonic()
        running.cluster.kubectl("delete", "pod", "-n", running.namespace, leader, "--wait=false")

        def successor_holds() -> str:
            holder = running.holder()
            return holder if holder and holder_pod(holder) != leader else ""

        after = wait_for(
            successor_holds,
            timeout=90,
            interval=0.1,
            message=f"a Lease holder other than {leader}",
        )
        takeover = time.monotonic() - started
    finally:
        try:
            out, _ = follow.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            follow.kill()
            out, _ = follow.communicate()
    successor = holder_pod(after)
    kind = "the standby" if successor in standby else "the Deployment's replacement pod"
    report(
        f"leader pod {leader} deleted -> {successor} ({kind}) holds the Lease after {takeover:.2f}s"
    )
    released = any(
        json.loads(line).get("event") == "released the lease"
        for line in out.splitlines()
        if line.startswith("{")
    )
    report(f"the deleted leader released the Lease on SIGTERM: {released}")
    assert released, out[-2000:]

    since = audit_position()
    seconds = apply_notebook(running, "in-cluster-b")
    report(f"notebook in-cluster-b (after the takeover): apply -> Ready=True in {seconds:.2f}s")
    assert get(running.cluster, running.watched, "statefulset", "managed-notebook-in-cluster-b")
    writes = controller_writes(running, since, {"statefulsets", "services", "notebooks/status"})
    assert {w["user"]["username"] for w in writes} == {running.username}
    writers = {w["user"].get("extra", {}).get(POD_NAME_EXTRA, [None])[0] for w in writes}
    assert writers == {holder_pod(running.holder())} and leader not in writers, writers

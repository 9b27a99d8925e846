"""What kubectl shows for Notebooks: columns, short name, explain, status merging."""

from __future__ import annotations

import json
import re

import pytest

from tests.api.notebooks import apply, get, notebook
from tests.kube import Cluster

pytestmark = pytest.mark.cluster

URL = "https://nb.example/t9k/notebooks/projects/ns/name/nb/lab"


def explain(cluster: Cluster, path: str) -> str:
    return cluster.kubectl("explain", path).stdout


def apply_status(cluster: Cluster, namespace: str, manager: str, status: dict[str, object]) -> None:
    body: dict[str, object] = {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "metadata": {"name": "nb", "namespace": namespace},
        "status": status,
    }
    cluster.kubectl(
        "apply",
        "--server-side",
        "--subresource=status",
        f"--field-manager={manager}",
        "-f",
        "-",
        input=json.dumps(body),
    )


def condition(type_: str, status: str, message: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": "Test",
        "message": message,
        "lastTransitionTime": "2026-01-02T03:04:05Z",
        "lastProbeTime": "2026-01-02T03:04:05Z",
    }


@pytest.fixture
def nb(cluster: Cluster, namespace: str, notebook_crd: str) -> str:
    result = apply(cluster, namespace, notebook())
    assert result.returncode == 0, result.stderr
    return namespace


def test_conditions_of_two_field_managers_merge_by_type(cluster: Cluster, nb: str) -> None:
    apply_status(cluster, nb, "status-writer", {"conditions": [condition("Ready", "True", "up")]})
    apply_status(cluster, nb, "idle-writer", {"conditions": [condition("Idle", "False", "busy")]})
    apply_status(cluster, nb, "idle-writer", {"conditions": [condition("Idle", "True", "idle")]})
    conditions = {c["type"]: c for c in get(cluster, nb, "nb")["status"]["conditions"]}
    assert set(conditions) == {"Ready", "Idle"}
    assert conditions["Ready"]["message"] == "up"
    assert conditions["Idle"]["status"] == "True"
    assert conditions["Idle"]["lastProbeTime"] == "2026-01-02T03:04:05Z"


def test_get_shows_the_columns(cluster: Cluster, nb: str) -> None:
    apply_status(
        cluster,
        nb,
        "status-writer",
        {
            "phase": "Running",
            "url": URL,
            "conditions": [condition("Ready", "True", "up"), condition("Idle", "False", "busy")],
        },
    )
    lines = cluster.kubectl("get", "nb", "-n", nb).stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "PHASE", "READY", "IDLE", "AGE"]
    assert lines[1].split()[:5] == ["nb", "jupyter", "Running", "True", "False"]
    assert re.fullmatch(r"\d+s", lines[1].split()[5])
    wide = cluster.kubectl("get", "nb", "-n", nb, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "TYPE", "PHASE", "READY", "IDLE", "AGE", "URL"]
    assert wide[1].split()[-1] == URL


def test_explain_ssh_describes_every_field(cluster: Cluster, notebook_crd: str) -> None:
    text = explain(cluster, "notebook.spec.ssh")
    assert "SSH access to the notebook." in text
    assert re.search(r"authorized_keys\s+<\[\]string>\s+Names of Secrets", text), text
    assert re.search(r"enabled\s+<boolean>\s+Run an SSH server in the notebook", text), text
    assert re.search(r"serviceType\s+<string>\s+enum: ClusterIP, NodePort, LoadBalancer", text)
    assert "Type of the SSH Service" in text


def test_explain_reaches_into_the_pod_spec(cluster: Cluster, notebook_crd: str) -> None:
    text = explain(cluster, "notebook.spec.template.spec.containers")
    assert "List of containers belonging to the pod." in text
    assert re.search(r"image\s+<string>", text), text
    assert re.search(r"resources\s+<Object>", text), text
    probe = explain(cluster, "notebook.spec.template.spec.containers.readinessProbe.httpGet.port")
    assert "IntOrString" in probe or "Name or number of the port" in probe


def test_short_name_and_kind(cluster: Cluster, notebook_crd: str) -> None:
    resources = cluster.kubectl("api-resources", "--api-group=tensorstack.dev").stdout
    assert re.search(
        r"^notebooks\s+nb\s+tensorstack.dev/v1beta1\s+true\s+Notebook$", resources, re.M
    )

"""The pod cache keeps what the reconcilers read: the same readiness, node and container, with
the bulk of the spec (and managedFields) gone."""

from __future__ import annotations

import copy
import json
from typing import Any

from notebook_controller.builders.status import pod_readiness
from notebook_controller.builders.workload import main_container_index
from notebook_controller.wiring import pod_as_read

POD: dict[str, Any] = {
    "metadata": {
        "name": "managed-notebook-nb-0",
        "namespace": "team-a",
        "uid": "pod-1",
        "labels": {"notebook.tensorstack.dev/name": "nb"},
        "ownerReferences": [{"uid": "sts-1", "controller": True}],
        "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
    },
    "spec": {
        "nodeName": "node-1",
        "containers": [
            {"name": "sidecar", "image": "busybox", "env": [{"name": "A", "value": "1"}]},
            {"name": "notebook", "image": "jupyter:1", "resources": {"limits": {"cpu": "1"}}},
        ],
        "volumes": [{"name": "workingdir", "persistentVolumeClaim": {"claimName": "w"}}],
        "tolerations": [{"key": "k", "operator": "Exists"}],
    },
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "notebook", "ready": True, "state": {"running": {}}}],
    },
}


def test_readers_see_the_same_pod() -> None:
    kept = pod_as_read(copy.deepcopy(POD))
    assert pod_readiness(kept) == pod_readiness(POD)
    assert kept["spec"]["nodeName"] == "node-1"
    containers = kept["spec"]["containers"]
    assert main_container_index(containers) == main_container_index(POD["spec"]["containers"])
    assert kept["metadata"]["labels"] == POD["metadata"]["labels"]
    assert kept["status"] == POD["status"]


def test_the_rest_is_dropped() -> None:
    kept = pod_as_read(copy.deepcopy(POD))
    assert "managedFields" not in kept["metadata"]
    assert set(kept["spec"]) == {"nodeName", "containers"}
    assert len(json.dumps(kept)) < len(json.dumps(POD))


def test_an_unscheduled_pod_stays_unbound() -> None:
    pending = copy.deepcopy(POD)
    del pending["spec"]["nodeName"]
    pending["status"] = {"phase": "Pending"}
    assert not pod_as_read(pending)["spec"]["nodeName"]

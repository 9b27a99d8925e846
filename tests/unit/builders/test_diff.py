"""The comparison that keeps the controller from writing when nothing changed."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from notebook_controller.api.models import Notebook
from notebook_controller.builders import services, workload
from notebook_controller.builders.meta import APPLIED_HASH_ANNOTATION
from notebook_controller.runtime.diff import content_hash, covers, needs_apply, parse_quantity
from tests.unit.builders.seeds import SEED_BASIC, SEED_GPU, SEED_SSH, with_spec
from tests.unit.builders.seeds import served as served_notebook


def _as_served(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for the GPU example's StatefulSet: defaults added, quantities
    canonical, fields from other managers (status, extra labels, managedFields)."""
    served = copy.deepcopy(desired)
    served["metadata"].update(
        {"uid": "u", "resourceVersion": "7", "generation": 1, "managedFields": [{"manager": "x"}]}
    )
    served["metadata"]["labels"]["team"] = "added-by-someone-else"
    spec = served["spec"]
    spec.update({"revisionHistoryLimit": 10, "persistentVolumeClaimRetentionPolicy": {}})
    pod = spec["template"]["spec"]
    pod.update({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "securityContext": {}})
    [container] = pod["containers"]
    container.update(
        {"imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log"}
    )
    container["resources"] = {
        "requests": {"cpu": "500m", "memory": "1Gi", "tensorstack.dev/nvidia-gpu-percent": "30"},
        "limits": {"tensorstack.dev/nvidia-gpu-percent": "30"},
    }
    container["readinessProbe"].update({"timeoutSeconds": 1, "successThreshold": 1})
    container["readinessProbe"]["httpGet"]["scheme"] = "HTTP"
    container["env"].insert(0, {"name": "ADDED_BY_A_WEBHOOK", "value": "1"})
    served["status"] = {"replicas": 1, "readyReplicas": 1}
    return served


def test_quantities_compare_by_value() -> None:
    assert parse_quantity("0.5") == parse_quantity("500m")
    assert parse_quantity("1.0Gi") == parse_quantity("1Gi") == parse_quantity(1073741824)
    assert parse_quantity(30) == parse_quantity("30")
    assert parse_quantity("1e3") == parse_quantity("1k")
    assert parse_quantity("t9kpublic/x:latest") is None
    assert parse_quantity("12e4567890") is None  # beyond decimal arithmetic: no quantity


def test_a_hash_that_reads_as_a_huge_number_is_compared_as_text(gpu: Notebook) -> None:
    desired = workload.statefulset(gpu)
    served = _as_served(desired)
    served["metadata"]["annotations"] = {
        **served["metadata"]["annotations"],
        APPLIED_HASH_ANNOTATION: "0123e45678901234",
    }
    desired["metadata"]["annotations"] = {
        **desired["metadata"]["annotations"],
        APPLIED_HASH_ANNOTATION: "9876e54321098765",
    }
    assert needs_apply(desired, served)  # not an error, and a different hash


def test_a_served_object_with_defaults_needs_no_apply(gpu: Notebook) -> None:
    desired = workload.statefulset(gpu)
    assert not needs_apply(desired, _as_served(desired))


def test_editing_an_owned_field_needs_an_apply(gpu: Notebook) -> None:
    desired = workload.statefulset(gpu)
    tampers: tuple[Callable[[dict[str, Any]], object], ...] = (
        lambda s: s["spec"].update(replicas=3),
        lambda s: s["spec"]["template"]["spec"]["containers"][0].update(image="evil"),
        lambda s: s["spec"]["template"]["spec"]["containers"][0]["env"].pop(),
        lambda s: s["spec"]["template"]["metadata"]["labels"].pop(
            "scheduler.tensorstack.dev/queue"
        ),
        lambda s: s["metadata"].pop("ownerReferences"),
        lambda s: s["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].clear(),
    )
    for tamper in tampers:
        served = _as_served(desired)
        tamper(served)
        assert needs_apply(desired, served)


def test_a_field_removed_from_the_template_needs_an_apply(gpu: Notebook) -> None:
    containers = gpu.spec.template.spec["containers"]
    with_env = [{**containers[0], "env": [{"name": "EXTRA", "value": "1"}]}]
    old = workload.statefulset(with_spec(gpu, template={"spec": {"containers": with_env}}))
    new = workload.statefulset(gpu)
    # the served object still has EXTRA, a superset of the new desired object: only the
    # applied-hash annotation tells the difference
    assert needs_apply(new, _as_served(old))


def test_omitempty_values_match_their_absence() -> None:
    assert covers({"a": "", "b": False, "c": 0, "d": {}, "e": [], "f": None}, {})
    assert not covers({"replicas": 0}, {"replicas": 1})
    assert not covers({"x": True}, {"x": False})


def test_keyed_lists_match_by_key_and_plain_lists_by_position() -> None:
    desired = [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    actual = [{"name": "b", "value": "2"}, {"name": "z"}, {"name": "a", "value": "1"}]
    assert covers(desired, actual)
    assert not covers(["sh", "-c"], ["sh", "-c", "x"])
    assert not covers(["-c", "sh"], ["sh", "-c"])


# Objects the builders made for the seed examples, returned by a real API server (v1.37, server
# dry-run create): defaulted and normalized. Refresh with the snippet in data/README.md.
SERVED = json.loads((Path(__file__).parent / "data" / "served.json").read_text())


@pytest.mark.parametrize("key", sorted(SERVED))
def test_objects_as_the_api_server_returns_them_need_no_apply(key: str) -> None:
    seed_name, kind = key.split("-", 1)
    notebook = served_notebook(SEED_GPU if seed_name == "gpu" else SEED_SSH, namespace="default")
    desired = {
        "statefulset": workload.statefulset,
        "http_service": services.http_service,
        "ssh_service": services.ssh_service,
    }[kind](notebook)
    assert desired is not None
    stored = SERVED[key]
    assert stored != desired  # the server did add and normalize things
    assert not needs_apply(desired, stored)
    # ...and the comparison is not blind: one changed owned field is seen
    tampered = copy.deepcopy(stored)
    tampered["metadata"]["labels"]["notebook.tensorstack.dev/name"] = "other"
    assert needs_apply(desired, tampered)


def _json_hash(obj: object) -> str:
    """The hash as earlier versions computed it (the standard library's canonical JSON)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class _Mode(StrEnum):
    ON = "on"


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "é 中文",
        "\x7f",
        '\t\n"\\ </>',
        0.5,
        0.00001,
        1e16,
        -0.0,
        2**70,
        {"image": "v:1.2", "b": [1, 2.5, {"z": None, "a": True}]},
        {"mode": _Mode.ON},
        {"when": datetime(2026, 11, 27, tzinfo=UTC)},
        {1: "int key"},
    ],
)
def test_an_objects_hash_is_what_earlier_versions_computed(value: Any) -> None:
    assert content_hash({"metadata": {"name": "x"}, "value": value}) == _json_hash(
        {"metadata": {"name": "x"}, "value": value}
    )


@pytest.mark.parametrize("seed", [SEED_BASIC, SEED_GPU, SEED_SSH])
def test_the_childrens_hashes_are_what_earlier_versions_computed(seed: str) -> None:
    notebook = served_notebook(seed)
    children = [
        workload.statefulset(notebook),
        services.http_service(notebook),
        services.ssh_service(notebook),
    ]
    for child in filter(None, children):
        metadata = dict(child["metadata"])
        annotations = dict(metadata.pop("annotations"))
        applied = annotations.pop(APPLIED_HASH_ANNOTATION)
        if annotations:
            metadata["annotations"] = annotations
        assert applied == _json_hash({**child, "metadata": metadata}), child["kind"]


def test_a_childs_hash_takes_the_fast_way(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_way(*_: object, **__: object) -> str:
        raise AssertionError("hashed through the standard library's json")

    statefulset = workload.statefulset(served_notebook(SEED_GPU))
    monkeypatch.setattr(json, "dumps", slow_way)  # the module diff calls
    assert content_hash(statefulset) == content_hash(copy.deepcopy(statefulset))
    with pytest.raises(AssertionError, match="standard library"):
        content_hash({"fraction": 0.5})


@pytest.mark.parametrize("value", [0.00001, 1e16, "é", [0.5], 7, "x"])
def test_a_hash_of_a_bare_value_is_what_earlier_versions_computed(value: Any) -> None:
    assert content_hash(value) == _json_hash(value)

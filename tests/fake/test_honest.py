"""The fake API tells the truth: the same requests, sent to the fake and to the real API server,
give the same observable answers (what the reconciler suite in tests/unit relies on)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from notebook_controller.api.models import Notebook
from notebook_controller.builders.workload import statefulset
from notebook_controller.reconcilers.notebooks import NOTEBOOKS
from notebook_controller.runtime.kinds import SECRETS, STATEFULSETS
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.objects import JsonDict
from tests.fake.api import FakeApi
from tests.fake.world import notebook_manifest
from tests.kube import Cluster

pytestmark = pytest.mark.cluster

Scenario = Callable[[Any, str], Awaitable[list[Any]]]


def condition(type_: str, status: str) -> JsonDict:
    return {
        "type": type_,
        "status": status,
        "reason": f"{type_}{status}",
        "message": "m",
        "lastTransitionTime": "2025-01-06T09:00:00Z",
    }


def status_body(namespace: str, status: JsonDict) -> JsonDict:
    return {
        "apiVersion": NOTEBOOKS.api_version,
        "kind": NOTEBOOKS.kind,
        "metadata": {"name": "nb", "namespace": namespace},
        "status": status,
    }


def seen(obj: JsonDict) -> tuple[Any, ...]:
    status = obj.get("status") or {}
    types = [c["type"] for c in status.get("conditions") or []]
    return (status.get("phase"), types, obj["metadata"]["generation"])


async def answer(call: Awaitable[Any]) -> Any:
    """The status code and reason of an error, or "ok"."""
    try:
        await call
    except ApiError as error:
        return (error.status, error.reason)
    return "ok"


async def two_status_writers(client: Any, namespace: str) -> list[Any]:
    """Two field managers' conditions in one list; no-op applies; generation and spec."""
    trail: list[Any] = []
    created = await client.create(NOTEBOOKS, namespace, notebook_manifest(namespace=namespace))
    trail.append(created["metadata"]["generation"])
    mine = {"phase": "Pending", "conditions": [condition("Ready", "False")]}
    first = await client.apply_status(
        NOTEBOOKS, namespace, "nb", status_body(namespace, mine), "writer-a"
    )
    trail.append(seen(first))
    theirs = {"conditions": [condition("Idle", "Unknown")]}
    both = await client.apply_status(
        NOTEBOOKS, namespace, "nb", status_body(namespace, theirs), "writer-b"
    )
    trail.append(seen(both))
    again = await client.apply_status(
        NOTEBOOKS, namespace, "nb", status_body(namespace, theirs), "writer-b"
    )
    trail.append(again["metadata"]["resourceVersion"] == both["metadata"]["resourceVersion"])
    mine = {"phase": "Running", "conditions": [condition("Ready", "True")]}
    moved = await client.apply_status(
        NOTEBOOKS, namespace, "nb", status_body(namespace, mine), "writer-a"
    )
    trail.append(seen(moved))
    trail.append(moved["metadata"]["resourceVersion"] != again["metadata"]["resourceVersion"])
    gone = await client.apply_status(
        NOTEBOOKS, namespace, "nb", status_body(namespace, {}), "writer-b"
    )
    trail.append(seen(gone))
    patched = await client.patch(
        NOTEBOOKS, namespace, "nb", {"spec": {"runMode": "paused"}}, field_manager="user"
    )
    trail.append(seen(patched))
    labelled = await client.patch(
        NOTEBOOKS, namespace, "nb", {"metadata": {"labels": {"a": "b"}}}, field_manager="user"
    )
    trail.append(seen(labelled))
    return trail


async def refusals(client: Any, namespace: str) -> list[Any]:
    """409 for a stale resourceVersion, a second POST, a wrong uid precondition; 404."""
    created = await client.create(NOTEBOOKS, namespace, notebook_manifest(namespace=namespace))
    stale = created["metadata"]["resourceVersion"]
    await client.patch(NOTEBOOKS, namespace, "nb", {"metadata": {"labels": {"a": "b"}}})
    guarded = {"metadata": {"resourceVersion": stale}, "spec": {"runMode": "paused"}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": namespace},
        "stringData": {"k": "v"},
    }
    await client.create(SECRETS, namespace, secret)
    return [
        await answer(client.patch(NOTEBOOKS, namespace, "nb", guarded)),
        await answer(client.create(SECRETS, namespace, secret)),
        await answer(client.delete(SECRETS, namespace, "s", preconditions_uid="not-its-uid")),
        await answer(client.patch(NOTEBOOKS, namespace, "missing", {"spec": {}})),
        await answer(
            client.apply_status(NOTEBOOKS, namespace, "missing", status_body(namespace, {}), "w")
        ),
        await answer(client.delete(SECRETS, namespace, "s")),
        await client.get(SECRETS, namespace, "s"),
    ]


async def children_with_owners(client: Any, namespace: str) -> list[Any]:
    """A no-op apply of a StatefulSet keeps its resourceVersion and generation."""
    created = await client.create(NOTEBOOKS, namespace, notebook_manifest(namespace=namespace))
    desired = statefulset(Notebook.model_validate(created))
    name = desired["metadata"]["name"]
    first = await client.apply(STATEFULSETS, namespace, name, desired, "workload")
    again = await client.apply(STATEFULSETS, namespace, name, desired, "workload")
    return [
        again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"],
        again["metadata"]["generation"],
    ]


@pytest.mark.parametrize("scenario", [two_status_writers, refusals, children_with_owners])
async def test_the_fake_answers_as_the_api_server_does(
    cluster: Cluster,
    namespace: str,
    notebook_crd: str,
    scenario: Scenario,
) -> None:
    client = await KubeClient.from_config(str(cluster.kubeconfig))
    async with client:
        real = await scenario(client, namespace)
    fake = await scenario(FakeApi([NOTEBOOKS, STATEFULSETS, SECRETS]), namespace)
    assert fake == real


async def test_the_invalid_template_of_the_unit_suite_is_refused_by_the_api_server(
    cluster: Cluster, namespace: str, notebook_crd: str
) -> None:
    """What the unit suite's validation hook answers (422, 'must be between 1 and 65535') is
    what the API server answers for that template."""
    sidecar = {"name": "sidecar", "image": "busybox:1", "ports": [{"containerPort": 70000}]}
    containers = [{"name": "notebook", "image": "jupyter:1"}, sidecar]
    manifest = notebook_manifest(namespace=namespace, template={"spec": {"containers": containers}})
    client = await KubeClient.from_config(str(cluster.kubeconfig))
    async with client:
        created = await client.create(NOTEBOOKS, namespace, manifest)
        desired = statefulset(Notebook.model_validate(created))
        with pytest.raises(ApiError) as refused:
            await client.apply(
                STATEFULSETS, namespace, desired["metadata"]["name"], desired, "workload"
            )
    assert refused.value.status == 422
    assert "must be between 1 and 65535" in refused.value.message

"""The raw-JSON client and the event recorder against the real API server."""

from __future__ import annotations

import pytest

from notebook_controller.runtime.events import EventRecorder
from notebook_controller.runtime.kinds import CONFIGMAPS, EVENTS
from notebook_controller.runtime.kube import ApiError, KubeClient, ResourceKind
from tests.runtime.support import configmap

pytestmark = pytest.mark.cluster


async def test_apply_patch_and_delete_with_preconditions(kube: KubeClient, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}
    applied = await kube.apply(CONFIGMAPS, namespace, "cm", body, field_manager="rt-one")
    assert applied["data"] == {"a": "1"}
    again = await kube.apply(CONFIGMAPS, namespace, "cm", body, field_manager="rt-one")
    assert again["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]
    assert [entry["manager"] for entry in again["metadata"]["managedFields"]] == ["rt-one"]

    await kube.patch(CONFIGMAPS, namespace, "cm", {"data": {"b": "2"}}, "merge")
    await kube.patch(CONFIGMAPS, namespace, "cm", [{"op": "remove", "path": "/data/a"}], "json")
    patched = await kube.patch(CONFIGMAPS, namespace, "cm", {"data": {"c": "3"}}, "strategic")
    assert patched["data"] == {"b": "2", "c": "3"}
    # Without a field manager, the server names the writer after the client's user agent.
    managers = {entry["manager"] for entry in patched["metadata"]["managedFields"]}
    assert managers == {"notebook-controller"}

    with pytest.raises(ApiError) as conflict:
        await kube.delete(CONFIGMAPS, namespace, "cm", preconditions_uid="not-the-uid")
    assert conflict.value.status == 409
    await kube.delete(CONFIGMAPS, namespace, "cm", preconditions_uid=applied["metadata"]["uid"])
    assert await kube.get(CONFIGMAPS, namespace, "cm") is None
    await kube.delete(CONFIGMAPS, namespace, "cm")  # already gone: not an error


async def test_list_pages_through_continue_tokens(kube: KubeClient, namespace: str) -> None:
    for index in range(5):
        await kube.create(CONFIGMAPS, namespace, configmap(f"page-{index}", {"paged": "yes"}))
    first = await kube.list(CONFIGMAPS, namespace, "paged=yes", limit=2)
    assert len(first["items"]) == 2 and first["metadata"]["continue"]
    rest = await kube.list(
        CONFIGMAPS, namespace, "paged=yes", continue_token=first["metadata"]["continue"]
    )
    assert len(rest["items"]) == 3


async def test_repeated_events_are_aggregated(kube: KubeClient, namespace: str) -> None:
    involved = await kube.create(CONFIGMAPS, namespace, configmap("subject"))
    recorder = EventRecorder(kube, "rt-test")
    for _ in range(3):
        await recorder.event(involved, "Warning", "BadSpec", "spec.template is missing")
    await recorder.event(involved, "Normal", "Created", "made something")
    listing = await kube.list(EVENTS, namespace)
    counts = {
        (e["reason"], e["count"]) for e in listing["items"] if e["source"]["component"] == "rt-test"
    }
    assert counts == {("BadSpec", 3), ("Created", 1)}
    (bad_spec,) = [e for e in listing["items"] if e["reason"] == "BadSpec"]
    assert bad_spec["involvedObject"]["uid"] == involved["metadata"]["uid"]
    assert bad_spec["type"] == "Warning"


async def test_unserved_kind_raises_not_found(kube: KubeClient, namespace: str) -> None:
    unserved = ResourceKind("nothing.example.com", "v1", "things", "Thing")
    with pytest.raises(ApiError) as raised:
        await kube.list(unserved, namespace)
    assert raised.value.is_not_found
    assert await kube.get(unserved, namespace, "x") is None

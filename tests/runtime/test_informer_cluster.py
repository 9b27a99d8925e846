"""The informer against the real control plane: list+watch, inactivity, restarts, expiry."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
import pytest
from prometheus_client import REGISTRY

from notebook_controller.runtime.backoff import Backoff
from notebook_controller.runtime.informer import Informer, label_indexer
from notebook_controller.runtime.kinds import CONFIGMAPS
from notebook_controller.runtime.kube import ApiError, KubeClient
from tests.kube import Cluster
from tests.runtime.support import Recorder, configmap, eventually

pytestmark = pytest.mark.cluster
T = TypeVar("T")


def fast_backoff() -> Backoff:
    return Backoff(initial=0.2, maximum=2.0)


@asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Informer]:
    async with asyncio.TaskGroup() as group:
        task = group.create_task(informer.run())
        await asyncio.wait_for(informer.wait_synced(), timeout=60)
        try:
            yield informer
        finally:
            task.cancel()


async def retrying(call: Callable[[], Awaitable[T]], attempts: int = 20) -> T:
    """A write right after an API server restart may hit a stale pooled connection."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except (aiohttp.ClientError, OSError):
            await asyncio.sleep(0.5)
    return await call()


async def converge(informer: Informer, kube: KubeClient, namespace: str, within: float) -> None:
    """Wait until the cache holds exactly what the server has, at the same versions."""

    async def truth() -> dict[str, str]:
        listing = await retrying(lambda: kube.list(CONFIGMAPS, namespace))
        return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listing["items"]}

    def cached() -> dict[str, str]:
        return {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for o in informer.store.list(namespace)
        }

    deadline = asyncio.get_running_loop().time() + within
    while (server := await truth()) != cached():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"cache {cached()} never matched the server {server}")
        await asyncio.sleep(0.3)


def watch_events(resource: str) -> Counter[str]:
    """`notebook_controller_informer_watch_events_total` by type, for `resource`."""
    return Counter(
        {
            event_type: int(value)
            for event_type in ("ADDED", "MODIFIED", "DELETED")
            if (
                value := REGISTRY.get_sample_value(
                    "notebook_controller_informer_watch_events_total",
                    {"resource": resource, "type": event_type},
                )
            )
        }
    )


def names(objs: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def ours(found: list[str]) -> list[str]:
    """Leave out what the cluster adds to every namespace (kube-root-ca.crt)."""
    return [name for name in found if name.startswith("cm-")]


async def test_lists_then_watches_with_selector_and_indexes(
    kube: KubeClient, namespace: str
) -> None:
    await kube.create(CONFIGMAPS, namespace, configmap("before", {"app": "one"}))
    informer = Informer(
        kube,
        CONFIGMAPS,
        namespaces=[namespace],
        label_selector="app",
        indexers={"by-app": label_indexer("app")},
    )
    recorder = Recorder()
    informer.add_handler(recorder)
    events_before = watch_events("configmaps")
    async with running(informer):
        assert informer.has_synced
        assert recorder.added == ["before"]
        listed = informer.store.get(namespace, "before")
        assert listed is not None and listed["kind"] == "ConfigMap"

        await kube.create(CONFIGMAPS, namespace, configmap("after", {"app": "two"}))
        await kube.create(CONFIGMAPS, namespace, configmap("unlabelled"))
        await kube.patch(CONFIGMAPS, namespace, "before", {"metadata": {"labels": {"app": "two"}}})
        await kube.delete(CONFIGMAPS, namespace, "after")
        await eventually(lambda: recorder.deleted == ["after"], 30)
        await eventually(lambda: recorder.updated == ["before"], 30)

        assert names(informer.store.list(namespace)) == ["before"]
        assert names(informer.store.by_index("by-app", "two")) == ["before"]
        assert informer.store.by_index("by-app", "one") == []
        assert "unlabelled" not in recorder.added
    # the listing is no watch event; each change after it is one, counted by type
    assert watch_events("configmaps") - events_before == Counter(
        {"ADDED": 1, "MODIFIED": 1, "DELETED": 1}
    )


async def test_silent_watch_reconnects_without_relisting(kube: KubeClient, namespace: str) -> None:
    informer = Informer(kube, CONFIGMAPS, namespaces=[namespace], inactivity_timeout=1.0)
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await eventually(lambda: informer.watches_started >= 3, 30, "watch restarts")
        assert informer.relists == 1
        await kube.create(CONFIGMAPS, namespace, configmap("late"))
        await eventually(lambda: "late" in recorder.added, 30)


def etcd_key(namespace: str, name: str) -> str:
    return f"/registry/configmaps/{namespace}/{name}"


def require_components(cluster: Cluster) -> None:
    if not cluster.can_control_components:
        pytest.skip("needs the local cluster (components can be stopped)")


async def test_caches_converge_across_apiserver_restart(
    cluster: Cluster, kube: KubeClient, namespace: str
) -> None:
    require_components(cluster)
    for index in range(5):
        await kube.create(CONFIGMAPS, namespace, configmap(f"cm-{index}", data=str(index)))
    informer = Informer(
        kube,
        CONFIGMAPS,
        namespaces=[namespace],
        inactivity_timeout=10,
        backoff_factory=fast_backoff,
    )
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        assert len(ours(names(informer.store.list(namespace)))) == 5
        await asyncio.to_thread(cluster.stop_component, "kube-apiserver")
        try:
            # Deleted behind the API server's back while it is down.
            for name in ("cm-0", "cm-1"):
                deleted = await asyncio.to_thread(cluster.etcdctl, "del", etcd_key(namespace, name))
                assert deleted.stdout.strip() == "1"
            await asyncio.sleep(2)  # the informer keeps failing to reconnect meanwhile
        finally:
            await asyncio.to_thread(cluster.start_component, "kube-apiserver")
        await retrying(lambda: kube.create(CONFIGMAPS, namespace, configmap("cm-new")))
        await retrying(lambda: kube.patch(CONFIGMAPS, namespace, "cm-2", {"data": {"v": "x"}}))
        await converge(informer, kube, namespace, within=120)
    assert sorted(recorder.deleted) == ["cm-0", "cm-1"]
    assert "cm-new" in recorder.added
    assert "cm-2" in recorder.updated
    assert ours(names(informer.store.list(namespace))) == ["cm-2", "cm-3", "cm-4", "cm-new"]


async def test_expired_watch_relists_and_diffs(
    cluster: Cluster, kube: KubeClient, namespace: str
) -> None:
    """Compact etcd past the informer's resourceVersion: its next watch gets 410 Gone."""
    require_components(cluster)
    for index in range(4):
        await kube.create(CONFIGMAPS, namespace, configmap(f"cm-{index}"))
    informer = Informer(
        kube,
        CONFIGMAPS,
        namespaces=[namespace],
        inactivity_timeout=10,
        backoff_factory=fast_backoff,
    )
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        relists_before = informer.relists
        await asyncio.to_thread(cluster.stop_component, "kube-apiserver")
        try:
            await asyncio.to_thread(cluster.etcdctl, "del", etcd_key(namespace, "cm-0"))
            status = await asyncio.to_thread(cluster.etcdctl, "endpoint", "status", "-w", "json")
            revision = json.loads(status.stdout)[0]["Status"]["header"]["revision"]
            await asyncio.to_thread(cluster.etcdctl, "compact", str(revision))
        finally:
            await asyncio.to_thread(cluster.start_component, "kube-apiserver")
        await converge(informer, kube, namespace, within=120)
        assert informer.relists > relists_before, "the expired watch must re-list"
    # The diff reports the vanished key and nothing for the objects that didn't change.
    assert recorder.deleted == ["cm-0"]
    assert recorder.updated == []
    assert sorted(ours(recorder.added)) == ["cm-0", "cm-1", "cm-2", "cm-3"]


async def test_missing_resource_reports_api_error(kube: KubeClient, namespace: str) -> None:
    assert await kube.get(CONFIGMAPS, namespace, "nothing-here") is None
    with pytest.raises(ApiError) as raised:
        await kube.create(CONFIGMAPS, namespace, {"metadata": {"name": "Bad_Name"}})
    assert raised.value.status == 422

"""Hot reload of the policy ConfigMap from the informer cache: applied once per version, a bad
edit keeps the last good policy and is reported once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from notebook_controller.idle.policy import IdlePolicy
from notebook_controller.idle.policy_source import MISSING, PolicySource
from notebook_controller.reconcilers.idle import NamespaceLabels
from notebook_controller.runtime.kube import ApiError
from notebook_controller.runtime.store import Store


@dataclass
class Events:
    recorded: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.recorded.append((obj["metadata"]["name"], type_, reason, message))


def configmap(version: int, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "namespace": "system",
            "name": "idle-policy",
            "resourceVersion": str(version),
            "uid": "cm-uid",
        },
        "data": data,
    }


def rejected() -> float:
    value = REGISTRY.get_sample_value(
        "notebook_controller_idle_policy_reloads_total", {"result": "rejected"}
    )
    return value or 0.0


async def test_defaults_without_a_configmap_then_edits_apply() -> None:
    store, events = Store(), Events()
    source = PolicySource(store, "system", "idle-policy", events)
    first = await source.current()
    assert (first.policy, first.version) == (IdlePolicy(), MISSING)

    store.upsert(configmap(7, idleTimeout="2h"))
    assert (await source.current()).policy.idle_timeout == timedelta(hours=2)
    store.upsert(configmap(8, idleTimeout="30m", enabled="false"))
    edited = await source.current()
    assert edited.version == "8"
    assert (edited.policy.idle_timeout, edited.policy.enabled) == (timedelta(minutes=30), False)
    assert events.recorded == []


async def test_bad_edit_keeps_the_last_good_policy_and_warns_once() -> None:
    store, events = Store(), Events()
    source = PolicySource(store, "system", "idle-policy", events)
    store.upsert(configmap(1, idleTimeout="2h"))
    await source.current()
    before = rejected()

    store.upsert(configmap(2, idleTimeout="two hours", reclaimGrace="48h"))
    for _ in range(3):  # every reconcile asks; the error is reported for this version only once
        kept = await source.current()
        assert kept.policy.idle_timeout == timedelta(hours=2)
        assert kept.policy.reclaim_grace == timedelta(hours=24)  # none of the bad edit applies
    assert events.recorded == [
        (
            "idle-policy",
            "Warning",
            "InvalidIdlePolicy",
            "Ignored, the previous idle policy stays in force: idleTimeout: 'two hours' is not"
            " a duration (write e.g. 90s, 5m, 1h, 1h30m or plain seconds)",
        )
    ]
    assert rejected() == before + 1

    store.upsert(configmap(3, idleTimeout="3h"))
    assert (await source.current()).policy.idle_timeout == timedelta(hours=3)


async def test_deleting_the_configmap_restores_the_defaults() -> None:
    store, events = Store(), Events()
    source = PolicySource(store, "system", "idle-policy", events)
    store.upsert(configmap(1, enabled="false"))
    assert not (await source.current()).policy.enabled
    store.delete(("system", "idle-policy"))
    assert (await source.current()).policy == IdlePolicy()


def test_only_its_own_configmap_is_the_policy() -> None:
    source = PolicySource(Store(), "system", "idle-policy", Events())
    assert source.is_policy(configmap(1))
    other = configmap(1)
    other["metadata"]["name"] = "something-else"
    assert not source.is_policy(other)


async def test_a_namespace_the_selector_cannot_read_is_reported_once_per_version() -> None:
    store, events = Store(), Events()
    source = PolicySource(store, "system", "idle-policy", events)
    store.upsert(configmap(1, namespaceSelector="matchLabels: {team: ml}"))
    await source.current()
    for _ in range(3):
        await source.namespace_unreadable("team-a")
    await source.namespace_unreadable("team-b")
    assert [(name, type_, reason) for name, type_, reason, _ in events.recorded] == [
        ("idle-policy", "Warning", "NamespaceSelectorForbidden"),
        ("idle-policy", "Warning", "NamespaceSelectorForbidden"),
    ]
    message = events.recorded[0][3]
    assert "namespace team-a" in message and "not reclaimed" in message
    assert "NBC_NAMESPACES" in message

    store.upsert(configmap(2, namespaceSelector="matchLabels: {team: cv}"))
    await source.current()
    await source.namespace_unreadable("team-a")  # a new policy version: said again
    assert len(events.recorded) == 3


async def test_namespace_labels_are_none_when_rbac_forbids_the_get() -> None:
    class Forbidding:
        def __init__(self) -> None:
            self.gets = 0

        async def get(self, kind: Any, namespace: Any, name: str) -> Any:
            self.gets += 1
            if name == "mine":
                return {"metadata": {"name": name, "labels": {"team": "ml"}}}
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden')

    client = Forbidding()
    labels = NamespaceLabels(client)  # type: ignore[arg-type]
    assert await labels.get("mine") == {"team": "ml"}
    assert await labels.get("theirs") is None
    assert await labels.get("theirs") is None  # remembered for the TTL, not asked again
    assert client.gets == 2

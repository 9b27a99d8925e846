"""Hot reload of the policy ConfigMap from the informer cache: applied once per version, a bad
edit keeps the last good policy and is reported once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from notebook_controller.activity.policy import IdlePolicy
from notebook_controller.reconcilers.idle_policy import MISSING, PolicySource
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

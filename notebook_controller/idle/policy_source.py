"""The idle policy as the ConfigMap in the informer cache says, parsed once per resourceVersion.

A ConfigMap that doesn't parse leaves the previous policy in force (the defaults, if none was
ever valid), and is reported once per version: a log line, a Warning event `InvalidIdlePolicy`
on the ConfigMap, and `notebook_controller_idle_policy_reloads_total{result="rejected"}`. A
missing ConfigMap means the defaults.

A `namespaceSelector` needs the labels of each notebook's Namespace, read with a GET of that one
Namespace. Where RBAC doesn't allow it (a namespace-scoped install whose tenant Role lacks
`get namespaces`), the namespace's notebooks are not covered, and that is reported once per
policy version and namespace: a log line and a Warning event `NamespaceSelectorForbidden` on the
ConfigMap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from notebook_controller.idle import metrics
from notebook_controller.idle.policy import IdlePolicy, PolicyError, policy_from_data
from notebook_controller.runtime.events import WARNING
from notebook_controller.runtime.store import Store

log = structlog.get_logger(__name__)

MISSING: Final = "<missing>"


class Recorder(Protocol):
    """What is needed of the runtime's EventRecorder."""

    async def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class LoadedPolicy:
    policy: IdlePolicy
    version: str
    """resourceVersion of the ConfigMap last looked at (MISSING when there is none)."""


class PolicySource:
    def __init__(self, configmaps: Store, namespace: str, name: str, recorder: Recorder) -> None:
        self.configmaps = configmaps
        self.namespace = namespace
        self.name = name
        self.recorder = recorder
        self._loaded = LoadedPolicy(IdlePolicy(), MISSING)
        self._announced = False
        self._unreadable_reported: set[tuple[str, str]] = set()  # (policy version, namespace)

    def is_policy(self, configmap: dict[str, Any]) -> bool:
        metadata = configmap.get("metadata") or {}
        return (metadata.get("namespace"), metadata.get("name")) == (self.namespace, self.name)

    async def current(self) -> LoadedPolicy:
        configmap = self.configmaps.get(self.namespace, self.name)
        version = MISSING if configmap is None else str(configmap["metadata"]["resourceVersion"])
        if version == self._loaded.version and self._announced:
            return self._loaded
        previous = self._loaded
        self._announced = True
        try:
            policy = policy_from_data(None if configmap is None else configmap.get("data"))
        except PolicyError as error:
            # Remember the version so the error is reported once; keep the last good policy.
            self._loaded = LoadedPolicy(previous.policy, version)
            metrics.POLICY_RELOADS.labels("rejected").inc()
            log.warning(
                "idle policy rejected, keeping the previous one",
                configmap=f"{self.namespace}/{self.name}",
                error=str(error),
            )
            assert configmap is not None  # an absent ConfigMap is the defaults, always valid
            await self.recorder.event(
                configmap,
                WARNING,
                "InvalidIdlePolicy",
                f"Ignored, the previous idle policy stays in force: {error}",
            )
            return self._loaded
        self._loaded = LoadedPolicy(policy, version)
        metrics.POLICY_RELOADS.labels("applied").inc()
        log.info(
            "idle policy loaded",
            configmap=f"{self.namespace}/{self.name}",
            source="defaults" if configmap is None else "configmap",
            **policy.describe(),
        )
        return self._loaded

    async def namespace_unreadable(self, namespace: str) -> None:
        """The selector can't be evaluated for `namespace` (403 on its GET): say so, once per
        policy version."""
        key = (self._loaded.version, namespace)
        if key in self._unreadable_reported:
            return
        self._unreadable_reported.add(key)
        message = (
            f"namespaceSelector can't be evaluated for namespace {namespace}: the controller may"
            f" not get that Namespace, so its notebooks are not reclaimed. Grant get on"
            f" namespaces in {namespace} (deploy/namespaced/tenant), or drop namespaceSelector"
            f" (a namespace-scoped install already chooses its namespaces with NBC_NAMESPACES)"
        )
        log.warning(
            "idle policy namespaceSelector not evaluated",
            configmap=f"{self.namespace}/{self.name}",
            namespace=namespace,
        )
        configmap = self.configmaps.get(self.namespace, self.name)
        if configmap is not None:
            await self.recorder.event(configmap, WARNING, "NamespaceSelectorForbidden", message)

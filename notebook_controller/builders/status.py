"""The notebook's status as a pure function of what the cache shows.

Only the fields the status reconciler owns are computed here: `Idle` and
`ssh.lastSshClientActivity` belong to the idle reclaimer (another field manager). A condition's
`lastTransitionTime` is carried over unless its status flips, so an unchanged world gives an
identical status and the reconciler sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from notebook_controller.api.models import (
    CONDITION_READY,
    CONDITION_SUSPENDED,
    RECLAIMED_AT_ANNOTATION,
    Notebook,
    NotebookType,
)
from notebook_controller.builders.meta import APPLIED_HASH_ANNOTATION
from notebook_controller.builders.names import ssh_service_name
from notebook_controller.builders.services import SSH_SERVICE_PORT
from notebook_controller.builders.ssh import KeySecretProblem
from notebook_controller.builders.workload import nb_prefix
from notebook_controller.runtime.conditions import condition, find_condition

CONDITION_SSH_KEYS: Final = "SSHKeysReady"
OWNED_CONDITIONS: Final = (CONDITION_READY, CONDITION_SUSPENDED, CONDITION_SSH_KEYS)

PHASE_PENDING: Final = "Pending"
PHASE_RUNNING: Final = "Running"
PHASE_SUSPENDED: Final = "Suspended"
PHASE_FAILED: Final = "Failed"

READY_MESSAGE: Final = "The Notebook is ready to serve"
# Ready reasons that mean the pod won't get better without a change: phase Failed, and a
# Warning event on the Notebook when they appear.
FAILURE_REASONS: Final = frozenset(
    {
        "ImagePullBackOff",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "PodFailed",
        "InvalidTemplate",
    }
)
# Warnings that don't fail the notebook (the scheduler may still find room).
WARNING_REASONS: Final = FAILURE_REASONS | {"Unschedulable"}

_IMAGE_PULL_REASONS: Final = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)


@dataclass(frozen=True)
class Observed:
    """What the caches show about one notebook's children."""

    statefulset: Mapping[str, Any] | None = None
    pod: Mapping[str, Any] | None = None
    ssh_service: Mapping[str, Any] | None = None
    key_problems: list[KeySecretProblem] | None = field(default_factory=list)
    """Problems with the key Secrets; None when they are not checked (no SSHKeysReady)."""
    workload_hash: str | None = None
    """Applied-hash the StatefulSet carries when it matches the current spec."""
    refused: str | None = None
    """Why the API server refused the StatefulSet of the current spec, if it did."""


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


def _container_problem(status: Mapping[str, Any], init: bool) -> tuple[str, str] | None:
    name = status.get("name", "?")
    state = status.get("state") or {}
    waiting = state.get("waiting")
    if waiting:
        reason = str(waiting.get("reason") or "Waiting")
        detail = waiting.get("message") or reason
        if reason in _IMAGE_PULL_REASONS:
            return (
                "ImagePullBackOff",
                f"container {name}: cannot pull image {status.get('image')}: {detail}",
            )
        if reason == "CrashLoopBackOff":
            last = (status.get("lastState") or {}).get("terminated") or {}
            why = f"{last.get('reason', 'exited')} with code {last.get('exitCode', '?')}"
            restarts = status.get("restartCount", 0)
            return reason, f"container {name} keeps crashing ({why}, {restarts} restarts)"
        if reason == "PodInitializing" or reason == "ContainerCreating":
            return "ContainerCreating", f"container {name}: {reason}"
        return reason, f"container {name}: {detail}"
    terminated = state.get("terminated")
    if terminated and not (init and terminated.get("exitCode") == 0):
        why = f"{terminated.get('reason') or 'Terminated'} with code {terminated.get('exitCode')}"
        restarts = status.get("restartCount", 0)
        if restarts:
            # A real kubelet (v1.37) reports a container waiting out its restart back-off as
            # `terminated`, not `waiting: CrashLoopBackOff`; restarted before: it crash-loops.
            return (
                "CrashLoopBackOff",
                f"container {name} keeps crashing ({why}, {restarts} restarts)",
            )
        return "ContainerTerminated", f"container {name}: {why}"
    if not init and "running" in state and not status.get("ready"):
        return "ContainersNotReady", f"container {name} is running but not ready yet"
    return None


_PRIORITY: Final = (
    "ImagePullBackOff",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ContainerTerminated",
)


def _pod_condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def pod_readiness(pod: Mapping[str, Any]) -> Readiness:
    """Whether the pod serves, else the most telling reason, covering all its containers."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return Readiness(False, "PodTerminating", f"Pod {name} is terminating")
    if status.get("phase") == "Failed":
        why = status.get("message") or status.get("reason") or "all containers exited"
        return Readiness(False, "PodFailed", f"Pod {name} failed: {why}")
    scheduled = _pod_condition(pod, "PodScheduled")
    # A pod bound to a node is scheduled, whatever a condition says: a failed bind of a
    # deleted namesake can leave PodScheduled=False on the new pod after it was bound and ran.
    bound = bool((pod.get("spec") or {}).get("nodeName"))
    if not bound and scheduled is not None and scheduled.get("status") == "False":
        reason = str(scheduled.get("reason") or "Unschedulable")
        return Readiness(False, reason, f"Pod {name}: {scheduled.get('message') or reason}")
    problems = [
        problem
        for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses"))
        for container in status.get(key) or []
        if (problem := _container_problem(container, init)) is not None
    ]
    ready = _pod_condition(pod, "Ready")
    if not problems and ready is not None and ready.get("status") == "True":
        return Readiness(True, "PodReady", READY_MESSAGE)
    if not problems:
        return Readiness(False, "PodPending", f"Pod {name} is {status.get('phase', 'Pending')}")
    ranked = sorted(
        problems, key=lambda p: _PRIORITY.index(p[0]) if p[0] in _PRIORITY else len(_PRIORITY)
    )
    return Readiness(False, ranked[0][0], "; ".join(message for _, message in ranked))


def _pod_is_current(statefulset: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """The pod runs the StatefulSet's latest template (not an old one about to be replaced)."""
    sts_status = statefulset.get("status") or {}
    generation = statefulset.get("metadata", {}).get("generation")
    if sts_status.get("observedGeneration") != generation:
        return False
    revision = (pod["metadata"].get("labels") or {}).get("controller-revision-hash")
    return revision == sts_status.get("updateRevision")


def readiness(notebook: Notebook, observed: Observed) -> Readiness:
    if notebook.spec.paused:
        if observed.pod is not None:
            return Readiness(False, "Suspending", f"Pod {_name(observed.pod)} is being removed")
        return Readiness(False, "Suspended", "The Notebook is suspended")
    if observed.refused is not None:
        return Readiness(
            False,
            "InvalidTemplate",
            f"The API server refused the notebook's StatefulSet: {observed.refused}"
            " (fix spec.template)",
        )
    sts = observed.statefulset
    if sts is None:
        return Readiness(False, "WorkloadNotCreated", "Waiting for the StatefulSet")
    annotations = sts.get("metadata", {}).get("annotations") or {}
    if annotations.get(APPLIED_HASH_ANNOTATION) != observed.workload_hash:
        return Readiness(
            False, "WorkloadOutdated", "The StatefulSet does not match the spec yet (see events)"
        )
    if observed.pod is None:
        return Readiness(
            False, "PodNotCreated", f"Waiting for StatefulSet {_name(sts)} to make its pod"
        )
    result = pod_readiness(observed.pod)
    if result.ready and not _pod_is_current(sts, observed.pod):
        return Readiness(
            False, "PodOutdated", f"Pod {_name(observed.pod)} is being replaced by the new template"
        )
    return result


def _name(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def phase(notebook: Notebook, observed: Observed, ready: Readiness) -> str:
    if notebook.spec.paused:
        return PHASE_SUSPENDED
    if ready.reason in FAILURE_REASONS:
        return PHASE_FAILED
    pod_phase = ((observed.pod or {}).get("status") or {}).get("phase")
    return PHASE_RUNNING if pod_phase == "Running" else PHASE_PENDING


def url(notebook: Notebook, external_base: str | None) -> str:
    base = (external_base or "").rstrip("/")
    suffix = "lab" if notebook.spec.type is NotebookType.JUPYTER else ""
    return f"{base}{nb_prefix(notebook)}{suffix}"


def _suspended_condition(notebook: Notebook) -> tuple[str, str, str]:
    if not notebook.spec.paused:
        return "False", "Running", "The Notebook is running"
    if RECLAIMED_AT_ANNOTATION in (notebook.metadata.get("annotations") or {}):
        return "True", "IdleReclaimed", "The Notebook was suspended after being idle"
    return "True", "Suspended", "The Notebook is suspended; its Services and volumes are kept"


def _ssh_keys_condition(
    notebook: Notebook, problems: list[KeySecretProblem]
) -> tuple[str, str, str]:
    assert notebook.spec.ssh is not None
    if not notebook.spec.ssh.authorized_keys:
        return "False", "NoKeySecrets", "ssh.authorized_keys names no Secret: no one can log in"
    if not problems:
        count = len(notebook.spec.ssh.authorized_keys)
        return "True", "KeysValid", f"All {count} key Secrets hold OpenSSH public keys"
    reasons = {p.reason for p in problems}
    reason = reasons.pop() if len(reasons) == 1 else "KeySecretsInvalid"
    return "False", reason, "; ".join(p.message for p in problems)


def _ssh_status(notebook: Notebook, service: Mapping[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "serviceName": ssh_service_name(notebook.name),
        "port": SSH_SERVICE_PORT,
        "protocol": "TCP",
    }
    spec = (service or {}).get("spec") or {}
    if spec.get("clusterIP"):
        result["clusterIp"] = spec["clusterIP"]
    node_port = next(
        (p.get("nodePort") for p in spec.get("ports") or [] if p.get("nodePort")), None
    )
    if node_port:
        result["nodePort"] = node_port
    return result


def _conditions(
    current: Iterable[Mapping[str, Any]],
    wanted: list[tuple[str, tuple[str, str, str]]],
    now: datetime,
) -> list[dict[str, Any]]:
    previous = list(current)
    return [
        condition(type_, status, reason, message, previous=find_condition(previous, type_), now=now)
        for type_, (status, reason, message) in wanted
    ]


def desired_status(
    notebook: Notebook,
    current_status: Mapping[str, Any],
    observed: Observed,
    *,
    external_url_base: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The status fields this controller owns, as they should be."""
    ready = readiness(notebook, observed)
    wanted = [
        (CONDITION_READY, ("True" if ready.ready else "False", ready.reason, ready.message)),
        (CONDITION_SUSPENDED, _suspended_condition(notebook)),
    ]
    if notebook.spec.ssh_enabled and observed.key_problems is not None:
        wanted.append((CONDITION_SSH_KEYS, _ssh_keys_condition(notebook, observed.key_problems)))
    status: dict[str, Any] = {
        "phase": phase(notebook, observed, ready),
        "url": url(notebook, external_url_base),
        "conditions": _conditions(current_status.get("conditions") or [], wanted, now),
        "observedGeneration": notebook.generation,
    }
    if observed.pod is not None:
        pod_meta = observed.pod["metadata"]
        status["pod"] = {
            "reference": {"name": pod_meta["name"], "uid": pod_meta.get("uid")},
            "phase": (observed.pod.get("status") or {}).get("phase", "Pending"),
        }
    if notebook.spec.ssh_enabled:
        status["ssh"] = _ssh_status(notebook, observed.ssh_service)
    return status


def owned_part(status: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a stored status this controller owns (what `desired_status` computes)."""
    result = {k: v for k, v in status.items() if k in ("phase", "url", "pod", "observedGeneration")}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") in OWNED_CONDITIONS]
    if conditions:
        result["conditions"] = conditions
    ssh = {k: v for k, v in (status.get("ssh") or {}).items() if k != "lastSshClientActivity"}
    if ssh:
        result["ssh"] = ssh
    return result


def _by_type(conditions: Iterable[Mapping[str, Any]]) -> dict[Any, Mapping[str, Any]]:
    return {c.get("type"): c for c in conditions}


def status_changed(desired: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    mine = owned_part(current)
    if _by_type(desired.get("conditions") or []) != _by_type(mine.get("conditions") or []):
        return True
    strip = ("conditions",)
    return {k: v for k, v in desired.items() if k not in strip} != {
        k: v for k, v in mine.items() if k not in strip
    }


def transition_events(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Event]:
    """Events worth recording for this status change (none when nothing meaningful moved)."""
    before = _by_type(current.get("conditions") or [])
    after = _by_type(desired.get("conditions") or [])
    events: list[Event] = []
    ready_before, ready_after = before.get(CONDITION_READY) or {}, after[CONDITION_READY]
    reason = str(ready_after["reason"])
    if reason in WARNING_REASONS and ready_before.get("reason") != reason:
        events.append(Event("Warning", reason, str(ready_after["message"])))
    if ready_after["status"] == "True" and ready_before.get("status") != "True":
        events.append(Event("Normal", "Ready", READY_MESSAGE))
    keys_before, keys_after = before.get(CONDITION_SSH_KEYS) or {}, after.get(CONDITION_SSH_KEYS)
    if keys_after is not None:
        changed = (keys_before.get("status"), keys_before.get("message")) != (
            keys_after["status"],
            keys_after["message"],
        )
        if changed and keys_after["status"] == "False":
            events.append(Event("Warning", str(keys_after["reason"]), str(keys_after["message"])))
        elif changed and keys_before.get("status") == "False":
            events.append(Event("Normal", "SSHKeysValid", str(keys_after["message"])))
    return events

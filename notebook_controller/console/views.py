"""What the console shows of a notebook, in words, as a pure function of the Notebook object:
phase, Ready and Idle with their reasons, requests, the SSH command line, and which actions make
sense now. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notebook_controller.api.models import GPU_PERCENT_RESOURCE, RECLAIMED_AT_ANNOTATION
from notebook_controller.builders.raw import (
    condition,
    is_paused,
    main_container,
)
from notebook_controller.builders.raw import queue as raw_queue


@dataclass(frozen=True)
class NotebookView:
    namespace: str
    name: str
    type: str
    phase: str
    ready: bool
    paused: bool
    why: str
    """One sentence: why it is (not) Ready, paused or idle."""
    idle: str
    """The Idle condition in words ("" when the reclaimer has not judged it)."""
    cpu: str
    memory: str
    gpu_percent: str
    queue: str
    ssh: str
    """The command a user types to log in ("" with SSH off)."""
    url: str
    uid: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _requests(notebook: Mapping[str, Any]) -> Mapping[str, Any]:
    return (main_container(notebook).get("resources") or {}).get("requests") or {}


def _ssh_command(namespace: str, status: Mapping[str, Any], ssh_host: str) -> str:
    ssh = status.get("ssh") or {}
    if not ssh.get("serviceName"):
        return ""
    if ssh.get("nodePort"):
        return f"ssh -p {ssh['nodePort']} t9kuser@{ssh_host or '<node address>'}"
    return (
        f"kubectl -n {namespace} port-forward svc/{ssh['serviceName']} 2222:{ssh.get('port', 22)}"
        " & ssh -p 2222 t9kuser@127.0.0.1"
    )


def _why(notebook: Mapping[str, Any], paused: bool, ready: Mapping[str, Any]) -> str:
    annotations = (notebook.get("metadata") or {}).get("annotations") or {}
    if paused:
        reclaimed = annotations.get(RECLAIMED_AT_ANNOTATION)
        if reclaimed:
            return (
                f"paused by the idle reclaimer at {reclaimed}: no activity for the policy's"
                " idle timeout and grace; press Resume to start it again (its volumes are kept)"
            )
        suspended = condition(notebook, "Suspended").get("message") or "it has no pod"
        return f"paused by a user: {suspended}; press Resume to start it again"
    if ready.get("status") == "True":
        return "ready: open it"
    if not ready:
        return "waiting for the controller to report on it"
    message = ready.get("message") or ready.get("reason") or "not ready"
    queue = raw_queue(notebook)
    if queue and ready.get("reason") in ("Unschedulable", "PodPending", "Pending"):
        return f"waiting for resources in queue {queue}: {message}"
    return message


def view(notebook: Mapping[str, Any], ssh_host: str = "") -> NotebookView:
    metadata = notebook.get("metadata") or {}
    spec = notebook.get("spec") or {}
    status = notebook.get("status") or {}
    paused = is_paused(notebook)
    ready = condition(notebook, "Ready")
    idle = condition(notebook, "Idle")
    requests = _requests(notebook)
    queue = raw_queue(notebook) or ""
    return NotebookView(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        type=str(spec.get("type") or "jupyter"),
        phase=str(status.get("phase") or ("Suspended" if paused else "Pending")),
        ready=ready.get("status") == "True" and not paused,  # a paused one is going away
        paused=paused,
        why=_why(notebook, paused, ready),
        idle="" if paused else str(idle.get("message") or ""),
        cpu=str(requests.get("cpu", "")),
        memory=str(requests.get("memory", "")),
        gpu_percent=str(requests.get(GPU_PERCENT_RESOURCE, "")),
        queue=str(queue),
        ssh="" if paused else _ssh_command(str(metadata.get("namespace", "")), status, ssh_host),
        url=str(status.get("url") or ""),
        uid=str(metadata.get("uid", "")),
    )

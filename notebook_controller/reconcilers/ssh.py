"""SSH reconciler: the notebook's host-key Secret (field manager notebook-controller-ssh), made
without reading any Secret.

The controller may create Secrets but not read them (docs/security.md): the key is generated and
POSTed, and 409 AlreadyExists means the Secret is there. POST never overwrites, so a stale view
can't change the host's identity. The Secret is asked for once per pod that may need it, while
SSH is on and the notebook runs: when there is no pod yet (SSH turned on, a notebook created or
resumed: the Secret is there before the pod) and for every pod the StatefulSet makes. So a
deleted host-key Secret comes back, with a new key, for the next pod, which can't start without
it; and a 409 from a deleted namesake's Secret awaiting garbage collection is asked again by the
new notebook's pod. Pods that were running before this process started are left alone (they
mounted their key): a restart or a new leader sends no request for running notebooks.

The Secret outlives SSH being turned off (turning it on again keeps the identity) and goes with
the notebook (owner reference). Not being read, it is not healed either: its labels and owner
reference stay as whoever edited them left them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from notebook_controller.api.models import Notebook
from notebook_controller.builders.ssh import HostKey, host_key_secret
from notebook_controller.reconcilers.notebooks import load_notebook, notebook_pod
from notebook_controller.runtime.clock import parse_rfc3339, utcnow
from notebook_controller.runtime.kinds import SECRETS
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.reconcile import Request, Result
from notebook_controller.runtime.store import Store

log = structlog.get_logger(__name__)

FIELD_MANAGER: Final = "notebook-controller-ssh"
# A started pod created this long before the process started was running before it: left alone.
# (Pod times are the API server's clock; the margin absorbs skew, at worst one extra request.)
PREEXISTING_MARGIN: Final = timedelta(seconds=60)


def generate_host_key(comment: str) -> HostKey:
    private = ed25519.Ed25519PrivateKey.generate()
    private_text = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public_text = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return HostKey(private_text, f"{public_text.decode()} {comment}\n")


def pod_started(pod: dict[str, Any]) -> bool:
    """A container (init containers included) has run: the kubelet mounted the volumes."""
    status = pod.get("status") or {}
    for container in (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    ):
        state = container.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
        if "terminated" in (container.get("lastState") or {}):
            return True
    return False


def _created(obj: dict[str, Any]) -> datetime | None:
    text = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        return parse_rfc3339(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class _Asked:
    notebook_uid: str
    pod_uid: str | None


class SSHReconciler:
    name = "ssh"

    def __init__(
        self,
        client: KubeClient,
        notebooks: Store,
        pods: Store,
        started_at: datetime | None = None,
    ) -> None:
        self.client = client
        self.notebooks = notebooks
        self.pods = pods
        self.started_at = started_at or utcnow()
        self._asked: dict[Request, _Asked] = {}

    async def reconcile(self, request: Request) -> Result:
        notebook = load_notebook(self.notebooks, request)
        if notebook is None:
            self._asked.pop(request, None)
            return Result()
        if not notebook.spec.ssh_enabled or notebook.spec.paused:
            return Result()  # no pod will need the key before the spec changes
        pod = notebook_pod(self.pods, notebook)
        if pod is not None and self._ran_before_us(pod):
            return Result()
        asked = _Asked(notebook.uid, None if pod is None else str(pod["metadata"].get("uid", "")))
        if self._asked.get(request) == asked:
            return Result()
        await self._create(notebook)
        self._asked[request] = asked
        return Result()

    def _ran_before_us(self, pod: dict[str, Any]) -> bool:
        created = _created(pod)
        return (
            pod_started(pod)
            and created is not None
            and created < self.started_at - PREEXISTING_MARGIN
        )

    async def _create(self, notebook: Notebook) -> None:
        """POST the Secret; one of that name may exist already (409)."""
        comment = f"{notebook.name}@{notebook.namespace}"
        key = await asyncio.to_thread(generate_host_key, comment)
        secret = host_key_secret(notebook, key)
        try:
            await self.client.request(
                "POST",
                SECRETS.path(notebook.namespace),
                query=[("fieldManager", FIELD_MANAGER)],
                body=secret,
            )
        except ApiError as error:
            if error.status != 409:
                raise
            return  # made before, or a deleted namesake's awaiting GC
        log.info("created host key", name=secret["metadata"]["name"])

"""SSH reconciler: the notebook's host-key Secret (field manager notebook-controller-ssh).

The key is generated once, when SSH is first enabled, and created with POST, never applied: an
apply racing a stale cache would overwrite the key and change the host's identity. The Secret
outlives SSH being turned off (turning it on again keeps the identity) and goes with the
notebook (owner reference). Its labels and owner reference are restored if edited; its key
can't be (no copy is kept), and a deleted Secret comes back with a new key.
"""

from __future__ import annotations

import asyncio
from typing import Final

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from notebook_controller.api.models import Notebook
from notebook_controller.builders.meta import child_metadata
from notebook_controller.builders.names import host_key_secret_name
from notebook_controller.builders.ssh import HostKey, host_key_secret
from notebook_controller.reconcilers.common import (
    SECRETS,
    WAIT_FOR_GC_SECONDS,
    ChildApplier,
    held_by_namesake,
    load_notebook,
    soonest,
)
from notebook_controller.runtime.controller import Request, Result
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.store import Store

log = structlog.get_logger(__name__)

FIELD_MANAGER: Final = "notebook-controller-ssh"


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


class SSHReconciler:
    name = "ssh"

    def __init__(self, client: KubeClient, notebooks: Store, secrets: Store) -> None:
        self.client = client
        self.applier = ChildApplier(client, FIELD_MANAGER)
        self.notebooks = notebooks
        self.secrets = secrets

    async def reconcile(self, request: Request) -> Result:
        notebook = load_notebook(self.notebooks, request)
        if notebook is None or not notebook.spec.ssh_enabled:
            return Result()
        name = host_key_secret_name(notebook.name)
        cached = self.secrets.get(request.namespace, name)
        if cached is None:
            await self._create(notebook)
            return Result()
        if held_by_namesake(cached, notebook):
            log.info("host-key Secret belongs to a deleted namesake, waiting for GC", name=name)
            return Result(requeue_after=WAIT_FOR_GC_SECONDS)
        desired = {"apiVersion": "v1", "kind": "Secret", "metadata": child_metadata(notebook, name)}
        return soonest(await self.applier.apply(SECRETS, desired, cached))

    async def _create(self, notebook: Notebook) -> None:
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
            return  # already there: the cache hadn't seen it yet
        log.info("created host key", name=secret["metadata"]["name"])

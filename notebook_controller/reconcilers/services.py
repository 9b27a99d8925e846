"""Services reconciler: HTTP always, SSH while enabled (manager notebook-controller-services)."""

from __future__ import annotations

from typing import Any, Final

import structlog

from notebook_controller.builders import services
from notebook_controller.builders.meta import is_controlled_by
from notebook_controller.builders.names import ssh_service_name
from notebook_controller.reconcilers.common import SERVICES, apply_if_changed, load_notebook
from notebook_controller.runtime.controller import Request, Result
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.store import Store

log = structlog.get_logger(__name__)

FIELD_MANAGER: Final = "notebook-controller-services"


class ServicesReconciler:
    name = "services"

    def __init__(self, client: KubeClient, notebooks: Store, services: Store) -> None:
        self.client = client
        self.notebooks = notebooks
        self.services = services

    async def reconcile(self, request: Request) -> Result:
        notebook = load_notebook(self.notebooks, request)
        if notebook is None:
            return Result()
        http = services.http_service(notebook)
        await apply_if_changed(
            self.client,
            SERVICES,
            http,
            self._cached(http["metadata"]["name"], request),
            FIELD_MANAGER,
        )
        ssh = services.ssh_service(notebook)
        ssh_name = ssh_service_name(notebook.name)
        cached_ssh = self._cached(ssh_name, request)
        if ssh is not None:
            await apply_if_changed(self.client, SERVICES, ssh, cached_ssh, FIELD_MANAGER)
        elif cached_ssh is not None and is_controlled_by(cached_ssh, notebook):
            uid = cached_ssh["metadata"]["uid"]
            await self.client.delete(SERVICES, request.namespace, ssh_name, preconditions_uid=uid)
            log.info("deleted", kind="Service", name=ssh_name, why="ssh disabled")
        return Result()

    def _cached(self, name: str, request: Request) -> dict[str, Any] | None:
        return self.services.get(request.namespace, name)

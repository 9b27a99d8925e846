"""Services reconciler: HTTP always, SSH while enabled (manager notebook-controller-services)."""

from __future__ import annotations

from typing import Final

import structlog

from notebook_controller.builders import services
from notebook_controller.builders.meta import is_controlled_by
from notebook_controller.builders.names import ssh_service_name
from notebook_controller.reconcilers.notebooks import (
    WAIT_FOR_GC_SECONDS,
    held_by_namesake,
    load_notebook,
)
from notebook_controller.runtime.apply import ChildApplier
from notebook_controller.runtime.kinds import SERVICES
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.reconcile import Request, Result, soonest
from notebook_controller.runtime.store import Store

log = structlog.get_logger(__name__)

FIELD_MANAGER: Final = "notebook-controller-services"


class ServicesReconciler:
    name = "services"

    def __init__(self, client: KubeClient, notebooks: Store, services: Store) -> None:
        self.client = client
        self.applier = ChildApplier(client, FIELD_MANAGER)
        self.notebooks = notebooks
        self.services = services

    async def reconcile(self, request: Request) -> Result:
        notebook = load_notebook(self.notebooks, request)
        if notebook is None:
            return Result()
        http = services.http_service(notebook)
        cached_http = self.services.get(request.namespace, http["metadata"]["name"])
        ssh = services.ssh_service(notebook)
        ssh_name = ssh_service_name(notebook.name)
        cached_ssh = self.services.get(request.namespace, ssh_name)
        if held_by_namesake(cached_http, notebook) or held_by_namesake(cached_ssh, notebook):
            return Result(requeue_after=WAIT_FOR_GC_SECONDS)
        http_wait = await self.applier.apply(SERVICES, http, cached_http)
        ssh_wait = None
        if ssh is not None:
            ssh_wait = await self.applier.apply(SERVICES, ssh, cached_ssh)
        elif cached_ssh is not None and is_controlled_by(cached_ssh, notebook):
            uid = cached_ssh["metadata"]["uid"]
            await self.client.delete(SERVICES, request.namespace, ssh_name, preconditions_uid=uid)
            log.info("deleted", kind="Service", name=ssh_name, why="ssh disabled")
        return soonest(http_wait, ssh_wait)

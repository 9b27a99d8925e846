"""The notebook controller's world on the fake API: its caches, the reconcilers as `wiring.py`
makes them, a user who writes Notebooks, and the cluster's own controllers' part (the
StatefulSet controller's pod, the kubelet's Ready) done by hand."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from notebook_controller.api.models import NAME_LABEL
from notebook_controller.builders.names import name_label_value
from notebook_controller.reconcilers.notebooks import (
    INDEX_KEY_SECRET,
    INDEX_NAME_LABEL,
    NOTEBOOKS,
    index_by_key_secret,
    index_by_name_label,
    notebook_status,
)
from notebook_controller.reconcilers.services import ServicesReconciler
from notebook_controller.reconcilers.ssh import SSHReconciler
from notebook_controller.reconcilers.status import StatusReconciler
from notebook_controller.reconcilers.workload import RefusedWorkloads, WorkloadReconciler
from notebook_controller.runtime.clock import utcnow
from notebook_controller.runtime.events import EventRecorder
from notebook_controller.runtime.kinds import EVENTS, PODS, SECRETS, SERVICES, STATEFULSETS
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.objects import JsonDict
from notebook_controller.runtime.reconcile import Request
from notebook_controller.wiring import COMPONENT
from tests.fake.api import FakeApi

NS = "team-a"
NB = "nb"
REQUEST = Request(NS, NB)
USER = "kubectl-client-side-apply"


def notebook_manifest(
    name: str = NB, *, namespace: str = NS, ssh: bool = False, **spec: Any
) -> JsonDict:
    body: JsonDict = {
        "type": "jupyter",
        "runMode": "running",
        "template": {"spec": {"containers": [{"name": "notebook", "image": "jupyter:1"}]}},
    }
    if ssh:
        body["ssh"] = {"enabled": True, "authorized_keys": ["alice-key"]}
    body.update(spec)
    return {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


class World:
    def __init__(self) -> None:
        self.api = FakeApi([NOTEBOOKS, STATEFULSETS, SERVICES, PODS, SECRETS, EVENTS])
        client: KubeClient = self.api  # type: ignore[assignment]
        self.notebooks = self.api.cache(
            NOTEBOOKS,
            {INDEX_NAME_LABEL: index_by_name_label, INDEX_KEY_SECRET: index_by_key_secret},
        )
        self.statefulsets = self.api.cache(STATEFULSETS)
        self.services = self.api.cache(SERVICES)
        self.pods = self.api.cache(PODS)
        self.refused = RefusedWorkloads()
        self.recorder = EventRecorder(client, COMPONENT)
        self.workload = WorkloadReconciler(client, self.notebooks, self.statefulsets, self.refused)
        self.services_reconciler = ServicesReconciler(client, self.notebooks, self.services)
        self.seconds = 1000.0
        """The appliers' monotonic clock (`wait()` moves it)."""
        for applier in (self.workload.applier, self.services_reconciler.applier):
            applier.clock = lambda: self.seconds
        self.ssh = SSHReconciler(client, self.notebooks, self.pods)
        self.statuses = notebook_status(client)
        """The notebooks' status as the status and idle reconcilers share it."""
        self.status = self.status_reconciler()

    def status_reconciler(
        self, *, now: Callable[[], datetime] = utcnow, coalesce_seconds: float = 0.0
    ) -> StatusReconciler:
        """A status reconciler on this world's caches and shared status (`self.status` is one
        with the defaults)."""
        return StatusReconciler(
            self.api,  # type: ignore[arg-type]
            self.recorder,
            notebooks=self.notebooks,
            statefulsets=self.statefulsets,
            pods=self.pods,
            services=self.services,
            secrets=None,
            external_url_base=None,
            refused=self.refused,
            now=now,
            coalesce_seconds=coalesce_seconds,
            shared=self.statuses,
        )

    # --- the user -------------------------------------------------------------------------

    async def create_notebook(self, name: str = NB, **options: Any) -> JsonDict:
        return await self.api.create(NOTEBOOKS, NS, notebook_manifest(name, **options))

    async def edit_notebook(self, patch: JsonDict, name: str = NB) -> JsonDict:
        return await self.api.patch(NOTEBOOKS, NS, name, patch, field_manager=USER)

    # --- the cluster's other controllers --------------------------------------------------

    async def run_pod(self, *, ready: bool = True, name: str = NB) -> JsonDict:
        """What the StatefulSet controller and the kubelet do with the notebook's StatefulSet."""
        sts = self.statefulsets.list(NS)[0]
        template = sts["spec"]["template"]
        revision = f"{sts['metadata']['name']}-rev{sts['metadata']['generation']}"
        sts_status = {
            "observedGeneration": sts["metadata"]["generation"],
            "updateRevision": revision,
            "currentRevision": revision,
        }
        await self.api.patch(
            STATEFULSETS, NS, sts["metadata"]["name"], {"status": sts_status}, "merge", "status"
        )
        conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
        pod: JsonDict = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{sts['metadata']['name']}-0",
                "namespace": NS,
                "labels": {
                    **copy.deepcopy(template["metadata"]["labels"]),
                    "controller-revision-hash": revision,
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": sts["metadata"]["name"],
                        "uid": sts["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {**copy.deepcopy(template["spec"]), "nodeName": "node-1"},
            "status": {"phase": "Running", "conditions": conditions},
        }
        assert pod["metadata"]["labels"][NAME_LABEL] == name_label_value(name)
        created = await self.api.create(PODS, NS, pod)
        status = {"status": pod["status"]}
        return await self.api.patch(
            PODS, NS, created["metadata"]["name"], status, "merge", "status"
        )

    def wait(self, seconds: float) -> None:
        self.seconds += seconds

    # --- what happened --------------------------------------------------------------------

    def events(self, reason: str | None = None) -> list[JsonDict]:
        events = self.api.objects(EVENTS, NS)
        return [e for e in events if reason is None or e["reason"] == reason]

    def writes(self) -> list[tuple[str, str, str]]:
        """(verb, kind, field manager) of every write since the last `reset_writes`."""
        return [(w.verb, w.kind, w.field_manager or "") for w in self.api.writes]

    def notebook(self, name: str = NB) -> JsonDict:
        found = self.api.stored(NOTEBOOKS, NS, name)
        assert found is not None
        return found

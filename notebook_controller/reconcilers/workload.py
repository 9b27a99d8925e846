"""Workload reconciler: the notebook's StatefulSet (field manager notebook-controller-workload)."""

from __future__ import annotations

from typing import Final

from notebook_controller.builders import workload
from notebook_controller.reconcilers.common import (
    STATEFULSETS,
    WAIT_FOR_GC_SECONDS,
    ChildApplier,
    held_by_namesake,
    load_notebook,
    soonest,
)
from notebook_controller.runtime.controller import Request, Result, TerminalError
from notebook_controller.runtime.events import WARNING, EventRecorder
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.store import Store

FIELD_MANAGER: Final = "notebook-controller-workload"


class WorkloadReconciler:
    name = "workload"

    def __init__(
        self, client: KubeClient, notebooks: Store, statefulsets: Store, recorder: EventRecorder
    ) -> None:
        self.applier = ChildApplier(client, FIELD_MANAGER)
        self.notebooks = notebooks
        self.statefulsets = statefulsets
        self.recorder = recorder

    async def reconcile(self, request: Request) -> Result:
        notebook = load_notebook(self.notebooks, request)
        if notebook is None:
            return Result()
        desired = workload.statefulset(notebook)
        actual = self.statefulsets.get(request.namespace, desired["metadata"]["name"])
        if held_by_namesake(actual, notebook):
            return Result(requeue_after=WAIT_FOR_GC_SECONDS)
        try:
            return soonest(await self.applier.apply(STATEFULSETS, desired, actual))
        except ApiError as error:
            if error.status != 422:
                raise
            # The template itself is invalid: retrying can't help, the user must fix the spec.
            raw = self.notebooks.get(request.namespace, request.name) or {}
            await self.recorder.event(raw, WARNING, "InvalidTemplate", error.message)
            raise TerminalError(error.message) from error

"""Workload reconciler: the notebook's StatefulSet (field manager notebook-controller-workload)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from notebook_controller.builders import workload
from notebook_controller.builders.meta import APPLIED_HASH_ANNOTATION
from notebook_controller.reconcilers.notebooks import (
    WAIT_FOR_GC_SECONDS,
    held_by_namesake,
    load_notebook,
)
from notebook_controller.runtime.apply import ChildApplier
from notebook_controller.runtime.kinds import STATEFULSETS
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.reconcile import Request, Result, TerminalError, soonest
from notebook_controller.runtime.store import Store

FIELD_MANAGER: Final = "notebook-controller-workload"


class RefusedWorkloads:
    """The API server's refusal (422) of a notebook's StatefulSet, kept until an apply of
    another template succeeds. The status reconciler reports it in `Ready` (the user must fix
    the spec: waiting can't help); `on_change` wakes it."""

    def __init__(self) -> None:
        self._refused: dict[tuple[str, str], tuple[str, str]] = {}
        self.on_change: Callable[[str, str], None] | None = None

    def refused(self, namespace: str, name: str, workload_hash: str) -> str | None:
        """Why the StatefulSet of this template was refused, if it was."""
        found = self._refused.get((namespace, name))
        return found[1] if found is not None and found[0] == workload_hash else None

    def record(self, namespace: str, name: str, workload_hash: str, message: str) -> None:
        if self._refused.get((namespace, name)) != (workload_hash, message):
            self._refused[(namespace, name)] = (workload_hash, message)
            self._changed(namespace, name)

    def clear(self, namespace: str, name: str) -> None:
        if self._refused.pop((namespace, name), None) is not None:
            self._changed(namespace, name)

    def _changed(self, namespace: str, name: str) -> None:
        if self.on_change is not None:
            self.on_change(namespace, name)


class WorkloadReconciler:
    name = "workload"

    def __init__(
        self,
        client: KubeClient,
        notebooks: Store,
        statefulsets: Store,
        refused: RefusedWorkloads | None = None,
    ) -> None:
        self.applier = ChildApplier(client, FIELD_MANAGER)
        self.notebooks = notebooks
        self.statefulsets = statefulsets
        self.refused = refused if refused is not None else RefusedWorkloads()

    async def reconcile(self, request: Request) -> Result:
        notebook = load_notebook(self.notebooks, request)
        if notebook is None:
            return Result()
        desired = workload.statefulset(notebook)
        actual = self.statefulsets.get(request.namespace, desired["metadata"]["name"])
        if held_by_namesake(actual, notebook):
            return Result(requeue_after=WAIT_FOR_GC_SECONDS)
        try:
            result = soonest(await self.applier.apply(STATEFULSETS, desired, actual))
        except ApiError as error:
            if error.status != 422:
                raise
            # The template itself is invalid: retrying can't help, the user must fix the spec.
            # The status reconciler says so in Ready (and one Warning event InvalidTemplate).
            applied_hash = desired["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
            self.refused.record(request.namespace, request.name, applied_hash, error.message)
            raise TerminalError(error.message) from error
        self.refused.clear(request.namespace, request.name)
        return result

"""The notebook as reconcilers find it: its kind, the live object from the cache, the informer's
indexes that map other objects back to it, and a child held by a deleted namesake."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pydantic import ValidationError

from notebook_controller.api.models import (
    CONDITION_IDLE,
    GROUP,
    KIND,
    NAME_LABEL,
    PLURAL,
    VERSION,
    Notebook,
)
from notebook_controller.builders.names import name_label_value, pod_name
from notebook_controller.builders.status import owned_part
from notebook_controller.runtime.apply import SharedStatus, StatusApplier
from notebook_controller.runtime.conditions import find_condition
from notebook_controller.runtime.kube import KubeClient, ResourceKind
from notebook_controller.runtime.objects import JsonDict, controller_uid
from notebook_controller.runtime.reconcile import Request, TerminalError
from notebook_controller.runtime.store import Store

NOTEBOOKS: Final = ResourceKind(GROUP, VERSION, PLURAL, KIND)

# A child still held by a deleted namesake notebook (same name, other uid) is garbage
# collection's to remove: look again after this many seconds.
WAIT_FOR_GC_SECONDS: Final = 5.0

# The notebook's status: one field manager, two parts (the status reconciler's; the idle
# reclaimer's Idle condition and status.ssh.lastSshClientActivity), so news of both arriving
# together (Ready, then the first idle verdict a moment later) is one write.
STATUS_FIELD_MANAGER: Final = "notebook-controller-status"
PART_STATUS: Final = "status"
PART_IDLE: Final = "idle"
# The idle part's field manager before it was written with the rest.
LEGACY_IDLE_FIELD_MANAGER: Final = "notebook-controller-idle"

# Notebook informer indexes (namespace-qualified values).
INDEX_NAME_LABEL: Final = "name-label"
INDEX_KEY_SECRET: Final = "key-secret"


def index_by_name_label(notebook: JsonDict) -> list[str]:
    """`ns/<notebook.tensorstack.dev/name value>`: maps a pod's label back to its notebook."""
    metadata = notebook["metadata"]
    return [f"{metadata.get('namespace', '')}/{name_label_value(metadata['name'])}"]


def index_by_key_secret(notebook: JsonDict) -> list[str]:
    """`ns/<secret>` for every Secret named in spec.ssh.authorized_keys."""
    namespace = notebook["metadata"].get("namespace", "")
    ssh = (notebook.get("spec") or {}).get("ssh") or {}
    return [f"{namespace}/{name}" for name in ssh.get("authorized_keys") or []]


def load_notebook(store: Store, request: Request) -> Notebook | None:
    """The live notebook from the cache; None when gone or being deleted (GC does the rest).

    Its status is left unparsed (empty): what reads the status reads the cached object's,
    always the latest, and the parse is kept through the status writes (a notebook's status
    changes more often than the rest of it)."""
    raw = store.get(request.namespace, request.name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None
    try:
        # parsed once per spec and metadata, shared by the reconcilers (none mutates it)
        return store.derived(request.namespace, request.name, _without_status, reads_status=False)
    except ValidationError as error:
        # The CRD schema should have refused it; nothing to do until the spec changes.
        raise TerminalError(f"notebook does not match the schema: {error}") from error


def _without_status(raw: JsonDict) -> Notebook:
    return Notebook.model_validate({key: value for key, value in raw.items() if key != "status"})


def held_by_namesake(actual: JsonDict | None, notebook: Notebook) -> bool:
    """The object is controlled by another notebook of the same name (deleted, awaiting GC)."""
    owner = controller_uid(actual) if actual is not None else None
    return owner is not None and owner != notebook.uid


def notebook_pod(pods: Store, notebook: Notebook) -> JsonDict | None:
    """The notebook's pod from the cache: its StatefulSet's one pod, labelled as the notebook's
    (a pod of that name without the label is someone else's)."""
    pod = pods.get(notebook.namespace, pod_name(notebook.name))
    labels = (pod or {}).get("metadata", {}).get("labels") or {}
    return pod if labels.get(NAME_LABEL) == name_label_value(notebook.name) else None


def idle_part(status: JsonDict) -> JsonDict:
    """The idle reclaimer's fields of a stored status."""
    part: JsonDict = {}
    idle = find_condition(status.get("conditions") or [], CONDITION_IDLE)
    if idle is not None:
        part["conditions"] = [idle]
    activity = (status.get("ssh") or {}).get("lastSshClientActivity")
    if activity is not None:
        part["ssh"] = {"lastSshClientActivity": activity}
    return part


def notebook_status_part(
    client: KubeClient,
    part: str,
    shared: SharedStatus | None,
    *,
    coalesce_seconds: float,
    clock: Callable[[], float],
) -> StatusApplier:
    """One reconciler's part of the notebooks' status (`shared`, else a status of its own)."""
    return StatusApplier(
        client,
        NOTEBOOKS,
        STATUS_FIELD_MANAGER,
        coalesce_seconds=coalesce_seconds,
        clock=clock,
        shared=shared or notebook_status(client),
        part=part,
    )


def notebook_status(client: KubeClient) -> SharedStatus:
    """The notebooks' status as both its writers share it (one per process)."""
    return SharedStatus(
        client,
        NOTEBOOKS,
        STATUS_FIELD_MANAGER,
        {PART_STATUS: owned_part, PART_IDLE: idle_part},
        legacy_managers={PART_IDLE: LEGACY_IDLE_FIELD_MANAGER},
    )

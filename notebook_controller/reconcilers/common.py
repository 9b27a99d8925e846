"""What every notebook reconciler needs: the kinds it touches, the notebook from the cache, and
"apply only when the cache shows a difference"."""

from __future__ import annotations

from typing import Any, Final

import structlog
from pydantic import ValidationError

from notebook_controller.api.models import GROUP, KIND, PLURAL, VERSION, Notebook
from notebook_controller.builders.diff import needs_apply
from notebook_controller.builders.meta import controller_uid
from notebook_controller.builders.names import name_label_value
from notebook_controller.runtime.controller import Request, TerminalError
from notebook_controller.runtime.kube import KubeClient, ResourceKind
from notebook_controller.runtime.store import Store

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]

NOTEBOOKS: Final = ResourceKind(GROUP, VERSION, PLURAL, KIND)
STATEFULSETS: Final = ResourceKind("apps", "v1", "statefulsets", "StatefulSet")
SERVICES: Final = ResourceKind("", "v1", "services", "Service")
SECRETS: Final = ResourceKind("", "v1", "secrets", "Secret")
PODS: Final = ResourceKind("", "v1", "pods", "Pod")

# A child still held by a deleted namesake notebook (same name, other uid) is garbage
# collection's to remove: look again after this many seconds.
WAIT_FOR_GC_SECONDS: Final = 5.0

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
    """The live notebook from the cache; None when gone or being deleted (GC does the rest)."""
    raw = store.get(request.namespace, request.name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None
    try:
        return Notebook.model_validate(raw)
    except ValidationError as error:
        # The CRD schema should have refused it; nothing to do until the spec changes.
        raise TerminalError(f"notebook does not match the schema: {error}") from error


async def apply_if_changed(
    client: KubeClient,
    kind: ResourceKind,
    desired: JsonDict,
    actual: JsonDict | None,
    field_manager: str,
) -> bool:
    """Server-side apply `desired` unless `actual` (the cache) already holds it. True if sent."""
    if not needs_apply(desired, actual):
        return False
    metadata = desired["metadata"]
    await client.apply(kind, metadata["namespace"], metadata["name"], desired, field_manager)
    log.info("applied", kind=kind.kind, name=metadata["name"], created=actual is None)
    return True


def held_by_namesake(actual: JsonDict | None, notebook: Notebook) -> bool:
    """The object is controlled by another notebook of the same name (deleted, awaiting GC)."""
    owner = controller_uid(actual) if actual is not None else None
    return owner is not None and owner != notebook.uid

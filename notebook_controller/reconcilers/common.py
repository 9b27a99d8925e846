"""What every notebook reconciler needs: the kinds it touches, the notebook from the cache, and
"apply only when the cache shows a difference"."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog
from pydantic import ValidationError

from notebook_controller.api.models import GROUP, KIND, PLURAL, VERSION, Notebook
from notebook_controller.builders.diff import content_hash, needs_apply
from notebook_controller.builders.meta import controller_uid
from notebook_controller.builders.names import name_label_value
from notebook_controller.runtime.controller import Request, Result, TerminalError
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
# How long a write of ours may take to show in the cache before we stop waiting for it.
RECENT_WRITE_SECONDS: Final = 5.0

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


@dataclass(frozen=True)
class _Write:
    resource_version: str
    digest: str
    at: float


def _older(resource_version: str, than: str) -> bool:
    """etcd revisions are integers; anything else can't be ordered and is not older."""
    return resource_version.isdigit() and than.isdigit() and int(resource_version) < int(than)


def _resource_version(obj: JsonDict) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


class OwnStatusWrites:
    """The status part a reconciler last wrote, per notebook, until the cache shows that write.

    A reconcile that runs before its own write comes back through the watch must compare with
    what it wrote, not with the stale cache: otherwise it recomputes transition times against
    the old status and writes the same content again.
    """

    def __init__(self) -> None:
        self._written: dict[Request, tuple[str, JsonDict]] = {}

    def remember(self, request: Request, written: JsonDict, content: JsonDict) -> None:
        """`written` is the object the server returned; `content` the part we sent."""
        self._written[request] = (_resource_version(written), content)

    def status(self, request: Request, cached: JsonDict) -> JsonDict:
        """The status to compare with: our pending write while the cache is older, else the
        cached object's status."""
        pending = self._written.get(request)
        if pending is not None:
            version, content = pending
            if _older(_resource_version(cached), version):
                return content
            del self._written[request]  # the cache has caught up: trust it
        status: JsonDict = cached.get("status") or {}
        return status

    def forget(self, request: Request) -> None:
        self._written.pop(request, None)


class ChildApplier:
    """Server-side applies children under one field manager, only when the cache differs.

    It remembers its own writes for a few seconds: a reconcile woken by the event of one child
    may run before the informer has delivered the write of a sibling made in the same pass, and
    without the memory it would apply that sibling a second time.
    """

    def __init__(
        self,
        client: KubeClient,
        field_manager: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.field_manager = field_manager
        self.clock = clock
        self._writes: dict[tuple[str, str, str], _Write] = {}

    async def apply(
        self, kind: ResourceKind, desired: JsonDict, actual: JsonDict | None
    ) -> float | None:
        """Apply if needed. Returns None when done, or after how many seconds to look again
        because the cache doesn't show our last write of this object yet."""
        metadata = desired["metadata"]
        key = (kind.plural, metadata["namespace"], metadata["name"])
        digest = content_hash(desired)
        wait = self._cache_behind(key, digest, actual)
        if wait is not None:
            return wait
        if not needs_apply(desired, actual):
            return None
        written = await self.client.apply(
            kind, metadata["namespace"], metadata["name"], desired, self.field_manager
        )
        self._remember(
            key, _Write(str(written["metadata"]["resourceVersion"]), digest, self.clock())
        )
        log.info("applied", kind=kind.kind, name=metadata["name"], created=actual is None)
        return None

    def _cache_behind(
        self, key: tuple[str, str, str], digest: str, actual: JsonDict | None
    ) -> float | None:
        write = self._writes.get(key)
        if write is None or write.digest != digest:
            return None
        age = self.clock() - write.at
        if age >= RECENT_WRITE_SECONDS:
            return None
        if actual is None:
            # Not seen yet, or deleted since: look again once the window has passed.
            return RECENT_WRITE_SECONDS - age
        if _older(str(actual["metadata"].get("resourceVersion", "")), write.resource_version):
            return RECENT_WRITE_SECONDS - age
        return None

    def _remember(self, key: tuple[str, str, str], write: _Write) -> None:
        expired = [k for k, w in self._writes.items() if write.at - w.at >= RECENT_WRITE_SECONDS]
        for old in expired:
            del self._writes[old]
        self._writes[key] = write


def soonest(*delays: float | None) -> Result:
    """One Result for several children: look again at the soonest requested time, if any."""
    wanted = [delay for delay in delays if delay is not None]
    return Result(requeue_after=min(wanted)) if wanted else Result()


def held_by_namesake(actual: JsonDict | None, notebook: Notebook) -> bool:
    """The object is controlled by another notebook of the same name (deleted, awaiting GC)."""
    owner = controller_uid(actual) if actual is not None else None
    return owner is not None and owner != notebook.uid

"""Raw Kubernetes objects as the caches hold them (JSON dicts), and the few facts read from
every object's metadata: its resourceVersion and its controller owner reference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonDict = dict[str, Any]


def resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def older(resource_version: str, than: str) -> bool:
    """etcd revisions are integers; anything else can't be ordered and is not older."""
    return resource_version.isdigit() and than.isdigit() and int(resource_version) < int(than)


def controller_owner(obj: Mapping[str, Any]) -> JsonDict | None:
    """The ownerReference with controller=true, if any (an object has at most one)."""
    for reference in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return dict(reference)
    return None


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """UID of the object's controller, if it has one."""
    owner = controller_owner(obj)
    return None if owner is None else str(owner.get("uid"))


def api_group(api_version: str) -> str:
    """`apps/v1` -> `apps`; the core group (`v1`) is ""."""
    return api_version.rpartition("/")[0]

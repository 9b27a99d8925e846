"""Status conditions, the one way: a condition's `lastTransitionTime` is carried over while its
status stays the same, so an unchanged world computes an unchanged status (and no write)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from notebook_controller.runtime.clock import rfc3339
from notebook_controller.runtime.objects import JsonDict

CONDITION_FIELDS = ("type", "status", "reason", "message", "lastTransitionTime")


def find_condition(conditions: Iterable[Mapping[str, Any]], type_: str) -> JsonDict | None:
    return next((dict(c) for c in conditions if c.get("type") == type_), None)


def condition(
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> JsonDict:
    """The condition as it should be written: `previous` (the stored one of this type) gives
    its lastTransitionTime unless the status moved (or it had none)."""
    unchanged = previous is not None and previous.get("status") == status
    since = previous.get("lastTransitionTime") if previous is not None and unchanged else None
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or rfc3339(now),
    }


def same_condition(desired: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> bool:
    """Equal in every field a condition writer sets (absent ones included)."""
    if desired is None or current is None:
        return desired is current
    return all(desired.get(key) == current.get(key) for key in CONDITION_FIELDS)

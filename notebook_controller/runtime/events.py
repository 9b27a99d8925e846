"""core/v1 Events, aggregated: a repeat of the same event bumps its count instead of adding one."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import aiohttp
import structlog

from notebook_controller.runtime.clock import rfc3339, utcnow
from notebook_controller.runtime.kinds import EVENTS
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.objects import JsonDict

log = structlog.get_logger(__name__)

# (involved object uid, type, reason, message)
_CacheKey = tuple[str, str, str, str]
NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True)
class _Recorded:
    namespace: str
    name: str
    count: int


class EventRecorder:
    """Events are best effort: a failure to record one is logged, never raised."""

    def __init__(self, client: KubeClient, component: str, *, cache_size: int = 4096) -> None:
        self.client = client
        self.component = component
        self.cache_size = cache_size
        self._recorded: OrderedDict[_CacheKey, _Recorded] = OrderedDict()

    async def event(self, obj: JsonDict, type_: str, reason: str, message: str) -> None:
        metadata = obj.get("metadata", {})
        cache_key = (str(metadata.get("uid", "")), type_, reason, message)
        now = _now()
        try:
            recorded = self._recorded.get(cache_key)
            if recorded is not None and await self._bump(cache_key, recorded, now):
                return
            created = await self.client.create(
                EVENTS, _namespace(obj), self._new_event(obj, type_, reason, message, now)
            )
            self._remember(cache_key, created)
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
            log.warning("could not record event", reason=reason, error=repr(error))

    async def _bump(self, cache_key: _CacheKey, recorded: _Recorded, now: str) -> bool:
        """Count one more occurrence; False when the event has expired and needs re-creating."""
        patch = {"count": recorded.count + 1, "lastTimestamp": now}
        try:
            await self.client.patch(EVENTS, recorded.namespace, recorded.name, patch)
        except ApiError as error:
            if error.is_not_found:
                return False
            raise
        self._recorded[cache_key] = _Recorded(recorded.namespace, recorded.name, recorded.count + 1)
        self._recorded.move_to_end(cache_key)
        return True

    def _remember(self, cache_key: _CacheKey, event: JsonDict) -> None:
        metadata = event["metadata"]
        self._recorded[cache_key] = _Recorded(
            metadata["namespace"], metadata["name"], int(event.get("count", 1))
        )
        self._recorded.move_to_end(cache_key)
        while len(self._recorded) > self.cache_size:
            self._recorded.popitem(last=False)

    def _new_event(
        self, obj: JsonDict, type_: str, reason: str, message: str, now: str
    ) -> JsonDict:
        metadata = obj.get("metadata", {})
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata.get('name', 'object')}.{time.time_ns():x}",
                "namespace": _namespace(obj),
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component},
            "reportingComponent": self.component,
        }


def _namespace(obj: JsonDict) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "default")


def _now() -> str:
    return rfc3339(utcnow())

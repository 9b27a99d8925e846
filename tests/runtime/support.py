"""Helpers for the runtime tests against the real control plane."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from notebook_controller.runtime.objects import JsonDict


async def eventually(
    predicate: Callable[[], bool], within: float = 60.0, message: str = ""
) -> float:
    """Wait until `predicate()` holds; return the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within}s: {message or predicate}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


@dataclass
class Recorder:
    """An EventHandler that keeps what it was told."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def on_add(self, obj: JsonDict) -> None:
        self.added.append(obj["metadata"]["name"])

    def on_update(self, old: JsonDict, new: JsonDict) -> None:
        self.updated.append(new["metadata"]["name"])

    def on_delete(self, obj: JsonDict) -> None:
        self.deleted.append(obj["metadata"]["name"])

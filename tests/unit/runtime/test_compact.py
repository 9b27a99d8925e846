"""Cached objects are compacted: equal to what was decoded, with their keys and short values
shared between objects instead of copied into each (keys by the decoder the informers use,
orjson; short values by `compact`)."""

from __future__ import annotations

import json

import orjson

from notebook_controller.runtime.informer import compact

DOCUMENT = json.dumps(
    {
        "metadata": {"name": "nb-0", "labels": {"app": "nb"}},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized"}],
            "message": "x" * 100,
            "restartCount": 3,
            "ready": True,
            "nothing": None,
        },
    }
)


def test_a_compacted_object_equals_the_decoded_one() -> None:
    assert compact(orjson.loads(DOCUMENT)) == json.loads(DOCUMENT)


def test_keys_and_short_values_are_shared_between_objects() -> None:
    one, two = compact(orjson.loads(DOCUMENT)), compact(orjson.loads(DOCUMENT))
    assert isinstance(one, dict) and isinstance(two, dict)
    assert next(iter(one)) is next(iter(two))  # "metadata"
    assert one["status"]["phase"] is two["status"]["phase"]
    first, second = one["status"]["conditions"][0], two["status"]["conditions"][0]
    assert next(iter(first)) is next(iter(second))
    assert first["status"] is second["status"]


def test_long_values_are_left_alone() -> None:
    one, two = compact(orjson.loads(DOCUMENT)), compact(orjson.loads(DOCUMENT))
    assert one["status"]["message"] == two["status"]["message"] == "x" * 100
    assert one["status"]["message"] is not two["status"]["message"]

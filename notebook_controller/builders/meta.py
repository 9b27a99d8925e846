"""Metadata shared by every child object: name, labels, controller owner reference."""

from __future__ import annotations

from typing import Any, Final

from notebook_controller.api.models import API_VERSION, KIND, Notebook
from notebook_controller.builders.names import child_labels
from notebook_controller.runtime.diff import with_hash_annotation
from notebook_controller.runtime.objects import controller_uid

APPLIED_HASH_ANNOTATION: Final = "notebook.tensorstack.dev/applied-hash"


def owner_reference(notebook: Notebook) -> dict[str, Any]:
    """Controller reference: garbage collection deletes the child with the notebook."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": notebook.name,
        "uid": notebook.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(notebook: Notebook, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": notebook.namespace,
        "labels": child_labels(notebook.name),
        "ownerReferences": [owner_reference(notebook)],
    }


def with_applied_hash(desired: dict[str, Any]) -> dict[str, Any]:
    """`desired` with the hash of itself in APPLIED_HASH_ANNOTATION (see runtime.diff)."""
    return with_hash_annotation(desired, APPLIED_HASH_ANNOTATION)


def is_controlled_by(obj: dict[str, Any], notebook: Notebook) -> bool:
    return controller_uid(obj) == notebook.uid

"""Metadata shared by every child object: name, labels, controller owner reference."""

from __future__ import annotations

from typing import Any

from notebook_controller.api.models import API_VERSION, KIND, Notebook
from notebook_controller.builders.names import child_labels


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


def controller_uid(obj: dict[str, Any]) -> str | None:
    """UID of the object's controller (owner reference with controller: true), if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def is_controlled_by(obj: dict[str, Any], notebook: Notebook) -> bool:
    return controller_uid(obj) == notebook.uid

"""The Create form: its fields, the Notebook they make, and the API server's refusal split
into a message per field (the server's own words). Pure functions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from notebook_controller.api.models import API_VERSION, KIND
from notebook_controller.api.models import GPU_PERCENT_RESOURCE as GPU_PERCENT

FIELDS: Final = (
    "namespace",
    "name",
    "type",
    "image",
    "cpu",
    "memory",
    "gpu_percent",
    "queue",
    "ssh_key_secret",
)
# Where the API server's field paths land on the form (first match wins).
_FIELD_PATHS: Final = (
    ("metadata.name", "name"),
    ("metadata.namespace", "namespace"),
    ("spec.type", "type"),
    (".image", "image"),
    (f"requests[{GPU_PERCENT}]", "gpu_percent"),
    (f"requests.{GPU_PERCENT}", "gpu_percent"),
    ("nvidia-gpu-percent", "gpu_percent"),
    ("requests.cpu", "cpu"),
    ("requests[cpu]", "cpu"),
    ("requests.memory", "memory"),
    ("requests[memory]", "memory"),
    ("spec.scheduler", "queue"),
    ("spec.ssh", "ssh_key_secret"),
)
_CAUSE_FIELD: Final = re.compile(r"^(?P<field>[\w.\[\]/\-]+): (?P<message>.+)$")


@dataclass
class CreateForm:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    """Field name → message; the key "" is for what no field explains."""

    @classmethod
    def from_post(cls, data: Mapping[str, str]) -> CreateForm:
        values = {name: str(data.get(name, "")).strip() for name in FIELDS}
        values["ssh"] = "on" if data.get("ssh") else ""
        values["type"] = values["type"] or "jupyter"
        return cls(values)

    @classmethod
    def empty(cls, namespace: str = "") -> CreateForm:
        return cls(
            {**dict.fromkeys(FIELDS, ""), "ssh": "", "type": "jupyter", "namespace": namespace}
        )

    def notebook(self) -> dict[str, Any]:
        """The Notebook the form describes; empty fields are left out."""
        v = self.values
        requests: dict[str, Any] = {}
        if v["cpu"]:
            requests["cpu"] = v["cpu"]
        if v["memory"]:
            requests["memory"] = v["memory"]
        if v["gpu_percent"]:
            gpu = v["gpu_percent"]
            requests[GPU_PERCENT] = int(gpu) if gpu.isdigit() else gpu
        container: dict[str, Any] = {"name": "notebook", "image": v["image"]}
        if requests:
            container["resources"] = {"requests": requests}
        spec: dict[str, Any] = {
            "type": v["type"],
            "template": {"spec": {"containers": [container]}},
        }
        if v["queue"]:
            spec["scheduler"] = {"t9kScheduler": {"queue": v["queue"]}}
        if v["ssh"]:
            keys = [v["ssh_key_secret"]] if v["ssh_key_secret"] else []
            spec["ssh"] = {"enabled": True, "authorized_keys": keys, "serviceType": "NodePort"}
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": v["name"], "namespace": v["namespace"]},
            "spec": spec,
        }

    def check_local(self) -> bool:
        """The one thing the API server cannot say for us: which namespace to create in."""
        if not self.values["namespace"]:
            self.errors["namespace"] = "choose a namespace"
        return not self.errors

    def add_refusal(self, status: int, message: str, body: Mapping[str, Any]) -> None:
        """Spread the API server's Status over the fields it names."""
        causes = (body.get("details") or {}).get("causes") or []
        placed = False
        for cause in causes:
            path = str(cause.get("field") or "")
            text = str(cause.get("message") or "")
            match = _CAUSE_FIELD.match(text)
            if not path and match:
                path = match["field"]
            target = field_for(path)
            if target is None:
                continue
            words = f"{path}: {text}" if path and not text.startswith(path) else text
            self.errors[target] = (
                f"{self.errors[target]}; {words}" if target in self.errors else words
            )
            placed = True
        if not placed:
            target = field_for(message) if status == 422 else None
            self.errors[target or ""] = message if status != 403 else f"refused: {message}"


def field_for(path: str) -> str | None:
    for fragment, name in _FIELD_PATHS:
        if fragment in path:
            return name
    return None

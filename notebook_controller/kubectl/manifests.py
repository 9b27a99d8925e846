"""The objects `kubectl notebook create` makes: a Notebook and, with --ssh-key, the Secret
holding the user's public key (owned by the Notebook, so deleting it deletes the key). No I/O."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final

from notebook_controller.api.models import API_VERSION, GPU_PERCENT_RESOURCE, KIND
from notebook_controller.builders.names import bounded_name
from notebook_controller.builders.ssh import PUBLIC_KEY_FIELD, public_key_problem
from notebook_controller.builders.workload import MAIN_CONTAINER
from notebook_controller.runtime.objects import JsonDict

KEY_SECRET_PREFIX: Final = "notebook-ssh-key"
SECRET_NAME_MAX: Final = 253
CREATED_BY_LABEL: Final = "app.kubernetes.io/created-by"
CREATED_BY: Final = "kubectl-notebook"


@dataclass(frozen=True)
class NotebookRequest:
    """What the user asked `create` for."""

    name: str
    namespace: str
    image: str
    cpu: str | None = None
    memory: str | None = None
    gpu_percent: int | None = None
    queue: str | None = None
    public_key: str | None = None
    rstudio: bool = False


def key_secret_name(notebook: str) -> str:
    return bounded_name(KEY_SECRET_PREFIX, notebook, SECRET_NAME_MAX)


def public_key_error(text: str, source: str) -> str | None:
    """Why `text` is not usable as authorized keys (the controller's own check), or None."""
    encoded = base64.b64encode(text.encode()).decode()
    problem = public_key_problem(source, {"data": {PUBLIC_KEY_FIELD: encoded}})
    if problem is None:
        return None
    return f"{source} is not an OpenSSH public key (pass the .pub file, e.g. ~/.ssh/id_ed25519.pub)"


def notebook_manifest(request: NotebookRequest) -> JsonDict:
    resources: JsonDict = {}
    requests = {
        key: value
        for key, value in (("cpu", request.cpu), ("memory", request.memory))
        if value is not None
    }
    if requests:
        # limits = requests: a notebook's usage is bursty, the node's other pods are not
        resources = {"requests": dict(requests), "limits": dict(requests)}
    if request.gpu_percent is not None:
        resources.setdefault("requests", {})[GPU_PERCENT_RESOURCE] = request.gpu_percent
        resources.setdefault("limits", {})[GPU_PERCENT_RESOURCE] = request.gpu_percent
    container: JsonDict = {"name": MAIN_CONTAINER, "image": request.image}
    if resources:
        container["resources"] = resources
    spec: JsonDict = {
        "type": "rstudio" if request.rstudio else "jupyter",
        "runMode": "running",
        "template": {"spec": {"containers": [container]}},
    }
    if request.queue:
        spec["scheduler"] = {"t9kScheduler": {"queue": request.queue}}
    if request.public_key is not None:
        spec["ssh"] = {
            "enabled": True,
            "serviceType": "ClusterIP",
            "authorized_keys": [key_secret_name(request.name)],
        }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": request.name,
            "namespace": request.namespace,
            "labels": {CREATED_BY_LABEL: CREATED_BY},
        },
        "spec": spec,
    }


def key_secret_manifest(request: NotebookRequest, owner: JsonDict | None) -> JsonDict:
    """The key Secret; `owner` is the created Notebook (None for a client-side dry run)."""
    metadata: JsonDict = {
        "name": key_secret_name(request.name),
        "namespace": request.namespace,
        "labels": {CREATED_BY_LABEL: CREATED_BY},
    }
    uid = ((owner or {}).get("metadata") or {}).get("uid")
    if uid:
        metadata["ownerReferences"] = [
            {"apiVersion": API_VERSION, "kind": KIND, "name": request.name, "uid": uid}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": {PUBLIC_KEY_FIELD: (request.public_key or "").strip() + "\n"},
    }

"""Building and submitting Notebooks in apiserver tests."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

from tests.kube import Cluster

Manifest = dict[str, Any]


def notebook(name: str = "nb", **spec: Any) -> Manifest:
    """A valid minimal Notebook; `spec` entries replace the defaults."""
    base: dict[str, Any] = {
        "template": {"spec": {"containers": [{"name": "notebook", "image": "jupyter:1"}]}}
    }
    return {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "metadata": {"name": name},
        "spec": {**base, **copy.deepcopy(spec)},
    }


def pod_spec(**fields: Any) -> dict[str, Any]:
    """`template` with a pod spec: one `notebook` container plus `fields`."""
    spec = {"containers": [{"name": "notebook", "image": "jupyter:1"}], **fields}
    return {"spec": spec}


def container(**fields: Any) -> dict[str, Any]:
    """`template` whose single container has `fields` besides name and image."""
    return {"spec": {"containers": [{"name": "notebook", "image": "jupyter:1", **fields}]}}


def gpu(requests: Any = None, limits: Any = None, resource: str = "nvidia-gpu-percent") -> Any:
    """`template` whose container asks for tensorstack.dev/<resource>."""
    resources = {
        kind: {f"tensorstack.dev/{resource}": value}
        for kind, value in (("requests", requests), ("limits", limits))
        if value is not None
    }
    return container(resources=resources)


def apply(
    cluster: Cluster, namespace: str, manifest: Manifest | str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` as a user would (client-side; strict field validation)."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text, check=check)


def get(cluster: Cluster, namespace: str, name: str) -> Manifest:
    stored: Manifest = cluster.get_json("notebook", "-n", namespace, name)
    return stored

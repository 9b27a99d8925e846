"""Test notebooks: the seed document's three examples, as the API serves them."""

from __future__ import annotations

from typing import Any

import yaml

from notebook_controller.api.models import Notebook

SEED_BASIC = """
apiVersion: tensorstack.dev/v1beta1
kind: Notebook
metadata:
  name: notebook-sample
spec:
  runMode: running
  template:
    spec:
      containers:
      - image: t9kpublic/tensorflow-2.11.0-notebook-cpu:latest
        name: tensorflow
  type: jupyter
"""

SEED_GPU = """
apiVersion: tensorstack.dev/v1beta1
kind: Notebook
metadata:
  name: notebook-gpu-sample
spec:
  scheduler:
    t9kScheduler:
      queue: default
  template:
    spec:
      containers:
      - image: t9kpublic/tensorflow-2.11.0-notebook-gpu:latest
        name: gpu
        resources:
          requests:
            cpu: "0.5"
            memory: 1.0Gi
            tensorstack.dev/nvidia-gpu-percent: 30
"""

SEED_SSH = """
apiVersion: tensorstack.dev/v1beta1
kind: Notebook
metadata:
  name: notebook-sample
spec:
  ssh:
    authorized_keys:
    - my-public-key
    enabled: true
    serviceType: NodePort
  template:
    spec:
      containers:
      - image: t9kpublic/tensorflow-2.11.0-notebook-cpu:latest
        name: tensorflow
"""


def served(manifest: str, **metadata: Any) -> Notebook:
    """The notebook as the API server returns it: namespace, uid and generation set."""
    raw = yaml.safe_load(manifest)
    raw["metadata"] = {
        "namespace": "proj",
        "uid": "0b5f3c1e-1111-2222-3333-444455556666",
        "generation": 1,
        **raw["metadata"],
        **metadata,
    }
    return Notebook.model_validate(raw)


def with_spec(notebook: Notebook, **changes: Any) -> Notebook:
    raw = notebook.model_dump(by_alias=True, exclude_none=True, mode="json")
    raw["spec"].update(changes)
    return Notebook.model_validate(raw)

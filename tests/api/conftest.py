"""Fixtures for tests of the Notebook CRD against the real apiserver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.kube import Cluster


@pytest.fixture(scope="module")
def rejection_namespace(cluster: Cluster, notebook_crd: str) -> Iterator[str]:
    """One namespace for a module's rejected Notebooks: nothing is ever stored in it."""
    name = f"t-rejected-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "nbctl-test=true")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)

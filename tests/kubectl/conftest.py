"""Fixtures for the plugin's tests: `kubectl notebook ...` run as a user runs it: kubectl finds
the `kubectl-notebook` console script on PATH. The CRD and the controller process come from the
root `pytest_plugins` (tests/crd.py, tests/fixtures.py)."""

from __future__ import annotations

import subprocess

import pytest

from tests.kube import Cluster
from tests.kubectl.support import Plugin, plugin_env


@pytest.fixture
def plugin(cluster: Cluster) -> Plugin:
    """`kubectl notebook ARGS...`; returns the finished process (stdout, stderr, returncode)."""
    env = plugin_env(cluster)

    def run(
        *args: str, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cluster.kubectl_path, "notebook", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            input=input,
        )

    return run

"""Fixtures for the plugin's tests: the CRD, the controller process of tests/e2e (reused, not
copied), and `kubectl notebook ...` run as a user runs it: kubectl finds the `kubectl-notebook`
console script on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.crd import notebook_crd  # noqa: F401
from tests.e2e.conftest import controller  # noqa: F401
from tests.kube import Cluster

Plugin = Callable[..., subprocess.CompletedProcess[str]]
SCRIPTS = Path(sys.executable).parent  # where the package installed kubectl-notebook


def plugin_env(cluster: Cluster) -> dict[str, str]:
    path = os.pathsep.join(
        [str(SCRIPTS), str(Path(cluster.kubectl_path).parent), os.environ["PATH"]]
    )
    return {**os.environ, "PATH": path, "KUBECONFIG": str(cluster.kubeconfig)}


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

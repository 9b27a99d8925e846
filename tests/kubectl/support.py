"""The plugin as the tests run it (where kubectl finds it, the environment) and checks on
`kubectl notebook` runs, as a user reads them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.kube import Cluster

Plugin = Callable[..., subprocess.CompletedProcess[str]]
SCRIPTS = Path(sys.executable).parent  # where the package installed kubectl-notebook


def plugin_env(cluster: Cluster) -> dict[str, str]:
    """The environment in which kubectl finds the plugin and the test cluster."""
    path = os.pathsep.join(
        [str(SCRIPTS), str(Path(cluster.kubectl_path).parent), os.environ["PATH"]]
    )
    return {**os.environ, "PATH": path, "KUBECONFIG": str(cluster.kubeconfig)}


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded."""
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
    )
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line of a command that must have failed with exit 1."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]

"""Session fixture installing the Notebook CRD into the test cluster.

Registered for every test by the root conftest (`pytest_plugins`).

The CRD is generated from the current models (not read from deploy/), so a test run always
sees the schema of the code under test; tests/unit/api checks the committed copy is the same.
It is applied server-side: with the full PodSpec schema inlined the CRD is far larger than the
256 KiB that client-side apply's last-applied-configuration annotation may hold.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.kube import Cluster, wait_for

CRD_NAME = "notebooks.tensorstack.dev"
FIELD_MANAGER = "notebook-tests"

# Valid everywhere: proves the served schema accepts a minimal Notebook (dry run, nothing stored).
_PROBE = """
apiVersion: tensorstack.dev/v1beta1
kind: Notebook
metadata: {name: crd-probe, namespace: default}
spec:
  template:
    spec:
      containers: [{name: notebook, image: probe}]
"""


def install_crd(cluster: Cluster, path: Path) -> None:
    """Apply the CRD at ``path`` and wait until Notebooks are served."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        str(path),
    )
    established = '{.status.conditions[?(@.type=="Established")].status}'

    def is_established() -> bool:
        # (not `kubectl wait`: it errors out while a new CRD's status.conditions is still null)
        got = cluster.kubectl("get", f"crd/{CRD_NAME}", "-o", f"jsonpath={established}")
        return got.stdout == "True"

    wait_for(is_established, timeout=60, message=f"{CRD_NAME} to be Established")

    def served() -> bool:
        probe = cluster.kubectl(
            "create", "--dry-run=server", "-o", "name", "-f", "-", input=_PROBE, check=False
        )
        return probe.returncode == 0

    wait_for(served, timeout=60, message="Notebooks to be served")


@pytest.fixture(scope="session")
def notebook_crd(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Notebook CRD generated from the models, installed; returns the CRD's name."""
    from notebook_controller.api.crdgen import render_crd

    path = tmp_path_factory.mktemp("crd") / f"{CRD_NAME}.yaml"
    path.write_text(render_crd())
    try:
        install_crd(cluster, path)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"installing the Notebook CRD failed:\n{exc.stderr}") from exc
    return CRD_NAME

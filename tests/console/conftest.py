"""Fixtures for the console tests: the console as a process in trusted-header mode. The
controller, Chromium and artifacts fixtures come from the root `pytest_plugins`
(tests/fixtures.py), as for tests/product."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.console import ConsoleProcess
from tests.kube import Cluster


@pytest.fixture
def console_args(namespace: str) -> list[str]:
    """Flags for the console; modules override this fixture."""
    return ["--identity=header", f"--namespaces={namespace}"]


@pytest.fixture
def console(
    cluster: Cluster,
    notebook_crd: str,
    console_args: list[str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ConsoleProcess]:
    process = ConsoleProcess(
        cluster, tmp_path / "console.log", tmp_path / "proxy-secret", console_args
    )
    process.start()
    yield process
    process.stop_and_report(request)


@pytest.fixture
def second_namespace(cluster: Cluster, namespace: str) -> Iterator[str]:
    """Another throw-away namespace (the RBAC tests need two); deleted after the test."""
    name = f"{namespace[:50]}-b"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "nbctl-test=true")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)

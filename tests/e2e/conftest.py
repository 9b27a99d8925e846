"""End-to-end fixtures: the Notebook CRD, and the controller running as its own process,
watching only the test's namespace (so tests with their own controllers can coexist)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "controller_args(*args): extra flags for the `controller` fixture's process"
    )


@pytest.fixture
def controller(
    cluster: Cluster,
    namespace: str,
    notebook_crd: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ControllerProcess]:
    marker = request.node.get_closest_marker("controller_args")
    process = ControllerProcess(
        cluster,
        namespace,
        tmp_path / "controller.log",
        extra_args=marker.args if marker is not None else (),
    )
    process.start()
    yield process
    process.stop_and_report(request, lines=200)

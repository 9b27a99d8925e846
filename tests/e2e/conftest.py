"""End-to-end fixtures: the Notebook CRD, and the controller running as its own process,
watching only the test's namespace (so tests with their own controllers can coexist)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crd import notebook_crd  # noqa: F401
from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"report_{report.when}", report)  # type: ignore[attr-defined]
    return report


@pytest.fixture
def controller(
    cluster: Cluster,
    namespace: str,
    notebook_crd: str,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ControllerProcess]:
    process = ControllerProcess(cluster, namespace, tmp_path / "controller.log")
    process.start()
    yield process
    process.stop()
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        tail = process.log_path.read_text(errors="replace").splitlines()[-200:]
        print(f"--- controller log ({process.log_path}), last 200 lines ---")
        print("\n".join(tail))

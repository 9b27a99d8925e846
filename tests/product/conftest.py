"""Fixtures for the product tests: the standard notebook image in the local registry, the
controller as a local process for the test's namespace (with extra flags a module may add), a
headless Chromium, and the artifacts folder."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crd import notebook_crd  # noqa: F401
from tests.e2e.controller import ControllerProcess
from tests.kube import ROOT, Cluster
from tests.product.browser import Chromium
from tests.product.notebooks import ARTIFACTS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"report_{report.when}", report)  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="session")
def notebook_image(cluster: Cluster) -> str:
    """`registry.nbctl.local/notebook:1` in the local registry: built (or found up to date) and
    pushed by hack/images.sh, which `hack/cluster.sh up` does not do for this image."""
    proc = subprocess.run(
        [str(ROOT / "hack" / "images.sh"), "build", "notebook"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"hack/images.sh build notebook failed (exit {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}\n{proc.stdout[-3000:]}"
        )
    # pinned to the pushed digest: the real node may hold an older `notebook:1`
    pinned = subprocess.run(
        [str(ROOT / "hack" / "images.sh"), "pinned", "notebook"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return pinned.stdout.strip()


@pytest.fixture
def controller_args() -> list[str]:
    """Extra flags for the controller; modules override this fixture (e.g. an idle policy)."""
    return []


@pytest.fixture
def controller(
    cluster: Cluster,
    namespace: str,
    notebook_crd: str,  # noqa: F811
    controller_args: list[str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ControllerProcess]:
    process = ControllerProcess(
        cluster, namespace, tmp_path / "controller.log", extra_args=controller_args
    )
    process.start()
    yield process
    process.stop()
    call = getattr(request.node, "report_call", None)
    if call is not None and call.failed:
        tail = process.log_path.read_text(errors="replace").splitlines()[-150:]
        print(f"--- controller log ({process.log_path}), last 150 lines ---")
        print("\n".join(tail))


@pytest.fixture
def artifacts() -> Path:
    """`test-artifacts/` at the repository root (git-ignored): screenshots and figures."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    browser = Chromium(tmp_path / "chromium-profile", tmp_path / "chromium.log")
    browser.start()
    yield browser
    browser.stop()

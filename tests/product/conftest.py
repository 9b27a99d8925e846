"""Fixtures for the product tests: the standard notebook image in the local registry, the
controller as a local process for the test's namespace (with extra flags a module may add), a
headless Chromium, and the artifacts folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster
from tests.product.browser import Chromium
from tests.product.notebooks import ARTIFACTS


@pytest.fixture
def controller_args() -> list[str]:
    """Extra flags for the controller; modules override this fixture (e.g. an idle policy)."""
    return []


@pytest.fixture
def controller(
    cluster: Cluster,
    namespace: str,
    notebook_crd: str,
    controller_args: list[str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ControllerProcess]:
    process = ControllerProcess(
        cluster, namespace, tmp_path / "controller.log", extra_args=controller_args
    )
    process.start()
    yield process
    process.stop_and_report(request)


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

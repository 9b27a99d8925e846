"""Fixtures shared across test directories, registered for every test through the root
`pytest_plugins`, so no test imports them: the controller as its own process for the test's
namespace (tests/e2e, tests/kubectl, tests/product, tests/console), a headless Chromium and the
artifacts folder (tests/product, tests/console)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster
from tests.product.browser import Chromium
from tests.product.notebooks import ARTIFACTS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "controller_args(*args): extra flags for the `controller` fixture's process"
    )


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
    """`python -m notebook_controller run` watching only the test's namespace (so tests with
    their own controllers can coexist), with the module's `controller_args` and the test's
    `@pytest.mark.controller_args(...)` flags."""
    marker = request.node.get_closest_marker("controller_args")
    process = ControllerProcess(
        cluster,
        namespace,
        tmp_path / "controller.log",
        extra_args=[*controller_args, *(marker.args if marker is not None else ())],
    )
    process.start()
    yield process
    process.stop_and_report(request, lines=200)


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

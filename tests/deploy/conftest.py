"""The controller's image, built once per session for the install tests."""

from __future__ import annotations

import pytest

from tests.deploy.support import project_version, report
from tests.realnode import built_image


@pytest.fixture(scope="session")
def controller_image() -> str:
    """`hack/images.sh build notebook-controller`: built (if its inputs changed) and pushed."""
    _, log = built_image("notebook-controller")
    for line in log.splitlines():
        if "notebook-controller:" in line and "MB" in line:
            report(line.removeprefix("images: "))
    return f"registry.nbctl.local/notebook-controller:{project_version()}"

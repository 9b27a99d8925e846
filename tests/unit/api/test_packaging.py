"""The wheel ships every data file the package reads (the CRD generator's vendored PodSpec
schema): pyproject's package-data covers each non-Python file under notebook_controller/."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "notebook_controller"


def test_package_data_covers_every_data_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data: dict[str, list[str]] = config["tool"]["setuptools"]["package-data"]
    data_files = [
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]
    assert data_files, "expected the vendored openapi schema at least"
    uncovered = []
    for path in data_files:
        relative = path.relative_to(ROOT)
        covered = any(
            relative.is_relative_to(Path(*package.split(".")))
            and fnmatch.fnmatch(str(relative.relative_to(Path(*package.split(".")))), pattern)
            for package, patterns in package_data.items()
            for pattern in patterns
        )
        if not covered:
            uncovered.append(str(relative))
    assert uncovered == []

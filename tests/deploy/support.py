"""What the install tests share: the project's version (the image tag) and progress lines."""

from __future__ import annotations

import tomllib

from tests.kube import ROOT


def report(message: str) -> None:
    print(f"\n[in-cluster] {message}", flush=True)


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])

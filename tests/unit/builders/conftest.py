"""The seed notebooks as fixtures (see seeds.py)."""

from __future__ import annotations

import pytest

from notebook_controller.api.models import Notebook
from tests.unit.builders.seeds import SEED_BASIC, SEED_GPU, SEED_SSH, served


@pytest.fixture
def basic() -> Notebook:
    return served(SEED_BASIC)


@pytest.fixture
def gpu() -> Notebook:
    return served(SEED_GPU)


@pytest.fixture
def ssh() -> Notebook:
    return served(SEED_SSH)

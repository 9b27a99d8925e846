from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.idle.jupyter import JupyterServer, JupyterUser, notebook_prefix, start_jupyter_server


@pytest.fixture
def jupyter_server(tmp_path: Path) -> Iterator[JupyterServer]:
    """A fresh server (so a fresh activity clock) under a notebook's base_url."""
    prefix = notebook_prefix("probe-ns", f"nb-{uuid.uuid4().hex[:6]}")
    server = start_jupyter_server(tmp_path / "jupyter", prefix)
    yield server
    server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def jupyter_user(http: aiohttp.ClientSession, jupyter_server: JupyterServer) -> JupyterUser:
    return JupyterUser(http, jupyter_server)

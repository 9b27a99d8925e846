from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from notebook_controller.runtime.kube import KubeClient
from tests.kube import Cluster


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[KubeClient]:
    client = await KubeClient.from_config(str(cluster.kubeconfig))
    async with client:
        yield client

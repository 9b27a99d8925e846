"""The local cluster's fake nodes, as `kubectl` shows them."""

from __future__ import annotations

import json

import pytest

from tests.cluster.helpers import FAKE_NODES, GPU, GPU_NODE, GPU_PERCENT
from tests.kube import Cluster, condition

pytestmark = pytest.mark.cluster


def test_kubectl_get_nodes_lists_fake_nodes_ready(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "nodes", "--no-headers").stdout
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    for node in FAKE_NODES:
        assert rows.get(node) == "Ready", out
    nodes = {n["metadata"]["name"]: n for n in cluster.get_json("nodes")["items"]}
    for node in FAKE_NODES:
        assert condition(nodes[node], "Ready").get("status") == "True"
        assert not nodes[node]["spec"].get("taints"), "fake nodes must carry no taints"


def test_gpu_node_advertises_tensorstack_gpu_resources(cluster: Cluster) -> None:
    node = cluster.get_json("node", GPU_NODE)
    for field in ("capacity", "allocatable"):
        res = node["status"][field]
        assert res[GPU_PERCENT] == "800"
        assert res[GPU] == "8"
        assert int(res["pods"]) >= 1000


def test_kubectl_version_tells_the_pinned_release(cluster: Cluster) -> None:
    if not cluster.can_control_components:
        pytest.skip("external cluster: its version is not ours")
    from tests.kube import ROOT

    pins = dict(
        line.split("=", 1)
        for line in (ROOT / "hack/cluster/versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["clientVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]
    assert version["serverVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]

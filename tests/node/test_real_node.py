"""The real node runs real containers: logs, exec, probes, port-forward, crash loops, pulls,
Services, DNS, and no route off the machine for the pod and Service ranges."""

from __future__ import annotations

import errno
import json
import re
import socket
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from notebook_controller.idle.ssh import read_ssh_activity
from notebook_controller.runtime.kube import KubeClient
from tests.kube import Cluster, wait_for
from tests.realnode import (
    NODE_IP,
    REAL_NODE,
    is_ready,
    pod,
    pod_json,
    wait_ready,
    waiting_reason,
)

pytestmark = pytest.mark.cluster


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode().strip())


def exec_in(cluster: Cluster, namespace: str, name: str, *command: str) -> str:
    return cluster.kubectl("-n", namespace, "exec", name, "--", *command, timeout=60).stdout


def test_a_pod_runs_with_logs_exec_and_port_forward(cluster: Cluster, real_namespace: str) -> None:
    namespace = real_namespace
    cluster.apply(pod("web"), namespace)
    running = wait_ready(cluster, namespace, "web")
    assert running["spec"]["nodeName"] == REAL_NODE
    assert running["status"]["podIP"].startswith("10.244.64.")
    status = running["status"]["containerStatuses"][0]
    assert status["imageID"].startswith("registry.nbctl.local/testimage@sha256:"), status
    logs = cluster.kubectl("-n", namespace, "logs", "web").stdout
    assert "started-on-real-node" in logs
    assert exec_in(cluster, namespace, "web", "cat", "/srv/index.html").strip() == "real-node-ok"

    forward = subprocess.Popen(
        [cluster.kubectl_path, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace,
         "port-forward", "pod/web", ":8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, f"kubectl port-forward said {line!r}"
        assert http_get(f"http://127.0.0.1:{port.group(1)}/") == "real-node-ok"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


async def test_the_controllers_exec_client_reads_ssh_connections_in_a_real_pod(
    cluster: Cluster, real_namespace: str
) -> None:
    namespace = real_namespace
    # a server on the SSH port inside the pod; the host holds a TCP connection to it
    command = ["sh", "-c", "echo ok > /tmp/i && exec httpd -f -p 2222 -h /tmp"]
    cluster.apply(pod("sshish", command=command), namespace)
    ip = wait_ready(cluster, namespace, "sshish")["status"]["podIP"]
    client = await KubeClient.from_config(str(cluster.kubeconfig))
    async with client:

        async def run(cmd: Any) -> str:
            return await client.exec(namespace, "sshish", "main", cmd)

        assert (await client.exec(namespace, "sshish", "main", ["cat", "/tmp/i"])).strip() == "ok"
        before = await read_ssh_activity(run)
        assert before.reachable and before.connections == 0, before
        with socket.create_connection((ip, 2222), timeout=5):
            during = await read_ssh_activity(run)
        assert during.reachable and during.connections == 1, during


def test_a_readiness_probe_gates_ready(cluster: Cluster, real_namespace: str) -> None:
    namespace = real_namespace
    cluster.apply(pod("gated", readiness_path="/ready"), namespace)

    def running() -> dict[str, Any] | None:
        p = pod_json(cluster, namespace, "gated")
        statuses = p.get("status", {}).get("containerStatuses") or []
        return p if statuses and "running" in statuses[0]["state"] else None

    wait_for(running, timeout=90, message="the container to run")
    time.sleep(3)  # several probe periods (1 s) with /ready missing
    assert not is_ready(pod_json(cluster, namespace, "gated"))
    exec_in(cluster, namespace, "gated", "touch", "/srv/ready")
    wait_ready(cluster, namespace, "gated", timeout=30)


def test_crash_loops_and_missing_images_are_reported_by_the_kubelet(
    cluster: Cluster, real_namespace: str
) -> None:
    namespace = real_namespace
    cluster.apply(pod("crash", command=["sh", "-c", "echo dying; exit 3"]), namespace)
    missing = "registry.nbctl.local/no-such-image:1"
    cluster.apply(pod("nopull", image=missing), namespace)

    def restarted_twice() -> dict[str, Any] | None:
        statuses = pod_json(cluster, namespace, "crash")["status"].get("containerStatuses") or []
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 2 else None

    crashed = wait_for(restarted_twice, timeout=90, message="two restarts of a crashing container")
    # the v1.37 kubelet reports a container in restart back-off as `terminated`, not as
    # `waiting: CrashLoopBackOff` (the controller reads both: builders/status.py)
    assert crashed["lastState"]["terminated"]["exitCode"] == 3
    wait_for(
        lambda: any(e["reason"] == "BackOff" for e in cluster.events(namespace, "crash")),
        timeout=30,
        message="the kubelet's BackOff event",
    )
    # the last run's output (the kubelet keeps one dead instance of a container)
    wait_for(
        lambda: "dying" in cluster.kubectl("-n", namespace, "logs", "crash", check=False).stdout,
        timeout=30,
        message="the crashed container's log",
    )
    wait_for(
        lambda: (
            waiting_reason(pod_json(cluster, namespace, "nopull"))
            in ("ErrImagePull", "ImagePullBackOff")
        ),
        timeout=90,
        message="ErrImagePull",
    )
    events = cluster.events(namespace, "nopull")
    assert any(e["reason"] == "Failed" and "no-such-image" in e["message"] for e in events)


def pod_http(cluster: Cluster, namespace: str, pod_name: str, host: str, port: int) -> str:
    """GET / from inside a pod, with busybox's nc."""
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 " + f"{host} {port}"
    return exec_in(cluster, namespace, pod_name, "sh", "-c", request).strip()


def service(name: str, selector: str, *, type_: str = "ClusterIP") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": type_,
            "selector": {"app": selector},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }


def test_services_by_cluster_ip_dns_name_and_node_port(
    cluster: Cluster, real_namespace: str
) -> None:
    namespace = real_namespace
    cluster.apply(pod("server"), namespace)
    cluster.apply(pod("client", command=["sleep", "3600"]), namespace)
    cluster.apply(service("web", "server"), namespace)
    cluster.apply(service("web-np", "server", type_="NodePort"), namespace)
    wait_ready(cluster, namespace, "server")
    wait_ready(cluster, namespace, "client")
    svc = cluster.get_json("service", "web", "-n", namespace)
    cluster_ip = svc["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.96.")
    # from the host, through kube-proxy's rules
    assert wait_for(lambda: http_get(f"http://{cluster_ip}/"), timeout=30) == "real-node-ok"
    # from another pod, by DNS name (CoreDNS). busybox-static's wget crashes in glibc's static
    # resolver, so busybox's own nslookup resolves and nc speaks HTTP to the answer.
    name = f"web.{namespace}.svc.cluster.local"
    answer = exec_in(cluster, namespace, "client", "nslookup", name)
    assert f"Address: {cluster_ip}" in answer, answer
    assert pod_http(cluster, namespace, "client", cluster_ip, 80).endswith("real-node-ok")
    resolv = exec_in(cluster, namespace, "client", "cat", "/etc/resolv.conf")
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert f"nameserver {NODE_IP}" in resolv
    # the API server through the `kubernetes` Service (10.96.0.1:443 -> the node address)
    answer = pod_http(cluster, namespace, "client", "10.96.0.1", 443)
    assert "Client sent an HTTP request to an HTTPS server" in answer, answer
    # names outside the cluster are refused, never forwarded
    outside = cluster.kubectl(
        "-n", namespace, "exec", "client", "--", "nslookup", "example.com", check=False
    )
    assert "REFUSED" in outside.stdout + outside.stderr, outside
    # NodePort on the node's address (an address of this machine)
    node_port = cluster.get_json("service", "web-np", "-n", namespace)["spec"]["ports"][0][
        "nodePort"
    ]
    assert wait_for(lambda: http_get(f"http://{NODE_IP}:{node_port}/"), timeout=30) == (
        "real-node-ok"
    )


def test_nothing_for_the_pod_or_service_ranges_leaves_the_machine(
    cluster: Cluster, real_namespace: str
) -> None:
    namespace = real_namespace
    # a ClusterIP Service without endpoints: refused here, at once
    cluster.apply(service("nobody", "no-such-pod"), namespace)
    ip = cluster.get_json("service", "nobody", "-n", namespace)["spec"]["clusterIP"]

    def refused() -> bool:
        try:
            socket.create_connection((ip, 80), timeout=3).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_for(refused, timeout=30, message=f"{ip}:80 refused by kube-proxy's reject rule")
    # a pod-range address outside the node's subnet: an `unreachable` route, refused at once
    route = subprocess.run(
        ["ip", "-j", "route", "get", "10.244.200.1"], capture_output=True, text=True
    )
    assert route.returncode != 0, route.stdout
    started = time.monotonic()
    with pytest.raises(OSError) as failed:
        socket.create_connection(("10.244.200.1", 80), timeout=5).close()
    assert failed.value.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH), failed.value
    assert time.monotonic() - started < 1
    # an unallocated Service address: onto the bridge (local pods only), where nobody answers
    route = subprocess.run(
        ["ip", "-j", "route", "get", "10.96.255.254"], capture_output=True, text=True
    )
    assert json.loads(route.stdout)[0]["dev"] == "nbctl0", route.stdout
    with pytest.raises(OSError) as failed:
        socket.create_connection(("10.96.255.254", 80), timeout=10).close()
    assert failed.value.errno == errno.EHOSTUNREACH, failed.value
    # the node's own subnet is on the bridge
    route = subprocess.run(
        ["ip", "-j", "route", "get", "10.244.64.200"], capture_output=True, text=True
    )
    assert json.loads(route.stdout)[0]["dev"] == "nbctl0"

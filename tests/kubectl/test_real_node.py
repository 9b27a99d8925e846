"""`kubectl notebook` on the real node with the standard notebook image: a whole session
without YAML (create with a key, open, ssh, pause, resume), and ssh's pinned host key."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.controller import ControllerProcess
from tests.kube import Cluster, get, wait_for
from tests.kubectl.support import Plugin, ok, one_line_error, plugin_env
from tests.product.notebooks import Key, key_secret, keygen, seed_notebook

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

NB = "term-nb"
_NOT_YET = ("Connection refused", "Connection reset", "Connection closed", "ended:")


def ssh_id(
    plugin: Plugin, namespace: str, key: Key, name: str = NB, option: str = "-u"
) -> subprocess.CompletedProcess[str]:
    """`kubectl notebook ssh NAME -i KEY -- id -u`, retried only while sshd is not answering
    yet (a refused host key comes back at once, for the caller to check)."""
    deadline = time.monotonic() + 60
    while True:
        started = time.monotonic()
        proc = plugin("ssh", name, "-n", namespace, "-i", str(key.private), "--", "id", option)
        print(f"kubectl notebook ssh -- id -u: {time.monotonic() - started:.2f}s")
        if proc.returncode != 255 or not any(s in proc.stderr for s in _NOT_YET):
            return proc
        if time.monotonic() > deadline:
            return proc
        time.sleep(2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read().decode(errors="replace")


class OpenedNotebook:
    """`kubectl notebook open NB --no-browser` running in the background: its URL, then stop."""

    def __init__(self, cluster: Cluster, namespace: str, *extra: str) -> None:
        self.process = subprocess.Popen(
            [cluster.kubectl_path, "notebook", "open", NB, "-n", namespace, "--no-browser", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=plugin_env(cluster),
        )

    def url(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), (
            f"no URL from open (exit {self.process.poll()}): {line!r} {self.stderr()}"
        )
        return line

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=30)


def serves_jupyterlab(url: str, namespace: str) -> None:
    base = url.removesuffix("lab")
    assert base.endswith(f"/t9k/notebooks/projects/{namespace}/name/{NB}/"), url
    status, body = wait_for(lambda: http_get(f"{base}api/status"), timeout=30)
    assert status == 200 and "started" in json.loads(body), body
    status, page = http_get(url)
    assert status == 200 and "JupyterLab" in page, page[:500]


def test_session_without_yaml(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    plugin: Plugin,
    tmp_path: Path,
) -> None:
    namespace = real_namespace
    key = keygen(tmp_path / "id_ed25519")
    started = time.monotonic()
    created = plugin(
        "create",
        NB,
        "-n",
        namespace,
        "--image",
        notebook_image,
        "--cpu",
        "1",
        "--memory",
        "1Gi",
        "--ssh-key",
        f"{key.private}.pub",
        timeout=600,
    )
    ok(created)
    print(f"create to Ready: {time.monotonic() - started:.1f}s\n{created.stderr}")

    opened = OpenedNotebook(cluster, namespace)
    try:
        url = opened.url()
        serves_jupyterlab(url, namespace)
    finally:
        assert opened.stop() == 0, opened.stderr()

    proc = ssh_id(plugin, namespace, key)
    assert (proc.returncode, proc.stdout.strip()) == (0, "1000"), proc.stderr

    # the IDE path: the printed ~/.ssh/config block, used by plain ssh
    known_hosts = tmp_path / "known_hosts"
    config = ok(
        plugin(
            "ssh-config",
            NB,
            "-n",
            namespace,
            "-i",
            str(key.private),
            "--known-hosts",
            str(known_hosts),
        )
    )
    print(config)
    alias = config.splitlines()[0].removeprefix("Host ").strip()
    (tmp_path / "ssh_config").write_text(config)
    via_config = subprocess.run(
        ["ssh", "-F", str(tmp_path / "ssh_config"), "-o", "BatchMode=yes", alias, "id -u; pwd"],
        capture_output=True,
        text=True,
        env=plugin_env(cluster),
        timeout=120,
    )
    assert via_config.returncode == 0, via_config.stderr
    assert via_config.stdout.split() == ["1000", "/t9k/mnt"]

    # a terminal (-tt: stdin here is no tty), and a port forward as ssh -L gives it
    tty = plugin("ssh", NB, "-n", namespace, "-i", str(key.private), "-tt", "--", "tty")
    assert tty.returncode == 0 and tty.stdout.strip().startswith("/dev/pts/"), tty
    port = free_port()
    forward = subprocess.Popen(
        [cluster.kubectl_path, "notebook", "ssh", NB, "-n", namespace, "-i", str(key.private),
         "-L", f"{port}:127.0.0.1:8888", "--", "sleep", "120"],
        env=plugin_env(cluster), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        prefix = f"/t9k/notebooks/projects/{namespace}/name/{NB}/"
        status, _ = wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}{prefix}api/status"), timeout=60
        )
        assert status == 200
    finally:
        forward.terminate()
        forward.wait(timeout=30)

    logs = ok(plugin("logs", NB, "-n", namespace, "--tail", "50"))
    assert "Jupyter Server" in logs or "jupyter" in logs.lower(), logs

    # pause: no pod; open refuses without --resume; open --resume brings it back
    assert ok(plugin("pause", NB, "-n", namespace)) == f"notebook.tensorstack.dev/{NB} paused\n"
    wait_for(
        lambda: get(cluster, namespace, "pod", f"managed-notebook-{NB}-0") is None,
        timeout=120,
        message="the paused notebook's pod to go",
    )
    listed = json.loads(ok(plugin("list", "-n", namespace, "-o", "json")))
    assert listed["items"][0]["spec"]["runMode"] == "paused"
    line = one_line_error(plugin("open", NB, "-n", namespace, "--no-browser"))
    assert f"notebook {NB} is paused" in line and "--resume" in line, line
    started = time.monotonic()
    opened = OpenedNotebook(cluster, namespace, "--resume")
    try:
        url = opened.url()
        print(f"open --resume to URL: {time.monotonic() - started:.1f}s")
        serves_jupyterlab(url, namespace)
    finally:
        assert opened.stop() == 0, opened.stderr()
    # the same host key after the pause (kept in its Secret): strict checking still passes
    proc = ssh_id(plugin, namespace, key)
    assert (proc.returncode, proc.stdout.strip()) == (0, "1000"), proc.stderr

    # and pause + resume as commands
    ok(plugin("pause", NB, "-n", namespace))
    resumed = plugin("resume", NB, "-n", namespace, timeout=600)
    assert ok(resumed) == f"notebook.tensorstack.dev/{NB} resumed\n"
    assert f"notebook {NB} is Ready" in resumed.stderr


def test_ssh_refuses_a_host_key_that_is_not_the_notebooks(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    plugin: Plugin,
    tmp_path: Path,
) -> None:
    namespace = real_namespace
    key = keygen(tmp_path / "id_ed25519")
    ok(
        plugin(
            "create",
            NB,
            "-n",
            namespace,
            "--image",
            notebook_image,
            "--ssh-key",
            f"{key.private}.pub",
            timeout=600,
        )
    )
    proc = ssh_id(plugin, namespace, key)
    assert (proc.returncode, proc.stdout.strip()) == (0, "1000"), proc.stderr
    config = ok(
        plugin(
            "ssh-config",
            NB,
            "-n",
            namespace,
            "-i",
            str(key.private),
            "--known-hosts",
            str(tmp_path / "known_hosts"),
        )
    )
    (tmp_path / "ssh_config").write_text(config)
    alias = config.splitlines()[0].removeprefix("Host ").strip()

    # someone replaces the public key in the host-key Secret (the pod keeps its private key)
    other = keygen(tmp_path / "other_host_key")
    secret = f"managed-notebook-hostkey-{NB}"
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "secret",
        secret,
        "--type=merge",
        "-p",
        json.dumps(
            {"data": {"ssh_host_ed25519_key.pub": base64.b64encode(other.public.encode()).decode()}}
        ),
    )
    refused = plugin("ssh", NB, "-n", namespace, "-i", str(key.private), "--", "id", "-u")
    print(refused.stderr)
    assert refused.returncode == 255 and refused.stdout == "", refused.stdout
    assert "Host key verification failed" in refused.stderr, refused.stderr
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr, refused.stderr
    # the ssh-config path pins from the Secret at each connection too
    via_config = subprocess.run(
        ["ssh", "-F", str(tmp_path / "ssh_config"), "-o", "BatchMode=yes", alias, "id -u"],
        capture_output=True,
        text=True,
        env=plugin_env(cluster),
        timeout=120,
    )
    assert via_config.returncode == 255 and via_config.stdout == ""
    assert "Host key verification failed" in via_config.stderr, via_config.stderr


def test_seed_ssh_example_by_name(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    plugin: Plugin,
    tmp_path: Path,
) -> None:
    """A notebook the plugin did not make: the seed's SSH example (NodePort Service, key Secret
    `my-public-key`), applied as YAML; ssh and open reach it through port-forwards."""
    namespace = real_namespace
    key = keygen(tmp_path / "id_ed25519")
    cluster.apply(key_secret("my-public-key", key), namespace)
    manifest = seed_notebook("notebook-ssh-sample.yaml", notebook_image)
    cluster.apply(manifest, namespace)
    name = manifest["metadata"]["name"]
    ok(plugin("resume", name, "-n", namespace, timeout=600))  # already running: waits for Ready
    described = json.loads(ok(plugin("describe", name, "-n", namespace, "-o", "json")))
    assert described["commands"]["ssh"] == f"kubectl notebook ssh {name} -n {namespace}"
    proc = ssh_id(plugin, namespace, key, name, "-un")
    assert (proc.returncode, proc.stdout.strip()) == (0, "t9kuser"), proc.stderr

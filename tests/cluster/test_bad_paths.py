"""hack/cluster.sh failure modes: one clear line naming the cause, never a hang.

Runs against a second, scratch cluster (NBCTL_CLUSTER_DIR) so the shared one is not disturbed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube import CLUSTER_SH, ROOT, Cluster, wait_for

pytestmark = pytest.mark.cluster


def run(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLUSTER_SH), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )


def first_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if " error: " in ln]
    assert lines, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def scratch(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if not cluster.can_control_components:
        pytest.skip("needs the locally built cluster binaries")
    # KWOK only: one real node per machine, and it belongs to the shared cluster
    env = dict(
        os.environ,
        NBCTL_CLUSTER_DIR=str(tmp_path_factory.mktemp("scratch-cluster")),
        NBCTL_REAL_NODE="0",
    )
    env.pop("KUBECONFIG", None)
    up = run(env, "up")
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == "started"
    yield env
    down = run(env, "down")
    assert down.returncode == 0, down.stderr


def state(env: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((Path(env["NBCTL_CLUSTER_DIR"]) / "state.json").read_text())
    return found


def test_up_twice_reuses(scratch: dict[str, str]) -> None:
    again = run(scratch, "up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "reused"


def test_port_taken_is_named(scratch: dict[str, str]) -> None:
    assert run(scratch, "stop-component", "kube-scheduler").returncode == 0
    port = state(scratch)["components"]["kube-scheduler"]["port"]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        proc = run(scratch, "start-component", "kube-scheduler", timeout=60)
    finally:
        squatter.close()
    assert proc.returncode == 1
    line = first_error_line(proc)
    assert "kube-scheduler" in line and f"127.0.0.1:{port} is taken" in line, line
    assert run(scratch, "start-component", "kube-scheduler").returncode == 0


def test_component_dying_on_start_shows_its_log(scratch: dict[str, str]) -> None:
    assert run(scratch, "stop-component", "kube-scheduler").returncode == 0
    path = Path(scratch["NBCTL_CLUSTER_DIR"]) / "state.json"
    saved = path.read_text()
    st = json.loads(saved)
    st["components"]["kube-scheduler"]["argv"].append("--no-such-flag")
    path.write_text(json.dumps(st))
    try:
        proc = run(scratch, "start-component", "kube-scheduler", timeout=120)
    finally:
        fixed = json.loads(path.read_text())
        fixed["components"]["kube-scheduler"]["argv"] = json.loads(saved)["components"][
            "kube-scheduler"
        ]["argv"]
        path.write_text(json.dumps(fixed))
    assert proc.returncode == 1
    assert "component kube-scheduler died on start (exit code" in first_error_line(proc)
    assert "unknown flag: --no-such-flag" in proc.stderr  # the log tail
    assert run(scratch, "start-component", "kube-scheduler").returncode == 0


def test_crashed_run_is_detected_as_stale(scratch: dict[str, str]) -> None:
    pid = state(scratch)["components"]["kube-scheduler"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=10)
    proc = run(scratch, "up")
    assert proc.returncode == 0, proc.stderr
    assert "stale cluster detected (components not running: kube-scheduler)" in proc.stderr
    assert proc.stdout.strip() == "started"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def test_go_missing_is_one_line(tmp_path: Path) -> None:
    go = shutil.which("go")
    go_dir = str(Path(go).parent) if go else None
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if d != go_dir)
    if shutil.which("go", path=path) or not shutil.which("python3", path=path):
        pytest.skip("cannot hide go from PATH here")
    env = dict(os.environ, PATH=path, NBCTL_CACHE_DIR=str(tmp_path / "cache"))
    env["NBCTL_CLUSTER_DIR"] = str(tmp_path / "cluster")
    proc = run(env, "build", timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "cluster build: error: `go` not found on PATH: Go >= 1.26 is needed to build the local "
        "cluster (kube-apiserver, etcd, kwok) from Go modules"
    ]

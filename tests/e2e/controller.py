"""The controller as its own process, scoped to one namespace, plus helpers to watch it work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.kube import ROOT, Cluster

SEEDS = ROOT / "tests" / "api" / "seed"
AUDIT_LOG = ROOT / ".cluster" / "audit.log"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


class ControllerProcess:
    """`python -m notebook_controller run` for one namespace; its log goes to a file."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        log_path: Path,
        *,
        extra_args: Sequence[str] = (),
        health_port: int = 0,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.health_port = health_port  # 0: any free port (then /metrics can't be read)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "notebook_controller",
            "run",
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--namespaces={self.namespace}",
            "--log-format=json",
            f"--health-address=127.0.0.1:{self.health_port}",
            "--graceful-shutdown-timeout=5",
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                # unbuffered: tests read the log while the process runs (and after SIGKILL)
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight work lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop_and_report(self, request: pytest.FixtureRequest, lines: int = 150) -> None:
        """Stop; if the test failed (or never ran its body), print the log's last lines."""
        self.stop()
        call = getattr(request.node, "report_call", None)
        if call is None or call.failed:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- controller log ({self.log_path}), last {lines} lines ---")
            print("\n".join(tail))

    def metrics(self) -> dict[str, float]:
        """The samples of the controller's /metrics, by `name{labels}` as exposed."""
        assert self.health_port, "start the controller with a known health_port"
        url = f"http://127.0.0.1:{self.health_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"event": raw})
        return lines

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


def seed(name: str) -> str:
    return (SEEDS / name).read_text()


# --- counting the controller's writes ------------------------------------------------------


def audit_position() -> int:
    return AUDIT_LOG.stat().st_size if AUDIT_LOG.exists() else 0


def controller_writes(namespace: str, since: int) -> list[dict[str, Any]]:
    """Write requests in `namespace` since byte offset `since` of the audit log, from clients
    other than kubectl (the tests) and the cluster's own components: the controller's."""
    writes = []
    with AUDIT_LOG.open("rb") as log:
        log.seek(since)
        for raw in log:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("stage") != "ResponseComplete" or event.get("verb") not in WRITE_VERBS:
                continue
            if (event.get("objectRef") or {}).get("namespace") != namespace:
                continue
            user = (event.get("user") or {}).get("username", "")
            if user.startswith("system:") or event.get("userAgent", "").startswith("kubectl"):
                continue
            writes.append(event)
    return writes


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def each_line(text: str) -> Iterator[str]:
    yield from (line for line in text.splitlines() if line.strip())

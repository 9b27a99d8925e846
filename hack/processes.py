"""The local cluster's processes: the state file, free ports, starting a component, its health,
stopping it by recorded PID only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from clusterbase import (
    CHILDREN,
    CLUSTER,
    LOGS,
    PKI,
    START_TIMEOUT,
    STATE,
    STOP_TIMEOUT,
    ClusterError,
    log_tail,
    say,
)


def load_state() -> dict | None:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return None


def save_state(state: dict) -> None:
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.rename(STATE)


def pid_is(pid: int | None, argv0: str) -> bool:
    """True if pid is alive and runs our binary (guards against PID reuse)."""
    if not pid:
        return False
    proc = CHILDREN.get(pid)
    if proc is not None:  # started by this very run: ask the kernel through waitpid
        return proc.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):  # zombie / dead
        return False
    try:
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return False
    return exe == argv0


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def port_owner(port: int) -> str:
    """Best-effort description of who listens on port (for the error message)."""
    if shutil.which("ss"):
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True
        ).stdout
        if out.strip():
            return out.strip().splitlines()[0].split()[-1]
    return "another process"


def exit_reason(pid: int | None) -> str:
    """How a process started by this run ended ("exit code 1", "killed by SIGKILL")."""
    proc = CHILDREN.get(pid or -1)
    if proc is None or proc.poll() is None:
        return "exited"
    rc = proc.returncode
    if rc < 0:
        return f"killed by {signal.Signals(-rc).name}"
    return f"exit code {rc}"


def spawn(state: dict, name: str) -> None:
    comp = state["components"][name]
    host = comp.get("host", "127.0.0.1")
    for port in [comp["port"], *comp.get("extra_ports", [])]:
        if port is not None and not port_free(port, host):
            raise ClusterError(
                f"component {name}: port {host}:{port} is taken by {port_owner(port)}"
            )
    LOGS.mkdir(parents=True, exist_ok=True)
    log = Path(comp["log"])
    with log.open("a") as fh:
        fh.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n")
        fh.flush()
        proc = subprocess.Popen(
            comp["argv"],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=CLUSTER,
            start_new_session=True,
            env={**os.environ, **comp["env"]} if comp.get("env") else None,
        )
    CHILDREN[proc.pid] = proc
    comp["pid"] = proc.pid
    comp["stopped"] = False
    save_state(state)


def tls_context(state: dict, kind: str) -> ssl.SSLContext:
    if kind == "etcd":
        ctx = ssl.create_default_context(cafile=str(PKI / "etcd-ca.crt"))
        ctx.load_cert_chain(str(PKI / "etcd-client.crt"), str(PKI / "etcd-client.key"))
    elif kind == "apiserver":
        ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
        ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    else:  # self-signed serving certs of controller-manager / scheduler
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def healthy(state: dict, name: str) -> bool:
    comp = state["components"][name]
    url = comp["health"]
    if url is None:  # no health endpoint: running is all we can tell
        return pid_is(comp.get("pid"), comp["argv"][0])
    ctx = None
    if url.startswith("https"):
        ctx = tls_context(
            state, {"etcd": "etcd", "kube-apiserver": "apiserver"}.get(name, "insecure")
        )
    try:
        with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:
            body = resp.read().decode(errors="replace")
            if name == "etcd":
                return '"health":"true"' in body.replace(" ", "")
            return resp.status == 200
    except (urllib.error.URLError, OSError, ssl.SSLError, TimeoutError):
        return False


def wait_healthy(state: dict, name: str, timeout: float = START_TIMEOUT) -> None:
    comp = state["components"][name]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not pid_is(comp["pid"], comp["argv"][0]):
            raise ClusterError(
                f"component {name} died on start ({exit_reason(comp['pid'])}): see {comp['log']}\n"
                f"--- last 20 lines of {name} log ---\n{log_tail(Path(comp['log']))}"
            )
        if healthy(state, name):
            return
        time.sleep(0.5)
    raise ClusterError(
        f"component {name} not healthy after {timeout:.0f}s at {comp['health']}\n"
        f"--- last 20 lines of {name} log ---\n{log_tail(Path(comp['log']))}"
    )


# SIGTERM grace before SIGKILL. kube-apiserver stops listening at once on SIGTERM but then
# lingers ~30s on open watch connections; its data lives in etcd, so it gets a short grace.
STOP_GRACE = {"kube-apiserver": 5.0, "etcd": STOP_TIMEOUT}


def stop_pid(pid: int, argv0: str, name: str) -> None:
    if not pid_is(pid, argv0):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    grace = STOP_GRACE.get(name, 15.0)
    deadline = time.time() + grace
    while time.time() < deadline:
        if not pid_is(pid, argv0):
            return
        time.sleep(0.1)
    if name != "kube-apiserver":
        say(f"{name} (pid {pid}) still running {grace:.0f}s after SIGTERM, sending SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.time() + 10
    while time.time() < deadline and pid_is(pid, argv0):
        time.sleep(0.1)

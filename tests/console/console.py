"""The console as its own process (`python -m notebook_controller.console`), and what tests
need to talk to it as users: the trusted proxy's headers, the CSRF token, RBAC for test users."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.idle.jupyter import execute_content, shell_message
from tests.kube import ROOT, Cluster

SECRET_HEADER = "X-Console-Proxy-Secret"
NOTEBOOK_VERBS = ("get", "list", "watch", "create", "patch", "update", "delete")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ConsoleProcess:
    def __init__(
        self, cluster: Cluster, log_path: Path, secret_file: Path, extra_args: Sequence[str] = ()
    ) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.port = free_port()
        self.secret = secrets.token_urlsafe(24)
        secret_file.write_text(self.secret)
        self.secret_file = secret_file
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "notebook_controller.console",
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--address=127.0.0.1:{self.port}",
            "--log-format=json",
            *self.extra_args,
        ]
        if "--identity=header" in self.extra_args:
            command.append(f"--proxy-secret-file={self.secret_file}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"console exited: {self.log()}"
            try:
                with urllib.request.urlopen(f"{self.url}healthz", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise AssertionError(f"console did not answer /healthz within 30 s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def stop_and_report(self, request: pytest.FixtureRequest) -> None:
        self.stop()
        call = getattr(request.node, "report_call", None)
        if call is None or call.failed:
            print(f"--- console log ({self.log_path}) ---\n{self.log()[-8000:]}")

    def headers(self, user: str, groups: Sequence[str] = ()) -> dict[str, str]:
        """What the trusted proxy adds for `user`."""
        found = {SECRET_HEADER: self.secret, "X-Forwarded-User": user}
        if groups:
            found["X-Forwarded-Groups"] = ",".join(groups)
        return found


def user_session(console: ConsoleProcess, user: str) -> aiohttp.ClientSession:
    """A browser-like session behind the trusted proxy: the proxy's headers on every request."""
    return aiohttp.ClientSession(
        headers=console.headers(user), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def csrf_token(session: aiohttp.ClientSession, console: ConsoleProcess) -> str:
    """Load the console's page (which sets the CSRF cookie) and read its token."""
    async with session.get(console.url) as response:
        assert response.status == 200, await response.text()
        page = await response.text()
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert found, page[:500]
    return found[1]


def grant(
    cluster: Cluster, namespace: str, user: str, verbs: Sequence[str] = NOTEBOOK_VERBS
) -> None:
    """A Role on notebooks with `verbs` in `namespace`, bound to `user`."""
    role: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": f"notebooks-{user}"},
        "rules": [
            {"apiGroups": ["tensorstack.dev"], "resources": ["notebooks"], "verbs": list(verbs)}
        ],
    }
    binding: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"notebooks-{user}"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"notebooks-{user}",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    cluster.apply(role, namespace)
    cluster.apply(binding, namespace)


async def run_cell(session: aiohttp.ClientSession, lab: str, ws_base: str, code: str) -> str:
    """Start a kernel through `lab` (JupyterLab's REST API) and run `code` over the kernel's
    WebSocket; the cell's stdout."""
    async with session.get(lab + "lab") as page:
        assert page.status == 200, (page.status, await page.text())
    xsrf = next(c.value for c in session.cookie_jar if c.key == "_xsrf")
    headers = {"X-XSRFToken": xsrf}
    async with session.post(lab + "api/kernels", json={"name": "python3"}, headers=headers) as r:
        assert r.status == 201, (r.status, await r.text())
        kernel = (await r.json())["id"]
    request = shell_message("execute_request", execute_content(code))
    msg_id = request["header"]["msg_id"]
    output = []
    url = f"{ws_base}api/kernels/{kernel}/channels"
    # Done when both the shell's execute_reply and IOPub's `idle` for the request have come: the
    # channels share the socket but not an order, so the cell's output (IOPub, before its idle)
    # can arrive after the reply.
    replied = idle = False
    async with asyncio.timeout(60), session.ws_connect(url) as websocket:
        await websocket.send_str(json.dumps(request))
        async for message in websocket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            reply = json.loads(message.data)
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            if reply["msg_type"] == "stream":
                output.append(reply["content"]["text"])
            elif reply["msg_type"] == "execute_reply":
                assert reply["content"]["status"] == "ok", reply["content"]
                replied = True
            elif reply["msg_type"] == "status":
                idle = reply["content"].get("execution_state") == "idle"
            if replied and idle:
                break
    async with session.delete(lab + f"api/kernels/{kernel}", headers=headers) as r:
        assert r.status == 204, r.status
    return "".join(output)

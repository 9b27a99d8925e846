"""A real jupyter_server process under a notebook's base_url, and a client that uses it the way
JupyterLab does: kernels over the messaging protocol on their websocket, terminals over theirs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def notebook_prefix(namespace: str, name: str) -> str:
    return f"/t9k/notebooks/projects/{namespace}/name/{name}/"


@dataclass
class JupyterServer:
    process: subprocess.Popen[bytes]
    port: int
    prefix: str
    log_path: Path

    @property
    def url_template(self) -> str:
        """A `--jupyter-url-template` that reaches this server whatever the Service is called."""
        return f"http://127.0.0.1:{self.port}{{prefix}}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_jupyter_server(root: Path, prefix: str) -> JupyterServer:
    """Start a server and wait (off the event loop's thread: the caller is synchronous) until
    its api/status answers."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "jupyter_server.log"
    env = {
        **os.environ,
        "HOME": str(root),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "IPYTHONDIR": str(root / "ipython"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.base_url={prefix}",
        "--IdentityProvider.token=",
        "--allow-root",
        "--no-browser",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0",
        "--ServerApp.disable_check_xsrf=True",  # the test user posts without a browser's cookie
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=root
        )
    server = JupyterServer(process, port, prefix, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter_server exited:\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"jupyter_server did not listen in time:\n{server.log()}")


class JupyterUser:
    """What a person in JupyterLab does, as HTTP and websocket traffic (counts as activity)."""

    def __init__(self, session: aiohttp.ClientSession, server: JupyterServer) -> None:
        self.session = session
        self.server = server

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        timeout = aiohttp.ClientTimeout(total=30)
        async with self.session.request(
            method, self.server.base_url + path, timeout=timeout, **kwargs
        ) as response:
            response.raise_for_status()
            return await response.json(content_type=None)

    async def get_untracked(self, path: str) -> Any:
        return await self._json("GET", path, params={"no_track_activity": "1"})

    async def get(self, path: str) -> Any:
        return await self._json("GET", path)

    async def start_kernel(self) -> str:
        """Start a kernel and connect to it as JupyterLab does (kernel_info first)."""
        kernel = await self._json("POST", "api/kernels", json={"name": "python3"})
        kernel_id: str = kernel["id"]
        await self._shell_request(
            kernel_id, "kernel_info_request", {}, wait_for="kernel_info_reply"
        )
        await self.wait_kernel_state(kernel_id, {"idle"}, within=30)
        return kernel_id

    async def kernel(self, kernel_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.get_untracked(f"api/kernels/{kernel_id}")
        return found

    async def wait_kernel_state(self, kernel_id: str, states: set[str], within: float) -> None:
        async with asyncio.timeout(within):
            while True:
                if (await self.kernel(kernel_id))["execution_state"] in states:
                    return
                await asyncio.sleep(0.1)

    async def execute(self, kernel_id: str, code: str) -> None:
        """Run a cell; returns once the kernel has started it (its status went busy), while the
        cell keeps running."""
        content = execute_content(code)
        await self._shell_request(kernel_id, "execute_request", content, wait_for="busy")

    async def _shell_request(
        self, kernel_id: str, msg_type: str, content: dict[str, Any], *, wait_for: str
    ) -> None:
        """Send a shell message over the kernel's websocket and wait for the reply of type
        `wait_for`, or for the iopub `busy` status it causes when `wait_for` is "busy"."""
        url = self.server.base_url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
        request = shell_message(msg_type, content)
        msg_id = request["header"]["msg_id"]
        async with asyncio.timeout(60), self.session.ws_connect(url) as websocket:
            await websocket.send_str(json.dumps(request))
            async for message in websocket:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                reply = json.loads(message.data)
                if reply["parent_header"].get("msg_id") != msg_id:
                    continue
                state = reply["content"].get("execution_state")
                if reply["msg_type"] == wait_for or (wait_for == "busy" and state == "busy"):
                    return

    async def open_terminal(self) -> str:
        terminal = await self._json("POST", "api/terminals")
        name: str = terminal["name"]
        return name

    async def type_in_terminal(self, name: str, text: str) -> str:
        """Type `text` and return what the terminal printed until it echoed a marker back."""
        url = self.server.base_url.replace("http://", "ws://") + f"terminals/websocket/{name}"
        marker = uuid.uuid4().hex[:8]
        output = []
        async with asyncio.timeout(30), self.session.ws_connect(url) as websocket:
            await websocket.send_str(json.dumps(["stdin", f"{text}; echo done-{marker}\r"]))
            async for message in websocket:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                kind, *payload = json.loads(message.data)
                if kind == "stdout":
                    output.append(payload[0])
                    if f"done-{marker}\r\n" in "".join(output):
                        break
        return "".join(output)


def execute_content(code: str) -> dict[str, Any]:
    """An execute_request's content: run `code` as a notebook cell would."""
    return {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }


def shell_message(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """A Jupyter shell-channel message for a kernel's WebSocket (a fresh msg_id in its header)."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "test",
            "session": uuid.uuid4().hex,
            "date": "",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "buffers": [],
        "channel": "shell",
    }

"""Headless Chromium driven over the Chrome DevTools Protocol (CDP), with aiohttp only.

Debian's `chromium` (installed by hack/install-deps.sh) runs with `--remote-debugging-port=0`;
the port it chose is read from `DevToolsActivePort` in its profile directory. A page is a CDP
target reached on its own websocket: navigate, evaluate JavaScript, type with real key events,
take screenshots, and record the HTTP requests the page makes (Network domain).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

WINDOW = (1400, 900)
# JupyterLab's shell, main dock panel, launcher and file browser are in the DOM
JUPYTERLAB_RENDERED = """!!(
  document.querySelector('.jp-LabShell') &&
  document.querySelector('#jp-main-dock-panel') &&
  document.querySelector('.jp-Launcher .jp-LauncherCard') &&
  document.querySelector('#filebrowser')
)"""


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        "no headless browser: install Debian's chromium (hack/install-deps.sh does: "
        "apt-get install chromium)"
    )


class CdpError(AssertionError):
    pass


@dataclass
class Request:
    """An HTTP request the page sent (Network.requestWillBeSent)."""

    at: float  # time.time()
    method: str
    url: str
    body: str | None = None


@dataclass
class Page:
    websocket: aiohttp.ClientWebSocketResponse
    requests: list[Request] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    _load_events: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.websocket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Network.requestWillBeSent":
                request = data["params"]["request"]
                self.requests.append(
                    Request(time.time(), request["method"], request["url"], request.get("postData"))
                )
            elif data.get("method") == "Page.loadEventFired":
                self._load_events.put_nowait("load")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the browser closed the page's websocket"))

    async def send(self, method: str, within: float = 60, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self.websocket.send_str(
            json.dumps({"id": message_id, "method": method, "params": params})
        )
        async with asyncio.timeout(within):
            reply = await future
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def navigate(self, url: str, within: float = 60) -> None:
        while not self._load_events.empty():
            self._load_events.get_nowait()
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")
        async with asyncio.timeout(within):
            await self._load_events.get()

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float, what: str) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + within
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
            await asyncio.sleep(0.25)

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", format="png")
        data = base64.b64decode(result["data"])
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, data)
        return path

    async def insert_text(self, text: str) -> None:
        """Type text into the focused element (as an IME commit: one input event)."""
        await self.send("Input.insertText", text=text)

    async def press(self, key: str, code: str, key_code: int, modifiers: int = 0) -> None:
        """A real key press (keyDown + keyUp); modifiers: 1 Alt, 2 Ctrl, 4 Meta, 8 Shift."""
        common: dict[str, Any] = {
            "key": key,
            "code": code,
            "windowsVirtualKeyCode": key_code,
            "nativeVirtualKeyCode": key_code,
            "modifiers": modifiers,
        }
        await self.send("Input.dispatchKeyEvent", type="rawKeyDown", **common)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    async def shift_enter(self) -> None:
        await self.press("Enter", "Enter", 13, modifiers=8)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the first element matching `selector`."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if not box:
            raise AssertionError(f"nothing to click: no element matches {selector}")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )


class Chromium:
    """One headless Chromium process with a throw-away profile."""

    def __init__(self, profile: Path, log_path: Path) -> None:
        self.profile = profile
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        self.profile.mkdir(parents=True, exist_ok=True)
        active = self.profile / "DevToolsActivePort"
        active.unlink(missing_ok=True)  # a reused profile: the port of an earlier run
        command = [
            chromium_binary(),
            "--headless",
            "--no-sandbox",  # as root, Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            # a visible, never-throttled page: what a user's focused tab is
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"chromium exited ({self.process.returncode}): "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            if active.exists() and active.read_text().strip():
                self.port = int(active.read_text().split()[0])
                return
            time.sleep(0.2)
        self.stop()
        raise AssertionError("chromium did not open its DevTools port within 60 s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    @contextlib.asynccontextmanager
    async def page(self, session: aiohttp.ClientSession) -> AsyncIterator[Page]:
        """A new tab, its Page, Runtime and Network domains enabled."""
        base = f"http://127.0.0.1:{self.port}"
        async with session.put(f"{base}/json/new?about:blank") as response:
            response.raise_for_status()
            target = await response.json(content_type=None)
        websocket = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(websocket)
        page.start_reading()
        try:
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            await page.send("Network.enable")
            await page.send("Page.bringToFront")
            yield page
        finally:
            await websocket.close()
            if page._reader is not None:
                page._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await page._reader
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base}/json/close/{target['id']}"):
                    pass

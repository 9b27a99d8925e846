"""Port-forwards through `kubectl port-forward` (kubectl runs this plugin, so it is on PATH):
a free local port on 127.0.0.1 chosen by kubectl, read from its first line."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

from notebook_controller.kubectl.connection import PluginError, Target, kubectl_binary

_FORWARDING: Final = re.compile(rb"Forwarding from 127\.0\.0\.1:(\d+) ->")
START_TIMEOUT: Final = 30.0


@dataclass
class PortForward:
    process: asyncio.subprocess.Process
    local_port: int
    resource: str
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=5))

    def failure(self) -> str:
        said = "; ".join(line for line in self.stderr_tail if line) or "no message"
        return f"port-forward to {self.resource} ended: {said}"


async def _drain(stream: asyncio.StreamReader | None, tail: deque[str] | None) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        if tail is not None:
            tail.append(line.decode(errors="replace").strip())


@contextlib.asynccontextmanager
async def port_forward(
    target: Target, namespace: str, resource: str, remote_port: int, local_port: int = 0
) -> AsyncIterator[PortForward]:
    """Forward 127.0.0.1:<local_port, 0 = any free one> to `resource` (e.g. `svc/x`, `pod/y`)."""
    argv = [
        kubectl_binary(),
        *target.kubectl_flags(),
        "-n",
        namespace,
        "port-forward",
        "--address=127.0.0.1",
        resource,
        f"{local_port or ''}:{remote_port}",
    ]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            first = await process.stdout.readline()
    except TimeoutError:
        first = b""
    found = _FORWARDING.search(first)
    if found is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        said = (await process.stderr.read()).decode(errors="replace").strip().splitlines()
        reason = said[-1] if said else f"no answer within {START_TIMEOUT:.0f}s"
        raise PluginError(f"port-forward to {resource} in namespace {namespace} failed: {reason}")
    forward = PortForward(process, int(found.group(1)), resource)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_drain(process.stdout, None))
            tasks.create_task(_drain(process.stderr, forward.stderr_tail))
            try:
                yield forward
            finally:
                if process.returncode is None:
                    process.terminate()
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

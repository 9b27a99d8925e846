"""SSH to a notebook through a port-forward, with its host key pinned from the notebook's
host-key Secret: a known_hosts file holding only that key (under a HostKeyAlias naming the
notebook), StrictHostKeyChecking=yes, and a ProxyCommand that relays stdin/stdout to the pod's
sshd. `ssh` and `ssh-config` share all of it."""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from notebook_controller.builders.ssh import HOST_KEY_FILE

NOTEBOOK_USER: Final = "t9kuser"  # the standard images' user, uid 1000 (docs/image.md)
PUBLIC_HOST_KEY_FIELD: Final = f"{HOST_KEY_FILE}.pub"
_CHUNK: Final = 65536


def host_alias(name: str, namespace: str, context: str | None = None) -> str:
    """The name IDEs connect to (`ssh <alias>`) and the known_hosts entry's host."""
    parts = [name, namespace, *([context] if context else []), "notebook"]
    return ".".join(part.replace("/", "_") for part in parts)


def host_public_key(secret: dict[str, Any]) -> str | None:
    """`<type> <base64>` from the host-key Secret, or None when it holds no public key."""
    encoded = (secret.get("data") or {}).get(PUBLIC_HOST_KEY_FIELD)
    if not encoded:
        return None
    try:
        fields = base64.b64decode(encoded).decode().split()
    except (ValueError, UnicodeDecodeError):
        return None
    return " ".join(fields[:2]) if len(fields) >= 2 else None


def write_known_hosts(path: Path, alias: str, public_key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{alias} {public_key}\n")
    temporary.replace(path)


def default_known_hosts(alias: str) -> Path:
    return Path.home() / ".ssh" / "kubectl-notebook" / f"{alias}.known_hosts"


def ssh_options(
    alias: str, known_hosts: Path, proxy_command: list[str], identity: str | None
) -> list[tuple[str, str]]:
    options = [
        ("HostKeyAlias", alias),
        ("User", NOTEBOOK_USER),
        ("ProxyCommand", shlex.join(proxy_command)),
        ("UserKnownHostsFile", str(known_hosts)),
        ("GlobalKnownHostsFile", "/dev/null"),
        ("StrictHostKeyChecking", "yes"),  # an unknown or changed host key is refused
        ("CheckHostIP", "no"),
    ]
    if identity:
        options += [("IdentityFile", identity), ("IdentitiesOnly", "yes")]
    return options


def ssh_argv(
    options: list[tuple[str, str]], alias: str, remote: list[str], flags: Sequence[str] = ()
) -> list[str]:
    settings = [flag for key, value in options for flag in ("-o", f"{key}={value}")]
    return ["ssh", *settings, *flags, alias, *remote]


def config_block(alias: str, options: list[tuple[str, str]]) -> str:
    lines = [f"Host {alias}"]
    for key, value in options:
        lines.append(f"    {key} {value}")
    return "\n".join(lines)


def proxy_command(
    name: str, plugin_flags: list[str], known_hosts: Path | None, *, via_kubectl: bool
) -> list[str]:
    """How ssh starts the relay: `kubectl notebook ssh-proxy ...` in a config file (as the user
    runs the plugin), this very interpreter when the plugin runs ssh itself."""
    head = ["kubectl", "notebook"] if via_kubectl else [sys.executable, "-m", __package__ or ""]
    refresh = ["--known-hosts", str(known_hosts)] if known_hosts is not None else []
    return [*head, "ssh-proxy", name, *plugin_flags, *refresh]


async def relay(port: int) -> None:
    """Copy stdin to 127.0.0.1:port and the answers to stdout until the connection closes.
    stdin is read by a daemon thread (asyncio can't watch every kind of stdin, and a thread
    blocked in a read must not keep the process alive once the server has hung up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    inbound: asyncio.Queue[bytes] = asyncio.Queue()

    def read_stdin() -> None:
        data = b"."
        while data:
            try:
                data = os.read(0, _CHUNK)
            except OSError:
                data = b""
            try:
                loop.call_soon_threadsafe(inbound.put_nowait, data)
            except RuntimeError:  # the loop is closed: the relay is over
                return

    async def upstream() -> None:
        while data := await inbound.get():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
    try:
        async with asyncio.TaskGroup() as tasks:
            sending = tasks.create_task(upstream())
            while data := await reader.read(_CHUNK):
                await asyncio.to_thread(_write_all, 1, data)
            sending.cancel()
    finally:
        writer.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

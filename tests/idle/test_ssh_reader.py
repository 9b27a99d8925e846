"""The SSH reader against a real sshd on a loopback port and real clients (asyncssh).

In a notebook pod the reader runs `cat /proc/net/tcp /proc/net/tcp6` through pods/exec; here the
same command runs as a local process, reading this machine's network namespace, where the test's
sshd listens on a free port (2222 may be taken).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from notebook_controller.idle.ssh import SshActivity, read_ssh_activity
from tests.idle.jupyter import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
Connect = Callable[[], Awaitable[asyncssh.SSHClientConnection]]

pytestmark = pytest.mark.timeout(120)


def require_sshd() -> None:
    """A missing sshd fails the test with what to do (a skip would pass a run that proved
    nothing): `make test` installs it through hack/install-deps.sh."""
    if not os.path.exists(SSHD):
        pytest.fail("no sshd: run hack/install-deps.sh (installs openssh-server)", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("sshd needs root to start sessions: run the tests as root", pytrace=False)


@dataclass
class Sshd:
    port: int
    client_key: Path


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    require_sshd()
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / key)], check=True
        )
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "client_key.pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        f"HostKey {tmp_path / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        f"PidFile {tmp_path / 'sshd.pid'}\n"
        "ListenAddress 127.0.0.1\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "StrictModes no\n"
        "UsePAM no\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = (tmp_path / "sshd.log").open("wb")
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log, stderr=log
    )
    try:
        _wait_listening(port, process, tmp_path / "sshd.log")
        yield Sshd(port, tmp_path / "client_key")
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen: {log.read_text()}")


async def local_exec(command: Sequence[str]) -> str:
    """pods/exec stand-in: run the command here and return stdout, raising like exec does."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"exit {process.returncode}: {output.decode()}")
    return output.decode()


@pytest.fixture
async def connect(sshd: Sshd) -> AsyncIterator[Connect]:
    clients: list[asyncssh.SSHClientConnection] = []

    async def open_client() -> asyncssh.SSHClientConnection:
        client = await asyncssh.connect(
            "127.0.0.1",
            sshd.port,
            username="root",
            client_keys=[str(sshd.client_key)],
            known_hosts=None,
            connect_timeout=20,
        )
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


async def connections(sshd: Sshd) -> SshActivity:
    return await read_ssh_activity(local_exec, port=sshd.port)


async def test_sees_ssh_clients_while_connected_and_not_after(sshd: Sshd, connect: Connect) -> None:
    assert await connections(sshd) == SshActivity(reachable=True, connections=0)

    first = await connect()
    result = await first.run("echo hello", check=True)
    assert result.stdout == "hello\n"
    assert await connections(sshd) == SshActivity(reachable=True, connections=1)

    second = await connect()
    assert await connections(sshd) == SshActivity(reachable=True, connections=2)

    # an idle, open session is still a connection: it keeps the notebook active
    await asyncio.sleep(1)
    assert (await connections(sshd)).connections == 2

    first.close()
    await first.wait_closed()
    second.close()
    await second.wait_closed()
    async with asyncio.timeout(10):  # the server side closes right after the client
        while True:
            if (await connections(sshd)).connections == 0:
                break
            await asyncio.sleep(0.1)

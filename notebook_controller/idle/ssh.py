"""SSH activity: established TCP connections to sshd's port in the pod's network namespace.

Jupyter does not see SSH sessions. The kernel lists every TCP socket of a network namespace in
`/proc/net/tcp` (IPv4) and `/proc/net/tcp6` (IPv6); a connection a client opened to sshd has
local port 2222 (hex `08AE`) and state `01` (ESTABLISHED). Containers of a pod share one network
namespace, so reading the files in any container of the pod sees all of them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from notebook_controller.idle import metrics

log = structlog.get_logger(__name__)

SSH_PORT: Final = 2222
TCP_ESTABLISHED: Final = "01"
PROC_NET_TCP_COMMAND: Final = ("cat", "/proc/net/tcp", "/proc/net/tcp6")

Exec = Callable[[Sequence[str]], Awaitable[str]]
"""Runs a command in the pod and returns its output; raises on failure (the exception may carry
the partial output in `.output`, as the runtime's ExecError does)."""


def count_established(proc_net_tcp: str, port: int = SSH_PORT) -> int:
    """ESTABLISHED connections whose local port is `port`, in /proc/net/tcp{,6} text.

    Several files may be concatenated (each starts with its own header line).
    """
    count = 0
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        # sl local_address rem_address st ...; header lines start with "sl"
        if len(fields) < 4 or not fields[0].endswith(":"):
            continue
        _, _, local_port = fields[1].rpartition(":")
        try:
            if int(local_port, 16) == port and fields[3] == TCP_ESTABLISHED:
                count += 1
        except ValueError:
            continue
    return count


def looks_like_proc_net_tcp(text: str) -> bool:
    return "local_address" in text


@dataclass(frozen=True)
class SshActivity:
    reachable: bool
    connections: int = 0
    detail: str = ""


async def read_ssh_activity(exec_in_pod: Exec, port: int = SSH_PORT) -> SshActivity:
    """Count SSH connections through `exec_in_pod`.

    A pod without IPv6 has no /proc/net/tcp6, so `cat` exits non-zero after printing the IPv4
    table: that output is still a valid answer.
    """
    started = time.monotonic()
    try:
        try:
            text = await exec_in_pod(PROC_NET_TCP_COMMAND)
        except Exception as error:  # any exec failure means "unknown", never idle
            partial = getattr(error, "output", "")
            if not (isinstance(partial, str) and looks_like_proc_net_tcp(partial)):
                metrics.probe_failures("exec").inc()
                log.debug("ssh probe failed", error=repr(error))
                return SshActivity(reachable=False, detail=f"exec failed: {error}")
            text = partial
        if not looks_like_proc_net_tcp(text):
            metrics.probe_failures("bad-response").inc()
            return SshActivity(reachable=False, detail="no /proc/net/tcp table in exec output")
        return SshActivity(reachable=True, connections=count_established(text, port))
    finally:
        metrics.PROBE_DURATION.labels("ssh").observe(time.monotonic() - started)

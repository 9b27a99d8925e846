"""The /proc/net/tcp{,6} reader, on text captured from a real sshd with two clients connected."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from notebook_controller.idle.ssh import (
    PROC_NET_TCP_COMMAND,
    SshActivity,
    count_established,
    read_ssh_activity,
)
from notebook_controller.runtime.kube import ExecError

# `cat /proc/net/tcp /proc/net/tcp6` with sshd listening on 127.0.0.1:2222 and [::1]:2222, one
# client connected over IPv4 and one over IPv6. Client and server share the namespace, so the
# clients' own sockets (remote port 08AE) are listed too and must not count.
CAPTURED = (Path(__file__).parent / "data" / "proc_net_tcp_two_ssh_sessions.txt").read_text()
IPV4_ONLY = CAPTURED.split("  sl  local_address                         remote_address")[0]


def test_counts_server_side_established_sockets_of_both_families() -> None:
    assert count_established(CAPTURED) == 2
    assert count_established(IPV4_ONLY) == 1


def test_listening_sockets_and_other_ports_do_not_count() -> None:
    assert count_established(CAPTURED, port=0x07E8) == 0  # that port only has a listener
    assert count_established(CAPTURED, port=0xBFD8) == 1  # the client's ephemeral port


def test_connections_in_other_states_do_not_count() -> None:
    time_wait = CAPTURED.replace("0100007F:08AE 0100007F:BFD8 01", "0100007F:08AE 0100007F:BFD8 06")
    assert count_established(time_wait) == 1


def test_empty_and_garbage_text_count_nothing() -> None:
    assert count_established("") == 0
    assert count_established("cat: /proc/net/tcp: No such file or directory\n") == 0


async def test_reader_passes_the_command_and_counts() -> None:
    seen: list[Sequence[str]] = []

    async def exec_in_pod(command: Sequence[str]) -> str:
        seen.append(command)
        return CAPTURED

    assert await read_ssh_activity(exec_in_pod) == SshActivity(reachable=True, connections=2)
    assert seen == [PROC_NET_TCP_COMMAND]


async def test_pod_without_ipv6_still_answers() -> None:
    async def exec_in_pod(command: Sequence[str]) -> str:
        message = "cat: /proc/net/tcp6: No such file or directory"
        raise ExecError("command terminated with non-zero exit code", IPV4_ONLY + message)

    assert await read_ssh_activity(exec_in_pod) == SshActivity(reachable=True, connections=1)


async def test_failed_exec_is_unknown_not_zero_connections() -> None:
    async def exec_in_pod(command: Sequence[str]) -> str:
        raise ExecError("exec into ns/pod refused: 403")

    activity = await read_ssh_activity(exec_in_pod)
    assert not activity.reachable
    assert "403" in activity.detail

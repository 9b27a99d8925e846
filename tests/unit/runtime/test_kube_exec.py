"""pods/exec framing (v4.channel.k8s.io) against a local websocket endpoint.

The local cluster's nodes are simulated (no kubelet behind them), so exec can't reach a real
container there; this checks the client's side of the protocol instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMessage, WSMsgType, web
from kubernetes_asyncio.client import ApiClient, Configuration

from notebook_controller.runtime.kube import ExecError, KubeClient, _frame_bytes

STDOUT, STDERR, ERROR = b"\x01", b"\x02", b"\x03"
SEEN = web.AppKey("seen", list[dict[str, object]])
SUCCESS = {"metadata": {}, "status": "Success"}
EXIT_3 = {
    "status": "Failure",
    "message": "command terminated with non-zero exit code: 3",
    "reason": "NonZeroExitCode",
    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
}


async def exec_endpoint(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Accept") == "application/json":
        # what the API server (v1.37, real node) answers an exec upgrade asking only for JSON
        return web.Response(status=406, text="only the streaming protocols are served here")
    socket = web.WebSocketResponse(protocols=["v4.channel.k8s.io"])
    await socket.prepare(request)
    command = request.query.getall("command")
    request.app[SEEN].append(
        {
            "command": command,
            "container": request.query["container"],
            "protocol": request.headers.get("Sec-WebSocket-Protocol"),
        }
    )
    if command[0] == "fail":
        await socket.send_bytes(STDERR + b"no such file\n")
        await socket.send_bytes(ERROR + json.dumps(EXIT_3).encode())
    else:
        # A multi-byte character split across two frames must survive.
        snowman = "☃".encode()
        await socket.send_bytes(STDOUT + b"sl 01 " + snowman[:1])
        await socket.send_bytes(STDOUT + snowman[1:] + b"\n")
        await socket.send_bytes(STDERR + b"warning\n")
        await socket.send_bytes(ERROR + json.dumps(SUCCESS).encode())
    await socket.close()
    return socket


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[KubeClient, list[dict[str, object]]]]:
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/api/v1/namespaces/{namespace}/pods/{pod}/exec", exec_endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    configuration = Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    client = KubeClient(ApiClient(configuration), timeout=10)
    yield client, app[SEEN]
    await client.close()
    await runner.cleanup()


async def test_exec_returns_stdout_and_sends_the_command(
    endpoint: tuple[KubeClient, list[dict[str, object]]],
) -> None:
    client, seen = endpoint
    output = await client.exec("ns", "pod-0", "notebook", ["cat", "/proc/net/tcp"])
    assert output == "sl 01 ☃\n"
    assert seen == [
        {
            "command": ["cat", "/proc/net/tcp"],
            "container": "notebook",
            "protocol": "v4.channel.k8s.io",
        }
    ]


async def test_exec_non_zero_exit_raises_with_stderr(
    endpoint: tuple[KubeClient, list[dict[str, object]]],
) -> None:
    client, _ = endpoint
    with pytest.raises(ExecError, match="non-zero exit code: 3") as raised:
        await client.exec("ns", "pod-0", "notebook", ["fail"])
    assert raised.value.output == "no such file\n"


def test_frame_types_other_than_data_are_ignored() -> None:
    assert _frame_bytes(WSMessage(WSMsgType.BINARY, STDOUT + b"x", None)) == b"\x01x"
    assert _frame_bytes(WSMessage(WSMsgType.PING, b"", None)) == b""

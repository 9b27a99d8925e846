"""The lean HTTP/1.1 client (`runtime.http1`) against scripted servers on loopback: framing,
connection reuse, a kept-alive connection the server closed, timeouts and cut-off answers.

Each server answers the n-th request it reads with the n-th script entry: the raw bytes to send,
and whether to close the connection afterwards. It records the requests and connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
from yarl import URL

from notebook_controller.runtime import http1, kube
from notebook_controller.runtime.http1 import Http1Pool
from notebook_controller.runtime.kinds import PODS
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.kubeconfig import Configuration

OK_JSON = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": "bc"}'
)


@dataclass
class Script:
    answers: list[tuple[bytes | list[bytes], bool]]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    closed_by_client: int = 0
    """Connections the client closed (the server read their end)."""


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


@asynccontextmanager
async def scripted(
    *answers: tuple[bytes | list[bytes], bool],
) -> AsyncIterator[tuple[Http1Pool, Script]]:
    """A list of pieces is written piece by piece, 20 ms apart."""
    script = Script(list(answers))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        try:
            while script.answers:
                script.requests.append(await _read_request(reader))
                answer, close = script.answers.pop(0)
                for piece in [answer] if isinstance(answer, bytes) else answer:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.02 if isinstance(answer, list) else 0)
                if close:
                    break
            else:
                await reader.read()  # nothing left to say: hold it open until the client closes
                script.closed_by_client += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            script.closed_by_client += 1
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Http1Pool(f"http://127.0.0.1:{port}")
    try:
        yield pool, script
    finally:
        await pool.close()
        server.close()


async def get(pool: Http1Pool, method: str = "GET", body: bytes | None = None) -> http1.Answer:
    return await pool.exchange(
        method, "/api/v1/x?a=b", {"Accept": "application/json"}, body, tls=None, exchange_timeout=5
    )


async def test_a_kept_alive_connection_carries_the_next_request() -> None:
    async with scripted((OK_JSON, False), (OK_JSON, False)) as (pool, script):
        first = await get(pool)
        second = await get(pool, "PATCH", b'{"x": 1}')
    assert (first.status, first.reason, first.body) == (200, "OK", b'{"a": "bc"}')
    assert first.content_type == "application/json"
    assert second.body == b'{"a": "bc"}'
    assert script.connections == 1
    port_line = script.requests[0].split(b"\r\n")[1]
    assert script.requests[0].startswith(b"GET /api/v1/x?a=b HTTP/1.1\r\n")
    assert port_line.startswith(b"Host: 127.0.0.1:")
    assert b"Accept: application/json\r\n" in script.requests[0]
    assert b"Content-Length" not in script.requests[0]
    assert script.requests[1].startswith(b"PATCH /api/v1/x?a=b HTTP/1.1\r\n")
    assert script.requests[1].endswith(b'Content-Length: 8\r\n\r\n{"x": 1}')


async def test_chunked_answers_are_joined_with_extensions_and_trailers_skipped() -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n5\r\n: 12}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    async with scripted((chunked, False), (OK_JSON, False)) as (pool, script):
        answer = await get(pool, "POST", b"{}")
        await get(pool)
    assert (answer.status, answer.reason, answer.body) == (201, "Created", b'{"a": 12}')
    assert script.connections == 1  # the whole chunked answer was read: the connection is reusable


async def test_a_chunked_answer_followed_by_stray_bytes_does_not_keep_its_connection() -> None:
    stray = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1"
    async with scripted((stray, False), (OK_JSON, False)) as (pool, script):
        assert (await get(pool)).body == b"ok"
        assert (await get(pool)).body == b'{"a": "bc"}'
    assert script.connections == 2


async def test_a_chunked_answer_cut_off_between_chunks_fails() -> None:
    cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"
    async with scripted((cut, True)) as (pool, _):
        with pytest.raises(aiohttp.ClientPayloadError, match="the answer was cut off"):
            await get(pool)


async def test_an_answer_without_length_ends_with_its_connection_which_is_not_reused() -> None:
    unframed = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    async with scripted((unframed, True), (OK_JSON, False)) as (pool, script):
        answer = await get(pool)
        await get(pool)
    assert answer.body == b"all of it"
    assert script.connections == 2


async def test_connection_close_and_http_1_0_answers_are_not_reused() -> None:
    closing = b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno"
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with scripted((closing, False), (old, False), (OK_JSON, False)) as (pool, script):
        assert (await get(pool)).status == 404
        assert (await get(pool)).body == b"ok"
        await get(pool)
        assert pool.idle_connections == 1
    assert script.connections == 3


async def test_informational_answers_are_skipped_and_no_content_has_no_body() -> None:
    answers = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
    async with scripted((answers, False), (OK_JSON, False)) as (pool, script):
        answer = await get(pool, "DELETE")
        await get(pool)
    assert (answer.status, answer.body) == (204, b"")
    assert answer.headers["x-a"] == "1, 2"
    assert script.connections == 1


async def test_an_idle_connection_the_server_closed_is_not_taken_again() -> None:
    # the server answers, then closes the connection without saying so (an idle timeout)
    async with scripted((OK_JSON, True), (OK_JSON, True), (OK_JSON, False)) as (pool, script):
        await get(pool)
        await asyncio.sleep(0.05)  # the close reaches the client before its next request
        assert (await get(pool, "PUT", b"{}")).status == 200
        await asyncio.sleep(0.05)
        assert (await get(pool, "DELETE")).status == 200
    assert script.connections == 3
    assert len(script.requests) == 3


async def test_a_post_on_a_connection_closed_meanwhile_is_not_sent_again() -> None:
    # the server reads the next request, then closes without answering
    silent_close = (b"", True)
    async with scripted((OK_JSON, False), silent_close, (OK_JSON, False)) as (pool, script):
        await get(pool)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(pool, "POST", b"{}")
        assert (await get(pool, "POST", b"{}")).status == 200  # a new connection
    assert [r.split(b" ", 1)[0] for r in script.requests] == [b"GET", b"POST", b"POST"]
    assert script.connections == 2


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_a_request_whose_kept_alive_connection_closes_unanswered_is_sent_once_more(
    method: str,
) -> None:
    silent_close = (b"", True)
    async with scripted((OK_JSON, False), silent_close, (OK_JSON, False)) as (pool, script):
        await get(pool)
        assert (await get(pool, method, b"{}" if method != "GET" else None)).status == 200
    assert [r.split(b" ", 1)[0] for r in script.requests] == [b"GET", *[method.encode()] * 2]
    assert script.connections == 2


async def test_a_retry_whose_fresh_connection_closes_unanswered_too_is_not_retried_again() -> None:
    silent_close = (b"", True)
    answers = ((OK_JSON, False), silent_close, silent_close, (OK_JSON, False))
    async with scripted(*answers) as (pool, script):
        await get(pool)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(pool, "PUT", b"{}")
    assert [r.split(b" ", 1)[0] for r in script.requests] == [b"GET", b"PUT", b"PUT"]
    assert script.connections == 2


async def test_a_fresh_connection_closed_unanswered_fails_at_once() -> None:
    async with scripted((b"", True), (OK_JSON, False)) as (pool, script):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(pool)
    assert len(script.requests) == 1


async def test_an_answer_cut_off_fails_and_its_connection_is_dropped() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    async with scripted((cut, True), (OK_JSON, False)) as (pool, script):
        with pytest.raises(aiohttp.ClientPayloadError, match="cut off"):
            await get(pool)
        assert (await get(pool)).status == 200
    assert script.connections == 2


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "negative length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a number"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "CRLF"),
    ],
)
async def test_malformed_answers_are_payload_errors(answer: bytes, words: str) -> None:
    async with scripted((answer, True)) as (pool, _):
        with pytest.raises(aiohttp.ClientPayloadError, match=words):
            await get(pool)
        assert pool.idle_connections == 0


async def test_a_server_silent_past_the_timeout_fails_it_and_its_connection_is_dropped() -> None:
    # half a head, then silence; on a reused connection the next answer would read as its rest
    half = ([b"HTTP/1.1 200 OK\r\n"], False)
    async with scripted(half, (OK_JSON, False)) as (pool, script):
        with pytest.raises(TimeoutError):
            await pool.exchange("GET", "/", {}, None, tls=None, exchange_timeout=0.2)
        assert (await get(pool)).body == b'{"a": "bc"}'
        await asyncio.sleep(0.05)
        assert script.closed_by_client == 1
    assert script.connections == 2


async def test_a_cancelled_exchange_drops_its_connection() -> None:
    async with scripted() as (pool, script):
        task = asyncio.create_task(get(pool))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        assert script.closed_by_client == 1
        assert pool.idle_connections == 0


async def test_an_idle_connection_is_not_reused_after_the_idle_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with scripted((OK_JSON, False), (OK_JSON, False)) as (pool, script):
        await get(pool)
        monkeypatch.setattr(http1, "IDLE_SECONDS", 0.0)
        await get(pool)
    assert script.connections == 2


async def test_a_line_break_in_a_header_value_is_refused_before_sending() -> None:
    async with scripted((OK_JSON, False)) as (pool, script):
        with pytest.raises(ValueError, match="header Authorization"):
            await pool.exchange(
                "GET",
                "/",
                {"Authorization": "Bearer x\r\nX-Evil: 1"},
                None,
                tls=None,
                exchange_timeout=5,
            )
    assert script.requests == []


async def test_the_kube_client_encodes_queries_and_keeps_the_hosts_path_prefix() -> None:
    async with scripted((OK_JSON, False), (OK_JSON, False)) as (pool, script):
        host = f"http://127.0.0.1:{pool.port}/k8s/clusters/c-1"
        async with KubeClient(Configuration(host=host), user_agent="tester") as client:
            found = await client.request(
                "GET", "/api/v1/pods", query=[("labelSelector", "app in (a,b)")]
            )
            raw = await client.raw_get("/api/v1/namespaces/ns/services/s:80/proxy/api/status")
    assert found == {"a": "bc"}
    assert (raw.status, raw.content_type, raw.body) == (200, "application/json", b'{"a": "bc"}')
    assert script.requests[0].startswith(
        b"GET /k8s/clusters/c-1/api/v1/pods?labelSelector=app+in+(a,b) HTTP/1.1\r\n"
    )
    assert b"User-Agent: tester\r\n" in script.requests[0]
    assert script.requests[1].startswith(
        b"GET /k8s/clusters/c-1/api/v1/namespaces/ns/services/s:80/proxy/api/status HTTP/1.1"
    )
    assert script.connections == 1


@pytest.mark.parametrize(
    "host", ["https://10.0.0.1:6443", "https://h/k8s/clusters/c-1", "https://h/"]
)
@pytest.mark.parametrize(
    "path",
    [
        "/apis/tensorstack.dev/v1beta1/namespaces/team-a/notebooks/nb.1/status",
        "/api/v1/namespaces/ns/services/http:nb:80/proxy/api/status",
        "/apis/x/v1/a@b/~c_d",
        "/a/./b",
        "/a/../b",
        "/a/.hidden",
        "/a//b",
        "/a/%41",
        "/a b",
        "/a/é",
    ],
)
@pytest.mark.parametrize(
    "query",
    [
        [],
        [("fieldManager", "notebook-controller-status"), ("force", "true")],
        [("labelSelector", "app in (a,b)"), ("watch", "1")],
        [("x", "a/b:c@d")],
        [("x", "a&b=c+d;e")],
        [("resourceVersion", "123"), ("allowWatchBookmarks", "true")],
    ],
)
def test_the_request_target_is_what_yarl_makes_of_the_url(
    host: str, path: str, query: list[tuple[str, str]]
) -> None:
    client = KubeClient(Configuration(host=host))
    url = URL(host + path)
    assert client._target(path, query) == (url.with_query(query) if query else url).raw_path_qs


def test_a_target_of_names_and_numbers_is_joined_without_yarl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = KubeClient(Configuration(host="https://h/k8s/clusters/c-1"))

    def no_yarl(*_: object) -> None:
        raise AssertionError("yarl was asked")

    monkeypatch.setattr(kube, "URL", no_yarl)
    target = client._target(
        "/apis/tensorstack.dev/v1beta1/namespaces/a/notebooks/nb-1/status",
        [("fieldManager", "notebook-controller-status"), ("force", "true")],
    )
    assert target == (
        "/k8s/clusters/c-1/apis/tensorstack.dev/v1beta1/namespaces/a/notebooks/nb-1/status"
        "?fieldManager=notebook-controller-status&force=true"
    )


# --- streamed answers (watches) -------------------------------------------------------------

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def lines_of(pool: Http1Pool, inactivity: float = 5) -> list[http1.Answer | bytes]:
    stream = pool.stream(
        "/api/v1/pods?watch=true", {}, tls=None, connect_timeout=5, inactivity_timeout=inactivity
    )
    return [line async for line in stream]


async def test_a_streamed_answer_yields_its_head_then_each_line_as_it_comes() -> None:
    pieces = [
        STREAM_HEAD,
        chunk(b'{"type": "ADDED"}\n'),
        chunk(b'{"type": "MOD'),  # a line split across chunks
        chunk(b'IFIED"}\n{"type": "DELETED"}\n'),  # two lines in one chunk
        chunk(b'{"type": "BOOKMARK"}'),  # the last line without its end
        b"0\r\n\r\n",
    ]
    async with scripted((pieces, False)) as (pool, script):
        head, *lines = await lines_of(pool)
        assert pool.idle_connections == 0  # a stream's connection is never kept
    assert isinstance(head, http1.Answer)
    assert (head.status, head.body) == (200, b"")
    assert lines == [
        b'{"type": "ADDED"}',
        b'{"type": "MODIFIED"}',
        b'{"type": "DELETED"}',
        b'{"type": "BOOKMARK"}',
    ]
    assert script.requests[0].startswith(b"GET /api/v1/pods?watch=true HTTP/1.1\r\n")


async def test_a_streamed_answer_without_chunks_ends_with_its_connection() -> None:
    pieces = [b"HTTP/1.1 200 OK\r\n\r\n", b"a\nb", b"c\n"]
    async with scripted((pieces, True)) as (pool, _):
        assert (await lines_of(pool))[1:] == [b"a", b"bc"]


async def test_a_refused_stream_is_one_whole_answer() -> None:
    gone = b'{"kind": "Status", "apiVersion": "v1", "code": 410, "reason": "Expired"}'
    answer = b"HTTP/1.1 410 Gone\r\nContent-Length: %d\r\n\r\n%s" % (len(gone), gone)
    async with scripted((answer, False)) as (pool, _):
        (only,) = await lines_of(pool)
    assert isinstance(only, http1.Answer)
    assert (only.status, only.body) == (410, gone)


async def test_a_silent_stream_times_out_as_a_socket_timeout() -> None:
    async with scripted(([STREAM_HEAD, chunk(b"{}\n")], False)) as (pool, _):
        seen: list[http1.Answer | bytes] = []
        with pytest.raises(aiohttp.SocketTimeoutError, match=r"nothing came for 0\.3s"):
            async for line in pool.stream(
                "/w", {}, tls=None, connect_timeout=5, inactivity_timeout=0.3
            ):
                seen.append(line)
    assert seen[1:] == [b"{}"]


CHUNKED = (
    b"5;name=value\r\nhello\r\n1\r\n \r\n"  # a chunk extension
    b"10\r\nworld, and more\n\r\n0\r\nX-Trailer: 1\r\n\r\n"
)


@pytest.mark.parametrize("piece", [1, 2, 3, 7, len(CHUNKED)])
def test_a_chunked_body_is_taken_apart_however_its_bytes_are_split(piece: int) -> None:
    body = http1._Dechunked()
    data = b""
    for at in range(0, len(CHUNKED), piece):
        assert not body.done
        data += body.feed(CHUNKED[at : at + piece])
    assert body.done
    assert data == b"hello world, and more\n"


def test_a_chunk_without_its_crlf_is_a_payload_error() -> None:
    with pytest.raises(aiohttp.ClientPayloadError, match="does not end with CRLF"):
        http1._Dechunked().feed(b"2\r\nabXY")


async def test_a_stream_whose_chunks_come_split_anywhere_yields_the_same_lines() -> None:
    body = chunk(b'{"a": 1}\n{"b"') + chunk(b": 2}\n") + b"0\r\n\r\n"
    pieces = [STREAM_HEAD, *(body[at : at + 3] for at in range(0, len(body), 3))]
    async with scripted((pieces, False)) as (pool, _):
        assert (await lines_of(pool))[1:] == [b'{"a": 1}', b'{"b": 2}']


async def test_a_stream_cut_off_mid_chunk_is_a_payload_error() -> None:
    async with scripted(([STREAM_HEAD, b"10\r\nshort"], True)) as (pool, _):
        with pytest.raises(aiohttp.ClientPayloadError, match="cut off"):
            await lines_of(pool)


async def test_the_kube_clients_watch_reads_events_and_raises_the_servers_refusal() -> None:
    event = b'{"type": "ADDED", "object": {"metadata": {"name": "p"}}}\n'
    gone = b'{"kind": "Status", "apiVersion": "v1", "code": 410, "reason": "Expired"}'
    refusal = b"HTTP/1.1 410 Gone\r\nContent-Length: %d\r\n\r\n%s" % (len(gone), gone)
    stream = [STREAM_HEAD, chunk(event), chunk(b"\n"), b"0\r\n\r\n"]
    async with scripted((stream, False), (refusal, False)) as (pool, script):
        host = f"http://127.0.0.1:{pool.port}"
        async with KubeClient(Configuration(host=host)) as client:
            events = [e async for e in client.watch(PODS, "ns", resource_version="7")]
            with pytest.raises(ApiError) as refused:
                _ = [e async for e in client.watch(PODS, "ns", resource_version="1")]
    assert events == [{"type": "ADDED", "object": {"metadata": {"name": "p"}}}]
    assert refused.value.is_gone
    assert script.requests[0].startswith(
        b"GET /api/v1/namespaces/ns/pods?watch=true&resourceVersion=7&allowWatchBookmarks=true"
    )


async def test_through_an_http_proxy_the_kube_client_asks_the_proxy_as_aiohttp_does() -> None:
    # the scripted server plays the proxy: aiohttp sends it the absolute URL (no tunnel for http)
    async with scripted((OK_JSON, False)) as (proxy, script):
        proxy_url = f"http://127.0.0.1:{proxy.port}"
        configuration = Configuration(host="http://api.example:6443", proxy=proxy_url)
        async with KubeClient(configuration) as client:
            found = await client.request("GET", "/api/v1/pods")
    assert found == {"a": "bc"}
    assert script.requests[0].startswith(b"GET http://api.example:6443/api/v1/pods HTTP/1.1\r\n")

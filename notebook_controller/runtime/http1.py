"""A lean HTTP/1.1 client for the API server: one request and its whole answer on kept-alive
connections (`exchange`), or one streamed answer read line by line on a connection of its own
(`stream`, for watches).

Why not aiohttp for these: its request path (session, connector, tracing hooks, header
multidicts, per-request timers) costs twice the client CPU of this one per request
(`hack/bench.py`, "API requests"), and a notebook on its way up makes about eight requests, the
controller's largest cost after its reconciles. Exec (a WebSocket) and anything through an HTTP
proxy stay on aiohttp (see `KubeClient`).

What it does: `Content-Length` and chunked answers, answers that end with the connection,
`Connection: close`, 1xx answers skipped. Idle connections are reused newest first and dropped
after `IDLE_SECONDS` (the API server closes them after 90 s). A reused connection that closes
before any byte of an answer (the server closed it meanwhile) is retried once on a new
connection, unless the request is a POST (a create that did happen would come back
AlreadyExists). Failures raise what aiohttp's would: OSError (connect, TLS, reset),
`aiohttp.ServerDisconnectedError` (closed without an answer), `aiohttp.ClientPayloadError` (an
answer cut off or malformed), TimeoutError (past `exchange_timeout`, for the whole exchange).
The connection is then closed, never reused, and so is one whose exchange was cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

import aiohttp
from yarl import URL

IDLE_SECONDS: Final = 30.0
"""An idle connection is not reused after this long (the API server's idle timeout is 90 s)."""
MAX_IDLE: Final = 32
"""Idle connections kept; more are closed as they come back."""
_HEAD_LIMIT: Final = 1 << 20
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_T = TypeVar("_T")


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: Mapping[str, str]
    """Header names lower-cased; a repeated header's values joined with ", "."""
    body: bytes

    @property
    def content_type(self) -> str:
        """The media type alone ("application/json"), "" when none was given."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class _NothingAnswered(Exception):
    """The connection closed before the first byte of an answer."""


class _Connection:
    __slots__ = ("idle_since", "reader", "tls", "writer")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.idle_since = 0.0

    def usable(self, tls: ssl.SSLContext | None, now: float) -> bool:
        return (
            self.tls is tls
            and now - self.idle_since < IDLE_SECONDS
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        self.writer.close()


class Http1Pool:
    """Connections to one origin (`scheme://host:port`)."""

    def __init__(self, origin: str, *, server_hostname: str | None = None) -> None:
        parsed = URL(origin)
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise ValueError(f"not an http(s) origin: {origin}")
        self.host: str = parsed.raw_host
        self.port: int = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.https = parsed.scheme == "https"
        self.server_hostname = server_hostname
        literal = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = f"Host: {literal}:{self.port}\r\n".encode("latin-1")
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()

    async def exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        tls: ssl.SSLContext | None,
        exchange_timeout: float,
    ) -> Answer:
        """Send `method target` (path and query, encoded) and read the whole answer."""
        request = _request_bytes(method, target, self._host_header, headers, body)
        async with asyncio.timeout(exchange_timeout):
            connection, reused = await self._acquire(tls)
            while True:
                try:
                    answer, keep = await _exchange_on(connection, request, method)
                except BaseException as error:
                    self._discard(connection)
                    if not isinstance(error, _NothingAnswered):
                        raise
                    # only a reused connection is retried, and only once: the retry's is fresh
                    if not reused or method == "POST":
                        raise aiohttp.ServerDisconnectedError() from None
                    # the server closed the kept-alive connection meanwhile: anew
                    connection, reused = await self._acquire(tls, fresh=True)
                    continue
                self._release(connection, keep)
                return answer

    async def stream(
        self,
        target: str,
        headers: Mapping[str, str],
        *,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        inactivity_timeout: float,
    ) -> AsyncGenerator[Answer | bytes, None]:
        """GET `target` on a connection of its own; yield the answer's head (an Answer without
        body), then its body's lines without their line ends as they arrive (a watch: one event
        a line). An answer other than 2xx is yielded once, whole, and the stream ends.

        Waiting longer than `inactivity_timeout` for the answer or its next bytes raises
        `aiohttp.SocketTimeoutError` (a dead connection sends no error). The connection is
        closed at the end, never kept: no timeout is held across a yield."""
        request = _request_bytes("GET", target, self._host_header, headers, None)
        async with asyncio.timeout(connect_timeout):
            connection, _ = await self._acquire(tls, fresh=True)
        reader = connection.reader

        async def within(read: Awaitable[_T]) -> _T:
            try:
                async with asyncio.timeout(inactivity_timeout):
                    return await read
            except TimeoutError as error:
                message = f"nothing came for {inactivity_timeout:g}s on a streamed answer"
                raise aiohttp.SocketTimeoutError(message) from error

        try:
            connection.writer.write(request)
            try:
                status, reason, _, answer_headers = await within(_read_final_head(reader, True))
            except _NothingAnswered:
                raise aiohttp.ServerDisconnectedError() from None
            if not 200 <= status <= 299:
                answer, _ = await within(_read_body(reader, "GET", status, reason, answer_headers))
                yield answer
                return
            yield Answer(status, reason, answer_headers, b"")
            # Whatever came is read at once, and its chunks taken apart here: one read (and
            # one timeout) per round of I/O, not three per event
            chunked = "chunked" in answer_headers.get("transfer-encoding", "").lower()
            dechunked = _Dechunked() if chunked else None
            pending = b""
            while dechunked is None or not dechunked.done:
                data = await within(reader.read(1 << 16))
                if not data:
                    if dechunked is not None:
                        raise asyncio.IncompleteReadError(b"", None)  # before the last chunk
                    break
                if dechunked is not None:
                    data = dechunked.feed(data)
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    yield line
            if pending:
                yield pending
        except asyncio.IncompleteReadError as error:
            raise aiohttp.ClientPayloadError("the streamed answer was cut off") from error
        finally:
            self._discard(connection)

    async def close(self) -> None:
        connections = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        for connection in connections:
            connection.close()
        for connection in connections:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(connection.writer.wait_closed(), 1.0)

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def _acquire(
        self, tls: ssl.SSLContext | None, *, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle and not fresh:
            connection = self._idle.pop()
            if connection.usable(tls, now):
                self._busy.add(connection)
                return connection, True
            connection.close()
        if self.https and tls is None:
            raise ValueError("an https origin needs a TLS context")
        reader, writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=tls if self.https else None,
            server_hostname=(self.server_hostname or self.host) if self.https else None,
            limit=_HEAD_LIMIT,
        )
        connection = _Connection(reader, writer, tls)
        self._busy.add(connection)
        return connection, False

    def _release(self, connection: _Connection, keep: bool) -> None:
        self._busy.discard(connection)
        if keep and len(self._idle) < MAX_IDLE:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    def _discard(self, connection: _Connection) -> None:
        self._busy.discard(connection)
        connection.close()


def _request_bytes(
    method: str, target: str, host_header: bytes, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), host_header]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"a line break in the value of header {name}")
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    if body is not None:
        lines.append(b"Content-Length: %d\r\n" % len(body))
    lines.append(b"\r\n")
    if body:
        lines.append(body)
    return b"".join(lines)


async def _exchange_on(connection: _Connection, request: bytes, method: str) -> tuple[Answer, bool]:
    """The answer, and whether the connection may carry another request."""
    connection.writer.write(request)
    reader = connection.reader
    status, reason, version, headers = await _read_final_head(reader, True)
    answer, keep = await _read_body(reader, method, status, reason, headers)
    return answer, keep and version == "HTTP/1.1"


async def _read_final_head(
    reader: asyncio.StreamReader, first: bool
) -> tuple[int, str, str, dict[str, str]]:
    """Status, reason, HTTP version and headers of the answer after any 1xx ones."""
    while True:
        head = await _read_head(reader, first)
        first = False
        status, reason, version, headers = _parse_head(head)
        if not 100 <= status <= 199:
            return status, reason, version, headers


async def _read_body(
    reader: asyncio.StreamReader, method: str, status: int, reason: str, headers: dict[str, str]
) -> tuple[Answer, bool]:
    keep = "close" not in headers.get("connection", "").lower()
    try:
        if method == "HEAD" or status in _NO_BODY_STATUSES:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, clean = await _read_chunked(reader)
            keep = keep and clean
        elif "content-length" in headers:
            length = _int(headers["content-length"], 10)
            body = await reader.readexactly(length)
        else:  # the answer ends with the connection
            body = await reader.read()
            keep = False
    except asyncio.IncompleteReadError as error:
        raise aiohttp.ClientPayloadError("the answer was cut off") from error
    return Answer(status, reason, headers, body), keep


async def _read_head(reader: asyncio.StreamReader, first: bool) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if first and not error.partial:
            raise _NothingAnswered() from error
        raise aiohttp.ClientPayloadError("the answer's head was cut off") from error
    except asyncio.LimitOverrunError as error:
        raise aiohttp.ClientPayloadError("the answer's head is too long") from error
    except ConnectionResetError as error:
        if first:
            raise _NothingAnswered() from error
        raise


def _parse_head(head: bytes) -> tuple[int, str, str, dict[str, str]]:
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise aiohttp.ClientPayloadError(f"not an HTTP answer: {status_line[:80]!r}")
    status = _int(parts[1], 10)
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise aiohttp.ClientPayloadError(f"a malformed header line: {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status, parts[2] if len(parts) > 2 else "", parts[0], headers


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """A chunked body's data, and whether nothing came after it (bytes after an answer are
    none of the next one's: such a connection is not kept)."""
    body = _Dechunked()
    pieces: list[bytes] = []
    while not body.done:
        data = await reader.read(1 << 16)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        pieces.append(body.feed(data))
    return b"".join(pieces), not body.extra


class _Dechunked:
    """A chunked body taken apart as its bytes come: `feed` returns the data of what came so
    far, without the framing; `done` once the last chunk and its trailers came."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._left = 0
        """Bytes of the current chunk's data still to come."""
        self._state = "size"  # size line, data, the CRLF after the data, trailers
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buffer = self._buffer
        buffer += data
        at = 0
        out: list[bytes] = []
        while not self.done:
            if self._state == "data":
                piece = bytes(buffer[at : at + self._left])
                if not piece:
                    break
                out.append(piece)
                at += len(piece)
                self._left -= len(piece)
                if self._left == 0:
                    self._state = "crlf"
            elif self._state == "crlf":
                if len(buffer) - at < 2:
                    break
                if buffer[at : at + 2] != b"\r\n":
                    raise aiohttp.ClientPayloadError("a chunk does not end with CRLF")
                at += 2
                self._state = "size"
            else:  # a size line, or a trailer line
                end = buffer.find(b"\r\n", at)
                if end < 0:
                    if len(buffer) - at > _HEAD_LIMIT:
                        raise aiohttp.ClientPayloadError("a chunk's size line is too long")
                    break
                line = bytes(buffer[at:end])
                at = end + 2
                if self._state == "trailers":
                    self.done = not line
                    continue
                size = _int(line.split(b";", 1)[0].strip().decode("latin-1"), 16)
                self._left = size
                self._state = "data" if size else "trailers"
        del buffer[:at]
        return b"".join(out)

    @property
    def extra(self) -> bool:
        """Bytes came after the last chunk's trailers."""
        return self.done and bool(self._buffer)


def _int(text: str, base: int) -> int:
    try:
        value = int(text, base)
    except ValueError:
        message = f"not a number in the answer's framing: {text!r}"
        raise aiohttp.ClientPayloadError(message) from None
    if value < 0:
        raise aiohttp.ClientPayloadError(f"a negative length in the answer's framing: {text!r}")
    return value

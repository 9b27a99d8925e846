"""The notebook gateway: `/t9k/notebooks/projects/<ns>/name/<nb>/…` proxied to the notebook's
HTTP Service, HTTP and WebSocket, streamed both ways (nothing is buffered whole).

Before proxying, an access review asks whether the user may `get` that Notebook; the answer is
cached for a few seconds per user and notebook (JupyterLab loads dozens of files at once). A
refusal is a 403 that says the same whether the notebook exists or not.

Where requests go (`UpstreamMode`): in a pod, the Service's cluster DNS name (the console reads
nothing for it); out of cluster (`make run`), the Service's ClusterIP, read with the console's
own credentials — this host routes the service network. (The API server's Service proxy is not
used: it does not pass WebSocket upgrades to a Service.) The path is sent unchanged: Jupyter
serves under NB_PREFIX, the same path. The browser's Host is kept, so Jupyter's own origin
check for WebSockets compares the page's origin with the host the browser used.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Generic, Literal, TypeVar

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict

from notebook_controller.builders.names import http_service_name
from notebook_controller.console.identity import IdentitySettings
from notebook_controller.console.kubeapi import KubeApi, User
from notebook_controller.runtime.kube import ApiError

log = structlog.get_logger(__name__)

UpstreamMode = Literal["service-dns", "cluster-ip"]
PREFIX: Final = "/t9k/notebooks/projects/{namespace}/name/{name}"
ROUTE: Final = PREFIX + "{tail:(/.*)?}"
ACCESS_TTL: Final = 10.0
SERVICE_TTL: Final = 30.0
CHUNK: Final = 64 * 1024
CONSOLE_COOKIE: Final = "console_csrf"
"""The console's own cookie: never sent on to a notebook (its server runs the user's code)."""
CONNECT_ATTEMPTS: Final = 10
CONNECT_RETRY_DELAY: Final = 0.5
HOP_BY_HOP: Final = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Accept",
        "Sec-WebSocket-Protocol",
    )
)


V = TypeVar("V")


@dataclass
class _Ttl(Generic[V]):
    ttl: float
    clock: Callable[[], float] = time.monotonic
    entries: dict[object, tuple[float, V]] = field(default_factory=dict)

    def get(self, key: object) -> V | None:
        found = self.entries.get(key)
        if found is None or found[0] < self.clock():
            self.entries.pop(key, None)
            return None
        return found[1]

    def put(self, key: object, value: V) -> None:
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[key] = (self.clock() + self.ttl, value)


class Gateway:
    def __init__(
        self, api: KubeApi, identity: IdentitySettings, upstream_mode: UpstreamMode
    ) -> None:
        self.api = api
        self.identity = identity
        self.upstream_mode = upstream_mode
        self._access: _Ttl[bool] = _Ttl(ACCESS_TTL)
        self._services: _Ttl[str] = _Ttl(SERVICE_TTL)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # cookies are the browser's, passed through
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def allowed(self, user: User, namespace: str, name: str) -> bool:
        key = (user, namespace, name)
        found = self._access.get(key)
        if found is None:
            found = await self.api.may(user, "get", namespace, name)
            self._access.put(key, found)
        return found

    async def upstream(self, namespace: str, name: str) -> str | None:
        service = http_service_name(name)
        if self.upstream_mode == "service-dns":
            return f"http://{service}.{namespace}.svc:80"
        found = self._services.get((namespace, service))
        if found is None:
            obj = await self.api.get_service(namespace, service)
            ip = ((obj or {}).get("spec") or {}).get("clusterIP")
            if not ip or ip == "None":
                return None
            found = f"http://{ip}:80"
            self._services.put((namespace, service), found)
        return found

    async def handle(self, request: web.Request) -> web.StreamResponse:
        user: User | None = request["user"]
        namespace = request.match_info["namespace"]
        name = request.match_info["name"]
        assert user is not None  # the identity middleware answered 401 otherwise
        try:
            allowed = await self.allowed(user, namespace, name)
        except ApiError as error:
            log.warning("access review failed", notebook=f"{namespace}/{name}", error=str(error))
            raise web.HTTPBadGateway(text=f"could not check access: {error.message}") from error
        if not allowed:
            log.info("gateway refused", user=user.name, notebook=f"{namespace}/{name}")
            raise web.HTTPForbidden(
                text=f"{user.name} may not open notebook {name} in namespace {namespace}: "
                "ask for a Role that allows get on notebooks.tensorstack.dev there\n"
            )
        base = await self.upstream(namespace, name)
        if base is None:
            raise web.HTTPServiceUnavailable(
                text=f"notebook {namespace}/{name} has no HTTP Service (yet): is it running?\n"
            )
        url = base + request.rel_url.raw_path_qs
        headers = self._forwarded_headers(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, url.replace("http://", "ws://", 1), headers)
        return await self._http(request, url, headers)

    def _forwarded_headers(self, request: web.Request) -> CIMultiDict[str]:
        private = {h.lower() for h in self.identity.private_headers}
        headers: CIMultiDict[str] = CIMultiDict()
        for key, value in request.headers.items():
            lowered = key.lower()
            if lowered in HOP_BY_HOP or lowered in private:
                continue
            if lowered == "cookie":
                value = _without_cookie(value, CONSOLE_COOKIE)
                if not value:
                    continue
            headers.add(key, value)
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.host
        if request.remote:
            headers.add("X-Forwarded-For", request.remote)
        return headers

    async def _http(
        self, request: web.Request, url: str, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        assert self._session is not None
        body = request.content if request.body_exists else None
        # A notebook just turned Ready may not be routed yet (kube-proxy programs the new
        # endpoint a moment later): a refused connection is retried for a few seconds when the
        # request has no body to replay.
        attempts = CONNECT_ATTEMPTS if body is None else 1
        for attempt in range(attempts):
            try:
                upstream = await self._session.request(
                    request.method, url, headers=headers, data=body, allow_redirects=False
                )
                break
            except (aiohttp.ClientError, OSError) as error:
                refused = isinstance(error, aiohttp.ClientConnectorError)
                if not refused or attempt + 1 == attempts:
                    raise _no_answer(error) from error
                await asyncio.sleep(CONNECT_RETRY_DELAY)
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers.add(key, value)
            if upstream.headers.get("Content-Length"):  # bytes as sent: no decompression
                response.content_length = int(upstream.headers["Content-Length"])
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_chunked(CHUNK):
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientPayloadError) as error:
                # the browser went away mid-download, or the notebook's server did: nothing
                # more can be said to either; the connection closes
                log.info("proxied response cut short", path=request.path, error=str(error))
            return response

    async def _websocket(
        self, request: web.Request, url: str, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        assert self._session is not None
        protocols = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        try:
            upstream = await self._session.ws_connect(
                url, headers=headers, protocols=protocols, max_msg_size=0, autoping=True
            )
        except aiohttp.WSServerHandshakeError as error:
            raise web.HTTPBadGateway(
                text=f"the notebook refused the WebSocket ({error.status}): {error.message}\n"
            ) from error
        except (aiohttp.ClientError, OSError) as error:
            raise _no_answer(error) from error
        async with upstream:
            chosen = [upstream.protocol] if upstream.protocol else []
            downstream = web.WebSocketResponse(protocols=chosen, max_msg_size=0, autoping=True)
            await downstream.prepare(request)
            async with asyncio.TaskGroup() as tasks:
                one = tasks.create_task(_pump(upstream, downstream))
                other = tasks.create_task(_pump(downstream, upstream))
                done, _ = await asyncio.wait({one, other}, return_when=asyncio.FIRST_COMPLETED)
                for task in (one, other):
                    if task not in done:
                        task.cancel()
            await downstream.close()
            return downstream


def _no_answer(error: BaseException) -> web.HTTPBadGateway:
    return web.HTTPBadGateway(
        text=f"the notebook's server did not answer ({error}): is it Ready?\n"
    )


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Copy messages from `source` to `sink` until either side closes."""
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        async for message in source:
            if message.type is aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            else:
                break
    await sink.close()


def _without_cookie(header: str, name: str) -> str:
    return "; ".join(
        part.strip() for part in header.split(";") if part.strip().split("=", 1)[0] != name
    )

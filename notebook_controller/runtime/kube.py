"""Thin raw-JSON client for arbitrary resources, straight on aiohttp.

Objects stay plain dicts: deserializing every object into the generated models is slow and
memory-hungry, and the controller only needs a few fields of each. Every call carries a timeout.
Credentials come from `runtime.kubeconfig` (in-cluster, or a kubeconfig with a token, client
certificates or an exec plugin). kubernetes_asyncio is not imported: its client package loads
every generated model (~40 MB of RSS); an ApiClient of it is still accepted (see KubeClient).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import orjson
import structlog
from yarl import URL

from notebook_controller.runtime.http1 import Answer, Http1Pool
from notebook_controller.runtime.kubeconfig import (
    SERVICE_ACCOUNT_DIR,
    Configuration,
    in_cluster,
)
from notebook_controller.runtime.kubeconfig import (
    load_configuration as load_client_configuration,
)
from notebook_controller.runtime.objects import JsonDict

if TYPE_CHECKING:
    from kubernetes_asyncio.client import Configuration as LegacyConfiguration

__all__ = ["SERVICE_ACCOUNT_TOKEN", "Configuration", "in_cluster", "load_client_configuration"]

log = structlog.get_logger(__name__)

PatchType = Literal["merge", "json", "strategic", "apply"]

PATCH_CONTENT_TYPES: Mapping[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
# stdout, stderr and the error channel, whose final Status tells the exit.
_EXEC_CHANNELS = (1, 2, 3)
# methods sent with a Content-Length even without a body (Go's server wants one on a POST)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_AS_IS = re.compile(r"[A-Za-z0-9._~/:@-]*")
"""Characters a URL's path and query keep as they are (nothing to quote or requote)."""
SERVICE_ACCOUNT_TOKEN = SERVICE_ACCOUNT_DIR / "token"


@dataclass(frozen=True)
class ResourceKind:
    """Where a kind of resource lives in the API. `group` is "" for the core group."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            prefix += f"/namespaces/{namespace}"
        path = f"{prefix}/{self.plural}"
        if name is not None:
            path += f"/{name}"
            if subresource:
                path += f"/{subresource}"
        return path


class ApiError(Exception):
    """A non-2xx answer from the API server, with the fields of its Status object."""

    def __init__(self, status: int, reason: str, message: str, body: JsonDict | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_conflict(self) -> bool:
        return self.status == 409

    @property
    def is_gone(self) -> bool:
        return self.status == 410

    @classmethod
    def from_status(cls, status: JsonDict, http_status: int | None = None) -> ApiError:
        code = status.get("code") or http_status or 0
        return cls(int(code), str(status.get("reason", "")), str(status.get("message", "")), status)


class ExecError(Exception):
    """A command run through pods/exec exited non-zero or could not be started."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


async def load_configuration(kubeconfig: str | None = None) -> LegacyConfiguration:
    """kubernetes_asyncio's Configuration (explicit kubeconfig, else in-cluster, else the default
    kubeconfig), for callers that build its ApiClient. Imported on use: it costs ~40 MB."""
    from kubernetes_asyncio import config as kube_config
    from kubernetes_asyncio.client import configuration as legacy

    configuration = legacy.Configuration()
    configuration.connection_pool_maxsize = 0
    if kubeconfig is None and in_cluster():
        load_incluster: Any = kube_config.load_incluster_config
        load_incluster(client_configuration=configuration)
    else:
        await kube_config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration, persist_config=False
        )
    return configuration


@dataclass(frozen=True)
class RawResponse:
    """An answer read whole, whatever its status (see `KubeClient.raw_get`)."""

    status: int
    reason: str
    body: bytes
    content_type: str


class KubeClient:
    """Raw dicts in and out; raises ApiError for non-2xx answers (a 404 on get returns None).

    Built from a `Configuration` (see `from_config`), or from a kubernetes_asyncio ApiClient,
    whose configuration, credentials and default headers (user agent, impersonation) are used.
    """

    def __init__(
        self,
        configuration: Configuration | Any,
        *,
        timeout: float = 30.0,
        user_agent: str = "notebook-controller",
    ) -> None:
        # every request's headers; `Accept: application/json` is added per request in _call,
        # not here: on exec's WebSocket upgrade the API server answers it 406
        self._headers: dict[str, str] = {"User-Agent": user_agent}
        self._adopted: Any = None
        if not isinstance(configuration, Configuration):
            self._adopted = configuration
            configuration = _adopt(configuration, self._headers)
        self.configuration: Configuration = configuration
        self.timeout = timeout
        # the host's path (`/k8s/clusters/c-1` behind a proxy), as yarl joins a path to it
        self._path_prefix = self._url("/").raw_path[:-1]
        self._http: aiohttp.ClientSession | None = None
        # requests (`request`, `raw_get`) and watches on lean HTTP/1.1 connections, unless
        # through an HTTP proxy (then aiohttp, which tunnels)
        self._pool: Http1Pool | None = None
        if not configuration.proxy:
            self._pool = Http1Pool(
                configuration.host, server_hostname=configuration.tls_server_name
            )

    @classmethod
    async def from_config(
        cls,
        kubeconfig: str | None = None,
        *,
        call_timeout: float = 30.0,
        user_agent: str = "notebook-controller",
    ) -> KubeClient:
        # The server names writers without a field manager after the user agent.
        configuration = await load_client_configuration(kubeconfig)
        return cls(configuration, timeout=call_timeout, user_agent=user_agent)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            # Every watch holds a connection for minutes: a bounded pool would let watches
            # starve requests (limit=0). Callers bound their own concurrency. No trust_env: it
            # reads the proxy environment and ~/.netrc in a thread on every request; the proxy
            # is decided once, in the configuration. No cookie jar: the API server sets none
            # (client-go keeps none either), and filtering an empty jar costs every request.
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._http

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._http is not None:
            await self._http.close()
        if self._adopted is not None:
            await self._adopted.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- generic verbs -------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        call_timeout: float | None = None,
    ) -> JsonDict:
        """One request whose answer is read whole and parsed as JSON."""
        answer = await self._exchange(method, path, query, body, content_type, call_timeout)
        if not 200 <= answer.status <= 299:
            raise error_from_body(answer.status, answer.reason, answer.body)
        parsed: Any = orjson.loads(answer.body) if answer.body else {}
        if not isinstance(parsed, dict):
            raise ApiError(answer.status, "UnexpectedBody", f"expected an object from {path}")
        return parsed

    async def raw_get(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        call_timeout: float | None = None,
    ) -> RawResponse:
        """GET `path` with the client's credentials and return the answer as it came, any status.

        For paths whose answers are not the API server's own, such as a Service's proxy
        (`/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/...`, where the backend's status
        and body come back unchanged). `call_timeout` bounds the whole exchange; transport
        failures raise (aiohttp.ClientError, OSError, TimeoutError).
        """
        answer = await self._exchange("GET", path, query, None, "application/json", call_timeout)
        return RawResponse(answer.status, answer.reason, answer.body, answer.content_type)

    async def _exchange(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str,
        call_timeout: float | None,
    ) -> Answer:
        """One exchange, its answer read whole: on the lean pool, or aiohttp through a proxy."""
        timeout = call_timeout or self.timeout
        if self._pool is None:
            response = await self._call(
                method,
                path,
                query=query,
                body=body,
                content_type=content_type,
                client_timeout=aiohttp.ClientTimeout(total=timeout),
            )
            async with response:
                read = await response.read()
            headers = {name.lower(): value for name, value in response.headers.items()}
            return Answer(response.status, response.reason or "", headers, read)
        headers, data, ssl_context = await self._prepared(body, content_type)
        if data is None and method in _BODY_METHODS:
            data = b""
        return await self._pool.exchange(
            method,
            self._target(path, query),
            headers,
            data,
            tls=_tls(ssl_context),
            exchange_timeout=timeout,
        )

    async def _prepared(
        self, body: Any, content_type: str
    ) -> tuple[dict[str, str], bytes | None, ssl.SSLContext | bool]:
        """A request's headers (credentials included), its body as bytes and its TLS context
        (False for plain http), whichever client sends it."""
        auth, ssl_context = await self.configuration.auth()
        headers = {"Accept": "application/json", **self._headers, **auth}
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        return headers, data, ssl_context

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str,
        client_timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        headers, data, ssl_context = await self._prepared(body, content_type)
        return await self._session().request(
            method,
            self._url(path),
            params=list(query) or None,
            data=data,
            headers=headers,
            timeout=client_timeout,
            ssl=ssl_context,
            proxy=self.configuration.proxy,
            server_hostname=self.configuration.tls_server_name,
        )

    def _url(self, path: str) -> URL:
        return URL(self.configuration.host + path)

    def _target(self, path: str, query: Sequence[tuple[str, str]]) -> str:
        """What the lean client sends after the method: the host's path prefix, `path` and
        the encoded query. A path and query of names and numbers (every request the
        controller makes but a watch's label selector) need no quoting and are joined as
        they are (what yarl makes of them, at a tenth of its cost); others go through yarl."""
        if (
            _AS_IS.fullmatch(path)
            and "/." not in path  # a dot segment, which yarl resolves
            and all(_AS_IS.fullmatch(key) and _AS_IS.fullmatch(value) for key, value in query)
        ):
            target = self._path_prefix + path
            return f"{target}?{'&'.join(f'{k}={v}' for k, v in query)}" if query else target
        url = self._url(path)
        return (url.with_query(query) if query else url).raw_path_qs

    # --- typed verbs on a ResourceKind --------------------------------------------------

    async def get(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonDict | None:
        try:
            return await self.request("GET", kind.path(namespace, name))
        except ApiError as error:
            if error.is_not_found:
                return None
            raise

    async def list(
        self,
        kind: ResourceKind,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> JsonDict:
        query = _query(
            labelSelector=label_selector,
            fieldSelector=field_selector,
            limit=limit,
            **{"continue": continue_token},
        )
        return await self.request("GET", kind.path(namespace), query=query)

    async def create(self, kind: ResourceKind, namespace: str | None, body: JsonDict) -> JsonDict:
        return await self.request("POST", kind.path(namespace), body=body)

    async def update(
        self, kind: ResourceKind, namespace: str | None, name: str, body: JsonDict
    ) -> JsonDict:
        """PUT: optimistic concurrency through body.metadata.resourceVersion."""
        return await self.request("PUT", kind.path(namespace, name), body=body)

    async def apply(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        body: JsonDict,
        field_manager: str,
        force: bool = True,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        """Server-side apply: the server merges `body` as the fields owned by `field_manager`."""
        query = _query(fieldManager=field_manager, force="true" if force else None)
        return await self.request(
            "PATCH",
            kind.path(namespace, name, subresource),
            query=query,
            body=body,
            content_type=PATCH_CONTENT_TYPES["apply"],
        )

    async def apply_status(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        body: JsonDict,
        field_manager: str,
    ) -> JsonDict:
        return await self.apply(kind, namespace, name, body, field_manager, subresource="status")

    async def patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        body: Any,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        *,
        field_manager: str | None = None,
    ) -> JsonDict:
        return await self.request(
            "PATCH",
            kind.path(namespace, name, subresource),
            query=_query(fieldManager=field_manager),
            body=body,
            content_type=PATCH_CONTENT_TYPES[patch_type],
        )

    async def delete(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        *,
        preconditions_uid: str | None = None,
        propagation_policy: str = "Background",
    ) -> None:
        options: JsonDict = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation_policy,
        }
        if preconditions_uid:
            options["preconditions"] = {"uid": preconditions_uid}
        try:
            await self.request("DELETE", kind.path(namespace, name), body=options)
        except ApiError as error:
            if not error.is_not_found:
                raise

    async def watch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        inactivity_timeout: float = 120.0,
    ) -> AsyncGenerator[JsonDict, None]:
        """Watch events as dicts `{"type", "object"}`, bookmarks included.

        `inactivity_timeout` bounds the silence between two events: the server's timeoutSeconds
        doesn't protect against a dead connection. A non-2xx answer raises ApiError; an ERROR event
        is yielded as it comes (its object is a Status).
        """
        query = _query(
            watch="true",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=timeout_seconds,
            labelSelector=label_selector,
            fieldSelector=field_selector,
        )
        if self._pool is not None:
            headers, _, ssl_context = await self._prepared(None, "")
            lines = self._pool.stream(
                self._target(kind.path(namespace), query),
                headers,
                tls=_tls(ssl_context),
                connect_timeout=self.timeout,
                inactivity_timeout=inactivity_timeout,
            )
            async with aclosing(lines):
                async for line in lines:
                    if isinstance(line, Answer):
                        if not 200 <= line.status <= 299:
                            raise error_from_body(line.status, line.reason, line.body)
                    elif line.strip():
                        yield orjson.loads(line)
            return
        timeout = aiohttp.ClientTimeout(
            connect=self.timeout, sock_connect=self.timeout, sock_read=inactivity_timeout
        )
        response = await self._call(
            "GET",
            kind.path(namespace),
            query=query,
            body=None,
            content_type="application/json",
            client_timeout=timeout,
        )
        async with response:
            if not 200 <= response.status <= 299:
                raise error_from_body(response.status, response.reason or "", await response.read())
            async for line in response.content:
                if line.strip():
                    yield orjson.loads(line)

    # --- pods/exec ------------------------------------------------------------------------

    async def exec(
        self,
        namespace: str,
        pod: str,
        container: str,
        command: Sequence[str],
        *,
        exec_timeout: float | None = None,
    ) -> str:
        """Run `command` in a container and return its stdout.

        A non-zero exit raises ExecError carrying stderr. Output is decoded once complete, so a
        character split across frames survives.
        """
        query: list[tuple[str, str]] = [("command", part) for part in command]
        query += [("container", container), ("stdout", "true"), ("stderr", "true")]
        streams = {channel: bytearray() for channel in _EXEC_CHANNELS}
        url = self._url(f"/api/v1/namespaces/{namespace}/pods/{pod}/exec").with_query(query)
        url = url.with_scheme("wss" if url.scheme == "https" else "ws")
        try:
            async with asyncio.timeout(exec_timeout or self.timeout):
                auth, ssl_context = await self.configuration.auth()
                connect = self._session().ws_connect(
                    url,
                    protocols=("v4.channel.k8s.io",),
                    headers={**self._headers, **auth},
                    ssl=ssl_context,
                    proxy=self.configuration.proxy,
                    server_hostname=self.configuration.tls_server_name,
                )
                async with connect as websocket:
                    async for message in websocket:
                        frame = _frame_bytes(message)
                        if frame and frame[0] in streams:
                            streams[frame[0]] += frame[1:]
        except aiohttp.WSServerHandshakeError as error:
            raise ExecError(f"exec into {namespace}/{pod} refused: {error.status}") from error
        stdout, stderr, status = (
            streams[channel].decode(errors="replace") for channel in _EXEC_CHANNELS
        )
        if status:
            parsed = json.loads(status)
            if parsed.get("status") != "Success":
                raise ExecError(str(parsed.get("message") or "command failed"), stderr)
        return stdout


def _adopt(api_client: Any, headers: dict[str, str]) -> Configuration:
    """A kubernetes_asyncio ApiClient's settings as a Configuration: host, TLS files, proxy,
    its (refreshing) credentials and its default headers (user agent, impersonation)."""
    legacy = api_client.configuration
    ca_data = None
    if legacy.ssl_ca_cert:
        with open(legacy.ssl_ca_cert) as ca_file:
            ca_data = ca_file.read()
    headers.update(api_client.default_headers)

    async def legacy_auth() -> dict[str, str]:
        settings = await legacy.auth_settings()
        bearer = settings.get("BearerToken")
        return {"Authorization": str(bearer["value"])} if bearer else {}

    return Configuration(
        host=str(legacy.host).rstrip("/"),
        verify_ssl=bool(legacy.verify_ssl),
        ca_data=ca_data,
        tls_server_name=getattr(legacy, "tls_server_name", None),
        proxy=legacy.proxy,
        client_cert_file=legacy.cert_file,
        client_key_file=legacy.key_file,
        auth_hook=legacy_auth,
    )


def error_from_body(status: int, reason: str, data: bytes) -> ApiError:
    """The Status object the server sent, or the raw text (e.g. a plain "404 page not found")."""
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        return ApiError.from_status(parsed, status)
    return ApiError(status, reason, data.decode(errors="replace").strip())


def _frame_bytes(message: aiohttp.WSMessage) -> bytes:
    """A frame of the v4.channel.k8s.io protocol: one channel byte, then the payload."""
    if message.type == aiohttp.WSMsgType.BINARY:
        return bytes(message.data)
    if message.type == aiohttp.WSMsgType.TEXT:
        return str(message.data).encode()
    return b""


def _tls(ssl_context: ssl.SSLContext | bool) -> ssl.SSLContext | None:
    """The lean client's TLS context: None for plain http."""
    return ssl_context if isinstance(ssl_context, ssl.SSLContext) else None


def _query(**params: str | int | None) -> list[tuple[str, str]]:
    return [(key, str(value)) for key, value in params.items() if value is not None]

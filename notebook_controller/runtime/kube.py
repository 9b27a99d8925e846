"""Thin raw-JSON client for arbitrary resources, on top of kubernetes_asyncio's ApiClient.

Objects stay plain dicts: deserializing every object into the generated models is slow and
memory-hungry, and the controller only needs a few fields of each. Every call carries a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp
import structlog
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.stream import WsApiClient

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]
PatchType = Literal["merge", "json", "strategic", "apply"]

PATCH_CONTENT_TYPES: Mapping[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
_AUTH_SETTINGS = ["BearerToken"]
# stdout, stderr and the error channel, whose final Status tells the exit.
_EXEC_CHANNELS = (1, 2, 3)
SERVICE_ACCOUNT_TOKEN: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


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


def in_cluster(
    environ: Mapping[str, str] | None = None, token_file: Path = SERVICE_ACCOUNT_TOKEN
) -> bool:
    """Whether this process runs in a pod, decided as client-go does (clientcmd's in-cluster
    config is possible): KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are set and the
    service account's token file exists."""
    env = os.environ if environ is None else environ
    if not env.get("KUBERNETES_SERVICE_HOST") or not env.get("KUBERNETES_SERVICE_PORT"):
        return False
    return token_file.is_file()


async def load_configuration(kubeconfig: str | None = None) -> Configuration:
    """Configuration from an explicit kubeconfig, else in-cluster, else the default kubeconfig."""
    configuration = Configuration()
    # Every watch holds a connection for minutes: a bounded pool would let watches starve
    # requests. Callers bound their own concurrency.
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
    """Raw dicts in and out; raises ApiError for non-2xx answers (a 404 on get returns None)."""

    def __init__(self, api_client: ApiClient, *, timeout: float = 30.0) -> None:
        self._api = api_client
        self._ws: WsApiClient | None = None
        self.timeout = timeout

    @classmethod
    async def from_config(
        cls,
        kubeconfig: str | None = None,
        *,
        call_timeout: float = 30.0,
        user_agent: str = "notebook-controller",
    ) -> KubeClient:
        api_client = ApiClient(await load_configuration(kubeconfig))
        # The server names writers without a field manager after the user agent.
        api_client.user_agent = user_agent
        return cls(api_client, timeout=call_timeout)

    @property
    def configuration(self) -> Configuration:
        return self._api.configuration

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        await self._api.close()

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
        response = await self._call(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            client_timeout=aiohttp.ClientTimeout(total=call_timeout or self.timeout),
        )
        async with response:
            data = await response.read()
        if not 200 <= response.status <= 299:
            raise _error_from_body(response.status, response.reason or "", data)
        parsed: Any = json.loads(data) if data else {}
        if not isinstance(parsed, dict):
            raise ApiError(response.status, "UnexpectedBody", f"expected an object from {path}")
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
        response = await self._call(
            "GET",
            path,
            query=query,
            body=None,
            content_type="application/json",
            client_timeout=aiohttp.ClientTimeout(total=call_timeout or self.timeout),
        )
        async with response:
            body = await response.read()
        return RawResponse(response.status, response.reason or "", body, response.content_type)

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
        response: aiohttp.ClientResponse = await self._api.call_api(
            path,
            method,
            query_params=list(query),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=_AUTH_SETTINGS,
            _preload_content=False,
            _request_timeout=client_timeout,
        )
        return response

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
                raise _error_from_body(
                    response.status, response.reason or "", await response.read()
                )
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)

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
        try:
            async with asyncio.timeout(exec_timeout or self.timeout):
                connect = await self._ws_client().call_api(
                    f"/api/v1/namespaces/{namespace}/pods/{pod}/exec",
                    "GET",
                    query_params=query,
                    auth_settings=_AUTH_SETTINGS,
                    _preload_content=False,
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

    def _ws_client(self) -> WsApiClient:
        if self._ws is None:
            self._ws = WsApiClient(configuration=self._api.configuration)
        return self._ws


def _error_from_body(status: int, reason: str, data: bytes) -> ApiError:
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


def _query(**params: str | int | None) -> list[tuple[str, str]]:
    return [(key, str(value)) for key, value in params.items() if value is not None]

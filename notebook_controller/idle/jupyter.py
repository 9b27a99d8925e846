"""Activity probe of a Jupyter server: `api/status`, `api/kernels` and `api/terminals`.

Every GET carries `no_track_activity=1`, without which jupyter_server counts the probe itself as
API activity and a polled notebook never goes idle. A busy kernel means active right now;
otherwise the last activity is the newest of the server's, the kernels' and the terminals'.
The server's own `last_activity` includes its start time, which is not user activity: a
crash-looping server would otherwise look freshly active after each restart. It is reported
separately (`started`) and the rules decide when a start counts.

How the requests reach the server is a `JupyterTransport`, chosen once at startup
(`choose_route`): in a pod, straight to the notebook's HTTP Service by its cluster DNS name
(`DirectTransport`); elsewhere (`make run` on a workstation, where `*.svc` names don't resolve)
through the API server's Service proxy with the controller's own credentials
(`ApiServerProxy`). A failed probe's detail is a sentence for the Idle condition's message.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from http import HTTPStatus
from typing import Any, Final, Literal, Protocol

import aiohttp
import orjson
import structlog

from notebook_controller.idle import metrics
from notebook_controller.runtime.clock import parse_rfc3339

log = structlog.get_logger(__name__)

IN_CLUSTER_URL_TEMPLATE: Final = "http://{service}.{namespace}.svc:80{prefix}"
NO_TRACK: Final = {"no_track_activity": "1"}
# The API server's proxy to a Service port: what follows `/proxy` is sent to the backend as the
# request path, unchanged, so the notebook's base_url (NB_PREFIX) goes right after it.
PROXY_PATH_TEMPLATE: Final = "/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
HTTP_SERVICE_PORT: Final = 80
"""The notebook HTTP Service's port (`builders/services.py`), which the proxy path names."""
SERVER_HINT: Final = "check the pod is Running and Jupyter listens on 8888 under NB_PREFIX"

ProbeModeSetting = Literal["auto", "direct", "apiserver-proxy"]


@dataclass(frozen=True)
class JupyterActivity:
    """What one probe saw. `reachable=False` means nothing else is known."""

    reachable: bool
    busy: bool = False
    last_activity: datetime | None = None
    """Newest user activity the server reports (its start excluded); None if none since start."""
    started: datetime | None = None
    kernels: int = 0
    terminals: int = 0
    failure: str | None = None
    """Short failure class when unreachable: timeout, connection, proxy, http-<code>,
    bad-response."""
    detail: str = ""
    """When unreachable: what happened, in words (it becomes the Idle condition's message)."""

    @classmethod
    def unreachable(cls, failure: str, detail: str) -> JupyterActivity:
        return cls(reachable=False, failure=failure, detail=detail)


class ProbeFailed(Exception):
    def __init__(self, failure: str, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


def render_url(template: str, *, namespace: str, service: str, prefix: str) -> str:
    """The server's base URL (ending in `/`) from a template with {namespace} {service} {prefix}."""
    url = template.format(namespace=namespace, service=service, prefix=prefix)
    return url if url.endswith("/") else url + "/"


def proxy_path(
    *, namespace: str, service: str, prefix: str, port: int | str = HTTP_SERVICE_PORT
) -> str:
    """The API server path (ending in `/`) that proxies to the server under `prefix`."""
    path = PROXY_PATH_TEMPLATE.format(namespace=namespace, service=service, port=port)
    path += "/" + prefix.strip("/")
    return path if path.endswith("/") else path + "/"


# --- how the probe reaches the server -------------------------------------------------------


class ProbeMode(StrEnum):
    DIRECT = "direct"
    """HTTP to the notebook's Service (a URL template; in a pod, the Service's DNS name)."""
    APISERVER_PROXY = "apiserver-proxy"
    """HTTPS to the API server, which proxies to the Service (`services/proxy`)."""


@dataclass(frozen=True)
class JupyterRoute:
    """How the idle reclaimer reaches Jupyter servers, and why (for the startup log)."""

    mode: ProbeMode
    url_template: str | None = None
    """The direct mode's template; None in the proxy mode."""
    why: str = ""

    def describe(self, api_server: str) -> str:
        """The URL pattern probes use, for the log."""
        if self.mode is ProbeMode.APISERVER_PROXY:
            pattern = PROXY_PATH_TEMPLATE.format(
                namespace="{namespace}", service="{service}", port=HTTP_SERVICE_PORT
            )
            return api_server.rstrip("/") + pattern + "{prefix}"
        return self.url_template or IN_CLUSTER_URL_TEMPLATE


def choose_route(
    *, url_template: str | None, in_cluster: bool, mode: ProbeModeSetting = "auto"
) -> JupyterRoute:
    """Direct in a pod or with an explicit template; else the API server's proxy.

    `in_cluster` is client-go's test (`runtime.kube.in_cluster`): out of a pod the Services'
    cluster DNS names don't resolve and their IPs aren't routed, but the API server, reached
    with the controller's own credentials, can proxy to them.
    """
    if mode == "apiserver-proxy":
        if url_template:
            raise ValueError("a Jupyter URL template applies to direct probes only")
        return JupyterRoute(ProbeMode.APISERVER_PROXY, why="--jupyter-probe-mode=apiserver-proxy")
    if url_template:
        return JupyterRoute(ProbeMode.DIRECT, url_template, why="--jupyter-url-template")
    if mode == "direct":
        return JupyterRoute(
            ProbeMode.DIRECT, IN_CLUSTER_URL_TEMPLATE, why="--jupyter-probe-mode=direct"
        )
    if in_cluster:
        return JupyterRoute(
            ProbeMode.DIRECT, IN_CLUSTER_URL_TEMPLATE, why="running in a pod: Service DNS names"
        )
    return JupyterRoute(
        ProbeMode.APISERVER_PROXY,
        why="not in a pod (no service-account token or KUBERNETES_SERVICE_HOST): cluster DNS"
        " names don't resolve here",
    )


@dataclass(frozen=True)
class Answer:
    """Jupyter's answer to one GET."""

    status: int
    reason: str
    body: bytes


class JupyterTransport(Protocol):
    """Carries the probe's GETs to a notebook's server."""

    @property
    def mode(self) -> ProbeMode: ...

    def base_url(self, *, namespace: str, service: str, prefix: str) -> str:
        """The server's base URL, ending in `/` (shown in failure messages)."""
        ...

    async def get(self, url: str, params: Mapping[str, str], request_timeout: float) -> Answer:
        """Jupyter's answer, any status. Raises ProbeFailed, with words, when nothing came from
        Jupyter: no connection, no answer within `request_timeout` seconds, a proxy that
        refused."""
        ...


class DirectTransport:
    """Plain HTTP to the server's URL from a template (one shared ClientSession)."""

    mode: Final = ProbeMode.DIRECT

    def __init__(
        self, session: aiohttp.ClientSession, url_template: str = IN_CLUSTER_URL_TEMPLATE
    ) -> None:
        self.session = session
        self.url_template = url_template

    def base_url(self, *, namespace: str, service: str, prefix: str) -> str:
        return render_url(self.url_template, namespace=namespace, service=service, prefix=prefix)

    async def get(self, url: str, params: Mapping[str, str], request_timeout: float) -> Answer:
        limits = aiohttp.ClientTimeout(total=request_timeout)
        try:
            async with self.session.get(url, params=params, timeout=limits) as response:
                return Answer(response.status, response.reason or "", await response.read())
        except TimeoutError as error:
            raise ProbeFailed(
                "timeout",
                f"Jupyter did not answer at {url} within {request_timeout:g}s; {SERVER_HINT}",
            ) from error
        except (aiohttp.ClientError, OSError) as error:
            hint = SERVER_HINT
            if isinstance(error, aiohttp.ClientConnectorDNSError):
                hint = (
                    "cluster DNS names resolve only inside the cluster; outside it, probe"
                    " through the API server (--jupyter-probe-mode=auto or apiserver-proxy,"
                    " no --jupyter-url-template)"
                )
            raise ProbeFailed(
                "connection", f"Jupyter did not answer at {url}: {connection_words(error)}; {hint}"
            ) from error


class RawGetter(Protocol):
    """What the proxy transport needs of `runtime.kube.KubeClient`."""

    async def raw_get(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        call_timeout: float | None = None,
    ) -> _RawAnswer: ...


class _RawAnswer(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def body(self) -> bytes: ...


class ApiServerProxy:
    """GETs through the API server's Service proxy, with the kube client's own credentials,
    TLS settings and connection pool (`KubeClient.raw_get`).

    The API server answers for itself when it can't proxy (no such Service, no ready endpoint,
    the backend refused the connection, RBAC): a `Status` object, never something Jupyter
    sends, so those become failures here rather than Jupyter's HTTP statuses.
    """

    mode: Final = ProbeMode.APISERVER_PROXY

    def __init__(
        self, client: RawGetter, api_server: str, *, service_port: int = HTTP_SERVICE_PORT
    ) -> None:
        self.client = client
        self.api_server = api_server.rstrip("/")
        self.service_port = service_port

    def base_url(self, *, namespace: str, service: str, prefix: str) -> str:
        path = proxy_path(
            namespace=namespace, service=service, prefix=prefix, port=self.service_port
        )
        return self.api_server + path

    async def get(self, url: str, params: Mapping[str, str], request_timeout: float) -> Answer:
        path = url.removeprefix(self.api_server)
        try:
            raw = await self.client.raw_get(
                path, query=list(params.items()), call_timeout=request_timeout
            )
        except TimeoutError as error:
            raise ProbeFailed(
                "timeout",
                f"Jupyter did not answer through the API server's proxy at {url} within"
                f" {request_timeout:g}s; {SERVER_HINT}",
            ) from error
        except (aiohttp.ClientError, OSError) as error:
            raise ProbeFailed(
                "connection",
                f"the API server did not answer at {self.api_server}: {connection_words(error)}",
            ) from error
        refusal = api_server_status(raw.status, raw.body)
        if refusal is not None:
            raise _proxy_failure(url, raw.status, refusal)
        return Answer(raw.status, raw.reason, raw.body)


def api_server_status(status: int, body: bytes) -> str | None:
    """The message of the API server's own `Status` answer, None for a backend's answer."""
    if 200 <= status <= 299 or not body.lstrip().startswith(b"{"):
        return None
    try:
        parsed = orjson.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("kind") != "Status":
        return None
    if parsed.get("apiVersion") != "v1":
        return None
    return str(parsed.get("message") or parsed.get("reason") or "no message")


def _proxy_failure(url: str, status: int, message: str) -> ProbeFailed:
    if status >= 500:  # no endpoint, no such port, the backend refused or reset the connection
        return ProbeFailed(
            "connection",
            f"Jupyter did not answer through the API server's proxy at {url}: {message};"
            f" {SERVER_HINT}",
        )
    hint = {
        401: "the controller's credentials were not accepted",
        403: "the controller's credentials need get on services/proxy",
        404: "the notebook's HTTP Service is missing",
    }.get(status)
    said = f"the API server would not proxy to {url} ({status}: {message})"
    return ProbeFailed("proxy", f"{said}; {hint}" if hint else said)


def connection_words(error: BaseException) -> str:
    """What went wrong on the wire, in words (never an exception's repr)."""
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"the name {error.host} does not resolve"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {error.host} is not trusted"
    if isinstance(error, aiohttp.ClientConnectorError):
        return _os_words(error.os_error)
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"a malformed answer ({error.message or error.status})"
    if isinstance(error, OSError):
        return _os_words(error)
    return f"the request failed ({str(error) or type(error).__name__})"


def _os_words(error: OSError) -> str:
    # asyncio's own connect errors carry a strerror like "Connect call failed ('10.0.0.1', 80)":
    # the errno says it better.
    if error.errno is not None and error.errno in errno.errorcode:
        return os.strerror(error.errno).lower()
    return (error.strerror or str(error) or "a network error").lower()


# --- the probe ------------------------------------------------------------------------------


_DURATION: Final = metrics.PROBE_DURATION.labels("jupyter")


class JupyterProbe:
    """Probes share one transport; at most `max_concurrency` probes run at once."""

    def __init__(
        self,
        transport: JupyterTransport | aiohttp.ClientSession,
        *,
        url_template: str | None = None,
        timeout: float = 10.0,
        max_concurrency: int = 16,
    ) -> None:
        """`transport`, or a ClientSession for direct probes with `url_template` (default: the
        in-cluster Service URL)."""
        if isinstance(transport, aiohttp.ClientSession):
            transport = DirectTransport(transport, url_template or IN_CLUSTER_URL_TEMPLATE)
        elif url_template is not None:
            raise TypeError("url_template applies to a ClientSession, not to a transport")
        self.transport: JupyterTransport = transport
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)

    def base_url(self, *, namespace: str, service: str, prefix: str) -> str:
        return self.transport.base_url(namespace=namespace, service=service, prefix=prefix)

    async def probe(
        self,
        *,
        namespace: str,
        service: str,
        prefix: str,
        request_timeout: float | None = None,
    ) -> JupyterActivity:
        """Never raises for the server's faults: an unreachable server is a result."""
        base = self.base_url(namespace=namespace, service=service, prefix=prefix)
        async with self._slots:
            started = time.monotonic()
            try:
                result = await self._probe(base, request_timeout or self.timeout)
            except ProbeFailed as failed:
                metrics.probe_failures(failed.failure).inc()
                log.debug("jupyter probe failed", failure=failed.failure, detail=failed.detail)
                result = JupyterActivity.unreachable(failed.failure, failed.detail)
            finally:
                _DURATION.observe(time.monotonic() - started)
        return result

    async def _probe(self, base: str, request_timeout: float) -> JupyterActivity:
        # A server that doesn't answer api/status is asked nothing more: a failing probe (a
        # pod not serving yet, or gone) costs one request, not three. Then both requests run
        # to the end (each has its own timeout) and the first failure in this fixed order is
        # reported: whichever failed first on the wire would change the Idle condition's
        # message from probe to probe, and so write the status every time.
        status = await self._get(base, "api/status", request_timeout)
        results: tuple[Any, ...] = await asyncio.gather(
            self._get(base, "api/kernels", request_timeout),
            self._get(base, "api/terminals", request_timeout, missing_ok=True),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        kernels, terminals = results
        return summarize(
            _as_dict(status, "api/status"),
            _as_list(kernels, "api/kernels"),
            _as_list(terminals or [], "api/terminals"),
        )

    async def _get(
        self, base: str, path: str, request_timeout: float, *, missing_ok: bool = False
    ) -> Any:
        """JSON of a GET; `missing_ok` turns a 404 into None (terminals can be disabled)."""
        url = base + path
        answer = await self.transport.get(url, NO_TRACK, request_timeout)
        if answer.status == 404 and missing_ok:
            return None
        if answer.status != 200:
            raise ProbeFailed(f"http-{answer.status}", _http_words(url, answer))
        try:
            return orjson.loads(answer.body)
        except ValueError as error:
            raise ProbeFailed(
                "bad-response",
                f"the answer at {url} is not JSON, so not Jupyter's; {SERVER_HINT}",
            ) from error


def _http_words(url: str, answer: Answer) -> str:
    try:
        phrase = answer.reason or HTTPStatus(answer.status).phrase
    except ValueError:
        phrase = ""
    said = f"Jupyter answered {answer.status} {phrase}".rstrip() + f" at {url}"
    if answer.status == 404:
        return f"{said}; is NB_PREFIX Jupyter's base_url?"
    if answer.status in (401, 403):
        return f"{said}; the probe sends no token, so Jupyter must not require one"
    return said


def summarize(
    status: Mapping[str, Any], kernels: list[Any], terminals: list[Any]
) -> JupyterActivity:
    """The activity the three answers describe; ProbeFailed if they are not Jupyter's shapes."""
    try:
        started = parse_rfc3339(status["started"])
        server_activity = parse_rfc3339(status["last_activity"])
        kernel_times = [
            parse_rfc3339(k["last_activity"]) for k in kernels if k.get("last_activity")
        ]
        terminal_times = [
            parse_rfc3339(t["last_activity"]) for t in terminals if t.get("last_activity")
        ]
        busy = any(k.get("execution_state") == "busy" for k in kernels)
    except KeyError as error:
        raise ProbeFailed("bad-response", f"api/status has no {error.args[0]} field") from error
    except (TypeError, AttributeError) as error:
        raise ProbeFailed(
            "bad-response", "api/kernels or api/terminals lists something other than objects"
        ) from error
    except ValueError as error:
        raise ProbeFailed("bad-response", f"the answer is not Jupyter's: {error}") from error
    candidates = kernel_times + terminal_times
    if server_activity > started:  # equal: nothing happened since the start
        candidates.append(server_activity)
    return JupyterActivity(
        reachable=True,
        busy=busy,
        last_activity=max(candidates, default=None),
        started=started,
        kernels=len(kernels),
        terminals=len(terminals),
    )


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProbeFailed("bad-response", f"{what} answered something other than an object")
    return value


def _as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProbeFailed("bad-response", f"{what} answered something other than a list")
    return value

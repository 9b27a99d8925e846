"""Activity probe of a Jupyter server: `api/status`, `api/kernels` and `api/terminals`.

Every GET carries `no_track_activity=1`, without which jupyter_server counts the probe itself as
API activity and a polled notebook never goes idle. A busy kernel means active right now;
otherwise the last activity is the newest of the server's, the kernels' and the terminals'.
The server's own `last_activity` includes its start time, which is not user activity: a
crash-looping server would otherwise look freshly active after each restart. It is reported
separately (`started`) and the rules decide when a start counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import aiohttp
import structlog

from notebook_controller.activity import metrics

log = structlog.get_logger(__name__)

IN_CLUSTER_URL_TEMPLATE: Final = "http://{service}.{namespace}.svc:80{prefix}"
NO_TRACK: Final = {"no_track_activity": "1"}


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
    """Short failure class when unreachable: timeout, connection, http-<code>, bad-response."""
    detail: str = ""

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


class JupyterProbe:
    """Probes share one ClientSession; at most `max_concurrency` probes run at once."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        url_template: str = IN_CLUSTER_URL_TEMPLATE,
        timeout: float = 10.0,
        max_concurrency: int = 16,
    ) -> None:
        self.session = session
        self.url_template = url_template
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)

    def base_url(self, *, namespace: str, service: str, prefix: str) -> str:
        return render_url(self.url_template, namespace=namespace, service=service, prefix=prefix)

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
        timeout = aiohttp.ClientTimeout(total=request_timeout or self.timeout)
        async with self._slots:
            started = time.monotonic()
            try:
                result = await self._probe(base, timeout)
            except ProbeFailed as failed:
                metrics.PROBE_FAILURES.labels(failed.failure).inc()
                log.debug("jupyter probe failed", failure=failed.failure, detail=failed.detail)
                result = JupyterActivity.unreachable(failed.failure, failed.detail)
            finally:
                metrics.PROBE_DURATION.labels("jupyter").observe(time.monotonic() - started)
        return result

    async def _probe(self, base: str, limits: aiohttp.ClientTimeout) -> JupyterActivity:
        # All three requests run to the end (each has its own timeout) and the first failure in
        # this fixed order is reported: whichever failed first on the wire would change the
        # Idle condition's message from probe to probe, and so write the status every time.
        results: tuple[Any, ...] = await asyncio.gather(
            self._get(base + "api/status", limits),
            self._get(base + "api/kernels", limits),
            self._get(base + "api/terminals", limits, missing_ok=True),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        status, kernels, terminals = results
        return summarize(_as_dict(status), _as_list(kernels), _as_list(terminals or []))

    async def _get(
        self, url: str, limits: aiohttp.ClientTimeout, *, missing_ok: bool = False
    ) -> Any:
        """JSON of a GET; `missing_ok` turns a 404 into None (terminals can be disabled)."""
        try:
            async with self.session.get(url, params=NO_TRACK, timeout=limits) as response:
                if response.status == 404 and missing_ok:
                    return None
                if response.status != 200:
                    raise ProbeFailed(f"http-{response.status}", f"GET {url}: {response.status}")
                return await response.json(content_type=None)
        except TimeoutError as error:
            raise ProbeFailed("timeout", f"GET {url}: no answer in time") from error
        except aiohttp.ContentTypeError as error:
            raise ProbeFailed("bad-response", f"GET {url}: {error.message}") from error
        except ValueError as error:
            raise ProbeFailed("bad-response", f"GET {url}: not JSON ({error})") from error
        except (aiohttp.ClientError, OSError) as error:
            raise ProbeFailed("connection", f"GET {url}: {error!r}") from error


def summarize(
    status: Mapping[str, Any], kernels: list[Any], terminals: list[Any]
) -> JupyterActivity:
    """The activity the three answers describe; ProbeFailed if they are not Jupyter's shapes."""
    try:
        started = parse_time(status["started"])
        server_activity = parse_time(status["last_activity"])
        kernel_times = [parse_time(k["last_activity"]) for k in kernels if k.get("last_activity")]
        terminal_times = [
            parse_time(t["last_activity"]) for t in terminals if t.get("last_activity")
        ]
        busy = any(k.get("execution_state") == "busy" for k in kernels)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ProbeFailed("bad-response", f"unexpected answer shape: {error!r}") from error
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


def parse_time(value: Any) -> datetime:
    """Jupyter's ISO 8601 timestamps (`2024-05-01T10:00:00.123456Z`), always timezone-aware."""
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {value!r}")
    return parsed


def _as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProbeFailed("bad-response", "api/status is not an object")
    return value


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ProbeFailed("bad-response", "expected a list")
    return value

"""Health and metrics endpoints: /healthz, /readyz, /metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = structlog.get_logger(__name__)

Check = Callable[[], bool]


def parse_address(address: str) -> tuple[str, int]:
    """ "host:port" (host may be empty for all interfaces, or a bracketed IPv6 address)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"address {address!r} must be host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


class HealthServer:
    def __init__(
        self,
        address: str,
        *,
        liveness: Mapping[str, Check] | None = None,
        readiness: Mapping[str, Check] | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.host, self.port = parse_address(address)
        self.liveness = dict(liveness or {})
        self.readiness = dict(readiness or {})
        self.registry = registry
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = self._runner.addresses
        if sockets and self.port == 0:
            self.port = int(sockets[0][1])
        log.info("serving health and metrics", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return _run_checks(self.liveness)

    async def _readyz(self, _: web.Request) -> web.Response:
        return _run_checks(self.readiness)

    async def _metrics(self, _: web.Request) -> web.Response:
        # Rendering the registry is CPU work on a few hundred series; cheap enough inline.
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _run_checks(checks: Mapping[str, Check]) -> web.Response:
    failing = [name for name, check in checks.items() if not check()]
    if failing:
        return web.Response(status=500, text="".join(f"[-]{name} failed\n" for name in failing))
    return web.Response(text="ok")

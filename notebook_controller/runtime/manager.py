"""Manager: runs the HTTP server, informers, leader election and controllers in that order.

Start order: HTTP (health, metrics) first, then informers until their caches have synced (only
then is /readyz OK), then leader election, then controllers and runnables. SIGTERM or SIGINT
stops the controllers' queues, waits up to `graceful_shutdown_timeout` for in-flight reconciles,
releases the lease and returns. Losing the lease raises LeadershipLost at once: the caller must
exit non-zero, as another process may already be acting as leader.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import REGISTRY, CollectorRegistry

from notebook_controller.runtime.controller import Controller
from notebook_controller.runtime.httpserver import HealthServer
from notebook_controller.runtime.informer import Informer
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.leader import LeaderElectionConfig, LeaderElector, LeadershipLost

log = structlog.get_logger(__name__)

Runnable = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class _RunnableSpec:
    run: Runnable
    needs_leader: bool


class Manager:
    def __init__(
        self,
        client: KubeClient,
        *,
        health_address: str = "127.0.0.1:8081",
        leader_election: LeaderElectionConfig | None = None,
        graceful_shutdown_timeout: float = 30.0,
        registry: CollectorRegistry = REGISTRY,
        handle_signals: bool = True,
    ) -> None:
        self.client = client
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.handle_signals = handle_signals
        self.elector = LeaderElector(client, leader_election) if leader_election else None
        self.informers: list[Informer] = []
        self.controllers: list[Controller] = []
        self._runnables: list[_RunnableSpec] = []
        self._stopping = asyncio.Event()
        self.http = HealthServer(
            health_address,
            liveness={"ping": lambda: True},
            readiness={"informers-synced": self.caches_synced},
            registry=registry,
        )

    def add_informer(self, informer: Informer) -> None:
        if informer not in self.informers:
            self.informers.append(informer)

    def add_controller(self, controller: Controller) -> None:
        """The controller's informers (from its watch_* calls, before or after) run too."""
        self.controllers.append(controller)

    def add_runnable(self, run: Runnable, needs_leader: bool = True) -> None:
        """A coroutine function run until cancelled; with needs_leader only on the leader."""
        self._runnables.append(_RunnableSpec(run, needs_leader))

    def stop(self) -> None:
        """Begin a graceful stop (what SIGTERM does)."""
        self._stopping.set()

    async def run(self) -> None:
        signals = self._install_signal_handlers() if self.handle_signals else []
        await self.http.start()
        try:
            async with asyncio.TaskGroup() as group:
                await self._run_in(group)
        except* LeadershipLost as lost:
            raise LeadershipLost(str(lost.exceptions[0])) from None
        finally:
            await self.http.stop()
            for signum in signals:
                asyncio.get_running_loop().remove_signal_handler(signum)
        log.info("manager stopped")

    async def _run_in(self, group: asyncio.TaskGroup) -> None:
        background = [group.create_task(informer.run()) for informer in self.all_informers()]
        try:
            if await self._unless_stopped(self._wait_synced()):
                background += self._start_runnables(group, needs_leader=False)
                await self._lead_and_work(group, background)
        finally:
            await _cancel_and_wait(background)
        if self.elector is not None:
            await self.elector.release()

    async def _lead_and_work(
        self, group: asyncio.TaskGroup, background: list[asyncio.Task[None]]
    ) -> None:
        if self.elector is not None:
            if not await self._unless_stopped(self.elector.acquire()):
                return
            # Renewal goes on while the controllers drain: they still act as leader.
            background.append(group.create_task(self.elector.hold()))
        workers = [group.create_task(controller.run()) for controller in self.controllers]
        background += self._start_runnables(group, needs_leader=True)
        await self._stopping.wait()
        log.info("stopping: draining controllers", timeout=self.graceful_shutdown_timeout)
        await self._drain(workers)

    def all_informers(self) -> list[Informer]:
        """Informers added directly or through a controller's watches."""
        found = list(self.informers)
        for controller in self.controllers:
            found += [informer for informer in controller.informers if informer not in found]
        return found

    def caches_synced(self) -> bool:
        return all(informer.has_synced for informer in self.all_informers())

    async def _wait_synced(self) -> None:
        informers = self.all_informers()
        await asyncio.gather(*(informer.wait_synced() for informer in informers))
        log.info("caches synced", informers=len(informers))

    async def _unless_stopped(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` unless a stop comes first; True when `work` finished."""
        work_task = asyncio.ensure_future(work)
        stop_task = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work_task, stop_task):
                task.cancel()
            await asyncio.gather(work_task, stop_task, return_exceptions=True)
        if work_task.cancelled():
            return False
        work_task.result()  # re-raises what `work` raised
        return True

    def _start_runnables(
        self, group: asyncio.TaskGroup, *, needs_leader: bool
    ) -> list[asyncio.Task[None]]:
        return [
            group.create_task(_as_coroutine(spec.run))
            for spec in self._runnables
            if spec.needs_leader == needs_leader
        ]

    async def _drain(self, workers: list[asyncio.Task[None]]) -> None:
        for controller in self.controllers:
            controller.stop()
        if workers:
            _, pending = await asyncio.wait(workers, timeout=self.graceful_shutdown_timeout)
            if pending:
                log.warning("graceful shutdown timed out, cancelling", controllers=len(pending))
                await _cancel_and_wait(list(pending))

    def _install_signal_handlers(self) -> list[int]:
        loop = asyncio.get_running_loop()
        installed: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
            installed.append(signum)
        return installed

    def _on_signal(self, signum: int) -> None:
        log.info("signal received, stopping", signal=signal.Signals(signum).name)
        self.stop()


async def _as_coroutine(run: Runnable) -> None:
    await run()


async def _cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

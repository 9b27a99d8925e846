"""Manager shutdown without a cluster: no informers, no leader election."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from notebook_controller.runtime.controller import Controller
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.manager import Manager
from notebook_controller.runtime.reconcile import Request, Result


class SlowReconciler:
    name = "slow"

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.started = asyncio.Event()
        self.finished: list[Request] = []

    async def reconcile(self, request: Request) -> Result:
        self.started.set()
        await asyncio.sleep(self.duration)
        self.finished.append(request)
        return Result()


def make_manager(reconciler: SlowReconciler, grace: float, signals: bool = False) -> Manager:
    manager = Manager(
        cast(KubeClient, None),
        health_address="127.0.0.1:0",
        graceful_shutdown_timeout=grace,
        handle_signals=signals,
    )
    controller = Controller(f"drain-{uuid.uuid4().hex[:6]}", reconciler, workers=1)
    controller.queue.add(Request("ns", "a"))
    manager.add_controller(controller)
    return manager


async def test_stop_lets_in_flight_reconciles_finish() -> None:
    reconciler = SlowReconciler(0.3)
    manager = make_manager(reconciler, grace=10)
    run = asyncio.ensure_future(manager.run())
    await asyncio.wait_for(reconciler.started.wait(), 5)
    manager.stop()
    await asyncio.wait_for(run, 10)
    assert reconciler.finished == [Request("ns", "a")]


async def test_stop_cancels_reconciles_that_outlast_the_grace_period() -> None:
    reconciler = SlowReconciler(60)
    manager = make_manager(reconciler, grace=0.2)
    run = asyncio.ensure_future(manager.run())
    await asyncio.wait_for(reconciler.started.wait(), 5)
    manager.stop()
    await asyncio.wait_for(run, 5)
    assert reconciler.finished == []


async def test_sigterm_stops_the_manager() -> None:
    reconciler = SlowReconciler(0)
    manager = make_manager(reconciler, grace=5, signals=True)
    run = asyncio.ensure_future(manager.run())
    await asyncio.wait_for(reconciler.started.wait(), 5)
    await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run, 5)
    assert reconciler.finished == [Request("ns", "a")]


async def test_runnables_start_after_sync_and_stop_with_the_manager() -> None:
    manager = make_manager(SlowReconciler(0), grace=1)
    started: list[str] = []
    cancelled: list[str] = []
    both_started = asyncio.Event()

    def runnable(label: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            started.append(label)
            if len(started) == 2:
                both_started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(label)
                raise

        return run

    manager.add_runnable(runnable("leader-only"))
    manager.add_runnable(runnable("everywhere"), needs_leader=False)
    run = asyncio.ensure_future(manager.run())
    await asyncio.wait_for(both_started.wait(), 5)
    manager.stop()
    await asyncio.wait_for(run, 5)
    assert started == ["everywhere", "leader-only"]
    assert sorted(cancelled) == ["everywhere", "leader-only"]

"""Command line: `notebook-controller run` (also `python -m notebook_controller run`)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from functools import partial

import structlog

from notebook_controller.logs import configure_logging
from notebook_controller.runtime import metrics, workqueue
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.leader import LeaderElectionConfig, LeadershipLost
from notebook_controller.runtime.loop import event_loop_factory
from notebook_controller.runtime.manager import Manager
from notebook_controller.settings import Settings, build_parser

log = structlog.get_logger(__name__)

Build = Callable[[Manager, KubeClient, Settings], None]

EXIT_OK = 0
EXIT_LEADERSHIP_LOST = 1
EXIT_USAGE = 2

BACKLOG_ROUNDS = 2.5
"""A key that has waited this many of the event loop's rounds (--io-batch-seconds) for a worker
ends the loop's pauses until none has: a burst of work goes as fast as the API server answers,
what the pauses save is spent on the way, and no key waits much longer than this for the
pauses' sake (with a longer wait, 100 notebooks' StatefulSets took 1.6 times the bare client's
time)."""

GC_THRESHOLDS = (50_000, 20, 10)
"""The cyclic collector's thresholds (Python's are 700, 10, 10). The controller allocates and
frees many small dicts per watch event and reconcile, nearly all freed by reference counting;
at 700 the youngest generation is traversed every few events to find almost nothing. A full
collection still follows every ten of the middle generation's (and only once the old one grew
by a quarter), so cycles that outlive two collections are still found."""


def tune_gc() -> None:
    """Move everything allocated so far (modules, classes, pydantic's validators: most of the
    process's objects, which live as long as it does) out of the collector's sight, and collect
    less often (0.20 s of collection at N = 1000 in `make bench`, 0.53 s before)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notebook-controller")
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser(commands.add_parser("run", help="run the controller"))
    args = parser.parse_args(argv)
    if args.command != "run":
        return EXIT_USAGE
    settings = Settings.from_sources(vars(args), os.environ)
    configure_logging(settings.log_format, settings.log_level)
    tune_gc()
    return run_in_loop(settings)


def backlog_seconds(settings: Settings) -> float:
    """How long a key waits for a worker before the event loop's pauses end."""
    return BACKLOG_ROUNDS * settings.io_batch_seconds


def run_in_loop(settings: Settings, build: Build | None = None) -> int:
    """`run` on the controller's event loop (`runtime.loop`: I/O taken in rounds, but not while
    a key has waited for a worker BACKLOG_ROUNDS rounds or longer)."""
    hurry = partial(workqueue.backlog, backlog_seconds(settings))
    loop_factory = event_loop_factory(settings.io_batch_seconds, hurry=hurry)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run(settings, build))


async def run(settings: Settings, build: Build | None = None) -> int:
    """Run a manager whose informers and controllers `build` registers (default: the wiring)."""
    if build is None:
        from notebook_controller import wiring

        build = wiring.build
    metrics.observe_gc()
    client = await KubeClient.from_config(settings.kubeconfig)
    async with client:
        manager = Manager(
            client,
            health_address=settings.health_address,
            leader_election=leader_election_config(settings),
            graceful_shutdown_timeout=settings.graceful_shutdown_timeout,
        )
        build(manager, client, settings)
        try:
            await manager.run()
        except LeadershipLost as lost:
            log.error("exiting: leadership lost", reason=str(lost))
            return EXIT_LEADERSHIP_LOST
    return EXIT_OK


def leader_election_config(settings: Settings) -> LeaderElectionConfig | None:
    if not settings.leader_elect:
        return None
    return LeaderElectionConfig(
        lease_name=settings.lease_name,
        lease_namespace=settings.lease_namespace,
        identity=f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
        lease_duration=settings.lease_duration,
        renew_deadline=settings.renew_deadline,
        retry_period=settings.retry_period,
        request_timeout=min(5.0, settings.renew_deadline / 2),
    )

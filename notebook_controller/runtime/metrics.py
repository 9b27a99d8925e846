"""Prometheus metrics under the names controller-runtime dashboards already know.

prometheus_client appends `_total` to counter names on exposition, so counters are declared
without it.
"""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, values
from prometheus_client.core import CounterMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from notebook_controller.runtime import loop

_T = TypeVar("_T")


class LoopThreadValue:
    """A metric's value without prometheus_client's lock (`values.MutexValue`), which takes
    about half of an increment's cost: every metric of the controller is written on the event
    loop's thread (the threads it starts, for a host key's generation, write none), and a
    scrape, on that thread too, reads a float. Installed below, before any metric is made
    (a metric's values are made when it or its labelled child is); a process that sets
    PROMETHEUS_MULTIPROC_DIR keeps the library's multiprocess values."""

    _multiprocess = False
    __slots__ = ("_exemplar", "_value")

    def __init__(self, *_: object, **__: object) -> None:
        self._value = 0.0
        self._exemplar: object = None

    def inc(self, amount: float) -> None:
        self._value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._value = value

    def set_exemplar(self, exemplar: object) -> None:
        self._exemplar = exemplar

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> object:
        return self._exemplar


if values.ValueClass is values.MutexValue:
    values.ValueClass = LoopThreadValue

# `*_created` series are noise for these dashboards and double the exposition size.
disable_created_metrics()  # type: ignore[no-untyped-call]

_RECONCILE_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
    1.25,
    1.5,
    1.75,
    2.0,
    2.5,
    3.0,
    3.5,
    4.0,
    4.5,
    5,
    6,
    7,
    8,
    9,
    10,
    15,
    20,
    25,
    30,
    40,
    50,
    60,
)
_QUEUE_BUCKETS = tuple(10.0**exponent for exponent in range(-8, 2))

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile",
    "Total number of reconciliations per controller",
    ["controller", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors",
    "Total number of reconciliation errors per controller",
    ["controller"],
    registry=REGISTRY,
)
TERMINAL_RECONCILE_ERRORS = Counter(
    "controller_runtime_terminal_reconcile_errors",
    "Total number of terminal reconciliation errors per controller",
    ["controller"],
    registry=REGISTRY,
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller",
    ["controller"],
    buckets=_RECONCILE_BUCKETS,
    registry=REGISTRY,
)
ACTIVE_WORKERS = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller",
    ["controller"],
    registry=REGISTRY,
)
MAX_CONCURRENT_RECONCILES = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller",
    ["controller"],
    registry=REGISTRY,
)

WORKQUEUE_DEPTH = Gauge(
    "workqueue_depth", "Current depth of workqueue", ["name"], registry=REGISTRY
)
WORKQUEUE_ADDS = Counter(
    "workqueue_adds", "Total number of adds handled by workqueue", ["name"], registry=REGISTRY
)
WORKQUEUE_QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested",
    ["name"],
    buckets=_QUEUE_BUCKETS,
    registry=REGISTRY,
)
WORKQUEUE_WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes",
    ["name"],
    buckets=_QUEUE_BUCKETS,
    registry=REGISTRY,
)
WORKQUEUE_RETRIES = Counter(
    "workqueue_retries",
    "Total number of retries handled by workqueue",
    ["name"],
    registry=REGISTRY,
)

INFORMER_EVENTS = Counter(
    "notebook_controller_informer_watch_events",
    "Watch events an informer received, by resource and event type",
    ["resource", "type"],
    registry=REGISTRY,
)

LEADER_ELECTION_STATUS = Gauge(
    "leader_election_master_status",
    "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
    "1 indicates master. 'name' is the string used to identify the lease.",
    ["name"],
    registry=REGISTRY,
)


# As Go's go_gc_duration_seconds: how long the interpreter stopped for its cyclic garbage
# collector, by generation (prometheus_client's GC collector counts collections, not time). The
# callback runs inside a collection, which may start while this thread holds a metric's lock
# (a scrape copying a metric's children): it only adds to plain numbers, read at scrape time.
class _GcTimes(Collector):
    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.collections[generation] += 1

    def collect(self) -> Iterable[Metric]:
        family = SummaryMetricFamily(
            "python_gc_duration_seconds",
            "Time spent in the cyclic garbage collector, by generation",
            labels=["generation"],
        )
        for generation, count in enumerate(self.collections):
            family.add_metric(
                [str(generation)], count_value=count, sum_value=self.seconds[generation]
            )
        yield family


_GC_TIMES = _GcTimes()


class _LoopWaits(Collector):
    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "notebook_controller_event_loop_waits",
            "Times the event loop waited for I/O or a timer (a round of work follows each; "
            "--io-batch-seconds makes them fewer)",
            value=loop.waits(),
        )


REGISTRY.register(_LoopWaits())


def read_at_scrape(gauge: Gauge, owner: _T, read: Callable[[_T], float]) -> None:
    """`gauge` (a child, labels chosen) shows `read(owner)` when scraped instead of being set at
    every change; 0 once `owner` is gone (held weakly: the registry doesn't keep it alive)."""
    owner_ref = weakref.ref(owner)

    def value() -> float:
        alive = owner_ref()
        return read(alive) if alive is not None else 0.0

    gauge.set_function(value)


def observe_gc() -> None:
    """Time every collection into `python_gc_duration_seconds` (once per process)."""
    if _GC_TIMES.on_gc not in gc.callbacks:
        gc.callbacks.append(_GC_TIMES.on_gc)
        REGISTRY.register(_GC_TIMES)

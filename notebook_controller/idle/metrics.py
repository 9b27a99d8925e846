"""Prometheus metrics of idle reclamation, on the default registry the manager's /metrics serves.

prometheus_client appends `_total` to counter names on exposition.
"""

from __future__ import annotations

import functools

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from notebook_controller.runtime import metrics as _runtime_metrics  # noqa: F401  (its value class first)

NOTEBOOKS_IDLE = Gauge(
    "notebook_controller_notebooks_idle",
    "Number of notebooks whose Idle condition is True",
    registry=REGISTRY,
)
NOTEBOOKS_RECLAIMED = Counter(
    "notebook_controller_notebooks_reclaimed",
    "Notebooks paused by the idle reclaimer, by reason (Idle or Unreachable)",
    ["reason"],
    registry=REGISTRY,
)
PROBE_DURATION = Histogram(
    "notebook_controller_activity_probe_duration_seconds",
    "Duration of one activity probe of a notebook, by probe (jupyter or ssh)",
    ["probe"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
PROBE_FAILURES = Counter(
    "notebook_controller_activity_probe_failures",
    "Failed activity probes, by reason"
    " (timeout, connection, proxy, http-<code>, bad-response, exec)",
    ["reason"],
    registry=REGISTRY,
)


@functools.cache
def probe_failures(reason: str) -> Counter:
    """PROBE_FAILURES' child for `reason`, looked up once (a probe that fails does it every
    time; the reasons are few: the help text's, one per HTTP status seen)."""
    return PROBE_FAILURES.labels(reason)


POLICY_RELOADS = Counter(
    "notebook_controller_idle_policy_reloads",
    "Idle-policy ConfigMap loads, by result (applied or rejected)",
    ["result"],
    registry=REGISTRY,
)

"""Pure timing rules of idle reclamation: previous state + observation + policy + now -> decision.

No I/O and no clock of its own: `now` is an argument, so a 24h rule is tested in milliseconds.

The idle clock (`last_activity`) is the newest evidence of use: a busy kernel or an open SSH
session (evidence "now"), a kernel, terminal or API activity time the server reports, or the
last SSH session the status records (`status.ssh.lastSshClientActivity`, written by an earlier
pass — possibly of an earlier controller process — so SSH use survives a restart). It starts
when a pod is first seen answering (the pod's or its server's start time, whichever is later),
so a notebook just created or resumed gets a fresh clock; later restarts of the same pod's server
do not reset it.

Decisions, in order:

1. No pod on a node (not created yet, or Pending unscheduled): `Idle=Unknown`, reason `NotRunning`.
   Such a pod holds no node resources, so nothing runs out and nothing is reclaimed.
2. Pod on a node but not Ready (starting, crash-looping, hung): `Idle=Unknown`, reason `NotReady`.
   It does hold its node's CPU, memory and GPUs. When nothing has shown activity for
   idleTimeout + reclaimGrace — measured from the last activity if the server ever answered,
   else from when the pod's Ready condition turned False (the kubelet's record, so a restarted
   controller reads the same time) — it is reclaimed with reason
   `Unreachable` (the peers never reclaim these; policy `reclaimUnreachable: false` opts out).
3. Pod Ready but the Jupyter probe fails: `Idle=Unknown`, reason `ProbeFailed`, never reclaimed:
   the server answers its readiness probe, so the fault is more likely the controller's path to
   it (network policy, DNS) than the notebook, and a failed probe must never count as idle.
4. A busy kernel or an open SSH session: active now, `Idle=False`.
5. SSH enabled but its probe failed: the Jupyter answer alone can't show the notebook idle, so
   `Idle=Unknown`, reason `SshProbeFailed`, never reclaimed; activity Jupyter shows still counts.
6. Otherwise, idle for idleTimeout -> `Idle=True` (message: since when); for idleTimeout +
   reclaimGrace -> reclaimed with reason `Idle`.

Condition messages only change when the state does, so a pass that sees nothing new produces the
same condition and no status write.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

from notebook_controller.idle.jupyter import JupyterActivity
from notebook_controller.idle.policy import IdlePolicy, format_duration
from notebook_controller.idle.ssh import SshActivity
from notebook_controller.runtime.clock import rfc3339

TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"


class PodState(StrEnum):
    READY = "Ready"
    NOT_READY = "NotReady"
    """Bound to a node (so holding its resources) but not Ready."""
    NOT_RUNNING = "NotRunning"
    """No pod, or not bound to a node yet."""


class Reason(StrEnum):
    KERNEL_BUSY = "KernelBusy"
    SSH_SESSION = "SshSession"
    RECENT_ACTIVITY = "RecentActivity"
    NO_ACTIVITY = "NoActivity"
    NOT_RUNNING = "NotRunning"
    NOT_READY = "NotReady"
    PROBE_FAILED = "ProbeFailed"
    SSH_PROBE_FAILED = "SshProbeFailed"


class ReclaimReason(StrEnum):
    IDLE = "Idle"
    UNREACHABLE = "Unreachable"


@dataclass(frozen=True)
class Observation:
    """One probe pass. `jupyter` is None when not probed (pod not Ready); `ssh` is None when SSH
    is disabled or not probed."""

    pod: PodState
    pod_uid: str | None = None
    jupyter: JupyterActivity | None = None
    ssh: SshActivity | None = None
    pod_started: datetime | None = None
    """When the pod started (status.startTime): a new pod's idle clock starts no earlier."""
    not_ready_since: datetime | None = None
    """When the pod's Ready condition last turned False (its lastTransitionTime), if it is."""
    ssh_recorded: datetime | None = None
    """`status.ssh.lastSshClientActivity` as stored: an SSH session seen by an earlier pass."""


@dataclass(frozen=True)
class ActivityState:
    """What the rules remember about one notebook between passes."""

    pod_uid: str | None = None
    last_activity: datetime | None = None
    """Newest evidence of use (or the start of the idle clock); None before the server answered."""
    not_ready_since: datetime | None = None
    """Start of the current stretch of the pod being on a node but not Ready (the pod's record,
    or the first pass that saw it while the pod has none)."""


@dataclass(frozen=True)
class Decision:
    status: str
    """The Idle condition's status: True, False or Unknown."""
    reason: Reason
    message: str
    state: ActivityState
    reclaim: ReclaimReason | None = None
    ssh_active: bool = False
    """An SSH client was connected during this pass (for status.ssh.lastSshClientActivity)."""
    failure: str | None = None
    """A failed Jupyter probe's kind of failure ("connection", "timeout", "http-404", ...)."""


def probe_failed_words(failure: str) -> str:
    """How a failed probe's message starts: its kind of failure, before what was said of it."""
    return f"The activity probe failed ({failure}):"


def decide(
    previous: ActivityState, observation: Observation, policy: IdlePolicy, now: datetime
) -> Decision:
    # A different pod (first sight, or recreated after a resume) starts a fresh idle clock.
    state = previous if previous.pod_uid == observation.pod_uid else ActivityState()
    state = replace(state, pod_uid=observation.pod_uid)
    jupyter = observation.jupyter
    if observation.pod is PodState.NOT_RUNNING:
        return Decision(
            UNKNOWN,
            Reason.NOT_RUNNING,
            "The Notebook's pod is not running; activity is not probed",
            replace(state, not_ready_since=None),
        )
    if observation.pod is PodState.NOT_READY or jupyter is None:
        return _not_ready(state, observation, policy, now)
    if not jupyter.reachable:
        failure = jupyter.failure or "unknown"
        return Decision(
            UNKNOWN,
            Reason.PROBE_FAILED,
            f"{probe_failed_words(failure)} {jupyter.detail}",
            replace(state, not_ready_since=None),
            failure=failure,
        )
    return _reachable(state, observation, jupyter, policy, now)


def _recorded_ssh(observation: Observation, now: datetime) -> datetime | None:
    """The stored SSH time, if it belongs to this pod (not before it started), never ahead of
    `now`. One from before a resume is not this pod's activity."""
    recorded = observation.ssh_recorded
    if recorded is None:
        return None
    if observation.pod_started is not None and recorded < observation.pod_started:
        return None
    return min(recorded, now)


def _not_ready(
    state: ActivityState, observation: Observation, policy: IdlePolicy, now: datetime
) -> Decision:
    # The pod's own record when it has one (what a restarted controller reads too); else the
    # first pass that saw the stretch. Never ahead of our clock.
    since = min(observation.not_ready_since or state.not_ready_since or now, now)
    state = replace(state, not_ready_since=since)
    # A recorded SSH session can only make the quiet stretch shorter: after a restart the
    # memory of activity Jupyter showed before the pod went unready is gone, and the stretch
    # counts from the pod's record instead (later, never earlier, than the truth).
    quiet_since = state.last_activity or since
    recorded = _recorded_ssh(observation, now)
    if recorded is not None and recorded > quiet_since:
        quiet_since = recorded
    reclaim = policy.reclaim_unreachable and now - quiet_since >= policy.reclaim_after
    return Decision(
        UNKNOWN,
        Reason.NOT_READY,
        f"The Notebook's server has not been ready since {rfc3339(since)}",
        state,
        reclaim=ReclaimReason.UNREACHABLE if reclaim else None,
    )


def _reachable(
    state: ActivityState,
    observation: Observation,
    jupyter: JupyterActivity,
    policy: IdlePolicy,
    now: datetime,
) -> Decision:
    ssh = observation.ssh
    ssh_active = ssh is not None and ssh.reachable and ssh.connections > 0
    last_activity = _last_activity(state, observation, jupyter, now)
    busy_reason = Reason.KERNEL_BUSY if jupyter.busy else Reason.SSH_SESSION
    if jupyter.busy or ssh_active:
        last_activity = now
    state = replace(state, last_activity=last_activity, not_ready_since=None)
    if jupyter.busy or ssh_active:
        message = "A kernel is busy" if jupyter.busy else "An SSH client is connected"
        return Decision(FALSE, busy_reason, message, state, ssh_active=ssh_active)
    if ssh is not None and not ssh.reachable:
        return Decision(
            UNKNOWN,
            Reason.SSH_PROBE_FAILED,
            f"The SSH activity probe failed: {ssh.detail}",
            state,
        )
    idle_for = now - last_activity
    if idle_for < policy.idle_timeout:
        return Decision(FALSE, Reason.RECENT_ACTIVITY, "The Notebook is active", state)
    reclaim_at = last_activity + policy.reclaim_after
    message = (
        f"The Notebook is idle: no activity since {rfc3339(last_activity)}"
        f" (idle timeout {format_duration(policy.idle_timeout)}); it will be paused at"
        f" {rfc3339(reclaim_at)}"
    )
    reclaim = ReclaimReason.IDLE if now >= reclaim_at else None
    return Decision(TRUE, Reason.NO_ACTIVITY, message, state, reclaim=reclaim)


def _last_activity(
    state: ActivityState, observation: Observation, jupyter: JupyterActivity, now: datetime
) -> datetime:
    """Newest evidence, never in the future (the pod's clock may run ahead of ours)."""
    evidence = [state.last_activity, jupyter.last_activity, _recorded_ssh(observation, now)]
    if state.last_activity is None:
        # First answer from this pod: its start (or its server's) opens the clock.
        evidence += [jupyter.started, observation.pod_started]
    return min(max((t for t in evidence if t is not None), default=now), now)

"""Timing rules with an injected clock: a day of idleness is simulated in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from notebook_controller.idle.jupyter import JupyterActivity
from notebook_controller.idle.policy import IdlePolicy, policy_from_data
from notebook_controller.idle.rules import (
    FALSE,
    TRUE,
    UNKNOWN,
    ActivityState,
    Decision,
    Observation,
    PodState,
    Reason,
    ReclaimReason,
    decide,
)
from notebook_controller.idle.ssh import SshActivity

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
DEFAULTS = IdlePolicy()
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def idle_server(started: datetime, last_activity: datetime | None = None) -> JupyterActivity:
    return JupyterActivity(reachable=True, started=started, last_activity=last_activity)


def ready(jupyter: JupyterActivity, ssh: SshActivity | None = None) -> Observation:
    return Observation(PodState.READY, "pod-1", jupyter, ssh)


@dataclass
class Notebook:
    """Drives `decide` pass after pass, the way the reconciler does, on a fake clock."""

    policy: IdlePolicy = DEFAULTS
    now: datetime = T0
    state: ActivityState = field(default_factory=ActivityState)

    def observe(self, observation: Observation) -> Decision:
        decision = decide(self.state, observation, self.policy, self.now)
        self.state = decision.state
        return decision

    def run(
        self, span: timedelta, observation: Observation, step: timedelta = 5 * MINUTE
    ) -> Decision:
        """Probe every `step` for `span`; returns the last decision (or the first reclaim)."""
        end = self.now + span
        decision = self.observe(observation)
        while self.now < end and decision.reclaim is None:
            self.now = min(self.now + step, end)
            decision = self.observe(observation)
        return decision


def test_untouched_notebook_goes_idle_after_an_hour_and_is_reclaimed_a_day_later() -> None:
    notebook = Notebook()
    server = idle_server(started=T0)

    assert notebook.run(59 * MINUTE, ready(server)).status == FALSE
    notebook.now = T0 + HOUR
    idle = notebook.observe(ready(server))
    assert (idle.status, idle.reason) == (TRUE, Reason.NO_ACTIVITY)
    assert "no activity since 2025-01-06T09:00:00Z" in idle.message
    assert "paused at 2025-01-07T10:00:00Z" in idle.message
    assert idle.reclaim is None

    before = notebook.run(24 * HOUR - MINUTE, ready(server))  # until a minute before 25h
    assert before.reclaim is None and notebook.now == T0 + 25 * HOUR - MINUTE
    notebook.now = T0 + 25 * HOUR
    reclaimed = notebook.observe(ready(server))
    assert reclaimed.reclaim is ReclaimReason.IDLE
    assert reclaimed.message == idle.message  # the condition did not churn while idle


def test_idle_message_is_stable_so_passes_cause_no_status_writes() -> None:
    notebook = Notebook()
    server = idle_server(started=T0)
    notebook.now = T0 + 2 * HOUR
    first = notebook.observe(ready(server))
    notebook.now += 5 * MINUTE
    second = notebook.observe(ready(server))
    assert (first.status, first.reason, first.message) == (
        second.status,
        second.reason,
        second.message,
    )


def test_activity_reported_by_the_server_resets_the_clock() -> None:
    notebook = Notebook()
    notebook.now = T0 + 2 * HOUR
    assert notebook.observe(ready(idle_server(T0))).status == TRUE
    used = idle_server(T0, last_activity=T0 + 2 * HOUR - MINUTE)  # a cell ran a minute ago
    back = notebook.observe(ready(used))
    assert (back.status, back.reason, back.message) == (
        FALSE,
        Reason.RECENT_ACTIVITY,
        "The Notebook is active",
    )
    notebook.now = T0 + 3 * HOUR - 2 * MINUTE
    assert notebook.observe(ready(used)).status == FALSE
    notebook.now = T0 + 3 * HOUR
    assert notebook.observe(ready(used)).status == TRUE


def test_busy_kernel_keeps_a_notebook_active_however_old_its_last_activity() -> None:
    notebook = Notebook()
    busy = JupyterActivity(reachable=True, busy=True, started=T0, last_activity=T0)
    decision = notebook.run(48 * HOUR, ready(busy))
    assert (decision.status, decision.reason, decision.reclaim) == (FALSE, Reason.KERNEL_BUSY, None)
    # once the cell finishes, the clock starts from the last pass that saw it running
    done = notebook.observe(ready(idle_server(T0)))
    assert done.state.last_activity == T0 + 48 * HOUR
    notebook.now += HOUR
    assert notebook.observe(ready(idle_server(T0))).status == TRUE


def test_open_ssh_session_keeps_a_notebook_active_and_is_reported() -> None:
    notebook = Notebook()
    ssh = SshActivity(reachable=True, connections=1)
    decision = notebook.run(30 * HOUR, ready(idle_server(T0), ssh))
    assert (decision.status, decision.reason, decision.reclaim) == (FALSE, Reason.SSH_SESSION, None)
    assert decision.ssh_active
    notebook.now += 59 * MINUTE
    gone = notebook.observe(ready(idle_server(T0), SshActivity(reachable=True, connections=0)))
    assert gone.status == FALSE and not gone.ssh_active


def test_failed_ssh_probe_never_counts_as_idle() -> None:
    notebook = Notebook()
    broken_ssh = SshActivity(reachable=False, detail="exec failed: forbidden")
    decision = notebook.run(48 * HOUR, ready(idle_server(T0), broken_ssh))
    assert (decision.status, decision.reason, decision.reclaim) == (
        UNKNOWN,
        Reason.SSH_PROBE_FAILED,
        None,
    )
    assert "forbidden" in decision.message


def test_failed_probe_of_a_ready_pod_is_unknown_and_never_reclaimed() -> None:
    notebook = Notebook()
    notebook.now = T0 + 2 * HOUR
    assert notebook.observe(ready(idle_server(T0))).status == TRUE
    failing = JupyterActivity.unreachable("timeout", "GET http://x/api/status: no answer in time")
    decision = notebook.run(72 * HOUR, ready(failing))
    assert (decision.status, decision.reason, decision.reclaim) == (
        UNKNOWN,
        Reason.PROBE_FAILED,
        None,
    )
    assert "(timeout)" in decision.message
    # the last activity seen before the failures is kept, not replaced by the failure time
    assert decision.state.last_activity == T0


def test_crash_looping_pod_is_reclaimed_as_unreachable_after_timeout_plus_grace() -> None:
    notebook = Notebook()
    crash_looping = Observation(PodState.NOT_READY, "pod-1")
    first = notebook.observe(crash_looping)
    assert (first.status, first.reason) == (UNKNOWN, Reason.NOT_READY)
    assert first.message == "The Notebook's server has not been ready since 2025-01-06T09:00:00Z"
    almost = notebook.run(25 * HOUR - MINUTE, crash_looping)
    assert almost.reclaim is None and almost.message == first.message
    notebook.now = T0 + 25 * HOUR
    assert notebook.observe(crash_looping).reclaim is ReclaimReason.UNREACHABLE


def test_crash_loop_that_answers_between_restarts_does_not_reset_the_clock() -> None:
    """Each restart gives the server a new start time; only the first one opens the clock."""
    notebook = Notebook()
    decision = notebook.observe(ready(idle_server(started=T0)))
    for hour in range(1, 26):
        notebook.now = T0 + hour * HOUR
        decision = notebook.observe(Observation(PodState.NOT_READY, "pod-1"))
        if decision.reclaim:
            break
        notebook.now += MINUTE
        decision = notebook.observe(ready(idle_server(started=notebook.now - MINUTE)))
        if decision.reclaim:
            break
    assert notebook.now <= T0 + 25 * HOUR + MINUTE
    assert decision.reclaim is not None


def test_unreachable_reclaim_counts_from_the_last_activity_seen() -> None:
    notebook = Notebook()
    notebook.now = T0 + 10 * HOUR
    notebook.observe(ready(idle_server(T0, last_activity=T0 + 10 * HOUR)))
    notebook.now = T0 + 30 * HOUR
    stuck = notebook.observe(Observation(PodState.NOT_READY, "pod-1"))
    assert stuck.reclaim is None  # 20h since the last activity
    notebook.now = T0 + 35 * HOUR
    assert notebook.observe(Observation(PodState.NOT_READY, "pod-1")).reclaim is (
        ReclaimReason.UNREACHABLE
    )


def test_unreachable_reclaim_can_be_turned_off() -> None:
    notebook = Notebook(policy=IdlePolicy(reclaimUnreachable=False))
    decision = notebook.run(72 * HOUR, Observation(PodState.NOT_READY, "pod-1"))
    assert (decision.status, decision.reclaim) == (UNKNOWN, None)


def test_pod_not_on_a_node_holds_nothing_and_is_never_reclaimed() -> None:
    notebook = Notebook()
    decision = notebook.run(72 * HOUR, Observation(PodState.NOT_RUNNING))
    assert (decision.status, decision.reason, decision.reclaim) == (
        UNKNOWN,
        Reason.NOT_RUNNING,
        None,
    )


def test_resumed_notebook_gets_a_fresh_clock() -> None:
    notebook = Notebook()
    notebook.now = T0 + 25 * HOUR
    assert notebook.observe(ready(idle_server(T0))).reclaim is ReclaimReason.IDLE
    # resumed: a new pod whose server started a minute ago
    notebook.now += HOUR
    resumed = Observation(PodState.READY, "pod-2", idle_server(started=notebook.now - MINUTE))
    decision = notebook.observe(resumed)
    assert (decision.status, decision.reclaim) == (FALSE, None)
    assert decision.state.last_activity == notebook.now - MINUTE


def test_resumed_pod_clock_starts_no_earlier_than_the_pod() -> None:
    notebook = Notebook()
    notebook.now = T0 + 10 * HOUR
    pod_started = T0 + 10 * HOUR - MINUTE
    # the server reports activity from long before this pod existed (e.g. a clock mix-up)
    resumed = Observation(PodState.READY, "pod-2", idle_server(T0), pod_started=pod_started)
    decision = notebook.observe(resumed)
    assert (decision.status, decision.state.last_activity) == (FALSE, pod_started)


def test_server_clock_ahead_of_ours_does_not_postpone_idleness() -> None:
    notebook = Notebook()
    ahead = idle_server(T0 + 3 * HOUR)  # node clock three hours fast
    assert notebook.observe(ready(ahead)).state.last_activity == T0
    notebook.now = T0 + HOUR
    assert notebook.observe(ready(ahead)).status == TRUE


def test_shortened_policy_applies_the_same_rules() -> None:
    policy = policy_from_data({"idleTimeout": "2s", "reclaimGrace": "3s"})
    notebook = Notebook(policy=policy)
    server = idle_server(started=T0)
    step = timedelta(milliseconds=500)
    assert notebook.run(timedelta(milliseconds=1500), ready(server), step).status == FALSE
    assert notebook.run(timedelta(seconds=1), ready(server), step).status == TRUE
    decision = notebook.run(timedelta(seconds=10), ready(server), step)
    assert decision.reclaim is ReclaimReason.IDLE and notebook.now == T0 + timedelta(seconds=5)


# --- what survives a controller restart (a fresh ActivityState) ------------------------------


def test_ssh_session_recorded_in_status_counts_after_a_restart() -> None:
    """Used only over SSH: the session ended ten minutes before a failover, Jupyter untouched
    for two days. The new leader has no memory; status.ssh.lastSshClientActivity has it."""
    now = T0 + 48 * HOUR
    seen = now - 10 * MINUTE
    observation = Observation(
        PodState.READY,
        "pod-1",
        idle_server(started=T0),
        SshActivity(reachable=True, connections=0),
        pod_started=T0,
        ssh_recorded=seen,
    )
    decision = decide(ActivityState(), observation, DEFAULTS, now)
    assert (decision.status, decision.reason, decision.reclaim) == (
        FALSE,
        Reason.RECENT_ACTIVITY,
        None,
    )
    assert decision.state.last_activity == seen
    idle = decide(decision.state, observation, DEFAULTS, seen + HOUR)
    assert idle.status == TRUE and "no activity since 2025-01-08T08:50:00Z" in idle.message
    assert decide(idle.state, observation, DEFAULTS, seen + 25 * HOUR).reclaim is ReclaimReason.IDLE


def test_recorded_ssh_session_of_an_earlier_pod_is_not_this_pods_activity() -> None:
    resumed_at = T0 + 30 * HOUR
    observation = Observation(
        PodState.READY,
        "pod-2",
        idle_server(started=resumed_at),
        SshActivity(reachable=True, connections=0),
        pod_started=resumed_at,
        ssh_recorded=T0,  # before the pause
    )
    decision = decide(ActivityState(), observation, DEFAULTS, resumed_at + MINUTE)
    assert decision.state.last_activity == resumed_at


def test_recorded_ssh_session_is_never_taken_from_the_future() -> None:
    now = T0 + 48 * HOUR
    observation = Observation(
        PodState.READY, "pod-1", idle_server(started=T0), pod_started=T0, ssh_recorded=now + HOUR
    )
    assert decide(ActivityState(), observation, DEFAULTS, now).state.last_activity == now


def test_not_ready_clock_is_the_pods_so_a_restart_does_not_restart_it() -> None:
    """The pod's Ready condition turned False at T0; a controller started 20 h later counts
    from T0, not from when it first looked."""
    crash_looping = Observation(PodState.NOT_READY, "pod-1", pod_started=T0, not_ready_since=T0)
    notebook = Notebook()
    notebook.now = T0 + 20 * HOUR
    first = notebook.observe(crash_looping)
    assert first.message == "The Notebook's server has not been ready since 2025-01-06T09:00:00Z"
    assert first.reclaim is None
    notebook.now = T0 + 25 * HOUR
    assert notebook.observe(crash_looping).reclaim is ReclaimReason.UNREACHABLE


def test_not_ready_clock_is_the_pods_record_or_else_the_first_pass() -> None:
    notebook = Notebook()
    # bound to a node, no Ready condition posted yet: the first pass opens the stretch
    assert notebook.observe(Observation(PodState.NOT_READY, "pod-1")).state.not_ready_since == T0
    notebook.now = T0 + MINUTE
    # the kubelet's record, once there, is the clock (the same any controller process reads)
    posted = Observation(PodState.NOT_READY, "pod-1", not_ready_since=T0 + 2 * SECOND)
    assert notebook.observe(posted).state.not_ready_since == T0 + 2 * SECOND
    # a pod's clock ahead of ours is not taken
    ahead = Observation(PodState.NOT_READY, "pod-2", not_ready_since=T0 + 2 * HOUR)
    assert decide(ActivityState(), ahead, DEFAULTS, T0 + HOUR).state.not_ready_since == T0 + HOUR


def test_recorded_ssh_session_postpones_an_unreachable_reclaim_but_never_hastens_it() -> None:
    not_ready = Observation(PodState.NOT_READY, "pod-1", pod_started=T0, not_ready_since=T0 + HOUR)
    used = replace(not_ready, ssh_recorded=T0 + 2 * HOUR)  # an SSH session after it went unready
    at = T0 + HOUR + 25 * HOUR
    assert decide(ActivityState(), not_ready, DEFAULTS, at).reclaim is ReclaimReason.UNREACHABLE
    assert decide(ActivityState(), used, DEFAULTS, at).reclaim is None
    # one from before it went unready does not count the stretch from earlier
    before = replace(not_ready, ssh_recorded=T0 + 30 * MINUTE)
    assert decide(ActivityState(), before, DEFAULTS, at - MINUTE).reclaim is None

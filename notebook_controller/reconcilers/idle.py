"""Idle reclaimer: probes running jupyter notebooks, computes the `Idle` condition and
`status.ssh.lastSshClientActivity` (its part of the status, written with the status reconciler's
under one field manager: a first verdict arriving with Ready goes out in the same write), and
pauses notebooks idle past the policy's reclaim grace (field manager notebook-controller-idle).

Any event on a notebook enqueues it, but a notebook is probed at most once per probe interval
(per policy version) while its pod stays as it was: a pass woken by a status write — ours or the
status reconciler's — probes nothing and writes nothing, so writes can't feed a loop. Probes are
rate-limited, state changes are not: when the pod's state (no pod / on a node / Ready) or the pod
itself changes, the pod informer's event wakes the notebook and it is judged at once, so `Idle`
follows a pod that starts or stops within seconds (a pod seen turning Ready is probed half a
second later, when its Service's endpoints normally route to it). A failed Jupyter probe of a
notebook that has had a verdict is retried sooner (2 s, 8 s, then the interval): the route to
its pod may be changing. Before a first verdict, "can't tell yet" is held for the starting grace
and the next probe waits for the grace's end (then the interval): a quick retry would only show
the verdict sooner, in a status write of its own all the same.
Status is applied only when our part of it differs from the cache. Pausing is one merge patch
guarded by the cached resourceVersion: if the user changed the notebook meanwhile, the patch
conflicts and the next pass looks again. What wakes it is declared in `wiring.py`.

The timing rules are `notebook_controller.idle.rules`; the crash-loop decision is documented
there and in docs/idle.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

import aiohttp
import structlog

from notebook_controller.api.models import (
    CONDITION_IDLE,
    RECLAIMED_AT_ANNOTATION,
    Notebook,
    NotebookType,
)
from notebook_controller.builders.names import http_service_name
from notebook_controller.builders.services import HTTP_SERVICE_PORT
from notebook_controller.builders.status import pod_readiness
from notebook_controller.builders.workload import main_container_index, nb_prefix
from notebook_controller.idle import metrics
from notebook_controller.idle.jupyter import (
    IN_CLUSTER_URL_TEMPLATE,
    ApiServerProxy,
    DirectTransport,
    JupyterProbe,
    JupyterRoute,
    JupyterTransport,
    ProbeMode,
)
from notebook_controller.idle.policy import IdlePolicy, format_duration
from notebook_controller.idle.policy_source import PolicySource
from notebook_controller.idle.rules import (
    TRUE,
    UNKNOWN,
    ActivityState,
    Decision,
    Observation,
    PodState,
    Reason,
    ReclaimReason,
    decide,
    probe_failed_words,
)
from notebook_controller.idle.ssh import SshActivity, read_ssh_activity
from notebook_controller.reconcilers.notebooks import (
    NOTEBOOKS,
    PART_IDLE,
    load_notebook,
    notebook_pod,
    notebook_status_part,
)
from notebook_controller.runtime.apply import SharedStatus
from notebook_controller.runtime.clock import parse_rfc3339, rfc3339, utcnow
from notebook_controller.runtime.conditions import condition, find_condition, same_condition
from notebook_controller.runtime.events import NORMAL, EventRecorder
from notebook_controller.runtime.kinds import NAMESPACES
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.objects import JsonDict
from notebook_controller.runtime.reconcile import Request, Result
from notebook_controller.runtime.store import Store

log = structlog.get_logger(__name__)

FIELD_MANAGER: Final = "notebook-controller-idle"
NAMESPACE_LABELS_TTL: Final = 60.0
CONFLICT_RETRY_SECONDS: Final = 1.0
FIRST_PROBE_DELAY: Final = timedelta(seconds=0.5)
"""A pod seen turning Ready is first probed this much later (its Service's endpoints lag)."""
RETRIES: Final = (timedelta(seconds=2), timedelta(seconds=8))
"""After the first and the second failed Jupyter probe in a row, the next comes this soon;
after more, at the probe interval. (Before a notebook's first verdict: at the end of its
starting grace, then at the interval.)"""
# Decisions read off the pod alone (no probe ran).
_POD_STATE_ONLY: Final = frozenset({Reason.NOT_RUNNING, Reason.NOT_READY})
STARTING_GRACE_SECONDS: Final = 10.0
""""Can't tell yet" is held this long while the notebook has had no verdict yet."""


@dataclass(frozen=True)
class _Tracked:
    uid: str
    state: ActivityState
    next_probe: datetime
    policy_version: str
    pod: tuple[PodState, str | None]
    """The pod's state and uid the last decision saw: when they change, decide again at once."""
    failures: int = 0
    """Jupyter probes of this pod failed in a row (for the retry back-off)."""


class NamespaceLabels:
    """Namespace labels for the policy's selector, fetched on demand (GET of one Namespace, never
    a list) and kept a minute. None when RBAC doesn't let the controller read that Namespace (a
    namespace-scoped install without the tenant Role's `get namespaces` rule)."""

    def __init__(self, client: KubeClient, ttl: float = NAMESPACE_LABELS_TTL) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[str, tuple[float, dict[str, str] | None]] = {}

    async def get(self, namespace: str) -> dict[str, str] | None:
        cached = self._cache.get(namespace)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        labels: dict[str, str] | None = None
        try:
            found = await self.client.get(NAMESPACES, None, namespace)
            labels = dict(((found or {}).get("metadata") or {}).get("labels") or {})
        except ApiError as error:
            if error.status != 403:
                raise
        self._cache[namespace] = (time.monotonic(), labels)
        return labels


class IdleReconciler:
    name = "idle"

    def __init__(
        self,
        client: KubeClient,
        recorder: EventRecorder,
        *,
        notebooks: Store,
        pods: Store,
        policies: PolicySource,
        route: JupyterRoute | None = None,
        probe: JupyterProbe | None = None,
        max_concurrent_probes: int = 16,
        now: Callable[[], datetime] = utcnow,
        coalesce_seconds: float = 0.0,
        shared: SharedStatus | None = None,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.notebooks = notebooks
        self.pods = pods
        self.policies = policies
        self.route = route or JupyterRoute(ProbeMode.DIRECT, IN_CLUSTER_URL_TEMPLATE)
        self.max_concurrent_probes = max_concurrent_probes
        self.now = now
        self.namespaces = NamespaceLabels(client)
        self._probe = probe
        self._session: aiohttp.ClientSession | None = None
        self._exec_slots = asyncio.Semaphore(max_concurrent_probes)
        self._tracked: dict[Request, _Tracked] = {}
        self._idle: set[Request] = set()
        # Our part of the status, remembered until the cache shows our last write of it, so a
        # pass that runs before then doesn't send it again.
        self._status = notebook_status_part(
            client,
            PART_IDLE,
            shared,
            coalesce_seconds=coalesce_seconds,
            clock=lambda: self.now().timestamp(),
        )

    # --- lifecycle ------------------------------------------------------------------------

    def probe(self) -> JupyterProbe:
        """The shared probe, made on first use (inside the running loop: a direct probe's
        ClientSession must be)."""
        if self._probe is None:
            self._probe = JupyterProbe(
                self._transport(), max_concurrency=self.max_concurrent_probes
            )
        return self._probe

    def _transport(self) -> JupyterTransport:
        if self.route.mode is ProbeMode.APISERVER_PROXY:
            # the kube client's session: its credentials, CA and connection pool
            host = str(self.client.configuration.host)
            return ApiServerProxy(self.client, host, service_port=HTTP_SERVICE_PORT)
        self._session = aiohttp.ClientSession()
        return DirectTransport(self._session, self.route.url_template or IN_CLUSTER_URL_TEMPLATE)

    async def close_on_exit(self) -> None:
        """A manager runnable: idles until cancelled at shutdown, then closes the session."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._session is not None:
                await self._session.close()

    # --- reconcile ------------------------------------------------------------------------

    async def reconcile(self, request: Request) -> Result:
        notebook = load_notebook(self.notebooks, request)
        if notebook is None:
            self._untrack(request)
            return Result()
        raw = self.notebooks.get(request.namespace, request.name) or {}
        if not notebook.spec.paused and RECLAIMED_AT_ANNOTATION in _annotations(raw):
            # Resumed (whatever the policy says now, which may no longer cover it): the next pod
            # starts a fresh clock, and a later pause by the user must not read as a reclaim.
            await self._clear_reclaimed(notebook)
        loaded = await self.policies.current()
        if notebook.spec.paused or not await self._covered(notebook, loaded.policy):
            self._untrack(request)
            held = await self._apply_status(notebook, raw, None, ssh_seen_at=None)
            return Result(requeue_after=held)
        now = self.now()
        pod = notebook_pod(self.pods, notebook)
        pod_seen = (_pod_state(pod), _uid(pod))
        tracked = self._tracked.get(request)
        if tracked is not None and tracked.uid != notebook.uid:
            tracked = None  # a new notebook of the same name
        if pod_seen[0] is PodState.READY and (tracked is None or tracked.pod != pod_seen):
            # A pod just turned Ready: what was held back (NotRunning, NotReady) is moot, the
            # probes' news gets a window of its own.
            self._status.settled(request)
            if tracked is not None and tracked.policy_version == loaded.version:
                # Seen turning Ready (not found Ready at start): the Service's endpoints follow
                # the pod's readiness a moment later, and a probe before them fails, so the
                # first one waits that moment (Ready waits for its verdict, READY_MERGE_SECONDS).
                self._tracked[request] = replace(
                    tracked, pod=pod_seen, failures=0, next_probe=now + FIRST_PROBE_DELAY
                )
                return Result(requeue_after=FIRST_PROBE_DELAY.total_seconds())
        probed_recently = (
            tracked is not None
            and tracked.policy_version == loaded.version
            and tracked.pod == pod_seen  # the pod started, stopped or was replaced: look now
        )
        if tracked is not None and probed_recently and now < tracked.next_probe:
            return Result(requeue_after=(tracked.next_probe - now).total_seconds())
        previous = tracked.state if tracked is not None else ActivityState()
        observation = await self._observe(notebook, raw, pod, loaded.policy)
        decision = decide(previous, observation, loaded.policy, now)
        failures = 0
        if decision.reason is Reason.PROBE_FAILED:
            same_pod = tracked is not None and tracked.pod == pod_seen
            failures = (tracked.failures if tracked is not None and same_pod else 0) + 1
        # Remembered as due again until the writes below succeed: a retry after a failed write
        # probes and decides afresh instead of waiting out the interval.
        tracked = _Tracked(notebook.uid, decision.state, now, loaded.version, pod_seen, failures)
        self._tracked[request] = tracked
        self._count_idle(request, decision.status == TRUE)
        log.debug(
            "activity probed",
            idle=decision.status,
            reason=decision.reason,
            pod=observation.pod,
            last_activity=decision.state.last_activity,
        )
        held = await self._apply_status(
            notebook, raw, decision, now if decision.ssh_active else None
        )
        if decision.reclaim is not None:
            return await self._reclaim(request, notebook, raw, decision, loaded.policy)
        interval = _next_probe_in(loaded.policy.probe_interval, failures)
        if held is not None:
            # Still due: the next pass (a retry, or the window's end) decides again and writes.
            # A failed probe before a first verdict waits for the window's end (the starting
            # grace): a quick retry would only show the verdict sooner, in a write of its own
            # all the same. The grace stands in for the quick retries: after it, the interval.
            if failures and _before_first_verdict(self._status.status(request, raw)):
                self._tracked[request] = replace(tracked, failures=len(RETRIES))
                return Result(requeue_after=held)
            return Result(requeue_after=min(held, interval.total_seconds()))
        self._tracked[request] = replace(tracked, next_probe=now + interval)
        return Result(requeue_after=interval.total_seconds())

    async def _covered(self, notebook: Notebook, policy: IdlePolicy) -> bool:
        """Only jupyter notebooks, only where the policy applies and isn't opted out of."""
        if not policy.enabled or notebook.spec.type is not NotebookType.JUPYTER:
            return False
        if policy.opted_out(notebook.metadata.get("annotations") or {}):
            return False
        if policy.namespace_selector.is_empty:
            return True
        labels = await self.namespaces.get(notebook.namespace)
        if labels is None:  # not covered: never pause what the selector may not choose
            await self.policies.namespace_unreadable(notebook.namespace)
            return False
        return policy.covers_namespace(labels)

    # --- observing ------------------------------------------------------------------------

    async def _observe(
        self, notebook: Notebook, raw: JsonDict, pod: JsonDict | None, policy: IdlePolicy
    ) -> Observation:
        state = _pod_state(pod)
        stored = self._status.status(Request(notebook.namespace, notebook.name), raw)
        # What outlives this process: the pod's own record of when it stopped being Ready, and
        # the SSH session an earlier pass (maybe another controller's) wrote to the status.
        seen = Observation(
            state,
            _uid(pod),
            pod_started=None if pod is None else _pod_started(pod),
            not_ready_since=_pod_not_ready_since(pod),
            ssh_recorded=_time_or_none((stored.get("ssh") or {}).get("lastSshClientActivity")),
        )
        if pod is None or state is not PodState.READY:
            return seen
        timeout = policy.probe_timeout.total_seconds()
        jupyter_probe = self.probe().probe(
            namespace=notebook.namespace,
            service=http_service_name(notebook.name),
            prefix=nb_prefix(notebook),
            request_timeout=timeout,
        )
        if not notebook.spec.ssh_enabled:
            return replace(seen, jupyter=await jupyter_probe)
        async with asyncio.TaskGroup() as group:
            jupyter = group.create_task(jupyter_probe)
            ssh = group.create_task(self._ssh_activity(pod, timeout))
        return replace(seen, jupyter=jupyter.result(), ssh=ssh.result())

    async def _ssh_activity(self, pod: JsonDict, exec_timeout: float) -> SshActivity:
        metadata = pod["metadata"]
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        container = str(containers[main_container_index(containers)].get("name", ""))

        async def exec_in_pod(command: Sequence[str]) -> str:
            return await self.client.exec(
                metadata["namespace"],
                metadata["name"],
                container,
                command,
                exec_timeout=exec_timeout,
            )

        async with self._exec_slots:
            return await read_ssh_activity(exec_in_pod)

    # --- writing --------------------------------------------------------------------------

    async def _apply_status(
        self,
        notebook: Notebook,
        raw: JsonDict,
        decision: Decision | None,
        ssh_seen_at: datetime | None,
    ) -> float | None:
        """Apply our part of the status when it differs from the cache's; return for how long
        the change is held back instead (coalescing: only what the pod's state alone decides,
        NotRunning and NotReady, or the condition's removal; a probe's verdict goes at once).

        Fields this manager stops sending are removed by the server, so the Idle condition goes
        away with `decision=None`, and lastSshClientActivity, sent again on every write while
        SSH is enabled, goes when SSH is turned off (with the rest of `status.ssh`, which the
        status reconciler stops sending then).
        """
        status = self._status.status(Request(notebook.namespace, notebook.name), raw)
        current = find_condition(status.get("conditions") or [], CONDITION_IDLE)
        stored_ssh = (status.get("ssh") or {}).get("lastSshClientActivity")
        ssh_activity = rfc3339(ssh_seen_at) if ssh_seen_at is not None else stored_ssh
        if not notebook.spec.ssh_enabled:
            ssh_activity = None
        idle = None
        if decision is not None:
            idle = condition(
                CONDITION_IDLE,
                decision.status,
                decision.reason.value,
                _streak_message(decision, current),
                previous=current,
                now=self.now(),
            )
        request = Request(notebook.namespace, notebook.name)
        never_ran = (
            current is None and decision is not None and decision.reason is Reason.NOT_RUNNING
        )
        if (never_ran or same_condition(idle, current)) and ssh_activity == stored_ssh:
            # (a notebook whose pod never reached a node gets no Idle condition: it holds
            # nothing, nothing is reclaimed, Ready says why; a thousand notebooks waiting in a
            # queue for GPUs cost no write of it)
            self._status.settled(request)
            return None
        # A verdict (active, idle) goes at once, and so does the condition's removal from a
        # paused notebook (a stale "will be paused at" beside Suspended misleads); "can't tell"
        # (no pod, not Ready, a failed probe: often the endpoints lagging a just-Ready pod)
        # waits for the window.
        urgent = (decision is not None and decision.status != UNKNOWN) or (
            decision is None and notebook.spec.paused
        )
        # Until a first verdict, "can't tell yet" (the pod starting, the first probe failing
        # while its endpoints lag) is held STARTING_GRACE_SECONDS, coalescing or not: a starting
        # notebook's next news is its verdict, which goes at once (with Ready, in one write),
        # and a status write meanwhile takes it along. A pod that stays not Ready (crash-looping)
        # shows NotReady when the grace is over.
        starting = _before_first_verdict(status)
        first_news = starting and decision is not None and decision.status == UNKNOWN
        window = STARTING_GRACE_SECONDS if first_news else None
        mine: JsonDict = {}
        if idle is not None:
            mine["conditions"] = [idle]
        if ssh_activity is not None:
            mine["ssh"] = {"lastSshClientActivity": ssh_activity}
        held = self._status.hold(
            request, urgent=urgent, window=window, content=mine, even_if_off=first_news
        )
        if held is not None:
            return held
        await self._status.apply(raw, mine)
        log.info(
            "idle status applied",
            idle=None if idle is None else idle["status"],
            reason=None if idle is None else idle["reason"],
        )
        return None

    async def _reclaim(
        self,
        request: Request,
        notebook: Notebook,
        raw: JsonDict,
        decision: Decision,
        policy: IdlePolicy,
    ) -> Result:
        assert decision.reclaim is not None
        now = self.now()
        spec = raw.get("spec") or {}
        pause: JsonDict = {"runMode": "paused"} if spec.get("suspend") is None else {}
        if spec.get("suspend") is not None:
            pause["suspend"] = True
            if spec.get("runMode") is not None:
                pause["runMode"] = "paused"
        patch = {
            "metadata": {
                "resourceVersion": raw["metadata"]["resourceVersion"],
                "annotations": {RECLAIMED_AT_ANNOTATION: rfc3339(now)},
            },
            "spec": pause,
        }
        try:
            await self.client.patch(
                NOTEBOOKS, notebook.namespace, notebook.name, patch, field_manager=FIELD_MANAGER
            )
        except ApiError as error:
            if not error.is_conflict:
                raise
            # The notebook changed since the cache was read: look again with fresh eyes.
            self._tracked.pop(request, None)
            log.info("reclaim deferred: notebook changed meanwhile")
            return Result(requeue_after=CONFLICT_RETRY_SECONDS)
        self._untrack(request)
        metrics.NOTEBOOKS_RECLAIMED.labels(decision.reclaim.value).inc()
        message = _reclaim_message(decision, policy)
        log.info("notebook reclaimed", reason=decision.reclaim, message=message)
        await self.recorder.event(raw, NORMAL, "Reclaimed", message)
        return Result()

    async def _clear_reclaimed(self, notebook: Notebook) -> None:
        patch = {"metadata": {"annotations": {RECLAIMED_AT_ANNOTATION: None}}}
        await self.client.patch(
            NOTEBOOKS, notebook.namespace, notebook.name, patch, field_manager=FIELD_MANAGER
        )
        log.info("notebook resumed after a reclaim")

    # --- bookkeeping ----------------------------------------------------------------------

    def _untrack(self, request: Request) -> None:
        self._tracked.pop(request, None)
        self._count_idle(request, False)
        if self.notebooks.get(request.namespace, request.name) is None:
            self._status.forget(request)

    def _count_idle(self, request: Request, idle: bool) -> None:
        if idle:
            self._idle.add(request)
        else:
            self._idle.discard(request)
        metrics.NOTEBOOKS_IDLE.set(len(self._idle))


def _annotations(raw: JsonDict) -> dict[str, str]:
    return dict((raw.get("metadata") or {}).get("annotations") or {})


def _uid(obj: JsonDict | None) -> str | None:
    return None if obj is None else str(obj["metadata"].get("uid", ""))


def _pod_started(pod: JsonDict) -> datetime | None:
    started = (pod.get("status") or {}).get("startTime")
    return parse_rfc3339(started) if isinstance(started, str) else None


def _time_or_none(value: Any) -> datetime | None:
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def _pod_not_ready_since(pod: JsonDict | None) -> datetime | None:
    """When the pod's Ready condition turned to what it is now, if that isn't True: the
    kubelet's record of the current not-Ready stretch (from the pod's start for a pod that was
    never Ready), which a restarted controller reads back unchanged."""
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") == "True":
        return None
    return _time_or_none(ready.get("lastTransitionTime"))


def _before_first_verdict(status: JsonDict) -> bool:
    """No `Idle` condition yet, or one the pod's state alone decided (the pod starting): the
    notebook's activity has not been judged since its pod started."""
    current = find_condition(status.get("conditions") or [], CONDITION_IDLE)
    return current is None or current.get("reason") in _POD_STATE_ONLY


def _next_probe_in(interval: timedelta, failures: int) -> timedelta:
    """The probe interval; after `failures` failed probes in a row, 2 s, 8 s, then it: one
    quick retry (the route to the pod may be changing), one more, then the interval; a starting
    notebook's one retry is at the end of its starting grace instead (reconcile). A Ready pod's
    Jupyter answers (its readiness probe is Jupyter's api/status), so a probe that keeps failing
    is the route to it, and is probed for nothing: each probe costs the controller CPU, and a
    thousand notebooks whose servers don't answer cost a thousand probes per interval, not a
    burst of retries within it."""
    if failures <= 0:
        return interval
    if failures <= len(RETRIES):
        return min(interval, RETRIES[failures - 1])
    return interval


def pod_news(old: JsonDict, new: JsonDict) -> bool:
    """A pod update the idle reconciler must judge: what it reads of a pod changed (its state,
    identity, start, or the start of its not-Ready stretch). Others (a container's status
    moving within the same state) wait for the next probe."""
    return _pod_facts(old) != _pod_facts(new)


def off_node(pod: JsonDict) -> bool:
    """A pod not on a node (not scheduled yet, or going away): the idle reconciler decides of it
    what it decides of no pod, "not running". So a new pod's add is no news (whoever made it woke
    the reconciler before: the notebook's add, the old pod's delete); its scheduling is."""
    return _pod_state(pod) is PodState.NOT_RUNNING


def _pod_facts(pod: JsonDict) -> tuple[object, ...]:
    return (_pod_state(pod), _uid(pod), _pod_started(pod), _pod_not_ready_since(pod))


def _pod_state(pod: JsonDict | None) -> PodState:
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return PodState.NOT_RUNNING
    if not (pod.get("spec") or {}).get("nodeName"):
        return PodState.NOT_RUNNING
    return PodState.READY if pod_readiness(pod).ready else PodState.NOT_READY


def _streak_message(decision: Decision, current: JsonDict | None) -> str:
    """The decision's message, but a failing probe's keeps the words of the first failure of its
    kind in a row: what the API server or the network says of an unanswering server changes
    from probe to probe ("no endpoints available", "no route to host", "i/o timeout"), and a
    message that changes with every probe costs a status write per probe."""
    if decision.failure is None or current is None or current.get("reason") != decision.reason:
        return decision.message
    before = str(current.get("message") or "")
    return before if before.startswith(probe_failed_words(decision.failure)) else decision.message


def _reclaim_message(decision: Decision, policy: IdlePolicy) -> str:
    limits = (
        f"idle timeout {format_duration(policy.idle_timeout)}"
        f" + reclaim grace {format_duration(policy.reclaim_grace)}"
    )
    last = decision.state.last_activity
    if decision.reclaim is ReclaimReason.UNREACHABLE:
        what = "its server has not been ready"
        what += f", no activity since {rfc3339(last)}" if last else ""
    else:
        what = f"no activity since {rfc3339(last)}" if last else "no activity"
    return f"Paused to free its resources: {what} ({limits}). Set it running again to resume."

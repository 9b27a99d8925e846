"""Status reconciler: the notebook's status (field manager notebook-controller-status), apart
from the idle reclaimer's part (`Idle` condition and `ssh.lastSshClientActivity`), which goes
out under the same field manager, in the same write when both change together.

It writes only when the computed status differs from the stored one, and records events for the
transitions that matter (a pod failing, a key Secret missing, the notebook getting ready). Key
Secrets are looked at only with --check-key-secrets (`secrets` is then the Secret cache).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from notebook_controller.api.models import CONDITION_IDLE, CONDITION_READY, Notebook
from notebook_controller.builders import status as status_builder
from notebook_controller.builders import workload
from notebook_controller.builders.meta import APPLIED_HASH_ANNOTATION, is_controlled_by
from notebook_controller.builders.names import pod_name, ssh_service_name, statefulset_name
from notebook_controller.builders.ssh import KeySecretProblem, key_secret_problems
from notebook_controller.idle.rules import Reason
from notebook_controller.reconcilers.notebooks import (
    PART_IDLE,
    PART_STATUS,
    load_notebook,
    notebook_status_part,
)
from notebook_controller.reconcilers.workload import RefusedWorkloads
from notebook_controller.runtime.apply import SharedStatus
from notebook_controller.runtime.clock import utcnow
from notebook_controller.runtime.conditions import find_condition
from notebook_controller.runtime.events import EventRecorder
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.objects import JsonDict, controller_uid
from notebook_controller.runtime.reconcile import Request, Result
from notebook_controller.runtime.store import Store

STATUS_EVENT_BATCH_SECONDS: Final = 0.25
"""The children's events wake the status reconciler this much later (wiring): a new notebook's
StatefulSet, its rollout and its pod arrive within it and are one reconcile, not three. The
notebook's own events wake it at once (a spec change shows in the status at once)."""
READY_MERGE_SECONDS: Final = 0.625
"""Ready turning True waits this long (when coalescing) for the idle reclaimer's first verdict
on the new pod, which it probes half a second after seeing it Ready (idle.FIRST_PROBE_DELAY):
both go out in one write, within a second of the pod's Ready reaching the controller (the
batch period, this, and the write's round trip: up to one of the event loop's 0.1 s rounds)."""
_BEFORE_READY: Final = frozenset({Reason.NOT_READY.value, Reason.NOT_RUNNING.value})


class StatusReconciler:
    name = "status"

    def __init__(
        self,
        client: KubeClient,
        recorder: EventRecorder,
        *,
        notebooks: Store,
        statefulsets: Store,
        pods: Store,
        services: Store,
        secrets: Store | None,
        external_url_base: str | None,
        refused: RefusedWorkloads | None = None,
        now: Callable[[], datetime] = utcnow,
        coalesce_seconds: float = 0.0,
        shared: SharedStatus | None = None,
    ) -> None:
        """`coalesce_seconds`: changes on the way to Ready are held back that long and sent as
        one write (see StatusApplier); Ready turning True waits up to READY_MERGE_SECONDS for
        the idle reclaimer's verdict; Ready no longer True, any change to a Ready notebook's
        status and a paused notebook's status are sent at once. `shared`: the status as the
        idle reclaimer writes it too (one per process)."""
        self.client = client
        self.recorder = recorder
        self.notebooks = notebooks
        self.statefulsets = statefulsets
        self.pods = pods
        self.services = services
        self.secrets = secrets
        self.external_url_base = external_url_base
        self.refused = refused if refused is not None else RefusedWorkloads()
        self.now = now
        self._status = notebook_status_part(
            client,
            PART_STATUS,
            shared,
            coalesce_seconds=coalesce_seconds,
            clock=lambda: self.now().timestamp(),
        )
        # The status before a held change (its events are recorded when the change goes out,
        # in our write or another part's), and when Ready was first seen turning True.
        self._held_from: dict[Request, JsonDict] = {}
        self._turning_ready_at: dict[Request, float] = {}

    @property
    def shared(self) -> SharedStatus:
        """The notebooks' status as this reconciler and the idle reclaimer write it."""
        return self._status.shared

    async def reconcile(self, request: Request) -> Result:
        notebook = load_notebook(self.notebooks, request)
        if notebook is None:
            self._forget(request)
            return Result()
        raw = self.notebooks.get(request.namespace, request.name) or {}
        current = self._status.status(request, raw)
        desired = status_builder.desired_status(
            notebook,
            current,
            self._observe(notebook),
            external_url_base=self.external_url_base,
            now=self.now(),
        )
        if not status_builder.status_changed(desired, current):
            # (a change held back may have gone out with the idle reclaimer's write)
            self._status.settled(request)
            self._turning_ready_at.pop(request, None)
            held_from = self._held_from.pop(request, None)
            if held_from is not None:
                await self._record_events(raw, held_from, desired)
            return Result()
        held = self._hold(request, notebook, current, desired)
        if held is not None:
            self._held_from.setdefault(request, current)
            return Result(requeue_after=held)
        await self._status.apply(raw, desired)
        self._turning_ready_at.pop(request, None)
        await self._record_events(raw, self._held_from.pop(request, current), desired)
        return Result()

    def _hold(
        self, request: Request, notebook: Notebook, current: JsonDict, desired: JsonDict
    ) -> float | None:
        """Seconds to hold the change back. Held: the way up (absent, then Ready=False with a
        changing reason), and Ready turning True for up to READY_MERGE_SECONDS. Not held: Ready
        no longer True, any change to a Ready notebook's status (who waited for Ready reads
        status.ssh next), and a pause's progress (a user waits for either)."""
        if notebook.spec.paused or self._status.coalesce_seconds <= 0:
            return None
        if _ready(desired) and not _ready(current):
            now = self.now().timestamp()
            left = self._turning_ready_at.setdefault(request, now) + READY_MERGE_SECONDS - now
            if left <= 0 or self._idle_verdict_offered(request):
                return None
            self._status.offer(request, desired)
            return left
        return self._status.hold(request, urgent=_ready(current), content=desired)

    def _idle_verdict_offered(self, request: Request) -> bool:
        """The idle reclaimer has judged the Ready pod and holds its verdict back (it can't
        tell yet: a first probe failed): Ready need not wait for it, it goes along now. (Its
        verdicts that go at once take our held Ready along themselves; `NotReady`/`NotRunning`
        judged the pod before it was Ready.)"""
        offered = self.shared.offered(request, PART_IDLE)
        idle = find_condition((offered or {}).get("conditions") or [], CONDITION_IDLE)
        return idle is not None and idle.get("reason") not in _BEFORE_READY

    async def _record_events(self, raw: JsonDict, before: JsonDict, after: JsonDict) -> None:
        for event in status_builder.transition_events(before, after):
            await self.recorder.event(raw, event.type, event.reason, event.message)

    def _forget(self, request: Request) -> None:
        self._status.forget(request)
        self._held_from.pop(request, None)
        self._turning_ready_at.pop(request, None)

    def _key_problems(self, notebook: Notebook) -> list[KeySecretProblem] | None:
        """None unless key Secrets are checked (--check-key-secrets: a cache of Secrets)."""
        secrets = self.secrets
        if secrets is None:
            return None
        return key_secret_problems(notebook, lambda secret: secrets.get(notebook.namespace, secret))

    def _observe(self, notebook: Notebook) -> status_builder.Observed:
        namespace = notebook.namespace

        def owned(store: Store, name: str) -> JsonDict | None:
            obj = store.get(namespace, name)
            return obj if obj is not None and is_controlled_by(obj, notebook) else None

        # built once per spec and metadata of the notebook (its pod's and StatefulSet's events
        # wake us a dozen times in between, and our status writes make new versions)
        workload_hash = self.notebooks.derived(
            namespace, notebook.name, _applied_workload_hash, reads_status=False, bounded=False
        )
        assert workload_hash is not None  # the notebook was just read from that cache
        sts = owned(self.statefulsets, statefulset_name(notebook.name))
        pod = self.pods.get(namespace, pod_name(notebook.name))
        if pod is not None and sts is not None:
            pod = pod if controller_uid(pod) == sts["metadata"].get("uid") else None
        return status_builder.Observed(
            statefulset=sts,
            pod=pod if sts is not None else None,
            ssh_service=owned(self.services, ssh_service_name(notebook.name)),
            key_problems=self._key_problems(notebook),
            workload_hash=workload_hash,
            refused=self.refused.refused(namespace, notebook.name, workload_hash),
        )


def _applied_workload_hash(raw: JsonDict) -> str:
    """The applied-hash of the StatefulSet this notebook asks for."""
    desired = workload.statefulset(Notebook.model_validate(raw))
    return str(desired["metadata"]["annotations"][APPLIED_HASH_ANNOTATION])


def _ready(status: JsonDict) -> bool:
    found = find_condition(status.get("conditions") or [], CONDITION_READY)
    return found is not None and found.get("status") == "True"


def statefulset_news(old: JsonDict, new: JsonDict) -> bool:
    """A change of the StatefulSet's status that the status reconciler reads: its rollout (the
    generation it observed, its update revision). Its replica counts move a dozen times while
    its pod starts and say nothing the pod doesn't."""
    return _rollout(old) != _rollout(new)


def _rollout(statefulset: JsonDict) -> tuple[object, object]:
    status = statefulset.get("status") or {}
    return status.get("observedGeneration"), status.get("updateRevision")


def pod_news(old: JsonDict, new: JsonDict) -> bool:
    """A pod update that can change the notebook's status: its identity, owner, revision, phase
    or readiness (with the reason and message it would show). Others (a probe's timestamps, an
    IP, a container's start time) leave the status as it is."""
    return _pod_facts(old) != _pod_facts(new)


def _pod_facts(pod: JsonDict) -> tuple[object, ...]:
    metadata = pod["metadata"]
    return (
        metadata.get("uid"),
        controller_uid(pod),
        (metadata.get("labels") or {}).get("controller-revision-hash"),
        (pod.get("status") or {}).get("phase"),
        status_builder.pod_readiness(pod),
    )

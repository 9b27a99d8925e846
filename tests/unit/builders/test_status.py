from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from notebook_controller.api.models import Notebook
from notebook_controller.builders import status as st
from notebook_controller.builders import workload
from notebook_controller.builders.meta import APPLIED_HASH_ANNOTATION
from notebook_controller.builders.ssh import KeySecretProblem
from tests.unit.builders.seeds import with_spec

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def _sts(notebook: Notebook) -> dict[str, Any]:
    desired = workload.statefulset(notebook)
    return {
        "metadata": {**desired["metadata"], "generation": 2},
        "spec": desired["spec"],
        "status": {"observedGeneration": 2, "updateRevision": "rev-2", "currentRevision": "rev-2"},
    }


def _pod(
    phase: str = "Running",
    ready: bool = True,
    containers: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    default_conditions = [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "True" if ready else "False"},
    ]
    return {
        "metadata": {
            "name": "managed-notebook-notebook-sample-0",
            "uid": "pod-uid",
            "labels": {"controller-revision-hash": "rev-2"},
        },
        "status": {
            "phase": phase,
            "conditions": conditions if conditions is not None else default_conditions,
            "containerStatuses": containers
            if containers is not None
            else [{"name": "tensorflow", "ready": ready, "state": {"running": {}}}],
        },
    }


def _observed(notebook: Notebook, pod: dict[str, Any] | None, **kwargs: Any) -> st.Observed:
    sts = _sts(notebook)
    return st.Observed(
        statefulset=sts,
        pod=pod,
        workload_hash=sts["metadata"]["annotations"][APPLIED_HASH_ANNOTATION],
        **kwargs,
    )


def _status(notebook: Notebook, observed: st.Observed, current: dict[str, Any] | None = None,
            now: datetime = NOW) -> dict[str, Any]:  # fmt: skip
    return st.desired_status(notebook, current or {}, observed, external_url_base=None, now=now)


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_running_ready_notebook(basic: Notebook) -> None:
    status = _status(basic, _observed(basic, _pod()))
    assert status["phase"] == "Running"
    assert status["url"] == "/t9k/notebooks/projects/proj/name/notebook-sample/lab"
    assert status["pod"] == {
        "reference": {"name": "managed-notebook-notebook-sample-0", "uid": "pod-uid"},
        "phase": "Running",
    }
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "PodReady")
    assert ready["message"] == "The Notebook is ready to serve"
    assert _condition(status, "Suspended")["status"] == "False"
    assert status["observedGeneration"] == 1
    assert "Idle" not in {c["type"] for c in status["conditions"]}  # the idle reclaimer's


def test_not_ready_until_the_pod_is_ready(basic: Notebook) -> None:
    status = _status(basic, _observed(basic, _pod(ready=False)))
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    assert status["phase"] == "Running"


def test_not_ready_while_the_pod_runs_an_old_template(basic: Notebook) -> None:
    pod = _pod()
    pod["metadata"]["labels"]["controller-revision-hash"] = "rev-1"
    ready = _condition(_status(basic, _observed(basic, pod)), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodOutdated")
    stale = st.Observed(statefulset=_sts(basic), pod=_pod(), workload_hash="something-else")
    ready = _condition(_status(basic, stale), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "WorkloadOutdated")


def test_every_failing_container_is_reported(basic: Notebook) -> None:
    containers = [
        {
            "name": "tensorflow",
            "image": "nope:1",
            "ready": False,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}},
        },
        {
            "name": "sidecar",
            "ready": False,
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 2}},
        },
    ]
    status = _status(
        basic, _observed(basic, _pod(phase="Pending", ready=False, containers=containers))
    )
    ready = _condition(status, "Ready")
    assert ready["reason"] == "ImagePullBackOff"
    assert "container tensorflow: cannot pull image nope:1" in ready["message"]
    assert "container sidecar keeps crashing (Error with code 2, 4 restarts)" in ready["message"]
    assert status["phase"] == "Failed"


def test_unschedulable_pod_is_pending_with_the_schedulers_message(basic: Notebook) -> None:
    conditions = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient tensorstack.dev/nvidia-gpu-percent",
        }
    ]
    pod = _pod(phase="Pending", ready=False, containers=[], conditions=conditions)
    status = _status(basic, _observed(basic, pod))
    ready = _condition(status, "Ready")
    assert ready["reason"] == "Unschedulable"
    assert "Insufficient tensorstack.dev/nvidia-gpu-percent" in ready["message"]
    assert status["phase"] == "Pending"


def test_bound_running_pod_with_a_stale_scheduling_failure_is_ready(basic: Notebook) -> None:
    # Seen on the cluster: the StatefulSet was recreated, the scheduler's failed bind of the
    # old pod ("is being deleted, cannot be assigned to a host") left PodScheduled=False on
    # the new pod of the same name, which was then bound, ran and turned Ready.
    conditions = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulerError",
            "message": 'running Bind plugin "DefaultBinder": pod ns/managed-notebook-'
            "notebook-sample-0 is being deleted, cannot be assigned to a host",
        },
        {"type": "Initialized", "status": "True"},
        {"type": "ContainersReady", "status": "True"},
        {"type": "Ready", "status": "True"},
    ]
    pod = _pod(conditions=conditions)
    pod["spec"] = {"nodeName": "kwok-cpu-0"}
    status = _status(basic, _observed(basic, pod))
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "PodReady")
    assert status["phase"] == "Running"
    # the same condition on a pod that is not bound yet still explains why it waits
    del pod["spec"]
    pending = _pod(phase="Pending", ready=False, containers=[], conditions=conditions[:1])
    ready = _condition(_status(basic, _observed(basic, pending)), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SchedulerError")


def test_a_restarted_container_terminated_in_back_off_is_a_crash_loop(basic: Notebook) -> None:
    # what the v1.37 kubelet on the real node reports between restarts of a crashing container
    containers = [
        {
            "name": "tensorflow",
            "ready": False,
            "restartCount": 3,
            "state": {"terminated": {"reason": "Error", "exitCode": 1}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
        }
    ]
    status = _status(basic, _observed(basic, _pod(ready=False, containers=containers)))
    ready = _condition(status, "Ready")
    assert ready["reason"] == "CrashLoopBackOff"
    assert ready["message"] == "container tensorflow keeps crashing (Error with code 1, 3 restarts)"
    assert status["phase"] == "Failed"
    # exited once and not restarted yet: reported as terminated, not yet as a loop
    containers[0]["restartCount"] = 0
    status = _status(basic, _observed(basic, _pod(ready=False, containers=containers)))
    assert _condition(status, "Ready")["reason"] == "ContainerTerminated"


def test_a_statefulset_the_api_server_refused_is_reported_with_its_reason(basic: Notebook) -> None:
    why = (
        'StatefulSet.apps "managed-notebook-notebook-sample" is invalid:'
        " spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000:"
        " must be between 1 and 65535, inclusive"
    )
    observed = st.Observed(statefulset=None, pod=None, refused=why)
    status = _status(basic, observed)
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidTemplate")
    assert ready["message"] == (
        f"The API server refused the notebook's StatefulSet: {why} (fix spec.template)"
    )
    assert status["phase"] == "Failed"
    events = st.transition_events({}, status)
    assert [(e.type, e.reason) for e in events] == [("Warning", "InvalidTemplate")]


def test_paused_notebook_is_suspended(basic: Notebook) -> None:
    paused = with_spec(basic, suspend=True)
    status = _status(paused, _observed(paused, None))
    assert status["phase"] == "Suspended"
    assert _condition(status, "Suspended")["status"] == "True"
    assert _condition(status, "Ready")["reason"] == "Suspended"
    assert "pod" not in status


def test_last_transition_time_moves_only_when_the_status_flips(basic: Notebook) -> None:
    first = _status(basic, _observed(basic, _pod(ready=False)))
    again = _status(basic, _observed(basic, _pod(ready=False)), current=first, now=LATER)
    assert again == first
    assert not st.status_changed(again, first)
    flipped = _status(basic, _observed(basic, _pod()), current=first, now=LATER)
    assert _condition(flipped, "Ready")["lastTransitionTime"] == "2025-01-02T03:09:05Z"
    assert _condition(flipped, "Suspended")["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    assert st.status_changed(flipped, first)


def test_fields_of_other_managers_are_not_a_change(basic: Notebook) -> None:
    mine = _status(basic, _observed(basic, _pod()))
    stored = copy.deepcopy(mine)
    stored["conditions"].insert(0, {"type": "Idle", "status": "False", "message": "active"})
    stored["ssh"] = {"lastSshClientActivity": "2025-01-01T00:00:00Z"}
    assert not st.status_changed(mine, stored)
    del stored["url"]
    assert st.status_changed(mine, stored)


def test_ssh_block_and_key_condition(ssh: Notebook) -> None:
    service = {"spec": {"clusterIP": "10.0.0.7", "ports": [{"port": 22, "nodePort": 31022}]}}
    problem = KeySecretProblem("my-public-key", "SecretNotFound", "Secret my-public-key not found")
    status = _status(ssh, _observed(ssh, _pod(), ssh_service=service, key_problems=[problem]))
    assert status["ssh"] == {
        "serviceName": "managed-notebook-ssh-notebook-sample",
        "port": 22,
        "clusterIp": "10.0.0.7",
        "nodePort": 31022,
        "protocol": "TCP",
    }
    keys = _condition(status, "SSHKeysReady")
    assert (keys["status"], keys["reason"]) == ("False", "SecretNotFound")
    assert "my-public-key" in keys["message"]
    # the notebook still runs and is ready without the key
    assert _condition(status, "Ready")["status"] == "True"


def test_unchecked_key_secrets_give_no_key_condition(ssh: Notebook) -> None:
    """Without --check-key-secrets (no Secret is read) there is no SSHKeysReady, and one set by
    an earlier run goes away: this manager no longer sends it."""
    checked = _status(ssh, _observed(ssh, _pod()))
    assert _condition(checked, "SSHKeysReady")["status"] == "True"
    unchecked = _status(ssh, _observed(ssh, _pod(), key_problems=None), current=checked)
    assert "SSHKeysReady" not in {c["type"] for c in unchecked["conditions"]}
    assert unchecked["ssh"]["serviceName"] == "managed-notebook-ssh-notebook-sample"
    assert st.status_changed(unchecked, checked)
    assert st.transition_events(checked, unchecked) == []


def test_events_on_transitions_only(basic: Notebook, ssh: Notebook) -> None:
    crash = [
        {"name": "tensorflow", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ]
    failing = _status(basic, _observed(basic, _pod(ready=False, containers=crash)))
    events = st.transition_events({}, failing)
    assert [(e.type, e.reason) for e in events] == [("Warning", "CrashLoopBackOff")]
    assert st.transition_events(failing, failing) == []
    healed = _status(basic, _observed(basic, _pod()), current=failing)
    assert [(e.type, e.reason) for e in st.transition_events(failing, healed)] == [
        ("Normal", "Ready")
    ]
    problem = KeySecretProblem("my-public-key", "SecretNotFound", "Secret my-public-key not found")
    missing = _status(ssh, _observed(ssh, _pod(), key_problems=[problem]))
    kinds = [(e.type, e.reason) for e in st.transition_events({}, missing)]
    assert ("Warning", "SecretNotFound") in kinds
    fixed = _status(ssh, _observed(ssh, _pod()), current=missing)
    assert [(e.type, e.reason) for e in st.transition_events(missing, fixed)] == [
        ("Normal", "SSHKeysValid")
    ]

"""The host-key Secret is POSTed, never read: once per pod that may need it, 409 means it exists
(on the fake API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from notebook_controller.reconcilers.ssh import SSHReconciler, pod_started
from notebook_controller.runtime.kinds import SECRETS
from notebook_controller.runtime.kube import ApiError
from notebook_controller.runtime.reconcile import Request
from notebook_controller.runtime.store import Store
from tests.fake.api import FakeApi, Write
from tests.unit.builders.seeds import SEED_SSH

REQUEST = Request("proj", "notebook-sample")
POD = "managed-notebook-notebook-sample-0"
STARTED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


HOST_KEY = "managed-notebook-hostkey-notebook-sample"


class Secrets:
    """The fake API's view of the namespace's Secrets."""

    def __init__(self) -> None:
        self.api = FakeApi([SECRETS])

    @property
    def posts(self) -> list[Write]:
        return [w for w in self.api.writes if (w.verb, w.kind) == ("create", "Secret")]

    @property
    def exists(self) -> bool:
        return self.api.stored(SECRETS, "proj", HOST_KEY) is not None


def notebook(uid: str = "nb-1", **spec: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(SEED_SSH)
    raw["metadata"].update(namespace="proj", uid=uid, generation=1, resourceVersion="1")
    raw["spec"].update(spec)
    return raw


def pod(uid: str, *, started: bool, created: datetime = STARTED_AT) -> dict[str, Any]:
    state = {"running": {}} if started else {"waiting": {"reason": "ContainerCreating"}}
    return {
        "metadata": {
            "namespace": "proj",
            "name": POD,
            "uid": uid,
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "labels": {"notebook.tensorstack.dev/name": "notebook-sample"},
        },
        "status": {"containerStatuses": [{"name": "notebook", "state": state}]},
    }


Setup = tuple[SSHReconciler, Secrets, Store, Store]


@pytest.fixture
def setup() -> Setup:
    client, notebooks, pods = Secrets(), Store(), Store()
    reconciler = SSHReconciler(client.api, notebooks, pods, STARTED_AT)  # type: ignore[arg-type]
    return reconciler, client, notebooks, pods


async def test_made_before_the_first_pod_and_asked_once_per_pod(setup: Setup) -> None:
    reconciler, client, notebooks, pods = setup
    notebooks.upsert(notebook())
    await reconciler.reconcile(REQUEST)
    assert len(client.posts) == 1
    secret = client.api.stored(SECRETS, "proj", HOST_KEY)
    assert secret is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "nb-1"
    assert set(secret["data"]) == {"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"}
    await reconciler.reconcile(REQUEST)
    assert len(client.posts) == 1

    # its pod: asked once more (409), however often the pod changes, started or not
    pods.upsert(pod("pod-1", started=False))
    await reconciler.reconcile(REQUEST)
    pods.upsert(pod("pod-1", started=True))
    await reconciler.reconcile(REQUEST)
    assert len(client.posts) == 2 and client.exists


async def test_pods_running_before_the_process_started_cost_no_request(setup: Setup) -> None:
    reconciler, client, notebooks, pods = setup
    notebooks.upsert(notebook())
    pods.upsert(pod("pod-1", started=True, created=STARTED_AT - timedelta(hours=1)))
    await reconciler.reconcile(REQUEST)
    assert client.posts == []
    # one of them not started yet is asked for, though
    pods.upsert(pod("pod-1", started=False, created=STARTED_AT - timedelta(hours=1)))
    await reconciler.reconcile(REQUEST)
    assert len(client.posts) == 1


async def test_a_deleted_secret_comes_back_for_the_next_pod(setup: Setup) -> None:
    reconciler, client, notebooks, pods = setup
    notebooks.upsert(notebook())
    pods.upsert(pod("pod-1", started=True))
    await reconciler.reconcile(REQUEST)
    assert client.exists
    await client.api.delete(SECRETS, "proj", HOST_KEY)  # someone deletes the Secret, then the pod
    pods.upsert(pod("pod-2", started=True))  # however fast it is seen running (KWOK)
    await reconciler.reconcile(REQUEST)
    assert len(client.posts) == 2 and client.exists


async def test_nothing_while_ssh_is_off_or_the_notebook_is_paused(setup: Setup) -> None:
    reconciler, client, notebooks, _ = setup
    notebooks.upsert(notebook(ssh={"enabled": False, "authorized_keys": ["k"]}))
    await reconciler.reconcile(REQUEST)
    notebooks.upsert(notebook(runMode="paused"))
    await reconciler.reconcile(REQUEST)
    assert client.posts == []
    notebooks.upsert(notebook(runMode="running"))  # resumed
    await reconciler.reconcile(REQUEST)
    assert len(client.posts) == 1


async def test_a_new_notebook_of_the_same_name_asks_again(setup: Setup) -> None:
    reconciler, client, notebooks, _ = setup
    notebooks.upsert(notebook("nb-1"))
    await reconciler.reconcile(REQUEST)
    notebooks.upsert(notebook("nb-2"))
    await reconciler.reconcile(REQUEST)
    assert len(client.posts) == 2


async def test_a_refused_post_fails_the_reconcile_and_is_retried(setup: Setup) -> None:
    reconciler, client, notebooks, _ = setup
    notebooks.upsert(notebook())
    client.api.forbidden.add(("create", "secrets"))
    with pytest.raises(ApiError) as refused:
        await reconciler.reconcile(REQUEST)
    assert refused.value.status == 403
    client.api.forbidden.clear()
    await reconciler.reconcile(REQUEST)
    assert len(client.posts) == 2 and client.exists


def test_a_pod_has_started_once_any_container_ran() -> None:
    assert not pod_started({"status": {}})
    assert not pod_started(pod("p", started=False))
    assert pod_started(pod("p", started=True))
    crashed = {
        "status": {
            "containerStatuses": [
                {"state": {"waiting": {}}, "lastState": {"terminated": {"exitCode": 1}}}
            ]
        }
    }
    assert pod_started(crashed)
    init_running: dict[str, Any] = {
        "status": {"initContainerStatuses": [{"state": {"running": {}}}]}
    }
    assert pod_started(init_running)

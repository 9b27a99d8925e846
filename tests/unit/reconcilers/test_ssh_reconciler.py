"""The host-key Secret is POSTed, never read: once per pod that may need it, 409 means it exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from notebook_controller.reconcilers.ssh import SSHReconciler, pod_started
from notebook_controller.runtime.kube import ApiError
from notebook_controller.runtime.reconcile import Request
from notebook_controller.runtime.store import Store
from tests.unit.builders.seeds import SEED_SSH

REQUEST = Request("proj", "notebook-sample")
POD = "managed-notebook-notebook-sample-0"
STARTED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class SecretsClient:
    """Stands in for KubeClient.request: POST /secrets, 201 the first time, then 409."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.exists = False
        self.status = 0  # other than 0: every POST fails with it

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert (method, path) == ("POST", "/api/v1/namespaces/proj/secrets")
        self.posts.append(kwargs["body"])
        if self.status:
            raise ApiError(self.status, "Forbidden", "no")
        if self.exists:
            raise ApiError(409, "AlreadyExists", "secrets already exists")
        self.exists = True
        return dict(kwargs["body"])


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


Setup = tuple[SSHReconciler, SecretsClient, Store, Store]


@pytest.fixture
def setup() -> Setup:
    client, notebooks, pods = SecretsClient(), Store(), Store()
    reconciler = SSHReconciler(client, notebooks, pods, STARTED_AT)  # type: ignore[arg-type]
    return reconciler, client, notebooks, pods


async def test_made_before_the_first_pod_and_asked_once_per_pod(setup: Setup) -> None:
    reconciler, client, notebooks, pods = setup
    notebooks.upsert(notebook())
    await reconciler.reconcile(REQUEST)
    [secret] = client.posts
    assert secret["metadata"]["name"] == "managed-notebook-hostkey-notebook-sample"
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
    client.exists = False  # someone deletes the Secret, then the pod
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
    client.status = 403
    with pytest.raises(ApiError):
        await reconciler.reconcile(REQUEST)
    client.status = 0
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

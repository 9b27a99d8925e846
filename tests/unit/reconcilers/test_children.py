"""The workload, services and ssh reconcilers' decisions, run in-process on the fake API: what
they write on a new notebook, that a second pass writes nothing, how they heal a tampered child,
wait for a lagging cache or a namesake's garbage collection, and meet the API server's 409 and
422 answers."""

from __future__ import annotations

import pytest

from notebook_controller.reconcilers.notebooks import NOTEBOOKS, WAIT_FOR_GC_SECONDS
from notebook_controller.reconcilers.ssh import SSHReconciler
from notebook_controller.runtime.apply import RECENT_WRITE_SECONDS
from notebook_controller.runtime.controller import Controller
from notebook_controller.runtime.kinds import SECRETS, SERVICES, STATEFULSETS
from notebook_controller.runtime.kube import ApiError
from notebook_controller.runtime.objects import JsonDict, controller_owner
from notebook_controller.runtime.reconcile import Result, TerminalError
from tests.fake.world import NB, NS, REQUEST, World

STS = f"managed-notebook-{NB}"
HTTP = f"managed-notebook-http-{NB}"
SSH = f"managed-notebook-ssh-{NB}"
HOST_KEY = f"managed-notebook-hostkey-{NB}"


def sts_image(world: World) -> str:
    sts = world.api.stored(STATEFULSETS, NS, STS)
    assert sts is not None
    return str(sts["spec"]["template"]["spec"]["containers"][0]["image"])


# --- workload -------------------------------------------------------------------------------


async def test_workload_creates_the_statefulset_controlled_by_the_notebook() -> None:
    world = World()
    notebook = await world.create_notebook()
    world.api.reset_writes()
    assert await world.workload.reconcile(REQUEST) == Result()
    assert world.writes() == [("apply", "StatefulSet", "notebook-controller-workload")]
    sts = world.api.stored(STATEFULSETS, NS, STS)
    assert sts is not None
    owner = controller_owner(sts)
    assert owner is not None
    assert (owner["kind"], owner["uid"]) == ("Notebook", notebook["metadata"]["uid"])


async def test_workload_second_pass_writes_nothing() -> None:
    world = World()
    await world.create_notebook()
    await world.workload.reconcile(REQUEST)
    world.api.reset_writes()
    assert await world.workload.reconcile(REQUEST) == Result()
    assert world.writes() == []


async def test_workload_heals_an_edited_and_a_deleted_statefulset() -> None:
    world = World()
    await world.create_notebook()
    await world.workload.reconcile(REQUEST)
    containers = [{"name": "notebook", "image": "someone-else:2"}]
    tamper: JsonDict = {"spec": {"template": {"spec": {"containers": containers}}}}
    await world.api.patch(STATEFULSETS, NS, STS, tamper, field_manager="kubectl-edit")
    assert sts_image(world) == "someone-else:2"

    await world.workload.reconcile(REQUEST)
    assert sts_image(world) == "jupyter:1"

    await world.api.delete(STATEFULSETS, NS, STS)
    # Just after our own write, a missing object may be the cache not showing it yet: look
    # again when that write is old enough to be trusted gone.
    wait = (await world.workload.reconcile(REQUEST)).requeue_after
    assert wait is not None and 0 < wait <= RECENT_WRITE_SECONDS
    assert world.api.stored(STATEFULSETS, NS, STS) is None
    world.wait(wait)
    assert await world.workload.reconcile(REQUEST) == Result()
    assert world.api.stored(STATEFULSETS, NS, STS) is not None


async def test_workload_follows_a_spec_change() -> None:
    world = World()
    await world.create_notebook()
    await world.workload.reconcile(REQUEST)
    containers = [{"name": "notebook", "image": "jupyter:2"}]
    await world.edit_notebook({"spec": {"template": {"spec": {"containers": containers}}}})
    world.api.reset_writes()
    await world.workload.reconcile(REQUEST)
    assert world.writes() == [("apply", "StatefulSet", "notebook-controller-workload")]
    assert sts_image(world) == "jupyter:2"


async def test_workload_waits_for_a_lagging_cache_instead_of_applying_twice() -> None:
    world = World()
    await world.create_notebook()
    with world.api.lagging(STATEFULSETS):
        await world.workload.reconcile(REQUEST)
        world.api.reset_writes()
        result = await world.workload.reconcile(REQUEST)  # the cache doesn't show it yet
        assert world.writes() == []
        assert result.requeue_after is not None
        assert 0 < result.requeue_after <= RECENT_WRITE_SECONDS
    assert await world.workload.reconcile(REQUEST) == Result()  # caught up: nothing to do
    assert world.writes() == []


async def test_workload_leaves_a_deleted_namesakes_statefulset_to_garbage_collection() -> None:
    world = World()
    await world.create_notebook()
    await world.workload.reconcile(REQUEST)
    # the notebook is deleted and made again under the same name; GC hasn't run yet
    await world.api.delete(NOTEBOOKS, NS, NB)
    await world.api.create(STATEFULSETS, NS, namesakes_statefulset(world))
    await world.create_notebook()
    world.api.reset_writes()
    assert await world.workload.reconcile(REQUEST) == Result(requeue_after=WAIT_FOR_GC_SECONDS)
    assert world.writes() == []


def namesakes_statefulset(world: World) -> JsonDict:
    reference = {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "name": NB,
        "uid": "uid-of-the-deleted-namesake",
        "controller": True,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": STS, "namespace": NS, "ownerReferences": [reference]},
        "spec": {"replicas": 1},
    }


def refuse_port_70000(sts: JsonDict) -> str | None:
    containers = sts["spec"]["template"]["spec"]["containers"]
    for index, container in enumerate(containers):
        for port in container.get("ports") or []:
            if not 1 <= port["containerPort"] <= 65535:
                return (
                    f'StatefulSet.apps "{STS}" is invalid: spec.template.spec.containers[{index}]'
                    ".ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535"
                )
    return None


async def test_an_invalid_template_is_terminal_reported_in_ready_and_heals() -> None:
    world = World()
    world.api.validators[STATEFULSETS.plural] = refuse_port_70000
    sidecar = {"name": "sidecar", "image": "busybox:1", "ports": [{"containerPort": 70000}]}
    containers = [{"name": "notebook", "image": "jupyter:1"}, sidecar]
    await world.create_notebook(template={"spec": {"containers": containers}})

    with pytest.raises(TerminalError, match="must be between 1 and 65535"):
        await world.workload.reconcile(REQUEST)
    assert world.api.stored(STATEFULSETS, NS, STS) is None
    await world.status.reconcile(REQUEST)
    ready = condition_of(world, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidTemplate")
    assert world.notebook()["status"]["phase"] == "Failed"
    assert len(world.events("InvalidTemplate")) == 1

    containers = [{"name": "notebook", "image": "jupyter:1"}]
    await world.edit_notebook({"spec": {"template": {"spec": {"containers": containers}}}})
    assert await world.workload.reconcile(REQUEST) == Result()
    await world.status.reconcile(REQUEST)
    assert condition_of(world, "Ready")["reason"] != "InvalidTemplate"


def condition_of(world: World, type_: str) -> JsonDict:
    conditions = world.notebook()["status"]["conditions"]
    (found,) = [c for c in conditions if c["type"] == type_]
    return dict(found)


# --- services -------------------------------------------------------------------------------


async def test_services_make_http_always_and_ssh_while_enabled() -> None:
    world = World()
    await world.create_notebook(ssh=True)
    await world.services_reconciler.reconcile(REQUEST)
    assert {s["metadata"]["name"] for s in world.api.objects(SERVICES, NS)} == {HTTP, SSH}
    world.api.reset_writes()
    await world.services_reconciler.reconcile(REQUEST)
    assert world.writes() == []

    await world.edit_notebook({"spec": {"ssh": {"enabled": False}}})
    await world.services_reconciler.reconcile(REQUEST)
    assert [s["metadata"]["name"] for s in world.api.objects(SERVICES, NS)] == [HTTP]


async def test_services_heal_a_changed_port() -> None:
    world = World()
    await world.create_notebook()
    await world.services_reconciler.reconcile(REQUEST)
    http = world.api.stored(SERVICES, NS, HTTP)
    assert http is not None
    ports = [{**http["spec"]["ports"][0], "port": 8080}]
    await world.api.patch(SERVICES, NS, HTTP, {"spec": {"ports": ports}}, field_manager="edit")
    await world.services_reconciler.reconcile(REQUEST)
    healed = world.api.stored(SERVICES, NS, HTTP)
    assert healed is not None and healed["spec"]["ports"][0]["port"] == 80


async def test_a_replaced_ssh_service_is_a_conflict_retried_with_backoff() -> None:
    """The cache still shows the SSH Service it deleted-and-someone-recreated: the delete's uid
    precondition fails (409), the reconcile fails, the controller retries it rate-limited."""
    world = World()
    await world.create_notebook(ssh=True)
    await world.services_reconciler.reconcile(REQUEST)
    await world.edit_notebook({"spec": {"ssh": {"enabled": False}}})
    with world.api.lagging(SERVICES):
        stale = world.api.stored(SERVICES, NS, SSH)
        assert stale is not None
        await world.api.delete(SERVICES, NS, SSH)
        del stale["metadata"]["uid"], stale["metadata"]["resourceVersion"]
        await world.api.create(SERVICES, NS, stale)  # same name, new uid
        world.api.deliver()  # the notebook's cache is current, the Service cache is not
        controller = Controller("services", world.services_reconciler)
        await controller.reconcile_one(REQUEST)
        assert controller.queue.num_requeues(REQUEST) == 1
        assert world.api.stored(SERVICES, NS, SSH) is not None  # the newcomer was not deleted
    controller.queue.shut_down()


# --- ssh ------------------------------------------------------------------------------------


async def test_ssh_posts_the_host_key_once_and_accepts_an_existing_one() -> None:
    world = World()
    await world.create_notebook(ssh=True)
    await world.ssh.reconcile(REQUEST)
    secret = world.api.stored(SECRETS, NS, HOST_KEY)
    assert secret is not None
    world.api.reset_writes()
    await world.ssh.reconcile(REQUEST)
    assert world.writes() == []  # asked once for this (no) pod

    # a new process: no memory, the Secret exists (409 AlreadyExists)
    restarted = SSHReconciler(world.api, world.notebooks, world.pods)  # type: ignore[arg-type]
    assert await restarted.reconcile(REQUEST) == Result()
    assert world.api.stored(SECRETS, NS, HOST_KEY) == secret  # POST never overwrites


async def test_ssh_asks_nothing_while_ssh_is_off_or_paused() -> None:
    world = World()
    await world.create_notebook()
    await world.ssh.reconcile(REQUEST)
    await world.edit_notebook({"spec": {"ssh": {"enabled": True}, "runMode": "paused"}})
    await world.ssh.reconcile(REQUEST)
    assert world.api.objects(SECRETS, NS) == []


async def test_the_fake_answers_a_second_post_with_already_exists() -> None:
    world = World()
    await world.create_notebook(ssh=True)
    await world.ssh.reconcile(REQUEST)
    secret = world.api.stored(SECRETS, NS, HOST_KEY)
    assert secret is not None
    with pytest.raises(ApiError) as refused:
        await world.api.create(SECRETS, NS, secret)
    assert (refused.value.status, refused.value.reason) == (409, "AlreadyExists")

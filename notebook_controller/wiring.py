"""Every controller of the notebook controller, declared in one place: what it watches, with
which predicate, which reconciler it runs (controller-runtime's builder, in one file).

One informer per kind, shared by the controllers that read it; child informers select on
`app.kubernetes.io/managed-by=notebook-controller` so the cache holds only our objects. Secrets
are not read (docs/security.md), except with --check-key-secrets: key Secrets are the user's (any
labels), so that Secret cache holds the watched namespaces' Secrets. The idle policy ConfigMap is
listed and watched by name (what RBAC grants by resourceNames).

One controller per concern, each with its own queue and its own field manager:

| controller | reconciles a notebook on                       | writes                         |
|------------|------------------------------------------------|--------------------------------|
| workload   | spec change; its StatefulSet's events but its  | StatefulSet                    |
|            | status and its own apply's echo                |                                |
| services   | spec change; its Services' events but their    | HTTP and SSH Services          |
|            | status and its own applies' echoes             |                                |
| ssh        | spec change; a new pod (SSH on)                | host-key Secret (POST)         |
| status     | notebook events but its status write's echo;   | status (but Idle), Events      |
|            | StatefulSet (not its replica counts), the SSH  |                                |
|            | Service, pod (what the status shows of it);    |                                |
|            | key Secrets with --check-key-secrets (those    |                                |
|            | but the notebook's 0.25 s after the event)     |                                |
| idle       | notebook events but its status write's echo;   | Idle, lastSshClientActivity,   |
|            | its pod (state, identity); the policy          | spec pause, Events             |
|            | ConfigMap (every notebook)                     |                                |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial

import structlog

from notebook_controller.api.models import NAME_LABEL
from notebook_controller.builders.names import MANAGED_SELECTOR, ssh_service_name
from notebook_controller.idle.jupyter import choose_route
from notebook_controller.idle.policy_source import PolicySource
from notebook_controller.reconcilers.idle import IdleReconciler, off_node, pod_news
from notebook_controller.reconcilers.notebooks import (
    INDEX_KEY_SECRET,
    INDEX_NAME_LABEL,
    NOTEBOOKS,
    PART_IDLE,
    PART_STATUS,
    index_by_key_secret,
    index_by_name_label,
    notebook_status,
)
from notebook_controller.reconcilers.services import ServicesReconciler
from notebook_controller.reconcilers.ssh import SSHReconciler
from notebook_controller.reconcilers.status import (
    STATUS_EVENT_BATCH_SECONDS,
    StatusReconciler,
    statefulset_news,
)
from notebook_controller.reconcilers.status import pod_news as status_pod_news
from notebook_controller.reconcilers.workload import RefusedWorkloads, WorkloadReconciler
from notebook_controller.runtime.apply import SharedStatus
from notebook_controller.runtime.controller import Controller, Mapper, UpdatePredicate
from notebook_controller.runtime.events import EventRecorder
from notebook_controller.runtime.informer import Informer, strip_unread
from notebook_controller.runtime.kinds import CONFIGMAPS, PODS, SECRETS, SERVICES, STATEFULSETS
from notebook_controller.runtime.kube import KubeClient, ResourceKind, in_cluster
from notebook_controller.runtime.manager import Manager
from notebook_controller.runtime.objects import JsonDict, controller_owner
from notebook_controller.runtime.reconcile import Reconciler, Request
from notebook_controller.runtime.store import Indexer, Store
from notebook_controller.settings import Settings

log = structlog.get_logger(__name__)

COMPONENT = "notebook-controller"


# --- predicates and mappers ---------------------------------------------------------------


def spec_or_life_changed(old: JsonDict, new: JsonDict) -> bool:
    """A notebook update that concerns its children: its spec (generation) changed, or it was
    replaced or is being deleted. The children depend on nothing else, and the status
    reconciler's own writes must not send every other reconciler round again (with a cache
    that may not show the child it just made yet, that round would apply it a second time)."""
    before, after = old["metadata"], new["metadata"]
    return any(
        before.get(field) != after.get(field)
        for field in ("generation", "uid", "deletionTimestamp")
    )


def beyond_status_changed(old: JsonDict, new: JsonDict) -> bool:
    """A child's update that its applier cares about: anything but its status (and
    resourceVersion) changed. A StatefulSet's status moves a dozen times while its pod starts;
    the reconciler that applies its spec has nothing to do then."""
    if old.get("spec") != new.get("spec"):
        return True
    before, after = old["metadata"], new["metadata"]
    return any(
        before.get(field) != after.get(field)
        for field in (
            "uid", "generation", "labels", "annotations", "ownerReferences",
            "deletionTimestamp", "finalizers",
        )
    )  # fmt: skip


def either(*predicates: UpdatePredicate) -> UpdatePredicate:
    """An update any of `predicates` lets through."""

    def any_of(old: JsonDict, new: JsonDict) -> bool:
        return any(predicate(old, new) for predicate in predicates)

    return any_of


def not_written_by(shared: SharedStatus) -> UpdatePredicate:
    """A notebook update other than the echo of a status write of `shared`'s (which changes
    nothing but the status, so anything else that changed lets the update through)."""

    def predicate(old: JsonDict, new: JsonDict) -> bool:
        return beyond_status_changed(old, new) or not shared.own_write(new)

    return predicate


def replaced(old: JsonDict, new: JsonDict) -> bool:
    """An update that is another object under the same name (a re-list after a missed delete)."""
    return bool(old["metadata"].get("uid") != new["metadata"].get("uid"))


def notebooks_by(index: str, notebooks: Store, value: Callable[[JsonDict], str | None]) -> Mapper:
    """A watched object -> the notebooks whose `index` holds `ns/value(object)`."""

    def mapper(obj: JsonDict) -> list[Request]:
        key = value(obj)
        if key is None:
            return []
        namespace = obj["metadata"].get("namespace", "")
        return [Request.for_object(nb) for nb in notebooks.by_index(index, f"{namespace}/{key}")]

    return mapper


def with_ssh_on(notebooks: Store, mapper: Mapper) -> Mapper:
    """Of the notebooks `mapper` returns, those with SSH on (the others' pods need no host key;
    turning SSH on is a spec change, which wakes the SSH reconciler itself)."""

    def mapped(obj: JsonDict) -> list[Request]:
        return [
            request
            for request in mapper(obj)
            if _ssh_on(notebooks.get(request.namespace, request.name))
        ]

    return mapped


def _ssh_on(notebook: JsonDict | None) -> bool:
    ssh = ((notebook or {}).get("spec") or {}).get("ssh")
    return isinstance(ssh, dict) and ssh.get("enabled") is True


def pod_notebook_label(pod: JsonDict) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(NAME_LABEL)


def not_an_ssh_service(service: JsonDict) -> bool:
    """A Service the status reconciler doesn't read (the HTTP one: the status shows the SSH
    Service's port, and nothing of the other)."""
    owner = controller_owner(service)
    return owner is None or service["metadata"]["name"] != ssh_service_name(owner["name"])


def secret_name(secret: JsonDict) -> str:
    return str(secret["metadata"]["name"])


def every_notebook_on_policy_change(policies: PolicySource, notebooks: Store) -> Mapper:
    def mapper(configmap: JsonDict) -> Iterable[Request]:
        if not policies.is_policy(configmap):
            return []
        return [Request.for_object(nb) for nb in notebooks.list()]

    return mapper


# --- the controllers ------------------------------------------------------------------------


def pod_as_read(pod: JsonDict) -> JsonDict:
    """A pod as the reconcilers read it: metadata, status, and of the spec only the node and the
    containers' names (the spec is a third of a pod and never read otherwise)."""
    pod = strip_unread(pod)
    spec = pod.get("spec") or {}
    pod["spec"] = {
        "nodeName": spec.get("nodeName"),
        "containers": [{"name": c.get("name")} for c in spec.get("containers") or []],
    }
    return pod


def build(manager: Manager, client: KubeClient, settings: Settings) -> None:
    namespaces = settings.namespaces or None

    def informer(
        kind: ResourceKind,
        selector: str | None = MANAGED_SELECTOR,
        *,
        only_in: list[str] | None = namespaces,
        field_selector: str | None = None,
        indexers: Mapping[str, Indexer] | None = None,
        transform: Callable[[JsonDict], JsonDict] | None = None,
    ) -> Informer:
        created = Informer(
            client,
            kind,
            namespaces=only_in,
            label_selector=selector,
            field_selector=field_selector,
            indexers=indexers,
            transform=transform,
        )
        manager.add_informer(created)
        return created

    def controller(name: str, reconciler: Reconciler, batch_seconds: float = 0.0) -> Controller:
        created = Controller(
            name,
            reconciler,
            workers=settings.workers,
            log_key="notebook",
            batch_seconds=batch_seconds,
        )
        manager.add_controller(created)
        return created

    notebooks = informer(
        NOTEBOOKS,
        selector=None,
        indexers={INDEX_NAME_LABEL: index_by_name_label, INDEX_KEY_SECRET: index_by_key_secret},
    )
    statefulsets = informer(STATEFULSETS)
    services = informer(SERVICES)
    pods = informer(PODS, transform=pod_as_read)
    secrets = informer(SECRETS, selector=None) if settings.check_key_secrets else None
    configmaps = informer(
        CONFIGMAPS,
        selector=None,
        only_in=[settings.idle_policy_namespace],
        field_selector=f"metadata.name={settings.idle_policy_configmap}",
    )
    recorder = EventRecorder(client, COMPONENT)
    notebook_statuses = notebook_status(client)  # written by the status and idle reconcilers
    pod_to_notebook = notebooks_by(INDEX_NAME_LABEL, notebooks.store, pod_notebook_label)
    refused = RefusedWorkloads()

    # (the echo of a child's own apply is news to its applier no more than to anyone else)
    workload_reconciler = WorkloadReconciler(client, notebooks.store, statefulsets.store, refused)
    workload = controller("workload", workload_reconciler)
    workload.watch_primary(notebooks, spec_or_life_changed)
    workload.watch_owned(
        statefulsets,
        NOTEBOOKS,
        beyond_status_changed,
        ignore=partial(workload_reconciler.applier.own_write, STATEFULSETS),
    )

    services_reconciler = ServicesReconciler(client, notebooks.store, services.store)
    services_controller = controller("services", services_reconciler)
    services_controller.watch_primary(notebooks, spec_or_life_changed)
    services_controller.watch_owned(
        services,
        NOTEBOOKS,
        beyond_status_changed,
        ignore=partial(services_reconciler.applier.own_write, SERVICES),
    )

    ssh = controller("ssh", SSHReconciler(client, notebooks.store, pods.store))
    ssh.watch_primary(notebooks, spec_or_life_changed)
    # a pod's arrival asks for its host key (SSH on); its later updates (same pod) don't
    ssh.watch_mapped(pods, with_ssh_on(notebooks.store, pod_to_notebook), replaced)

    status = controller(
        "status",
        StatusReconciler(
            client,
            recorder,
            notebooks=notebooks.store,
            statefulsets=statefulsets.store,
            pods=pods.store,
            services=services.store,
            secrets=None if secrets is None else secrets.store,
            external_url_base=settings.external_url_base,
            refused=refused,
            coalesce_seconds=settings.status_coalesce_seconds,
            shared=notebook_statuses,
        ),
        batch_seconds=STATUS_EVENT_BATCH_SECONDS,
    )
    # the echo of a status write (ours, or the idle reclaimer's under the same manager) is news
    # to no one: whoever wrote it read what it says
    not_our_status_write = not_written_by(notebook_statuses)
    status.watch_primary(notebooks, not_our_status_write)
    status.watch_owned(statefulsets, NOTEBOOKS, either(beyond_status_changed, statefulset_news))
    status.watch_owned(services, NOTEBOOKS, ignore=not_an_ssh_service)
    status.watch_mapped(pods, pod_to_notebook, status_pod_news)
    if secrets is not None:
        status.watch_mapped(secrets, notebooks_by(INDEX_KEY_SECRET, notebooks.store, secret_name))
    refused.on_change = lambda namespace, name: status.queue.add(Request(namespace, name))

    def idle_offered(request: Request, part: str) -> None:
        # Ready turning True may be waiting for it (StatusReconciler._hold): only then is the
        # status reconciler's own change held back too
        if part == PART_IDLE and notebook_statuses.offered(request, PART_STATUS) is not None:
            status.queue.add(request)

    notebook_statuses.on_offer = idle_offered

    policies = PolicySource(
        configmaps.store, settings.idle_policy_namespace, settings.idle_policy_configmap, recorder
    )
    route = choose_route(
        url_template=settings.jupyter_url_template,
        in_cluster=in_cluster(),
        mode=settings.jupyter_probe_mode,
    )
    log.info(
        "idle reclaimer reaches Jupyter",
        mode=route.mode.value,
        url=route.describe(str(client.configuration.host)),
        why=route.why,
    )
    idle_reconciler = IdleReconciler(
        client,
        recorder,
        notebooks=notebooks.store,
        pods=pods.store,
        policies=policies,
        route=route,
        coalesce_seconds=settings.idle_coalesce_seconds,
        shared=notebook_statuses,
    )
    idle = controller("idle", idle_reconciler)
    idle.watch_primary(notebooks, not_our_status_write)
    # A change of the pod's state (scheduled, Ready, not Ready, gone, replaced) is judged at
    # once; other updates of the pod don't wake it (they wait for the probe interval), nor does
    # a new pod not yet on a node (it reads as no pod).
    idle.watch_mapped(pods, pod_to_notebook, pod_news, ignore_add=off_node)
    idle.watch_mapped(configmaps, every_notebook_on_policy_change(policies, notebooks.store))
    manager.add_runnable(idle_reconciler.close_on_exit, needs_leader=False)

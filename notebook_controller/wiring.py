"""Registers the notebook informers and controllers with the manager.

One informer per kind, shared by the controllers that read it; child informers select on
`app.kubernetes.io/managed-by=notebook-controller` so the cache holds only our objects. Secrets
are not read (docs/security.md), except with --check-key-secrets: key Secrets are the user's (any
labels), so that Secret cache holds the watched namespaces' Secrets.

One controller per concern, each with its own queue and its own field manager:
workload (StatefulSet), services (HTTP and SSH Services), ssh (host-key Secret, created when a
pod is about to need it), status, and idle (the idle reclaimer, `reconcilers/idle.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from notebook_controller.api.models import KIND, NAME_LABEL
from notebook_controller.builders.names import MANAGED_SELECTOR
from notebook_controller.reconcilers import idle
from notebook_controller.reconcilers.common import (
    INDEX_KEY_SECRET,
    INDEX_NAME_LABEL,
    NOTEBOOKS,
    PODS,
    SECRETS,
    SERVICES,
    STATEFULSETS,
    JsonDict,
    index_by_key_secret,
    index_by_name_label,
)
from notebook_controller.reconcilers.services import ServicesReconciler
from notebook_controller.reconcilers.ssh import SSHReconciler
from notebook_controller.reconcilers.status import StatusReconciler
from notebook_controller.reconcilers.workload import RefusedWorkloads, WorkloadReconciler
from notebook_controller.runtime.controller import Controller, Reconciler, Request
from notebook_controller.runtime.events import EventRecorder
from notebook_controller.runtime.informer import FunctionHandler, Informer
from notebook_controller.runtime.kube import KubeClient, ResourceKind
from notebook_controller.runtime.manager import Manager
from notebook_controller.runtime.store import Store
from notebook_controller.settings import Settings

COMPONENT = "notebook-controller"


def _notebooks_by(
    index: str, notebooks: Store, value: Callable[[JsonDict], str | None]
) -> Callable[[JsonDict], Iterable[Request]]:
    """Mapper: a watched object -> the notebooks whose `index` holds `value(object)`."""

    def mapper(obj: JsonDict) -> list[Request]:
        key = value(obj)
        if key is None:
            return []
        namespace = obj["metadata"].get("namespace", "")
        return [Request.for_object(nb) for nb in notebooks.by_index(index, f"{namespace}/{key}")]

    return mapper


def _pod_notebook_label(pod: JsonDict) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(NAME_LABEL)


def _secret_name(secret: JsonDict) -> str:
    return str(secret["metadata"]["name"])


def _spec_or_life_changed(old: JsonDict, new: JsonDict) -> bool:
    before, after = old["metadata"], new["metadata"]
    return any(
        before.get(field) != after.get(field)
        for field in ("generation", "uid", "deletionTimestamp")
    )


def _watch_spec_changes(controller: Controller, notebooks: Informer) -> None:
    """Like `watch_primary`, but a notebook update wakes the controller only when its spec (its
    generation) changed: the children depend on nothing else, and the status reconciler's own
    writes must not send every other reconciler round again (with a cache that may not show the
    child it just made yet, that round would apply it a second time)."""

    def enqueue(obj: JsonDict) -> None:
        controller.queue.add(Request.for_object(obj))

    def update(old: JsonDict, new: JsonDict) -> None:
        if _spec_or_life_changed(old, new):
            enqueue(new)

    notebooks.add_handler(FunctionHandler(add=enqueue, update=update, delete=enqueue))


def build(manager: Manager, client: KubeClient, settings: Settings) -> None:
    namespaces = settings.namespaces or None

    def informer(kind: ResourceKind, selector: str | None = MANAGED_SELECTOR) -> Informer:
        created = Informer(client, kind, namespaces=namespaces, label_selector=selector)
        manager.add_informer(created)
        return created

    notebooks = Informer(
        client,
        NOTEBOOKS,
        namespaces=namespaces,
        indexers={INDEX_NAME_LABEL: index_by_name_label, INDEX_KEY_SECRET: index_by_key_secret},
    )
    manager.add_informer(notebooks)
    statefulsets = informer(STATEFULSETS)
    services = informer(SERVICES)
    pods = informer(PODS)
    secrets = informer(SECRETS, selector=None) if settings.check_key_secrets else None
    recorder = EventRecorder(client, COMPONENT)

    def controller(
        name: str,
        reconciler: Reconciler,
        *owned: Informer,
        spec_only: bool = True,
    ) -> Controller:
        created = Controller(name, reconciler, workers=settings.workers, log_key="notebook")
        if spec_only:
            _watch_spec_changes(created, notebooks)
        else:
            created.watch_primary(notebooks)
        for child in owned:
            created.watch_owned(child, KIND)
        return created

    refused = RefusedWorkloads()
    workload = controller(
        "workload",
        WorkloadReconciler(client, notebooks.store, statefulsets.store, refused),
        statefulsets,
    )
    services_controller = controller(
        "services", ServicesReconciler(client, notebooks.store, services.store), services
    )
    ssh = controller("ssh", SSHReconciler(client, notebooks.store, pods.store))
    pod_to_notebook = _notebooks_by(INDEX_NAME_LABEL, notebooks.store, _pod_notebook_label)
    ssh.watch_mapped(pods, pod_to_notebook)
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
        ),
        statefulsets,
        services,
        spec_only=False,
    )
    refused.on_change = lambda namespace, name: status.queue.add(Request(namespace, name))
    status.watch_mapped(pods, pod_to_notebook)
    if secrets is not None:
        status.watch_mapped(secrets, _notebooks_by(INDEX_KEY_SECRET, notebooks.store, _secret_name))
    for created in (workload, services_controller, ssh, status):
        manager.add_controller(created)
    idle.register(manager, client, settings, notebooks=notebooks, pods=pods, recorder=recorder)

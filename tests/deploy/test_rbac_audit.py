"""Least privilege, shown from the API server's audit log: the controller, installed as deployed
and running under its own ServiceAccount, is driven through what users and admins do, and then
(1) none of its requests was denied and (2) every rule of its roles was used by some request.

Both installs are checked: cluster-wide (deploy/controller: a ClusterRole) and namespace-scoped
(deploy/components/namespaced + deploy/namespaced/tenant: Roles only). Each runs in the cluster
(`kubectl apply -k` of a generated overlay on top of deploy/local, as tests/deploy/
test_in_cluster.py does): the pods' own token, the pod's namespace defaults and the direct
Jupyter probe are what a real install uses, which a local process with a ServiceAccount token
would not reproduce (out of a pod the probe goes through the API server's Service proxy).

What the controller is made to do: notebooks created (a KWOK one from the seed example; one with
SSH on the real node, running the notebook image, so the idle reclaimer execs into it), SSH
turned off and on, a pause and a resume (a repeated event: its count is patched), idle policies
loaded (a namespaceSelector: a GET of the namespace; two bad ones: a Warning on the ConfigMap,
then its count patched; a short one: the SSH notebook, idle, is paused by the reclaimer, and its
mark cleared when the user resumes it). Leader election runs throughout.

How a request uses a rule: its verb, except that a server-side apply creating the object (201)
also needs `create`, and a websocket exec (`get` on pods/exec) also needs `create`. One rule is
used by admission, not by a request of its own: `update` on notebooks/finalizers, which
OwnerReferencesPermissionEnforcement checks on every child created with blockOwnerDeletion (the
test shows the plugin is on: the same create by an identity without that rule is refused).

The audit log must hold reads (get/list/watch) by ServiceAccounts: hack/components.py's
AUDIT_POLICY does, for an API server started with it.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.e2e.controller import AUDIT_LOG, audit_position, seed
from tests.kube import ROOT, Cluster, wait_for
from tests.realnode import NODE_TAINT_KEY, is_ready

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]

DEPLOY = ROOT / "deploy"
NOTEBOOK_IMAGE = "registry.nbctl.local/notebook:1"
SELECTOR_LABEL = "nbctl-rbac-audit"
APP_SELECTOR = "app.kubernetes.io/name=notebook-controller"
# children the controller creates, each with a blockOwnerDeletion owner reference
CHILDREN = {("apps", "statefulsets"), ("", "services"), ("", "secrets")}
FINALIZERS = ("tensorstack.dev", "notebooks/finalizers", "update")


def report(message: str) -> None:
    print(f"\n[rbac-audit] {message}", flush=True)


# --- the install ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Install:
    mode: str  # "cluster" or "namespaced"
    cluster: Cluster
    namespace: str  # the controller's
    watched: str  # the notebooks' (the only tenant)
    prefix: str
    manifest: Path  # what was applied
    since: int = 0  # the audit log's size before the install: its requests come after

    @property
    def service_account(self) -> str:
        return f"{self.prefix}notebook-controller"

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    @property
    def policy(self) -> str:
        return f"{self.prefix}notebook-controller-idle-policy"

    def docs(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.manifest.read_text()) if d]

    def kubectl(self, *args: str, check: bool = True) -> Any:
        return self.cluster.kubectl(*args, check=check)

    def can_i(self, verb: str, target: str, *scope: str) -> str:
        got = self.kubectl(
            "auth", "can-i", verb, target, *scope, f"--as={self.username}", check=False
        )
        return str(got.stdout.strip())


def _write(directory: Path, kustomization: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))


def _controller_part(directory: Path, install: Install, components: list[Path]) -> None:
    """deploy/local (image from the local registry, on the real node), renamed into the
    test's namespace, watching the test's namespace and reading the renamed policy."""
    env = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "notebook-controller"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "controller",
                            "env": [
                                {"name": "NBC_NAMESPACES", "value": install.watched},
                                {"name": "NBC_IDLE_POLICY_CONFIGMAP", "value": install.policy},
                            ],
                        }
                    ]
                }
            }
        },
    }
    _write(
        directory,
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": install.namespace,
            "namePrefix": install.prefix,
            "labels": [{"pairs": {"nbctl-test": "true"}}],
            "resources": [os.path.relpath(DEPLOY / "local", directory)],
            "components": [os.path.relpath(c, directory) for c in components],
            "patches": [
                {
                    "target": {"kind": "Deployment", "name": "notebook-controller"},
                    "patch": yaml.safe_dump(env),
                }
            ],
        },
    )


def _tenant_part(directory: Path, install: Install) -> None:
    """deploy/namespaced/tenant in the test's namespace, bound to the renamed ServiceAccount."""
    subject = {
        "kind": "ServiceAccount",
        "name": install.service_account,
        "namespace": install.namespace,
    }
    _write(
        directory,
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": install.watched,
            "namePrefix": install.prefix,
            "labels": [{"pairs": {"nbctl-test": "true"}}],
            "resources": [os.path.relpath(DEPLOY / "namespaced" / "tenant", directory)],
            "patches": [
                {
                    "target": {"kind": "RoleBinding", "name": "notebook-controller"},
                    "patch": json.dumps(
                        [{"op": "replace", "path": "/subjects/0", "value": subject}]
                    ),
                }
            ],
        },
    )


def overlay(directory: Path, install: Install) -> Path:
    if install.mode == "cluster":
        _controller_part(directory, install, [])
    else:
        _controller_part(directory / "controller", install, [DEPLOY / "components" / "namespaced"])
        _tenant_part(directory / "tenant", install)
        _write(
            directory,
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["controller", "tenant"],
            },
        )
    return directory


@pytest.fixture(scope="module", params=["cluster", "namespaced"])
def installed(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    controller_image: str,
    notebook_crd: str,
    real_node: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Install]:
    mode = str(request.param)
    suffix = uuid.uuid4().hex[:6]
    directory = tmp_path_factory.mktemp(f"rbac-{mode}")
    install = Install(
        mode=mode,
        cluster=cluster,
        namespace=f"t-rbac-{suffix}",
        watched=f"t-rbac-nb-{suffix}",
        prefix=f"t-rbac-{suffix}-",
        manifest=directory / "rendered.yaml",
    )
    rendered = cluster.kubectl("kustomize", str(overlay(directory / "overlay", install))).stdout
    assert f"image: {controller_image}" in rendered
    install.manifest.write_text(rendered)
    kinds = {d["kind"] for d in install.docs()}
    assert ("ClusterRole" in kinds) == (mode == "cluster"), kinds
    watched = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": install.watched,
            "labels": {"nbctl-test": "true", SELECTOR_LABEL: install.watched},
        },
    }
    try:
        cluster.apply(watched)
        install = replace(install, since=audit_position())
        cluster.kubectl("apply", "-k", str(directory / "overlay"))
        yield install
    finally:
        cluster.kubectl(
            "delete", "-f", str(install.manifest), "--ignore-not-found", "--wait=true",
            check=False, timeout=300,
        )  # fmt: skip
        cluster.kubectl(
            "delete", "namespace", install.watched, "--ignore-not-found", "--wait=true",
            check=False, timeout=300,
        )  # fmt: skip


# --- the audit log -------------------------------------------------------------------------


def requests_by(username: str, since: int, until: int | None = None) -> list[dict[str, Any]]:
    """The audited requests of `username` between two offsets, one per request (the final
    stage of each: ResponseComplete, else ResponseStarted of a watch or exec still open)."""
    found: dict[str, dict[str, Any]] = {}
    with AUDIT_LOG.open("rb") as log:
        log.seek(since)
        for raw in log:
            if until is not None and log.tell() > until:
                break
            if username.encode() not in raw:
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if (event.get("user") or {}).get("username") != username:
                continue
            if event.get("stage") not in ("ResponseStarted", "ResponseComplete"):
                continue
            if event["auditID"] not in found or event["stage"] == "ResponseComplete":
                found[event["auditID"]] = event
    return list(found.values())


def code(event: dict[str, Any]) -> int:
    return int((event.get("responseStatus") or {}).get("code", 0))


def ref(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event.get("objectRef") or {})


def resource(event: dict[str, Any]) -> str:
    r = ref(event)
    return "/".join(filter(None, [r.get("resource"), r.get("subresource")]))


def group(event: dict[str, Any]) -> str:
    return str(ref(event).get("apiGroup") or "")


def object_name(event: dict[str, Any]) -> str | None:
    """The name the authorizer saw: the object's, or a list/watch's metadata.name selector."""
    name = ref(event).get("name")
    if name:
        return str(name)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(event.get("requestURI", "")).query)
    for selector in query.get("fieldSelector", []):
        if m := re.fullmatch(r"metadata\.name=([^,]+)", selector):
            return m.group(1)
    return None


def authorized_verbs(event: dict[str, Any]) -> set[str]:
    """The verbs RBAC checked for the request."""
    verbs = {str(event["verb"])}
    if event["verb"] == "patch" and code(event) == 201:
        verbs.add("create")  # server-side apply that created the object
    if resource(event) == "pods/exec" and event["verb"] == "get":
        verbs.add("create")  # a websocket exec is authorized as get and create
    return verbs


def describe(event: dict[str, Any]) -> str:
    r = ref(event)
    where = f"{r.get('namespace')}/" if r.get("namespace") else ""
    target = f"{group(event) or 'core'}/{resource(event)} {where}{r.get('name') or ''}"
    return f"{event['verb']} {target} -> {code(event)}"


# --- the roles -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One verb on one resource of one rule, where the binding makes it apply."""

    role: str  # kind/namespace/name of the role, for messages
    namespace: str | None  # None: every namespace (ClusterRoleBinding)
    api_group: str
    resource: str
    verb: str
    names: frozenset[str] | None

    def allows(self, event: dict[str, Any], verbs: set[str] | None = None) -> bool:
        if (self.api_group, self.resource) != (group(event), resource(event)):
            return False
        if self.verb not in (verbs if verbs is not None else authorized_verbs(event)):
            return False
        if self.namespace is not None and ref(event).get("namespace") != self.namespace:
            return False
        return self.names is None or object_name(event) in self.names

    def __str__(self) -> str:
        names = f" {sorted(self.names)}" if self.names else ""
        scope = self.namespace or "all namespaces"
        what = f"{self.api_group or 'core'}/{self.resource}{names}"
        return f"{self.verb} {what} in {scope} ({self.role})"


def grants(install: Install) -> list[Grant]:
    """Every verb of every rule of the roles bound to the ServiceAccount, as applied."""
    docs = install.docs()
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
    }
    subject = {
        "kind": "ServiceAccount",
        "name": install.service_account,
        "namespace": install.namespace,
    }
    found: list[Grant] = []
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if subject not in (binding.get("subjects") or []):
            continue
        where = binding["metadata"].get("namespace")  # None for a ClusterRoleBinding
        role_ref = binding["roleRef"]
        role_ns = where if role_ref["kind"] == "Role" else None
        role = roles[(role_ref["kind"], role_ns, role_ref["name"])]
        label = "/".join(filter(None, [role["kind"], role_ns, role["metadata"]["name"]]))
        for rule in role["rules"]:
            names = frozenset(rule["resourceNames"]) if rule.get("resourceNames") else None
            for api_group in rule["apiGroups"]:
                for res in rule["resources"]:
                    for verb in rule["verbs"]:
                        found.append(Grant(label, where, api_group, res, verb, names))
    return found


def used(grant: Grant, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests that needed `grant`."""
    if (grant.api_group, grant.resource, grant.verb) == FINALIZERS:
        # checked by admission for every child created with blockOwnerDeletion
        return [
            e
            for e in requests
            if (group(e), resource(e)) in CHILDREN
            and code(e) == 201
            and (grant.namespace is None or ref(e).get("namespace") == grant.namespace)
        ]
    return [e for e in requests if grant.allows(e)]


# --- driving the controller ----------------------------------------------------------------


def patch(install: Install, kind: str, name: str, body: dict[str, Any]) -> None:
    install.kubectl(
        "-n", install.watched, "patch", kind, name, "--type=merge", "-p", json.dumps(body)
    )


def get(
    install: Install, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    got = install.kubectl(
        "get", "-n", namespace or install.watched, kind, name, "-o", "json", check=False
    )
    return json.loads(got.stdout) if got.returncode == 0 else None


def wait_notebook(install: Install, name: str, condition: str, timeout: int = 240) -> None:
    install.cluster.kubectl(
        "wait", "-n", install.watched, f"notebook/{name}", f"--for=condition={condition}",
        f"--timeout={timeout}s", timeout=timeout + 30,
    )  # fmt: skip


def set_policy(install: Install, **data: str) -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": install.policy, "namespace": install.namespace},
        "data": data,
    }
    # client-side apply, as `apply -k` made it: keys of the previous policy are removed (the
    # same object: a repeated Warning on it is counted, not recorded anew)
    install.cluster.apply(configmap)


def wait_request(
    install: Install,
    since: int,
    what: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 120,
) -> None:
    wait_for(
        lambda: any(predicate(e) for e in requests_by(install.username, since)),
        timeout=timeout,
        interval=1,
        message=f"the controller to {what}",
    )


def policy_events(install: Install) -> list[dict[str, Any]]:
    return [
        e
        for e in install.cluster.events(install.namespace, install.policy)
        if e.get("reportingComponent") == "notebook-controller"
        or e.get("source", {}).get("component") == "notebook-controller"
    ]


def public_key_secret(name: str) -> dict[str, Any]:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"tensorstack.dev/resource": "ssh"}},
        "stringData": {"ssh-publickey": text.decode() + " rbac-audit@test\n"},
    }


def remote_notebook(install: Install) -> dict[str, Any]:
    """The seed's SSH example on the real node, running the notebook image (sshd, Jupyter)."""
    notebook: dict[str, Any] = yaml.safe_load(seed("notebook-ssh-sample.yaml"))
    notebook["metadata"]["name"] = "remote"
    spec = notebook["spec"]["template"]["spec"]
    spec["containers"][0]["image"] = NOTEBOOK_IMAGE
    spec["nodeSelector"] = {"type": "real"}
    spec["tolerations"] = [{"key": NODE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    return notebook


def drive(install: Install) -> None:
    """What users and the admin do; each step waits for the controller's requests it causes."""
    cluster, since = install.cluster, audit_position()
    # notebooks: a KWOK one, and one with SSH on the real node
    plain = yaml.safe_load(seed("notebook-example.yaml"))
    plain["metadata"]["name"] = "plain"
    cluster.apply(plain, install.watched)
    cluster.apply(public_key_secret("my-public-key"), install.watched)
    cluster.apply(remote_notebook(install), install.watched)
    wait_notebook(install, "plain", "Ready")
    wait_notebook(install, "remote", "Ready", timeout=300)

    # SSH off (the SSH Service is deleted) and on again (the host-key Secret exists: 409)
    patch(install, "notebook", "remote", {"spec": {"ssh": {"enabled": False}}})
    wait_for(
        lambda: get(install, "service", "managed-notebook-ssh-remote") is None,
        timeout=60,
        message="the SSH Service deleted",
    )
    wait_notebook(install, "remote", "Ready", timeout=300)
    patch(install, "notebook", "remote", {"spec": {"ssh": {"enabled": True}}})
    wait_for(
        lambda: get(install, "service", "managed-notebook-ssh-remote"),
        timeout=60,
        message="the SSH Service back",
    )
    wait_notebook(install, "remote", "Ready", timeout=300)
    wait_request(
        install, since, "ask for the host-key Secret again (409)",
        lambda e: resource(e) == "secrets" and code(e) == 409,
    )  # fmt: skip

    # pause and resume: Ready again, the same event once more (its count is patched)
    patch(install, "notebook", "plain", {"spec": {"runMode": "paused"}})
    wait_notebook(install, "plain", "Suspended")
    patch(install, "notebook", "plain", {"spec": {"runMode": "running"}})
    wait_notebook(install, "plain", "Ready")
    wait_request(
        install, since, "bump a repeated event",
        lambda e: resource(e) == "events" and e["verb"] == "patch"
        and ref(e).get("namespace") == install.watched,
    )  # fmt: skip

    # an idle policy choosing namespaces by label: the namespace is read; the SSH notebook's
    # connections are read by exec
    selector = f"matchLabels: {{{SELECTOR_LABEL}: {install.watched}}}"
    relaxed = {
        "idleTimeout": "1h", "reclaimGrace": "1h", "probeInterval": "3s", "probeTimeout": "3s",
        "namespaceSelector": selector,
    }  # fmt: skip
    set_policy(install, **relaxed)
    wait_request(
        install, since, "read the notebooks' namespace",
        lambda e: resource(e) == "namespaces" and e["verb"] == "get",
    )  # fmt: skip
    wait_request(
        install, since, "exec into the SSH notebook",
        lambda e: resource(e) == "pods/exec" and code(e) < 400,
    )  # fmt: skip

    # two bad policies with the same mistake: a Warning on the ConfigMap, then its count
    # (the second is applied once the first is reported: the controller reads the policy's
    # current version when it reconciles, so two versions applied back to back may be seen as one)
    set_policy(install, idleTimeout="soon")
    wait_for(
        lambda: any(e["reason"] == "InvalidIdlePolicy" for e in policy_events(install)),
        timeout=90,
        message="an InvalidIdlePolicy Warning on the ConfigMap",
    )
    set_policy(install, idleTimeout="soon", probeTimeout="3s")
    wait_for(
        lambda: any(
            e["reason"] == "InvalidIdlePolicy" and int(e.get("count", 1)) >= 2
            for e in policy_events(install)
        ),
        timeout=90,
        message="an InvalidIdlePolicy Warning on the ConfigMap, counted twice",
    )

    # a short policy: the SSH notebook, idle, is paused by the reclaimer; resumed by its user,
    # the reclaimer clears its mark
    short = {**relaxed, "idleTimeout": "3s", "reclaimGrace": "3s"}
    set_policy(install, **short)

    def marked() -> bool:
        notebook = get(install, "notebook", "remote") or {}
        annotations = notebook.get("metadata", {}).get("annotations") or {}
        return any(k.endswith("reclaimed-at") for k in annotations)

    def reclaimed() -> bool:
        notebook = get(install, "notebook", "remote") or {}
        return marked() and notebook.get("spec", {}).get("runMode") == "paused"

    wait_for(reclaimed, timeout=240, interval=1, message="the idle SSH notebook reclaimed")
    set_policy(install, **relaxed)  # so it isn't reclaimed at once again
    patch(install, "notebook", "remote", {"spec": {"runMode": "running"}})
    wait_for(lambda: not marked(), timeout=120, message="the reclaimed-at mark cleared")
    wait_notebook(install, "remote", "Ready", timeout=300)


# --- the test ------------------------------------------------------------------------------


def test_every_rule_used_and_nothing_denied(installed: Install) -> None:
    install, since = installed, installed.since
    assert AUDIT_LOG.exists(), "the local cluster's audit log"
    started = time.monotonic()

    def ready() -> bool:
        pods = install.cluster.get_json("pods", "-n", install.namespace, "-l", APP_SELECTOR)[
            "items"
        ]
        return len(pods) == 2 and all(is_ready(p) for p in pods)

    wait_for(ready, timeout=300, interval=1, message="both controller pods Ready")
    # reads by ServiceAccounts are audited (else no rule with get/list/watch can be shown used)
    wait_request(
        install, since, "appear in the audit log with its list requests (is the API server running"
        " hack/components.py's AUDIT_POLICY, which logs ServiceAccounts' reads?)",
        lambda e: e["verb"] == "list", timeout=60,
    )  # fmt: skip

    driving = time.monotonic()
    drive(install)
    report(f"{install.mode}: driven in {time.monotonic() - driving:.0f}s")
    time.sleep(3)  # the last requests' audit lines
    requests = requests_by(install.username, since, audit_position())
    report(
        f"{install.mode}: {len(requests)} requests by {install.username}, from the install"
        f" on ({time.monotonic() - started:.0f}s after it): "
        + ", ".join(f"{k} {n}" for k, n in sorted(Counter(
            f"{e['verb']} {resource(e)}" for e in requests
        ).items()))
    )  # fmt: skip

    # (1) nothing denied
    denied = [describe(e) for e in requests if code(e) == 403]
    assert not denied, f"denied requests: {denied}"

    # (2) every verb of every rule used
    granted = grants(install)
    assert granted, "no role bound to the ServiceAccount in the manifest"
    unused = [str(g) for g in granted if not used(g, requests)]
    for g in granted:
        report(f"  {g}: {len(used(g, requests))} requests")
    assert not unused, f"rules no request used: {unused}"

    # and the rules account for every request (the matching above models RBAC faithfully)
    unexplained = [
        describe(e)
        for e in requests
        if code(e) != 403 and ref(e) and not any(g.allows(e, {str(e["verb"])}) for g in granted)
    ]
    assert not unexplained, f"requests no rule allows: {unexplained}"

    assert_finalizers_rule_is_enforced(install)
    if install.mode == "namespaced":
        assert_namespace_scoped(install)


def assert_finalizers_rule_is_enforced(install: Install) -> None:
    """OwnerReferencesPermissionEnforcement is on: without update on notebooks/finalizers, a
    child with blockOwnerDeletion is refused (so the rule is needed, though no request names
    it)."""
    notebook = get(install, "notebook", "plain")
    assert notebook is not None
    owner = {
        "apiVersion": "tensorstack.dev/v1beta1", "kind": "Notebook", "name": "plain",
        "uid": notebook["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip
    probe = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "rbac-audit-probe", "ownerReferences": [owner]},
        "spec": {"ports": [{"port": 80}]},
    }
    # the controller's rights, less that one rule: a user with only services create
    user = f"rbac-audit-probe-{uuid.uuid4().hex[:6]}"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": user, "namespace": install.watched},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["create"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": user, "namespace": install.watched},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    install.cluster.apply(role)
    install.cluster.apply(binding)
    got = install.cluster.kubectl(
        "create", "-n", install.watched, "-f", "-", f"--as={user}",
        input=json.dumps(probe), check=False,
    )  # fmt: skip
    assert got.returncode != 0 and "blockOwnerDeletion" in got.stderr, (
        "OwnerReferencesPermissionEnforcement looks off: the notebooks/finalizers rule can't be"
        f" shown to be needed ({got.stdout or got.stderr})"
    )


def assert_namespace_scoped(install: Install) -> None:
    """The namespace-scoped install reads nothing cluster-wide, and an idle policy whose
    namespaceSelector it may not evaluate gives a Warning, not a crash."""
    for verb, target, scope in [
        ("list", "notebooks.tensorstack.dev", "--all-namespaces"),
        ("watch", "pods", "--all-namespaces"),
        ("list", "namespaces", "--all-namespaces"),
        ("get", "namespaces/default", "-n=default"),
        ("list", "notebooks.tensorstack.dev", "-n=default"),
        ("list", "secrets", f"-n={install.watched}"),
    ]:
        assert install.can_i(verb, target, scope) == "no", (verb, target, scope)
    assert install.can_i("watch", "notebooks.tensorstack.dev", f"-n={install.watched}") == "yes"
    assert install.can_i("get", f"namespaces/{install.watched}", f"-n={install.watched}") == "yes"

    # the tenant Role without its namespaces rule: the selector can't be evaluated
    role_name = f"{install.prefix}notebook-controller"
    role = get(install, "role", role_name)
    assert role is not None
    index = next(i for i, r in enumerate(role["rules"]) if r["resources"] == ["namespaces"])
    install.kubectl(
        "-n", install.watched, "patch", "role", role_name, "--type=json",
        "-p", json.dumps([{"op": "remove", "path": f"/rules/{index}"}]),
    )  # fmt: skip
    restarts = {
        p["metadata"]["name"]: sum(c["restartCount"] for c in p["status"]["containerStatuses"])
        for p in install.cluster.get_json("pods", "-n", install.namespace, "-l", APP_SELECTOR)[
            "items"
        ]
    }
    selector = f"matchLabels: {{{SELECTOR_LABEL}: {install.watched}}}"
    set_policy(install, idleTimeout="1h", probeInterval="3s", namespaceSelector=selector)
    warning = wait_for(
        lambda: next(
            (e for e in policy_events(install) if e["reason"] == "NamespaceSelectorForbidden"), None
        ),
        timeout=120,
        interval=1,
        message="a NamespaceSelectorForbidden Warning on the policy ConfigMap",
    )
    report(
        f"namespaced, selector not readable: {warning['type']} {warning['reason']}:"
        f" {warning['message']}"
    )
    assert warning["type"] == "Warning" and install.watched in warning["message"]
    pods = install.cluster.get_json("pods", "-n", install.namespace, "-l", APP_SELECTOR)["items"]
    assert all(is_ready(p) for p in pods)
    assert {
        p["metadata"]["name"]: sum(c["restartCount"] for c in p["status"]["containerStatuses"])
        for p in pods
    } == restarts

"""Helpers for tests that talk to a real Kubernetes control plane.

The cluster is the local one built from Go modules by ``hack/cluster.sh`` (see README,
"Local cluster"), or any cluster an already-set ``KUBECONFIG`` points at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SH = ROOT / "hack" / "cluster.sh"
LOCAL_KUBECONFIG = ROOT / ".cluster" / "kubeconfig"

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """Raised by :func:`wait_for` when the condition never held."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.5,
    message: str | Callable[[], str] = "",
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Exceptions raised by the predicate count as "not yet"; the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:  # a falsy value (None, False, [], "") is "not yet"
                return result
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            msg = message() if callable(message) else message
            detail = f"; last error: {last_exc!r}" if last_exc else ""
            raise WaitTimeout(
                f"timed out after {timeout:.0f}s waiting for {msg or predicate}{detail}"
            )
        time.sleep(interval)


def cluster_sh(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run ``hack/cluster.sh``; raise with its output if it fails."""
    proc = subprocess.run(
        [str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"hack/cluster.sh {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()}\n{proc.stdout.strip()}"
        )
    return proc


def _find_kubectl(bin_dir: Path | None) -> str:
    if bin_dir and (bin_dir / "kubectl").exists():
        return str(bin_dir / "kubectl")
    found = shutil.which("kubectl")
    if found:
        return found
    raise RuntimeError("no kubectl: run `hack/cluster.sh build` or put kubectl on PATH")


class Cluster:
    """A reachable cluster plus the built tools to poke at it.

    ``can_control_components`` is True only for the local cluster started by
    ``hack/cluster.sh``: then :meth:`stop_component` / :meth:`start_component` work
    (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok).
    """

    def __init__(self, kubeconfig: Path, *, local: bool, bin_dir: Path | None = None) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.can_control_components = local
        self.bin_dir = bin_dir
        self.kubectl_path = _find_kubectl(bin_dir)

    # -- kubectl ---------------------------------------------------------------------------
    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (``--kubeconfig`` is added)."""
        proc = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, proc.args, output=proc.stdout, stderr=proc.stderr
            )
        return proc

    def get_json(self, *args: str) -> Any:
        """``kubectl get ARGS -o json`` parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str | dict[str, Any], namespace: str | None = None) -> None:
        """``kubectl apply -f -`` of a YAML string or an object (dict)."""
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", *ns, "-f", "-", input=text)

    # -- components (local cluster only) ---------------------------------------------------
    def _require_local(self) -> None:
        if not self.can_control_components:
            raise RuntimeError(
                "this cluster comes from an external KUBECONFIG: components can't be controlled"
            )

    def stop_component(self, name: str) -> None:
        """Stop one control-plane process (by its recorded PID)."""
        self._require_local()
        cluster_sh("stop-component", name, timeout=120)

    def start_component(self, name: str) -> None:
        """Start a stopped component again: same ports, certificates and etcd data."""
        self._require_local()
        cluster_sh("start-component", name, timeout=300)

    def etcd_env(self) -> dict[str, str]:
        """Environment for ``etcdctl`` against the local etcd (endpoints and client certs)."""
        self._require_local()
        env = dict(os.environ)
        for line in (self.kubeconfig.parent / "etcd.env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                env[key] = value
        return env

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the built etcdctl against the local cluster's etcd."""
        self._require_local()
        assert self.bin_dir is not None
        proc = subprocess.run(
            [str(self.bin_dir / "etcdctl"), *args],
            capture_output=True,
            text=True,
            env=self.etcd_env(),
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, proc.args, output=proc.stdout, stderr=proc.stderr
            )
        return proc

    # -- convenience -----------------------------------------------------------------------
    def reachable(self) -> bool:
        try:
            return self.kubectl("get", "--raw=/readyz", check=False, timeout=15).returncode == 0
        except (subprocess.TimeoutExpired, OSError):
            return False

    def events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        """Core events in namespace (optionally only those about object ``name``)."""
        sel = ["--field-selector", f"involvedObject.name={name}"] if name else []
        items: list[dict[str, Any]] = self.get_json("events", "-n", namespace, *sel)["items"]
        return items


def bin_dir() -> Path:
    return Path(cluster_sh("bin-dir").stdout.strip())


def external_cluster() -> Cluster | None:
    """The cluster ``$KUBECONFIG`` points at, if it is set and reachable."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        return None
    path = Path(kubeconfig.split(os.pathsep)[0])
    if not path.exists():
        return None
    local = path.resolve() == LOCAL_KUBECONFIG.resolve()
    built = bin_dir()
    cluster = Cluster(path, local=local, bin_dir=built if built.exists() else None)
    return cluster if cluster.reachable() else None


def local_cluster() -> Cluster:
    """Bring the local cluster up (builds on first use; idempotent) and return it."""
    cluster_sh("up")
    return Cluster(LOCAL_KUBECONFIG, local=True, bin_dir=bin_dir())


# --- reading the cluster ---------------------------------------------------------------------


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", "-n", namespace, kind, name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def items(cluster: Cluster, namespace: str, kind: str, *selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.get_json(kind, "-n", namespace, *selector)["items"]
    return found


def condition(notebook: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for found in ((notebook or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == type_:
            return dict(found)
    return {}


def wait_condition(
    cluster: Cluster,
    namespace: str,
    name: str,
    type_: str,
    status: str,
    reason: str | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """Wait until the notebook's condition has `status` (and `reason`); return the notebook."""

    def check() -> dict[str, Any] | None:
        notebook = get(cluster, namespace, "notebook", name)
        found = condition(notebook, type_)
        if found.get("status") == status and (reason is None or found.get("reason") == reason):
            return notebook
        return None

    def describe() -> str:
        notebook = get(cluster, namespace, "notebook", name)
        return f"{type_}={status} ({reason}) on {name}; status: {(notebook or {}).get('status')}"

    found = wait_for(check, timeout=timeout, interval=1, message=describe)
    assert found is not None  # wait_for returns only a truthy value
    return found


def warning_events(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.events(namespace, name)
        if e.get("type") == "Warning" and e["involvedObject"].get("kind") == "Notebook"
    ]

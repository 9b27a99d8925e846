"""The local cluster's paths, pins of its layout and ports, and its one error type (shared by
hack/cluster.py and the modules it is split into: clusterbuild, pki, processes, components)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nodebuild

ROOT = Path(__file__).resolve().parent.parent


MODDIR = ROOT / "hack" / "cluster"


CACHE = Path(os.environ.get("NBCTL_CACHE_DIR", ROOT / ".cache" / "k8s"))


CLUSTER = Path(os.environ.get("NBCTL_CLUSTER_DIR", ROOT / ".cluster"))


PKI = CLUSTER / "pki"


LOGS = CLUSTER / "logs"


STATE = CLUSTER / "state.json"


KUBECONFIG = CLUSTER / "kubeconfig"


COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]


K8S_BINARIES = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
]


ALL_BINARIES = [*K8S_BINARIES, "etcd", "etcdctl", "kwok", *nodebuild.NODE_BINARIES]


SERVICE_CIDR = "10.96.0.0/16"


SERVICE_IP = "10.96.0.1"


START_TIMEOUT = float(os.environ.get("NBCTL_START_TIMEOUT", "90"))


STOP_TIMEOUT = 30.0


FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


CHILDREN: dict[int, subprocess.Popen] = {}  # processes started by this run, by PID


class ClusterError(Exception):
    """A one-line, user-facing failure."""


def say(msg: str) -> None:
    print(f"cluster: {msg}", file=sys.stderr, flush=True)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"

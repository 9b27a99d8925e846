#!/usr/bin/env python3
"""Local Kubernetes control plane built from Go modules (see README, "Local cluster").

Usage: hack/cluster.sh {build|up|down|status|env|bin-dir|leftovers|stop-component NAME|...}

Everything listens on free ports chosen at `up` time (127.0.0.1; the API server on the real
node's address 10.244.64.1 when the real node is on, see hack/node.py). State (PIDs, ports,
command lines) lives in .cluster/state.json; processes are stopped by recorded PID only.
Binaries are built from the Go wrapper modules in hack/cluster/ into
.cache/k8s/<key>/bin, key = the pinned versions (+ a digest of the go.mod/go.sum files).

Standard library only; uses the `go` and `openssl` commands.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import node
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


# --------------------------------------------------------------------------- pins / build


def read_pins() -> dict[str, str]:
    pins = {}
    for line in (MODDIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            pins[k.strip()] = v.strip()
    return pins


def cache_key() -> str:
    pins = read_pins()
    h = hashlib.sha256()
    for d in (MODDIR, MODDIR / "etcd", MODDIR / "kwok", *nodebuild.NODE_MODULE_DIRS):
        for f in ("go.mod", "go.sum"):
            p = d / f
            h.update(p.read_bytes() if p.exists() else b"")
    return (
        f"k8s-{pins['KUBERNETES_VERSION']}_etcd-{pins['ETCD_VERSION']}"
        f"_kwok-{pins['KWOK_VERSION']}_{h.hexdigest()[:10]}"
    )


def bin_dir() -> Path:
    return CACHE / cache_key() / "bin"


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env["CGO_ENABLED"] = env.get("CGO_ENABLED", "0")
    return env


def go_error_line(log: Path) -> str:
    """The most telling line of a failed `go` run (module download errors first)."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for needle in (
        "not found",
        "404",
        "410",
        "reading http",
        "dial tcp",
        "no matching versions",
        "unknown revision",
        "verifying",
        "requires go",
    ):
        for ln in lines:
            if needle in ln:
                return ln
    return lines[-1] if lines else "(no output)"


def run_go(args: list[str], cwd: Path, log: Path, what: str) -> str:
    with log.open("a") as fh:
        fh.write(f"\n$ (cd {cwd}) go {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.run(
            ["go", *args], cwd=cwd, env=go_env(), stdout=subprocess.PIPE, stderr=fh, text=True
        )
    if proc.returncode != 0:
        raise ClusterError(f"building {what} failed: {go_error_line(log)} (full log: {log})")
    return proc.stdout


def version_ldflags(version: str, build_date: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={build_date}",
        ]
    return " ".join(flags)


def module_info(cwd: Path, module: str, log: Path) -> dict:
    return json.loads(run_go(["list", "-m", "-json", module], cwd, log, module))


def kwok_stages_yaml(kwok_dir: Path) -> str:
    stage_files = [
        "kustomize/stage/node/fast/node-initialize.yaml",
        "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "kustomize/stage/pod/fast/pod-ready.yaml",
        "kustomize/stage/pod/fast/pod-complete.yaml",
        "kustomize/stage/pod/fast/pod-delete.yaml",
    ]
    docs = []
    for rel in stage_files:
        docs.append((kwok_dir / rel).read_text().strip())
    return "\n---\n".join(docs) + "\n"


def build() -> Path:
    if shutil.which("go") is None:
        raise ClusterError(
            "`go` not found on PATH: Go >= 1.26 is needed to build the local cluster "
            "(kube-apiserver, etcd, kwok) from Go modules"
        )
    key = cache_key()
    out = CACHE / key
    done = out / ".complete"
    if done.exists() and all((out / "bin" / b).exists() for b in ALL_BINARIES):
        return out / "bin"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build of the same key may be running
        if done.exists():
            return out / "bin"
        pins = read_pins()
        out.mkdir(parents=True, exist_ok=True)
        log = out / "build.log"
        log.write_text("")
        tmp = Path(tempfile.mkdtemp(prefix="bin.", dir=out))
        t0 = time.time()
        say(f"building {key} (cold builds take a while on few cores; log: {log})")

        kv, ev, wv = pins["KUBERNETES_VERSION"], pins["ETCD_VERSION"], pins["KWOK_VERSION"]
        # resolve (and download) all three first: a module the proxy does not serve fails fast
        infos = {}
        for sub, module, want in (
            ("", "k8s.io/kubernetes", kv),
            ("etcd", "go.etcd.io/etcd/server/v3", ev),
            ("kwok", "sigs.k8s.io/kwok", wv),
        ):
            info = module_info(MODDIR / sub, module, log)
            if info.get("Version") != want:
                raise ClusterError(
                    f"hack/cluster/{sub + '/' if sub else ''}go.mod resolves {module} "
                    f"{info.get('Version')}, but versions.env pins {want}: "
                    "run hack/cluster/gen-gomod.py"
                )
            infos[module] = info
        build_date = infos["k8s.io/kubernetes"].get("Time") or "1970-01-01T00:00:00Z"
        say(f"  kubernetes {kv}: {' '.join(K8S_BINARIES)}")
        run_go(
            [
                "build",
                "-ldflags",
                version_ldflags(kv, build_date),
                "-o",
                str(tmp) + "/",
                *[f"k8s.io/kubernetes/cmd/{b}" for b in K8S_BINARIES],
            ],
            MODDIR,
            log,
            f"kubernetes {kv}",
        )

        say(f"  etcd {ev}: etcd etcdctl")
        run_go(
            ["build", "-ldflags", "-s -w", "-o", str(tmp / "etcd"), "go.etcd.io/etcd/server/v3"],
            MODDIR / "etcd",
            log,
            f"etcd {ev}",
        )
        run_go(
            [
                "build",
                "-ldflags",
                "-s -w",
                "-o",
                str(tmp / "etcdctl"),
                "go.etcd.io/etcd/etcdctl/v3",
            ],
            MODDIR / "etcd",
            log,
            f"etcdctl {ev}",
        )

        say(f"  kwok {wv}")
        run_go(
            [
                "build",
                "-ldflags",
                f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={wv}",
                "-o",
                str(tmp / "kwok"),
                "sigs.k8s.io/kwok/cmd/kwok",
            ],
            MODDIR / "kwok",
            log,
            f"kwok {wv}",
        )
        kwok_dl = run_go(
            ["mod", "download", "-json", "sigs.k8s.io/kwok"], MODDIR / "kwok", log, "kwok"
        )
        kwok_dir = Path(json.loads(kwok_dl)["Dir"])
        (out / "kwok-stages.yaml").write_text(kwok_stages_yaml(kwok_dir))

        # the real node's parts: containerd, CNI plugins, crictl, CoreDNS, local-path-provisioner
        nodebuild.build_node_parts(tmp, tmp / "cni", log, run_go, say, pins)

        if (out / "bin").exists():
            shutil.rmtree(out / "bin")
        tmp.rename(out / "bin")
        done.write_text(f"{time.time() - t0:.0f}s\n")
        say(f"built {key} in {time.time() - t0:.0f}s")
    return out / "bin"


# --------------------------------------------------------------------------- certificates


def openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(
            f"openssl {args[0]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
        )


def make_ca(name: str, cn: str) -> None:
    key, crt = PKI / f"{name}.key", PKI / f"{name}.crt"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(key),
        "-sha256",
        "-days",
        "3650",
        "-subj",
        f"/CN={cn}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out",
        str(crt),
    )


def make_cert(
    name: str,
    ca: str,
    subj: str,
    *,
    server: bool = False,
    client: bool = False,
    sans: list[str] | None = None,
) -> None:
    key, csr, crt = PKI / f"{name}.key", PKI / f"{name}.csr", PKI / f"{name}.crt"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", subj, "-out", str(csr))
    eku = ",".join(
        ([" serverAuth"] if server else []) + ([" clientAuth"] if client else [])
    ).replace(" ", "")
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={eku}",
    ]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    extfile = PKI / f"{name}.ext"
    extfile.write_text("\n".join(ext) + "\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(PKI / f"{ca}.crt"),
        "-CAkey",
        str(PKI / f"{ca}.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-sha256",
        "-extfile",
        str(extfile),
        "-out",
        str(crt),
    )
    csr.unlink()
    extfile.unlink()


def generate_pki() -> None:
    if shutil.which("openssl") is None:
        raise ClusterError("`openssl` not found on PATH (apt-get install openssl)")
    PKI.mkdir(parents=True, exist_ok=True)
    make_ca("ca", "notebook-controller-dev-ca")
    make_ca("etcd-ca", "notebook-controller-dev-etcd-ca")
    make_cert(
        "etcd-server",
        "etcd-ca",
        "/CN=etcd",
        server=True,
        client=True,
        sans=["IP:127.0.0.1", "DNS:localhost"],
    )
    make_cert("etcd-client", "etcd-ca", "/CN=kube-apiserver-etcd-client", client=True)
    make_cert(
        "apiserver",
        "ca",
        "/CN=kube-apiserver",
        server=True,
        sans=[
            "IP:127.0.0.1",
            f"IP:{SERVICE_IP}",
            f"IP:{node.NODE_IP}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ],
    )
    make_cert("admin", "ca", "/O=system:masters/CN=kubernetes-admin", client=True)
    make_cert("kube-controller-manager", "ca", "/CN=system:kube-controller-manager", client=True)
    make_cert("kube-scheduler", "ca", "/CN=system:kube-scheduler", client=True)
    make_cert("kwok", "ca", "/O=system:masters/CN=kwok-controller", client=True)
    if node.enabled():
        make_cert(
            "apiserver-kubelet-client",
            "ca",
            "/O=system:masters/CN=kube-apiserver-kubelet-client",
            client=True,
        )
        make_cert(
            "kubelet-serving",
            "ca",
            f"/O=system:nodes/CN=system:node:{node.NODE_NAME}",
            server=True,
            sans=[f"IP:{node.NODE_IP}", f"DNS:{node.NODE_NAME}"],
        )
        make_cert("kubelet", "ca", f"/O=system:nodes/CN=system:node:{node.NODE_NAME}", client=True)
        make_cert("kube-proxy", "ca", "/CN=system:kube-proxy", client=True)
        make_cert("coredns", "ca", "/CN=system:coredns", client=True)
        make_cert("local-path-provisioner", "ca", "/CN=system:local-path-provisioner", client=True)
    openssl("genrsa", "-out", str(PKI / "sa.key"), "2048")
    openssl("rsa", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub"))
    for p in PKI.iterdir():
        if p.suffix == ".key":
            p.chmod(0o600)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, user: str, server: str) -> None:
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: nbctl-local
  cluster:
    server: {server}
    certificate-authority-data: {b64(PKI / "ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(PKI / f"{user}.crt")}
    client-key-data: {b64(PKI / f"{user}.key")}
contexts:
- name: nbctl-local
  context:
    cluster: nbctl-local
    user: {user}
current-context: nbctl-local
""")
    path.chmod(0o600)


# --------------------------------------------------------------------------- state / processes


def load_state() -> dict | None:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return None


def save_state(state: dict) -> None:
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.rename(STATE)


def pid_is(pid: int | None, argv0: str) -> bool:
    """True if pid is alive and runs our binary (guards against PID reuse)."""
    if not pid:
        return False
    proc = CHILDREN.get(pid)
    if proc is not None:  # started by this very run: ask the kernel through waitpid
        return proc.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):  # zombie / dead
        return False
    try:
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return False
    return exe == argv0


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def port_owner(port: int) -> str:
    """Best-effort description of who listens on port (for the error message)."""
    if shutil.which("ss"):
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True
        ).stdout
        if out.strip():
            return out.strip().splitlines()[0].split()[-1]
    return "another process"


def exit_reason(pid: int | None) -> str:
    """How a process started by this run ended ("exit code 1", "killed by SIGKILL")."""
    proc = CHILDREN.get(pid or -1)
    if proc is None or proc.poll() is None:
        return "exited"
    rc = proc.returncode
    if rc < 0:
        return f"killed by {signal.Signals(-rc).name}"
    return f"exit code {rc}"


def spawn(state: dict, name: str) -> None:
    comp = state["components"][name]
    host = comp.get("host", "127.0.0.1")
    for port in [comp["port"], *comp.get("extra_ports", [])]:
        if port is not None and not port_free(port, host):
            raise ClusterError(
                f"component {name}: port {host}:{port} is taken by {port_owner(port)}"
            )
    LOGS.mkdir(parents=True, exist_ok=True)
    log = Path(comp["log"])
    with log.open("a") as fh:
        fh.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n")
        fh.flush()
        proc = subprocess.Popen(
            comp["argv"],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=CLUSTER,
            start_new_session=True,
            env={**os.environ, **comp["env"]} if comp.get("env") else None,
        )
    CHILDREN[proc.pid] = proc
    comp["pid"] = proc.pid
    comp["stopped"] = False
    save_state(state)


def tls_context(state: dict, kind: str) -> ssl.SSLContext:
    if kind == "etcd":
        ctx = ssl.create_default_context(cafile=str(PKI / "etcd-ca.crt"))
        ctx.load_cert_chain(str(PKI / "etcd-client.crt"), str(PKI / "etcd-client.key"))
    elif kind == "apiserver":
        ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
        ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    else:  # self-signed serving certs of controller-manager / scheduler
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def healthy(state: dict, name: str) -> bool:
    comp = state["components"][name]
    url = comp["health"]
    if url is None:  # no health endpoint: running is all we can tell
        return pid_is(comp.get("pid"), comp["argv"][0])
    ctx = None
    if url.startswith("https"):
        ctx = tls_context(
            state, {"etcd": "etcd", "kube-apiserver": "apiserver"}.get(name, "insecure")
        )
    try:
        with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:
            body = resp.read().decode(errors="replace")
            if name == "etcd":
                return '"health":"true"' in body.replace(" ", "")
            return resp.status == 200
    except (urllib.error.URLError, OSError, ssl.SSLError, TimeoutError):
        return False


def wait_healthy(state: dict, name: str, timeout: float = START_TIMEOUT) -> None:
    comp = state["components"][name]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not pid_is(comp["pid"], comp["argv"][0]):
            raise ClusterError(
                f"component {name} died on start ({exit_reason(comp['pid'])}): see {comp['log']}\n"
                f"--- last 20 lines of {name} log ---\n{log_tail(Path(comp['log']))}"
            )
        if healthy(state, name):
            return
        time.sleep(0.5)
    raise ClusterError(
        f"component {name} not healthy after {timeout:.0f}s at {comp['health']}\n"
        f"--- last 20 lines of {name} log ---\n{log_tail(Path(comp['log']))}"
    )


# SIGTERM grace before SIGKILL. kube-apiserver stops listening at once on SIGTERM but then
# lingers ~30s on open watch connections; its data lives in etcd, so it gets a short grace.
STOP_GRACE = {"kube-apiserver": 5.0, "etcd": STOP_TIMEOUT}


def stop_pid(pid: int, argv0: str, name: str) -> None:
    if not pid_is(pid, argv0):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    grace = STOP_GRACE.get(name, 15.0)
    deadline = time.time() + grace
    while time.time() < deadline:
        if not pid_is(pid, argv0):
            return
        time.sleep(0.1)
    if name != "kube-apiserver":
        say(f"{name} (pid {pid}) still running {grace:.0f}s after SIGTERM, sending SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.time() + 10
    while time.time() < deadline and pid_is(pid, argv0):
        time.sleep(0.1)


# --------------------------------------------------------------------------- configuration


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
# Reads by ServiceAccounts (tests/deploy/test_rbac_audit.py needs every request an installed
# controller makes), except the control plane's own in kube-system: a few lines per informer.
- level: None
  userGroups: ["system:serviceaccounts:kube-system"]
- level: Metadata
  verbs: ["get", "list", "watch"]
  userGroups: ["system:serviceaccounts"]
- level: None
"""


def scheduler_config() -> str:
    return f"""apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {CLUSTER / "kube-scheduler.kubeconfig"}
leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
# Stand-in for the T9k Scheduler: same plugins as the default profile; queues are not enforced.
- schedulerName: t9k-scheduler
"""


def kwok_config(stages: str) -> str:
    return (
        """apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.244.128.0/17
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  podPlayStageParallelism: 8
  nodePlayStageParallelism: 4
  podsOnNodeSyncParallelism: 2
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
---
"""
        + stages
    )


def node_manifest(name: str, role: str, pod_cidr: str, extra: dict[str, str]) -> dict:
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "1100", "ephemeral-storage": "1Ti", **extra}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "tensorstack.dev/node-role": role,
            },
        },
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
        },
    }


FAKE_NODES = [
    node_manifest("kwok-cpu-0", "cpu", "10.244.0.0/20", {}),
    node_manifest(
        "kwok-gpu-0",
        "gpu",
        "10.244.16.0/20",
        {"tensorstack.dev/nvidia-gpu-percent": "800", "tensorstack.dev/nvidia-gpu": "8"},
    ),
]


def new_state(bins: Path) -> dict:
    key = bins.parent.name
    ports = dict(
        zip(
            [
                "etcd",
                "etcd-peer",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kwok",
            ],
            pick_ports(6),
            strict=True,
        )
    )
    etcd_data = tempfile.mkdtemp(prefix="nbctl-etcd-")
    real = node.enabled()
    # with the real node the API server listens on the node address, which pods reach too
    api_host = node.NODE_IP if real else "127.0.0.1"
    api = f"https://{api_host}:{ports['kube-apiserver']}"
    etcd_url = f"https://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
    c = CLUSTER
    comps = {
        "etcd": {
            "port": ports["etcd"],
            "extra_ports": [ports["etcd-peer"]],
            "health": f"{etcd_url}/health",
            "argv": [
                str(bins / "etcd"),
                "--name=nbctl",
                f"--data-dir={etcd_data}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=nbctl={peer_url}",
                "--initial-cluster-state=new",
                f"--cert-file={PKI / 'etcd-server.crt'}",
                f"--key-file={PKI / 'etcd-server.key'}",
                f"--trusted-ca-file={PKI / 'etcd-ca.crt'}",
                "--client-cert-auth=true",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        },
        "kube-apiserver": {
            "port": ports["kube-apiserver"],
            "health": f"{api}/readyz",
            "argv": [
                str(bins / "kube-apiserver"),
                f"--bind-address={api_host}",
                f"--advertise-address={api_host}",
                f"--secure-port={ports['kube-apiserver']}",
                f"--etcd-servers={etcd_url}",
                f"--etcd-cafile={PKI / 'etcd-ca.crt'}",
                f"--etcd-certfile={PKI / 'etcd-client.crt'}",
                f"--etcd-keyfile={PKI / 'etcd-client.key'}",
                f"--tls-cert-file={PKI / 'apiserver.crt'}",
                f"--tls-private-key-file={PKI / 'apiserver.key'}",
                f"--client-ca-file={PKI / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={PKI / 'sa.pub'}",
                f"--service-account-signing-key-file={PKI / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                # OwnerReferencesPermissionEnforcement: as on OpenShift and hardened clusters,
                # blockOwnerDeletion needs `update` on the owner's finalizers. PodNodeSelector,
                # PodTolerationRestriction: a namespace can send its pods to the real node.
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement"
                + (",PodNodeSelector,PodTolerationRestriction" if real else ""),
                *(
                    [
                        f"--kubelet-client-certificate={PKI / 'apiserver-kubelet-client.crt'}",
                        f"--kubelet-client-key={PKI / 'apiserver-kubelet-client.key'}",
                        f"--kubelet-certificate-authority={PKI / 'ca.crt'}",
                        "--kubelet-preferred-address-types=InternalIP",
                    ]
                    if real
                    # 127.0.0.1 is not a valid Endpoints address; nothing routes to it anyway
                    else ["--endpoint-reconciler-type=none"]
                ),
                f"--audit-policy-file={c / 'audit-policy.yaml'}",
                f"--audit-log-path={c / 'audit.log'}",
                "--audit-log-maxsize=0",
                "--profiling=false",
                "--v=1",
            ],
        },
        "kube-controller-manager": {
            "port": ports["kube-controller-manager"],
            "health": f"https://127.0.0.1:{ports['kube-controller-manager']}/healthz",
            "argv": [
                str(bins / "kube-controller-manager"),
                f"--kubeconfig={c / 'kube-controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={c / 'kube-controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={c / 'kube-controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['kube-controller-manager']}",
                f"--service-account-private-key-file={PKI / 'sa.key'}",
                f"--root-ca-file={PKI / 'ca.crt'}",
                f"--cluster-signing-cert-file={PKI / 'ca.crt'}",
                f"--cluster-signing-key-file={PKI / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        },
        "kube-scheduler": {
            "port": ports["kube-scheduler"],
            "health": f"https://127.0.0.1:{ports['kube-scheduler']}/healthz",
            "argv": [
                str(bins / "kube-scheduler"),
                f"--config={c / 'kube-scheduler.yaml'}",
                f"--authentication-kubeconfig={c / 'kube-scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={c / 'kube-scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['kube-scheduler']}",
                "--v=1",
            ],
        },
        "kwok": {
            "port": ports["kwok"],
            "health": f"http://127.0.0.1:{ports['kwok']}/healthz",
            "argv": [
                str(bins / "kwok"),
                f"--kubeconfig={c / 'kwok.kubeconfig'}",
                f"--config={c / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{ports['kwok']}",
                "--node-ip=127.0.0.1",
            ],
        },
    }
    comps["kube-apiserver"]["host"] = api_host
    order = list(COMPONENTS)
    if real:
        comps.update(node_components(bins))
        order += node.NODE_COMPONENTS
    for name, comp in comps.items():
        comp["log"] = str(LOGS / f"{name}.log")
        comp["pid"] = None
    return {
        "order": order,
        "real_node": real,
        "key": key,
        "bin_dir": str(bins),
        "etcd_data_dir": etcd_data,
        "api": api,
        "ports": ports,
        "components": comps,
        "created": time.time(),
    }


def node_components(bins: Path) -> dict[str, dict]:
    """The real node's processes (started after the control plane, in this order)."""
    names = ["registry", "containerd", "kube-proxy", "kube-proxy-metrics", "coredns", "dns-ready"]
    p = dict(zip(names, pick_ports(len(names)), strict=True))
    nd = CLUSTER / "node"
    path_env = {"PATH": f"{bins}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    return {
        "registry": {
            "port": p["registry"],
            "health": f"http://127.0.0.1:{p['registry']}/v2/",
            # the config lives under the node's run dir: `down` finds a lost registry by it
            "argv": ["/usr/bin/docker-registry", "serve", str(node.RUN_DIR / "registry.yml")],
        },
        "containerd": {
            "port": p["containerd"],
            "health": f"http://127.0.0.1:{p['containerd']}/v1/metrics",
            "argv": [str(bins / "containerd"), f"--config={nd / 'containerd.toml'}"],
            "env": path_env,
        },
        "kubelet": {
            "port": node.KUBELET_HEALTHZ_PORT,
            "health": f"http://127.0.0.1:{node.KUBELET_HEALTHZ_PORT}/healthz",
            "argv": [
                str(bins / "kubelet"),
                f"--config={nd / 'kubelet.json'}",
                f"--kubeconfig={CLUSTER / 'kubelet.kubeconfig'}",
                f"--hostname-override={node.NODE_NAME}",
                f"--node-ip={node.NODE_IP}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in node.NODE_LABELS.items()),
                "--register-with-taints={key}={value}:{effect}".format(**node.NODE_TAINT),
                f"--root-dir={node.ROOT_DIR / 'kubelet'}",
                "--v=1",
            ],
            "env": path_env,
        },
        "kube-proxy": {
            "port": p["kube-proxy"],
            "extra_ports": [p["kube-proxy-metrics"]],
            "health": f"http://127.0.0.1:{p['kube-proxy']}/livez",
            "argv": [str(bins / "kube-proxy"), f"--config={nd / 'kube-proxy.json'}", "--v=1"],
            "env": path_env,
        },
        "coredns": {
            "port": p["coredns"],
            "extra_ports": [p["dns-ready"]],
            "health": f"http://127.0.0.1:{p['dns-ready']}/ready",
            "argv": [str(bins / "coredns"), "-conf", str(nd / "Corefile")],
        },
        "local-path-provisioner": {
            "port": None,
            "health": None,
            "argv": [str(bins / "local-path-provisioner"), *node.local_path_args(nd)],
            "env": {"KUBECONFIG": str(CLUSTER / "local-path-provisioner.kubeconfig")},
        },
    }


# --------------------------------------------------------------------------- kubectl helpers


def kubectl(
    state: dict, *args: str, input_: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(Path(state["bin_dir"]) / "kubectl"), f"--kubeconfig={KUBECONFIG}", *args],
        input=input_,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def wait_for(what: str, fn, timeout: float, state: dict) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name, comp in state["components"].items():
            if comp["pid"] and not pid_is(comp["pid"], comp["argv"][0]):
                raise ClusterError(
                    f"component {name} died while waiting for {what}\n"
                    f"--- last 20 lines of {name} log ---\n{log_tail(Path(comp['log']))}"
                )
        if fn():
            return
        time.sleep(1)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


def nodes_ready(state: dict) -> bool:
    want = [n["metadata"]["name"] for n in FAKE_NODES]
    if state.get("real_node"):
        want.append(node.NODE_NAME)
    ready = ready_nodes(state)
    return all(n in ready for n in want)


def ready_nodes(state: dict) -> set[str]:
    out = kubectl(state, "get", "nodes", "-o", "json", check=False)
    if out.returncode != 0:
        return set()
    items = json.loads(out.stdout)["items"]
    return {
        n["metadata"]["name"]
        for n in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n["status"].get("conditions", [])
        )
    }


# --------------------------------------------------------------------------- commands


@contextlib.contextmanager
def cluster_lock(timeout: float = 600) -> Iterator[None]:
    """Serialize up/down/stop-component/start-component between concurrent callers."""
    CLUSTER.mkdir(parents=True, exist_ok=True)
    with (CLUSTER / ".lock").open("a+") as lock:
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    raise ClusterError(
                        f"another hack/cluster.sh holds {CLUSTER / '.lock'} after {timeout:.0f}s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def running_components(state: dict) -> dict[str, bool]:
    return {n: pid_is(c.get("pid"), c["argv"][0]) for n, c in state["components"].items()}


def all_bin_dirs() -> list[Path]:
    return sorted(CACHE.glob("*/bin")) if CACHE.exists() else []


NODE_BASELINE = CACHE / "node-baseline.json"
VETHS_BEFORE = CLUSTER / "node" / "veths-before.json"


def teardown(state: dict, *, remove_data: bool = True) -> None:
    for name in reversed(state.get("order", COMPONENTS)):
        comp = state["components"].get(name)
        if not comp:
            continue
        if name == "containerd" and pid_is(comp.get("pid"), comp["argv"][0]):
            # pods go through the CRI while it still answers: CNI DEL removes veths and IPs
            node.crictl_remove_pods(Path(state["bin_dir"]) / "crictl")
        stop_pid(comp.get("pid"), comp["argv"][0], name)
    if state.get("real_node"):
        node.cleanup_host(NODE_BASELINE, all_bin_dirs())
    if remove_data:
        data = state.get("etcd_data_dir")
        if data and Path(data).name.startswith("nbctl-etcd-"):
            shutil.rmtree(data, ignore_errors=True)
        for p in (STATE, KUBECONFIG, CLUSTER / "etcd.env", CLUSTER / "READY", CLUSTER / "env"):
            p.unlink(missing_ok=True)
        shutil.rmtree(PKI, ignore_errors=True)


def cmd_up() -> None:
    bins = build()
    if node.enabled():
        node.check_host()
    with cluster_lock():
        state = load_state()
        if state:
            alive = running_components(state)
            # components stopped on purpose (stop-component) are left alone: a test owns them
            paused = sorted(
                n for n, c in state["components"].items() if c.get("stopped") and not alive[n]
            )
            dead = [n for n, ok in alive.items() if not ok and n not in paused]
            same_key = state.get("key") == bins.parent.name
            if same_key and not dead:
                if paused:
                    say(
                        f"up ({state['api']}), but stopped on purpose: {', '.join(paused)} "
                        "(hack/cluster.sh start-component NAME)"
                    )
                    print("reused")
                    return
                deadline = time.time() + 30
                while time.time() < deadline and not healthy(state, "kube-apiserver"):
                    time.sleep(0.5)
                if healthy(state, "kube-apiserver"):
                    say(f"already up ({state['api']}); KUBECONFIG={KUBECONFIG}")
                    print("reused")
                    return
            reason = (
                f"components not running: {', '.join(dead)}"
                if dead
                else "binaries changed"
                if not same_key
                else "apiserver unhealthy for 30s"
            )
            say(f"stale cluster detected ({reason}); tearing it down and starting fresh")
            teardown(state)
        # a crash before state.json was written may leave pki/ behind: start clean
        for p in (PKI, STATE, KUBECONFIG):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        if LOGS.exists():
            prev = CLUSTER / "logs.prev"
            shutil.rmtree(prev, ignore_errors=True)
            LOGS.rename(prev)
        LOGS.mkdir(parents=True)
        t0 = time.time()
        generate_pki()
        state = new_state(bins)
        save_state(state)
        try:
            start_all(state, bins)
        except BaseException:
            teardown(state)
            raise
        say(f"up in {time.time() - t0:.1f}s: {state['api']}  KUBECONFIG={KUBECONFIG}")
        print("started")  # stdout: "started" or "reused" (hack/test.sh stops only what it started)


def start_all(state: dict, bins: Path) -> None:
    api = state["api"]
    write_kubeconfig(KUBECONFIG, "admin", api)
    for user in ("kube-controller-manager", "kube-scheduler", "kwok"):
        write_kubeconfig(CLUSTER / f"{user}.kubeconfig", user, api)
    (CLUSTER / "audit-policy.yaml").write_text(AUDIT_POLICY)
    (CLUSTER / "kube-scheduler.yaml").write_text(scheduler_config())
    (CLUSTER / "kwok.yaml").write_text(kwok_config((bins.parent / "kwok-stages.yaml").read_text()))
    (CLUSTER / "etcd.env").write_text(
        "# source this file to use etcdctl against the local cluster's etcd\n"
        "export ETCDCTL_API=3\n"
        f"export ETCDCTL_ENDPOINTS=https://127.0.0.1:{state['ports']['etcd']}\n"
        f"export ETCDCTL_CACERT={PKI / 'etcd-ca.crt'}\n"
        f"export ETCDCTL_CERT={PKI / 'etcd-client.crt'}\n"
        f"export ETCDCTL_KEY={PKI / 'etcd-client.key'}\n"
    )
    (CLUSTER / "env").write_text(env_text(bins))
    if state.get("real_node"):
        node.record_baseline(NODE_BASELINE)
        node.cleanup_host(NODE_BASELINE, all_bin_dirs())  # whatever a crashed run left
        VETHS_BEFORE.parent.mkdir(parents=True, exist_ok=True)
        VETHS_BEFORE.write_text(json.dumps(node.veth_names()))  # `leftovers` compares
        node.setup_network()
        write_node_configs(state, bins)

    for name in COMPONENTS:
        spawn(state, name)
        if name in ("etcd", "kube-apiserver"):
            wait_healthy(state, name)
    for name in COMPONENTS[2:]:
        wait_healthy(state, name)
    kubectl(
        state,
        "apply",
        "-f",
        "-",
        input_=json.dumps({"apiVersion": "v1", "kind": "List", "items": FAKE_NODES}),
    )
    if state.get("real_node"):
        start_node(state)
    wait_for("nodes to become Ready", lambda: nodes_ready(state), START_TIMEOUT, state)
    wait_for(
        "the default service account",
        lambda: (
            kubectl(
                state, "-n", "default", "get", "serviceaccount", "default", check=False
            ).returncode
            == 0
        ),
        START_TIMEOUT,
        state,
    )
    (CLUSTER / "READY").write_text(f"{state['api']}\n")


def write_node_configs(state: dict, bins: Path) -> None:
    comps = state["components"]
    nd = CLUSTER / "node"
    nd.mkdir(parents=True, exist_ok=True)
    node.RUN_DIR.mkdir(parents=True, exist_ok=True)
    api = state["api"]
    for user in ("kubelet", "kube-proxy", "coredns", "local-path-provisioner"):
        write_kubeconfig(CLUSTER / f"{user}.kubeconfig", user, api)
    reg_port = comps["registry"]["port"]
    storage = CACHE.parent / "registry"  # images outlive the cluster: kept in the cache
    storage.mkdir(parents=True, exist_ok=True)
    (node.RUN_DIR / "registry.yml").write_text(node.registry_config(reg_port, storage))
    state["registry"] = {"push": f"127.0.0.1:{reg_port}", "name": node.REGISTRY_NAME}
    save_state(state)
    hosts = nd / "certs.d" / node.REGISTRY_NAME / "hosts.toml"
    hosts.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_text(node.hosts_toml(reg_port))
    (nd / "cni").mkdir(exist_ok=True)
    (nd / "cni" / "10-nbctl.conflist").write_text(json.dumps(node.cni_conflist(), indent=2))
    (nd / "containerd.toml").write_text(
        node.containerd_config(bins, bins / "cni", nd, comps["containerd"]["port"])
    )
    (nd / "resolv.conf").write_text(
        f"# pods with dnsPolicy Default: the cluster's DNS only, nothing upstream\n"
        f"nameserver {node.NODE_IP}\n"
    )
    (nd / "kubelet.json").write_text(node.kubelet_config(PKI, nd))
    kp = comps["kube-proxy"]
    (nd / "kube-proxy.json").write_text(
        node.kube_proxy_config(CLUSTER / "kube-proxy.kubeconfig", kp["port"], kp["extra_ports"][0])
    )
    dns = comps["coredns"]
    (nd / "Corefile").write_text(
        node.corefile(CLUSTER / "coredns.kubeconfig", dns["port"], dns["extra_ports"][0])
    )
    node.write_local_path_files(nd)


def start_node(state: dict) -> None:
    """Registry and images, then containerd, kubelet, kube-proxy, CoreDNS, local-path."""
    t0 = time.time()
    kubectl(
        state,
        "apply",
        "--server-side",
        "--field-manager=nbctl-cluster",
        "-f",
        "-",
        input_=json.dumps({"apiVersion": "v1", "kind": "List", "items": node.cluster_objects()}),
    )
    spawn(state, "registry")
    wait_healthy(state, "registry")
    say("real node: images pause, testimage (hack/images.sh; built once, then cached)")
    proc = subprocess.run(
        [str(ROOT / "hack" / "images.sh"), "build", "pause", "testimage"],
        env={**os.environ, "NBCTL_REGISTRY": state["registry"]["push"]},
        stdout=sys.stderr,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        sys.stderr.write(proc.stderr)
        raise ClusterError(
            f"building the real node's images failed: {lines[-1] if lines else proc.returncode}"
        )
    for name in node.NODE_COMPONENTS[1:]:
        spawn(state, name)
        wait_healthy(state, name)
        if name == "kubelet":
            wait_for(
                f"node {node.NODE_NAME} to become Ready",
                lambda: node.NODE_NAME in ready_nodes(state),
                START_TIMEOUT,
                state,
            )
    say(f"real node {node.NODE_NAME} up in {time.time() - t0:.1f}s")


def cmd_down() -> None:
    with cluster_lock():
        state = load_state()
        if not state:
            say("not running (no .cluster/state.json)")
            return
        teardown(state)
    say("down")


def cmd_status() -> int:
    state = load_state()
    if not state:
        print("cluster: down (no .cluster/state.json)")
        return 1
    ok = True
    print(f"cluster: {state['api']}  key={state['key']}")
    print(f"KUBECONFIG={KUBECONFIG}")
    for name, comp in state["components"].items():
        alive = pid_is(comp.get("pid"), comp["argv"][0])
        health = healthy(state, name) if alive else False
        ok &= alive and health
        status = (
            "healthy"
            if health
            else ("running, unhealthy" if alive else ("stopped" if comp.get("stopped") else "DEAD"))
        )
        where = f"{comp.get('host', '127.0.0.1')}:{comp['port']}" if comp["port"] else "-"
        print(f"  {name:<24} pid={comp.get('pid')!s:<8} {where:<21} {status}")
    if ok:
        out = kubectl(state, "get", "nodes", check=False)
        print(out.stdout.rstrip() or out.stderr.rstrip())
    return 0 if ok else 1


def cmd_stop_component(name: str) -> None:
    with cluster_lock():
        state = require_state()
        comp = state["components"][name]
        stop_pid(comp.get("pid"), comp["argv"][0], name)
        comp["stopped"] = True
        save_state(state)
    say(f"{name} stopped")


def cmd_start_component(name: str) -> None:
    with cluster_lock():
        state = require_state()
        comp = state["components"][name]
        if pid_is(comp.get("pid"), comp["argv"][0]):
            say(f"{name} already running (pid {comp['pid']})")
            return
        spawn(state, name)
        wait_healthy(state, name)
    say(f"{name} started (pid {comp['pid']})")


def require_state() -> dict:
    state = load_state()
    if not state:
        raise ClusterError("cluster is not up (no .cluster/state.json): run hack/cluster.sh up")
    return state


def env_text(bins: Path) -> str:
    return f'export KUBECONFIG="{KUBECONFIG}"\nexport PATH="{bins}:$PATH"\n'


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "build":
            print(build())
        elif cmd == "up":
            cmd_up()
        elif cmd == "down":
            cmd_down()
        elif cmd == "status":
            return cmd_status()
        elif cmd == "env":
            print(env_text(bin_dir()), end="")
        elif cmd == "bin-dir":
            print(bin_dir())
        elif cmd == "leftovers":
            before = json.loads(VETHS_BEFORE.read_text()) if VETHS_BEFORE.exists() else None
            left = node.leftovers(NODE_BASELINE, all_bin_dirs(), before)
            print("\n".join(left) if left else "none")
            return 1 if left else 0
        elif cmd in ("stop-component", "start-component"):
            names = (load_state() or {}).get("order", COMPONENTS)
            if len(args) != 1 or args[0] not in names:
                raise ClusterError(f"{cmd} needs one of: {', '.join(names)}")
            (cmd_stop_component if cmd == "stop-component" else cmd_start_component)(args[0])
        else:
            raise ClusterError(
                f"unknown command {cmd!r}; try build|up|down|status|env|bin-dir|"
                "stop-component NAME|start-component NAME"
            )
    except (ClusterError, node.NodeError) as e:
        first, _, rest = str(e).partition("\n")
        print(f"cluster {cmd}: error: {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

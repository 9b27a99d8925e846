"""The real node of the local cluster (see README, "The real node").

Beside the KWOK nodes, one node runs real containers on this machine: containerd (CRI) with
Debian's runc, a CNI bridge, the kubelet and kube-proxy of the pinned Kubernetes, CoreDNS on
the host, local-path-provisioner as the default StorageClass and a plain-HTTP OCI registry
(Debian's docker-registry) that containerd pulls `registry.nbctl.local/...` from.

Network: the bridge `nbctl0` holds the node address 10.244.64.1 (the node's InternalIP, the
API server's and CoreDNS's address for pods) and the pod subnet 10.244.64.0/24. The rest of
the pod range 10.244.0.0/16 has an `unreachable` route under the bridge's more specific one;
the Service range 10.96.0.0/16 is routed onto the bridge (see setup_network). IP forwarding is
left as found and pods get no NAT: no packet for those ranges leaves this machine.

Everything the node touches outside its own directories is recorded the first time (a baseline
in the build cache, kept) and put back by `down`: sysctls, /var/lib/kubelet, /var/log/pods,
/var/log/containers, /var/lib/cni, /run/netns. `leftovers()` lists whatever is still there.

Standard library only. Imported by hack/cluster.py (and components, pki).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

NODE_NAME = "real-node-0"
NODE_LABELS = {"type": "real", "tensorstack.dev/node-role": "real"}
# Tainted, so pods made for the KWOK nodes (images nobody can pull) never land here. A pod
# chooses the real node with a toleration and the label, or by living in a namespace that says
# so (PodNodeSelector + PodTolerationRestriction admission, see REAL_NODE_NAMESPACE_ANNOTATIONS).
NODE_TAINT = {"key": "nbctl.dev/real-node", "value": "true", "effect": "NoSchedule"}
REAL_NODE_NAMESPACE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": "type=real",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": NODE_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}]
    ),
}
# namespaces whose pods run on the real node: the newcomer's `default`, the provisioner's own
REAL_NODE_NAMESPACES = ["default", "local-path-storage"]
BRIDGE = "nbctl0"
NODE_IP = "10.244.64.1"
NODE_SUBNET = "10.244.64.0/24"
POD_RANGE = "10.244.0.0/16"
SERVICE_RANGE = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
REGISTRY_NAME = "registry.nbctl.local"
PAUSE_IMAGE = f"{REGISTRY_NAME}/pause:3.10"
TEST_IMAGE = f"{REGISTRY_NAME}/testimage:1"
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
STORAGE_CLASS = "local-path"
LOCAL_PATH_NAMESPACE = "local-path-storage"

ROOT_DIR = Path(os.environ.get("NBCTL_NODE_ROOT", "/var/lib/nbctl-node"))
RUN_DIR = Path(os.environ.get("NBCTL_NODE_RUN", "/run/nbctl-node"))
CONTAINERD_SOCK = RUN_DIR / "containerd" / "containerd.sock"
RUNC_ROOT = RUN_DIR / "runc"
# paths outside our own directories that the kubelet, containerd or CNI create
OUTSIDE_PATHS = ["/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/cni"]
NETNS_DIR = Path("/run/netns")
SYSCTLS = [
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
]
# the kubelet's (cgroupfs driver) and containerd's cgroups, in every hierarchy: everything in
# them is the node's (this is a development machine, not a Kubernetes node of another cluster)
CGROUP_NAMES = ("kubepods", "k8s.io")
# kube-proxy and the kubelet make KUBE-*; the portmap plugin CNI-HOSTPORT-* and CNI-DN-*
CHAIN_PREFIXES = ("KUBE-", "CNI-HOSTPORT-", "CNI-DN-")
NODE_PROCESS_NAMES = (
    "containerd",
    "containerd-shim-runc-v2",
    "kubelet",
    "kube-proxy",
    "coredns",
    "local-path-provisioner",
    "docker-registry",
)
NODE_COMPONENTS = [
    "registry",
    "containerd",
    "kubelet",
    "kube-proxy",
    "coredns",
    "local-path-provisioner",
]
DEBIAN_PACKAGES = {
    "runc": "runc",
    "iptables": "iptables",
    "ip6tables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "docker-registry": "docker-registry",
    "buildah": "buildah",
    "busybox": "busybox-static",
}


class NodeError(Exception):
    """A one-line, user-facing failure of the real node."""


def enabled() -> bool:
    return os.environ.get("NBCTL_REAL_NODE", "1") not in ("0", "false", "no", "")


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        if check:
            raise NodeError(f"`{args[0]}` not found on PATH") from None
        return subprocess.CompletedProcess(list(args), 127, "", f"{args[0]}: not found")
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise NodeError(f"`{' '.join(args)}` failed: {err[-1] if err else proc.returncode}")
    return proc


# --------------------------------------------------------------------------- host checks


@functools.cache
def cgroup_mode() -> str:
    """'v2' (unified), 'hybrid' (v1 controllers + a v2 mount) or 'v1'."""
    fs = sh("stat", "-fc", "%T", "/sys/fs/cgroup", check=False).stdout.strip()
    if fs == "cgroup2fs":
        return "v2"
    return "hybrid" if Path("/sys/fs/cgroup/unified").is_dir() else "v1"


def missing_packages() -> list[str]:
    """Debian packages whose commands the real node needs and this machine lacks."""
    need = []
    for cmd, pkg in DEBIAN_PACKAGES.items():
        found = shutil.which(cmd) or Path(f"/usr/sbin/{cmd}").exists()
        if not found and pkg not in need:
            need.append(pkg)
    return need


def check_host() -> None:
    """One line naming the first missing feature, and the switch to run without a real node."""
    off = "(or set NBCTL_REAL_NODE=0 to run the KWOK nodes only)"
    if os.geteuid() != 0:
        raise NodeError(f"the real node needs root (containers, bridge, iptables) {off}")
    pkgs = missing_packages()
    if pkgs:
        raise NodeError(f"missing Debian packages: {' '.join(pkgs)}: apt-get install {off}")
    for mod in ("overlay", "br_netfilter", "bridge", "veth"):
        sh("modprobe", mod, check=False)
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise NodeError(f"the kernel has no overlayfs (containerd's snapshotter needs it) {off}")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        raise NodeError(f"the kernel has no br_netfilter (Services need it) {off}")
    probe = sh(
        "ip", "link", "add", "nbctl-probe0", "type", "veth", "peer", "nbctl-probe1", check=False
    )
    if probe.returncode != 0:
        raise NodeError(f"cannot create veth pairs ({probe.stderr.strip()}) {off}")
    sh("ip", "link", "del", "nbctl-probe0", check=False)
    mode = cgroup_mode()
    ctrl = Path("/sys/fs/cgroup/memory") if mode != "v2" else Path("/sys/fs/cgroup")
    if not ctrl.exists():
        raise NodeError(f"no cgroup memory controller at {ctrl} {off}")
    if not Path("/proc/self/ns/net").exists():
        raise NodeError(f"the kernel has no network namespaces {off}")


# --------------------------------------------------------------------------- baseline


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    out = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            out[name] = _sysctl_path(name).read_text().strip()
    return out


def record_baseline(path: Path) -> dict[str, Any]:
    """What the machine looked like before the node first touched it (written once, kept)."""
    if path.exists():
        return dict(json.loads(path.read_text()))
    base = {
        "sysctls": read_sysctls(),
        "paths": [p for p in OUTSIDE_PATHS if Path(p).exists()],
        "netns_dir": NETNS_DIR.exists(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(base, indent=2))
    return base


# --------------------------------------------------------------------------- network


def setup_network() -> None:
    sh("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    sh("sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=1", check=False)
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    # Nothing for the pod or Service ranges may leave this machine. Pod range: the bridge's /24
    # is more specific; the rest of the range is `unreachable`. Service range: it must route
    # somewhere for the host's own connections to reach kube-proxy's DNAT (an `unreachable`
    # route fails connect() before netfilter sees the packet), so it goes onto the bridge,
    # which reaches only this machine's pods: a Service without endpoints is rejected by
    # kube-proxy, an unallocated address gets no ARP answer (EHOSTUNREACH).
    sh("ip", "route", "replace", "unreachable", POD_RANGE)
    sh("ip", "route", "replace", SERVICE_RANGE, "dev", BRIDGE, "src", NODE_IP)


def _links() -> list[dict[str, Any]]:
    out = sh("ip", "-d", "-j", "link", "show", check=False).stdout
    return list(json.loads(out)) if out.strip() else []


def veth_names() -> list[str]:
    return sorted(
        link["ifname"]
        for link in _links()
        if (link.get("linkinfo") or {}).get("info_kind") == "veth"
    )


def _our_routes() -> list[str]:
    out = sh("ip", "route", "show", check=False).stdout.splitlines()
    return [r for r in out if "10.244." in r or "10.96." in r or BRIDGE in r]


# --------------------------------------------------------------------------- configuration


def containerd_config(bins: Path, cni_bin: Path, conf_dir: Path, metrics_port: int) -> str:
    return f"""version = 4
root = "{ROOT_DIR / "containerd"}"
state = "{RUN_DIR / "containerd"}"
imports = []

[plugins."io.containerd.server.v1.grpc"]
  address = "{CONTAINERD_SOCK}"

[plugins."io.containerd.server.v1.ttrpc"]
  address = "{RUN_DIR / "containerd" / "containerd.sock.ttrpc"}"

[plugins."io.containerd.server.v1.metrics"]
  address = "127.0.0.1:{metrics_port}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{conf_dir / "certs.d"}"

[plugins."io.containerd.cri.v1.runtime"]
  # root here lacks CAP_SYS_RESOURCE: runc cannot set the negative oom_score_adj the CRI asks
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc") or "/usr/sbin/runc"}"
        Root = "{RUNC_ROOT}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{conf_dir / "cni"}"
    max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"

[plugins."io.containerd.transfer.v1.local"]
  config_path = "{conf_dir / "certs.d"}"

# nothing outside the node's own directories
[plugins."io.containerd.internal.v1.opt"]
  path = "{ROOT_DIR / "opt"}"

[plugins."io.containerd.nri.v1.nri"]
  disable = true
"""


def hosts_toml(registry_port: int) -> str:
    return f"""server = "http://127.0.0.1:{registry_port}"

[host."http://127.0.0.1:{registry_port}"]
  capabilities = ["pull", "resolve"]
"""


def cni_conflist() -> dict[str, Any]:
    gw = NODE_IP
    return {
        "cniVersion": "1.0.0",
        "name": "nbctl",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [
                        [{"subnet": NODE_SUBNET, "gateway": gw, "rangeStart": "10.244.64.10"}]
                    ],
                    # pods reach other pods and Services through the node, nothing else
                    "routes": [{"dst": POD_RANGE, "gw": gw}, {"dst": SERVICE_RANGE, "gw": gw}],
                    "dataDir": str(ROOT_DIR / "cni" / "networks"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(pki: Path, conf_dir: Path) -> str:
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",
        # Kubernetes >= 1.35 refuses cgroup v1 unless told (KEP-5573); see cgroup_mode()
        "failCgroupV1": cgroup_mode() == "v2",
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCK}",
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(conf_dir / "resolv.conf"),
        "failSwapOn": False,
        # without CAP_SYS_RESOURCE the kubelet cannot lower its own oom_score_adj
        "oomScoreAdj": 0,
        "podLogsDir": str(ROOT_DIR / "pod-logs"),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "serializeImagePulls": False,
        "maxPods": 110,
        "protectKernelDefaults": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "shutdownGracePeriod": "0s",
        "nodeStatusReportFrequency": "1m",
    }
    return json.dumps(cfg, indent=2)


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> str:
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "mode": "iptables",
        "clusterCIDR": POD_RANGE,
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # 0: leave the host's conntrack sysctls alone
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"masqueradeAll": False, "localhostNodePorts": False},
    }
    return json.dumps(cfg, indent=2)


def corefile(kubeconfig: Path, health_port: int, ready_port: int) -> str:
    return f"""# cluster.local only: names outside the cluster are refused, never forwarded upstream
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig} nbctl-local
        pods insecure
    }}
    cache 5
}}
.:53 {{
    bind {NODE_IP}
    template ANY ANY {{
        rcode REFUSED
    }}
}}
"""


def registry_config(port: int, storage: Path) -> str:
    return f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def local_path_config() -> str:
    return json.dumps(
        {
            "nodePathMap": [
                {
                    "node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                    "paths": [str(ROOT_DIR / "local-path")],
                }
            ]
        },
        indent=2,
    )


def local_path_args(conf_dir: Path) -> list[str]:
    """local-path-provisioner run outside the cluster (KUBECONFIG in its environment)."""
    return [
        "--debug",
        "start",
        f"--config={conf_dir / 'local-path' / 'config.json'}",
        f"--helper-pod-file={conf_dir / 'local-path' / 'helperPod.yaml'}",
        f"--namespace={LOCAL_PATH_NAMESPACE}",
        "--service-account-name=local-path-helper",
        "--provisioner-name=rancher.io/local-path",
        "--configmap-name=local-path-config",  # its setup/teardown scripts (cluster_objects)
        f"--helper-image={TEST_IMAGE}",
    ]


def write_local_path_files(conf_dir: Path) -> None:
    d = conf_dir / "local-path"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(local_path_config())
    (d / "helperPod.yaml").write_text(local_path_helper_pod())


LOCAL_PATH_SETUP = """#!/bin/sh
set -eu
mkdir -m 0777 -p "$VOL_DIR"
"""
LOCAL_PATH_TEARDOWN = """#!/bin/sh
set -eu
rm -rf "$VOL_DIR"
"""


def local_path_helper_pod() -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "helper-pod"},
            "spec": {
                "priorityClassName": "system-node-critical",
                "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists"}],
                "containers": [
                    {"name": "helper-pod", "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent"}
                ],
            },
        },
        indent=2,
    )


def cluster_objects() -> list[dict[str, Any]]:
    """RBAC for the host processes that have their own credentials, the default StorageClass."""
    coredns_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "nbctl:coredns"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    }
    local_path_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "nbctl:local-path-provisioner"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods/log"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
            },
            {
                "apiGroups": [""],
                "resources": ["persistentvolumes"],
                "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
            },
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {
                "apiGroups": ["storage.k8s.io"],
                "resources": ["storageclasses"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["get", "list", "watch", "create", "update", "patch"],
            },
        ],
    }

    def binding(role: str, user: str) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }

    return [
        coredns_role,
        binding("nbctl:coredns", "system:coredns"),
        local_path_role,
        binding("nbctl:local-path-provisioner", "system:local-path-provisioner"),
        *[
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "annotations": REAL_NODE_NAMESPACE_ANNOTATIONS},
            }
            for ns in REAL_NODE_NAMESPACES
        ],
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "local-path-helper", "namespace": LOCAL_PATH_NAMESPACE},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "local-path-config", "namespace": LOCAL_PATH_NAMESPACE},
            "data": {"setup": LOCAL_PATH_SETUP, "teardown": LOCAL_PATH_TEARDOWN},
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    ]


# --------------------------------------------------------------------------- teardown


def _mounts_under(prefixes: list[str]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.append(point)
    return points


def _netns_files() -> list[Path]:
    if not NETNS_DIR.is_dir():
        return []
    return [p for p in NETNS_DIR.iterdir() if p.name.startswith("cni-")]


def _cgroup_dirs() -> list[Path]:
    found = []
    root = Path("/sys/fs/cgroup")
    hierarchies = [root] if cgroup_mode() == "v2" else [p for p in root.iterdir() if p.is_dir()]
    for h in hierarchies:
        for name in CGROUP_NAMES:
            if (h / name).is_dir():
                found.append(h / name)
    return found


def _cgroup_pids(top: Path) -> set[int]:
    pids: set[int] = set()
    for dirpath, _dirs, files in os.walk(top):
        for f in ("cgroup.procs", "tasks"):
            if f in files:
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(x) for x in (Path(dirpath) / f).read_text().split())
    return pids


def _node_processes(bin_dirs: list[Path]) -> list[tuple[int, str]]:
    """Processes running one of the node's binaries (from our build cache) or Debian's registry."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe").removesuffix(" (deleted)")
        except OSError:
            continue
        name = os.path.basename(exe)
        ours = any(exe.startswith(str(d) + "/") for d in bin_dirs)
        registry = exe == "/usr/bin/docker-registry" and _cmdline_mentions(entry, "nbctl")
        if (ours and name in NODE_PROCESS_NAMES) or registry:
            found.append((int(entry.name), exe))
    return found


def _cmdline_mentions(proc: Path, word: str) -> bool:
    try:
        return word in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _kill_all(pids: set[int] | list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _iptables_chains() -> dict[str, dict[str, list[str]]]:
    """{"iptables": {table: [our chains]}, "ip6tables": {...}}."""
    out: dict[str, dict[str, list[str]]] = {}
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(f"{tool}-save"):
            continue
        text = sh(f"{tool}-save", check=False).stdout
        table = ""
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chain = line[1:].split()[0]
                if chain.startswith(CHAIN_PREFIXES):
                    out.setdefault(tool, {}).setdefault(table, []).append(chain)
    return out


def _remove_chains() -> None:
    for tool, tables in _iptables_chains().items():
        for table, chains in tables.items():
            text = sh(f"{tool}-save", "-t", table, check=False).stdout
            # jumps into our chains from any chain first, then flush and delete ours
            for line in text.splitlines():
                if line.startswith("-A ") and any(f"-j {c}" in line for c in chains):
                    rule = shlex.split(line[3:])  # comments are quoted
                    sh(tool, "-w", "-t", table, "-D", *rule, check=False)
            for chain in chains:
                sh(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in chains:
                sh(tool, "-w", "-t", table, "-X", chain, check=False)
    if shutil.which("nft"):
        tables = sh("nft", "list", "tables", check=False).stdout.splitlines()
        for t in tables:
            parts = t.split()
            if len(parts) == 3 and parts[2] == "kube-proxy":
                sh("nft", "delete", "table", parts[1], parts[2], check=False)


def crictl_remove_pods(crictl: Path) -> None:
    """Stop and remove every pod sandbox through the CRI (CNI DEL: veths, IPs, netns go)."""
    if not crictl.exists() or not CONTAINERD_SOCK.exists():
        return
    sh(
        str(crictl),
        f"--runtime-endpoint=unix://{CONTAINERD_SOCK}",
        "--timeout=30s",
        "rmp",
        "--all",
        "--force",
        check=False,
        timeout=120,
    )


def cleanup_host(baseline_path: Path, bin_dirs: list[Path]) -> None:
    """Remove everything the node made. Idempotent; works after a SIGKILLed run too."""
    # 1. processes: ours, then everything in the pods' cgroups (containers, pause, shims)
    procs = _node_processes(bin_dirs)
    _kill_all([p for p, _ in procs])
    for _ in range(3):
        pids = set()
        for cg in _cgroup_dirs():
            pids |= _cgroup_pids(cg)
        if not pids:
            break
        _kill_all(pids)
        time.sleep(0.3)
    # 2. mounts (volumes, overlay rootfs, shm, netns, the kubelet's rshared bind)
    base = json.loads(baseline_path.read_text()) if baseline_path.exists() else None
    pre_paths = set(base["paths"]) if base else set(OUTSIDE_PATHS)
    prefixes = [str(ROOT_DIR), str(RUN_DIR), *[p for p in OUTSIDE_PATHS if p not in pre_paths]]
    for _ in range(5):
        points = _mounts_under(prefixes) + [str(p) for p in _netns_files() if os.path.ismount(p)]
        if not points:
            break
        for point in sorted(set(points), key=lambda p: -p.count("/")):
            sh("umount", "-l", point, check=False)
    for p in _netns_files():
        p.unlink(missing_ok=True)
    # 3. links: veths on our bridge, the bridge
    # (a veth whose pod netns is gone has gone with it)
    for link in _links():
        if link.get("master") == BRIDGE:
            sh("ip", "link", "del", link["ifname"], check=False)
    if any(link.get("ifname") == BRIDGE for link in _links()):
        sh("ip", "link", "del", BRIDGE, check=False)
    # 4. routes, iptables/nftables chains
    sh("ip", "route", "del", "unreachable", POD_RANGE, check=False)
    sh("ip", "route", "del", SERVICE_RANGE, check=False)
    _remove_chains()
    # 5. cgroups, bottom-up
    for cg in _cgroup_dirs():
        for dirpath, _dirs, _files in sorted(os.walk(cg), key=lambda t: -t[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
    # 6. directories
    for d in (ROOT_DIR, RUN_DIR):
        shutil.rmtree(d, ignore_errors=True)
    for p in OUTSIDE_PATHS:
        if p not in pre_paths:
            shutil.rmtree(p, ignore_errors=True)
            if os.path.islink(p):
                os.unlink(p)
    if base is not None and not base.get("netns_dir") and NETNS_DIR.is_dir():
        with contextlib.suppress(OSError):
            NETNS_DIR.rmdir()
    # 7. sysctls back to what they were
    if base is not None:
        for name, value in base["sysctls"].items():
            try:
                if _sysctl_path(name).read_text().strip() != value:
                    _sysctl_path(name).write_text(value + "\n")
            except OSError:
                pass


def leftovers(
    baseline_path: Path, bin_dirs: list[Path], veths_before: list[str] | None = None
) -> list[str]:
    """Everything of the node still on the machine (empty after a clean `down`).
    `veths_before`: the veth pairs the machine had when the node started (others' are theirs)."""
    left = []
    if veths_before is not None:
        left += [f"veth {name}" for name in veth_names() if name not in veths_before]
    for pid, exe in _node_processes(bin_dirs):
        left.append(f"process {pid} {exe}")
    for link in _links():
        name = link.get("ifname", "")
        if name == BRIDGE or link.get("master") == BRIDGE:
            left.append(f"link {name}")
    left += [f"route {r}" for r in _our_routes()]
    for tool, tables in _iptables_chains().items():
        for table, chains in tables.items():
            left += [f"{tool} chain {table}/{c}" for c in chains]
    left += [f"mount {m}" for m in _mounts_under([str(ROOT_DIR), str(RUN_DIR), *OUTSIDE_PATHS])]
    left += [f"netns {p}" for p in _netns_files()]
    left += [f"cgroup {c}" for c in _cgroup_dirs()]
    left += [f"path {d}" for d in (ROOT_DIR, RUN_DIR) if d.exists()]
    base = json.loads(baseline_path.read_text()) if baseline_path.exists() else None
    pre_paths = set(base["paths"]) if base else set()
    left += [f"path {p}" for p in OUTSIDE_PATHS if p not in pre_paths and os.path.lexists(p)]
    if base is not None:
        current = read_sysctls()
        for name, value in base["sysctls"].items():
            now = current.get(name)
            if now is not None and now != value:
                left.append(f"sysctl {name}={now} (was {value})")
    return left

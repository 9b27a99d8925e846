"""What each component of the local cluster runs with: configuration files, the fake nodes,
and the command lines and ports of a new cluster (new_state)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import node
from clusterbase import CLUSTER, COMPONENTS, FAKE_NODE_ANNOTATION, LOGS, PKI, SERVICE_CIDR
from processes import pick_ports

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

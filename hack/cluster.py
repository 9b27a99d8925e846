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

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import node
from clusterbase import (
    CACHE,
    CLUSTER,
    COMPONENTS,
    KUBECONFIG,
    LOGS,
    PKI,
    ROOT,
    START_TIMEOUT,
    STATE,
    ClusterError,
    log_tail,
    say,
)
from clusterbuild import bin_dir, build
from components import AUDIT_POLICY, FAKE_NODES, kwok_config, new_state, scheduler_config
from pki import generate_pki, write_kubeconfig
from processes import healthy, load_state, pid_is, save_state, spawn, stop_pid, wait_healthy


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

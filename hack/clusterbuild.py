"""Building the local cluster's binaries from the Go wrapper modules in hack/cluster/ (pinned
versions, cache key, `go build` with one-line errors)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import nodebuild
from clusterbase import ALL_BINARIES, CACHE, K8S_BINARIES, MODDIR, ClusterError, say


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

#!/usr/bin/env python3
"""Container images built without Docker: buildah, Debian packages, a local registry.

Usage: hack/images.sh {build [--no-push] [NAME...]|list|pinned [NAME...]}

  build   builds the named images (default: all) into buildah's local storage and pushes them
          to the local registry; an image whose inputs did not change is not rebuilt, and one
          the registry already has is not pushed again
  list    prints the reference pods use for each image, one per line
  pinned  the same with the pushed digest (`...:1@sha256:...`): a node that cached the tag still
          runs what was pushed last

Images are images/<name>/Containerfile (the controller: the top-level Dockerfile). Those FROM a
Debian base get `--build-arg BASE=localhost/nbctl/debian:bookworm`: a `debootstrap
--variant=minbase` root filesystem made from the Debian mirror in this machine's apt sources,
cached as a tarball in .cache/images/. The registry is $NBCTL_REGISTRY (host:port, plain HTTP)
or the `registry.push` address in .cluster/state.json (written by `hack/cluster.sh up`); pods
name the images registry.nbctl.local/<name>:<tag>.

Standard library only; uses buildah, debootstrap and go (installed with apt-get when missing).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = ROOT / "images"
CACHE = Path(os.environ.get("NBCTL_IMAGES_CACHE_DIR", ROOT / ".cache" / "images"))
LOGS = CACHE / "logs"
CLUSTER = Path(os.environ.get("NBCTL_CLUSTER_DIR", ROOT / ".cluster"))
STATE = CLUSTER / "state.json"
PUSHED = CACHE / "pushed.json"

REGISTRY_NAME = "registry.nbctl.local"  # what pods write; containerd maps it to the registry
SUITE = "bookworm"
BASE_REF = f"localhost/nbctl/debian:{SUITE}"
BASE_PACKAGES: tuple[str, ...] = ()  # added to debootstrap's minbase set
BASE_FORMAT = "1"  # bump when the rootfs customisation below changes
BUILD_FORMAT = "1"  # bump when the way images are built changes (part of every input digest)
ISOLATION = os.environ.get("BUILDAH_ISOLATION", "chroot")  # runc needs caps this VM lacks
HEARTBEAT = 20.0  # seconds between progress lines of a long step
LABEL_INPUTS = "dev.nbctl.inputs"
LABEL_BASE_KEY = "dev.nbctl.base-key"
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
# command -> Debian package, for what is missing on a brand-new machine
TOOL_PACKAGES = {
    "buildah": "buildah",
    "debootstrap": "debootstrap",
    "go": "golang-go",
    "tar": "tar",
    "gzip": "gzip",
}


class ImagesError(Exception):
    """A one-line, user-facing failure."""


def say(msg: str) -> None:
    print(f"images: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the images


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    containerfile: Path
    context: Path
    inputs: tuple[Path, ...]  # files and folders whose content makes the input digest
    uses_base: bool = True
    prepare: Callable[[Image, Path], Path] | None = None  # builds a context dir, returns it
    extra_key: Callable[[], str] = field(default=lambda: "")

    @property
    def ref(self) -> str:
        return f"{REGISTRY_NAME}/{self.name}:{self.tag}"


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def go_version() -> str:
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()


def prepare_pause(image: Image, log: Path) -> Path:
    """A build context: the folder's files plus the static binary built from them."""
    ctx = CACHE / "context" / image.name
    if ctx.exists():
        shutil.rmtree(ctx)
    shutil.copytree(image.context, ctx)
    env = dict(os.environ, CGO_ENABLED="0", GOOS="linux", GOFLAGS="-buildvcs=false")
    env.setdefault("GOTOOLCHAIN", "local")
    run_logged(
        ["go", "build", "-trimpath", "-ldflags", f"-s -w -X main.version={image.tag}", "-o",
         str(ctx / "pause"), "."],
        log,
        f"{image.name}: go build",
        cwd=image.context,
        env=env,
    )  # fmt: skip
    return ctx


def all_images() -> list[Image]:
    def folder(name: str, tag: str, **kw: object) -> Image:
        d = IMAGES_DIR / name
        return Image(name, tag, d / "Containerfile", d, (d,), **kw)  # type: ignore[arg-type]

    return [
        folder("pause", "3.10", uses_base=False, prepare=prepare_pause, extra_key=go_version),
        folder("testimage", "1"),
        folder("notebook", "1"),
        Image(
            "notebook-controller",
            project_version(),
            ROOT / "Dockerfile",
            ROOT,
            tuple(
                ROOT / p
                for p in ("Dockerfile", ".dockerignore", "pyproject.toml", "notebook_controller")
            ),
        ),
    ]


def select(names: list[str]) -> list[Image]:
    images = all_images()
    if not names:
        return images
    known = {i.name: i for i in images}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ImagesError(f"unknown image {', '.join(unknown)}; known: {', '.join(known)}")
    return [i for i in images if i.name in names]


def tree_digest(paths: Iterable[Path]) -> str:
    """sha256 over names, executable bits, symlink targets and contents (no caches)."""
    h = hashlib.sha256()
    for top in paths:
        files = [top] if not top.is_dir() else sorted(p for p in top.rglob("*"))
        for p in files:
            rel = p.relative_to(ROOT).as_posix()
            if (
                "__pycache__" in p.parts
                or p.suffix == ".pyc"
                or (p.is_dir() and not p.is_symlink())
            ):
                continue
            h.update(rel.encode() + b"\0")
            if p.is_symlink():
                h.update(b"L" + os.readlink(p).encode())
            elif p.exists():
                h.update(b"X" if os.access(p, os.X_OK) else b"F")
                h.update(hashlib.sha256(p.read_bytes()).digest())
            h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- processes


def tail_error(log: Path, start: int = 0) -> str:
    """The most telling line of a failed step's output (apt, pip, go, buildah, debootstrap)."""
    try:
        with log.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for pattern in (r"^E: ", r"^W: Failure", r"^ERROR: "):  # apt/debootstrap, pip
        hits = [ln for ln in lines if re.search(pattern, ln)]
        if hits:
            return hits[-1][:300]
    for i, ln in enumerate(lines):  # buildah: the failed step's last words, then the step
        m = re.match(r'Error: building at STEP "(.*)": (.*)', ln)
        if m:
            before = [x for x in lines[:i] if not x.startswith("subprocess exited with")]
            step = m.group(1) if len(m.group(1)) <= 60 else m.group(1)[:57] + "..."
            return f"{before[-1][:200] if before else m.group(2)} (at STEP {step!r})"
    for pattern in (
        r"Temporary failure resolving|Could not resolve|connection refused|no such host",
        r"^error: |^Error: |^fatal: ",
        r"(?i)error",
    ):
        hits = [ln for ln in lines if re.search(pattern, ln)]
        if hits:
            return hits[-1][:300]
    return lines[-1][:300] if lines else "(no output)"


def progress_key(line: str) -> str | None:
    """A line that starts a new phase: buildah's STEP lines, debootstrap's phases."""
    if re.match(r"(\[\d+/\d+\] )?STEP ", line):
        return line
    m = re.match(r"I: (Retrieving|Validating|Extracting|Installing|Unpacking|Configuring)\b", line)
    if m and "base system" not in line:
        phase = DEBOOTSTRAP_PHASES[m.group(1)]
        return f"debootstrap: {phase} packages"
    return None


DEBOOTSTRAP_PHASES = {
    "Retrieving": "downloading",
    "Validating": "downloading",
    "Extracting": "extracting",
    "Installing": "installing",
    "Unpacking": "installing",
    "Configuring": "configuring",
}


def run_logged(
    cmd: list[str],
    log: Path,
    what: str,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = False,
) -> None:
    """Run `cmd` with its output appended to `log`; progress lines with elapsed seconds on
    stderr (a new phase, or the latest output line every HEARTBEAT seconds); a failure raises
    one line naming the cause."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n".encode())
        fh.flush()
        start = fh.tell()
        t0 = last = time.monotonic()
        latest = phase = ""
        with log.open("rb") as reader:
            reader.seek(start)
            try:
                proc = subprocess.Popen(
                    cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=cwd, env=env,
                )  # fmt: skip
            except OSError as e:
                raise ImagesError(f"{what}: cannot run {cmd[0]}: {e.strerror}") from None
            pending = b""
            while True:
                try:
                    proc.wait(timeout=1)
                    finished = True
                except subprocess.TimeoutExpired:
                    finished = False
                pending += reader.read()
                *complete, pending = pending.split(b"\n")
                now = time.monotonic()
                for raw in complete:
                    line = raw.decode(errors="replace").strip()
                    if not line:
                        continue
                    latest = line
                    key = progress_key(line)
                    if key and key != phase and not quiet:
                        phase = key
                        say(f"{what}: [{now - t0:.0f}s] {key[:110]}")
                        last = now
                if finished:
                    break
                if not quiet and now - last >= HEARTBEAT:
                    say(f"{what}: [{now - t0:.0f}s] {latest[:110]}")
                    last = now
    if proc.returncode != 0:
        raise ImagesError(f"{what} failed: {tail_error(log, start)} (full log: {log})")


def capture(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def ensure_tools(commands: list[str]) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if not missing:
        return
    packages = sorted({TOOL_PACKAGES[c] for c in missing})
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ImagesError(
            f"{', '.join(missing)} not found on PATH: install them "
            f"(Debian: apt-get install {' '.join(packages)})"
        )
    say(f"installing {' '.join(packages)} with apt-get (missing: {', '.join(missing)})")
    log = LOGS / "apt-get.log"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_logged(["apt-get", "update", "-q"], log, "apt-get update", env=env)
    run_logged(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        log,
        "apt-get install",
        env=env,
    )
    still = [c for c in commands if shutil.which(c) is None]
    if still:
        raise ImagesError(f"{', '.join(still)} still not on PATH after apt-get install")


# --------------------------------------------------------------------------- buildah storage


def inspect_image(ref: str) -> dict | None:
    proc = capture(["buildah", "inspect", "--type", "image", ref])
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)


def image_labels(info: dict | None) -> dict[str, str]:
    if not info:
        return {}
    return (info.get("OCIv1", {}).get("config", {}) or {}).get("Labels") or {}


def image_id(ref: str) -> str:
    info = inspect_image(ref)
    if not info:
        raise ImagesError(f"{ref} is not in buildah's local storage after building it")
    return str(info["FromImageID"])


def image_size(ref: str) -> str:
    """Uncompressed size, as buildah says it ("123 MB")."""
    proc = capture(["buildah", "images", "--json", ref])
    try:
        return str(json.loads(proc.stdout)[0]["size"])
    except (ValueError, LookupError, TypeError):
        return "?"


# --------------------------------------------------------------------------- the Debian base


@dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def apt_source_files() -> list[Path]:
    d = Path("/etc/apt")
    files = [d / "sources.list"] if (d / "sources.list").is_file() else []
    parts = d / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    return files


def parse_sources(path: Path) -> list[Source]:
    text = path.read_text(errors="replace")
    out = []
    if path.suffix == ".sources":  # deb822 stanzas
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            key = ""
            for line in stanza.splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() in ("no", "false", "0"):
                continue
            for uri in fields.get("uris", "").split():
                out.append(
                    Source(
                        uri,
                        tuple(fields.get("suites", "").split()),
                        tuple(fields.get("components", "").split()),
                    )
                )
    else:  # one-line format: deb [options] uri suite [component...]
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            line = re.sub(r"\[[^\]]*\]", "", line)
            words = line.split()
            if len(words) >= 3 and words[0] == "deb":
                out.append(Source(words[1], (words[2],), tuple(words[3:])))
    return out


def debian_sources() -> list[Source]:
    """The machine's apt entries for SUITE and its -updates/-security suites (any mirror)."""
    override = os.environ.get("NBCTL_DEBIAN_MIRROR")
    if override:
        return [Source(override, (SUITE, f"{SUITE}-updates"), ("main",))]
    found = []
    for path in apt_source_files():
        for src in parse_sources(path):
            suites = tuple(s for s in src.suites if s == SUITE or s.startswith(f"{SUITE}-"))
            if suites and src.uri.startswith(("http://", "https://")):
                found.append(Source(src.uri.rstrip("/"), suites, src.components or ("main",)))
    if not any(SUITE in s.suites for s in found):
        raise ImagesError(
            f"no apt source for Debian {SUITE} in /etc/apt/sources.list{{,.d/}}: "
            "set NBCTL_DEBIAN_MIRROR to a Debian mirror URL"
        )
    return found


def sources_deb822(sources: list[Source]) -> str:
    stanzas = []
    for src in sources:
        stanzas.append(
            f"Types: deb\nURIs: {src.uri}\nSuites: {' '.join(src.suites)}\n"
            f"Components: {' '.join(src.components)}\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
    return "\n".join(stanzas)


def base_packages(sources: list[Source]) -> list[str]:
    extra = ["ca-certificates"] if any(s.uri.startswith("https:") for s in sources) else []
    return sorted({*BASE_PACKAGES, *extra})


def base_key(sources: list[Source]) -> str:
    arch = capture(["dpkg", "--print-architecture"]).stdout.strip() or os.uname().machine
    blob = json.dumps(
        [BASE_FORMAT, SUITE, "minbase", arch, base_packages(sources), sources_deb822(sources)]
    )
    return f"{SUITE}-{arch}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


APT_CONF = {
    # as in Debian's official container images: no package caches or translations in layers
    "docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
    ),
    "docker-no-languages": 'Acquire::Languages "none";\n',
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
}
DPKG_EXCLUDES = """\
# the "slim" variant of Debian's container images: no documentation, man pages or translations
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""


def prune(root: Path, pattern: str, keep: Callable[[Path], bool] = lambda p: False) -> None:
    for p in root.glob(pattern):
        if keep(p):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def customise_rootfs(root: Path, sources: list[Source]) -> None:
    apt = root / "etc" / "apt"
    (apt / "sources.list").unlink(missing_ok=True)
    (apt / "sources.list.d" / "debian.sources").write_text(sources_deb822(sources))
    for name, text in APT_CONF.items():
        (apt / "apt.conf.d" / name).write_text(text)
    (root / "etc" / "dpkg" / "dpkg.cfg.d" / "docker").write_text(DPKG_EXCLUDES)
    # what debootstrap copied from this machine, and caches
    for rel in ("etc/resolv.conf", "etc/hostname", "etc/machine-id"):
        (root / rel).unlink(missing_ok=True)
    prune(root, "usr/share/doc/*/*", keep=lambda p: p.name == "copyright")
    for pattern in (
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/groff/*",
        "usr/share/lintian/*",
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/cache/debconf/*-old",
        "var/log/*.log",
        "var/log/apt/*",
        "tmp/*",
        "var/tmp/*",
    ):
        prune(root, pattern)
    prune(root, "usr/share/locale/*", keep=lambda p: p.name == "locale.alias")
    (root / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True, exist_ok=True)


def debootstrap_tarball(sources: list[Source], key: str) -> Path:
    tarball = CACHE / f"debian-{key}.tar.gz"
    if tarball.exists():
        return tarball
    ensure_tools(["debootstrap", "tar", "gzip"])
    mirror = next(s.uri for s in sources if SUITE in s.suites)
    log = LOGS / "debootstrap.log"
    log.write_text("")
    work = Path(tempfile.mkdtemp(prefix="debootstrap.", dir=CACHE))
    root = work / "rootfs"
    t0 = time.monotonic()
    say(f"debootstrap {SUITE} (minbase) from {mirror} into {root} (log: {log})")
    try:
        cmd = ["debootstrap", "--variant=minbase", "--components=main"]
        if base_packages(sources):
            cmd.append(f"--include={','.join(base_packages(sources))}")
        run_logged([*cmd, SUITE, str(root), mirror], log, "debootstrap")
        customise_rootfs(root, sources)
        partial = work / "rootfs.tar.gz"
        run_logged(
            ["tar", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
             "--exclude=./sys/*", "-C", str(root), "-czf", str(partial), "."],
            log,
            "tar rootfs",
        )  # fmt: skip
        partial.rename(tarball)
    finally:
        for sub in ("proc", "sys", "dev/pts"):  # a failed debootstrap can leave these mounted
            if os.path.ismount(root / sub):
                subprocess.run(["umount", "-l", str(root / sub)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    say(
        f"debootstrap {SUITE}: {tarball.name} ({tarball.stat().st_size / 1e6:.1f} MB) "
        f"in {time.monotonic() - t0:.0f}s"
    )
    return tarball


def ensure_base() -> str:
    """The Debian base in buildah's storage (made when missing or stale); returns its image ID."""
    sources = debian_sources()
    key = base_key(sources)
    info = inspect_image(BASE_REF)
    if info and image_labels(info).get(LABEL_BASE_KEY) == key:
        return str(info["FromImageID"])
    tarball = debootstrap_tarball(sources, key)
    log = LOGS / "base.log"
    say(f"importing {tarball.name} as {BASE_REF}")
    ctr = f"nbctl-base-{os.getpid()}"
    run_logged(["buildah", "from", "--name", ctr, "scratch"], log, "buildah from scratch")
    try:
        run_logged(["buildah", "add", ctr, str(tarball), "/"], log, "buildah add rootfs")
        run_logged(
            ["buildah", "config",
             "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--cmd", "bash", "--label", f"{LABEL_BASE_KEY}={key}",
             "--created-by", f"debootstrap --variant=minbase {SUITE}", ctr],
            log,
            "buildah config",
        )  # fmt: skip
        run_logged(["buildah", "commit", "--rm", ctr, BASE_REF], log, "buildah commit base")
    except ImagesError:
        capture(["buildah", "rm", ctr])
        raise
    return image_id(BASE_REF)


# --------------------------------------------------------------------------- registry


def registry_address() -> str:
    env = os.environ.get("NBCTL_REGISTRY", "").strip()
    if env:
        return env.removeprefix("http://").rstrip("/")
    try:
        state = json.loads(STATE.read_text())
        push = state["registry"]["push"]
    except FileNotFoundError:
        push = None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ImagesError(
            f"{STATE} has no registry.push ({type(e).__name__}): run `make cluster-up` "
            "or set NBCTL_REGISTRY=host:port"
        ) from None
    if not push:
        raise ImagesError(
            "no registry to push to: run `make cluster-up` (it starts one) or set "
            "NBCTL_REGISTRY=host:port (a plain-HTTP registry)"
        )
    return str(push)


def registry_request(registry: str, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"http://{registry}{path}", method=method)
    req.add_header(
        "Accept",
        "application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.oci.image.index.v1+json",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), b""
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ImagesError(
            f"registry {registry} does not answer ({reason}): run `make cluster-up` "
            "or set NBCTL_REGISTRY to a running plain-HTTP registry"
        ) from None


def check_registry(registry: str) -> None:
    status, _, _ = registry_request(registry, "/v2/")
    if status not in (200, 401):
        raise ImagesError(f"registry {registry} answers /v2/ with HTTP {status}: not a registry?")


def registry_digest(registry: str, image: Image) -> str | None:
    status, headers, _ = registry_request(
        registry, f"/v2/{image.name}/manifests/{image.tag}", "HEAD"
    )
    if status == 200:
        return {k.lower(): v for k, v in headers.items()}.get("docker-content-digest")
    return None


def compressed_size(registry: str, image: Image) -> int:
    status, _, body = registry_request(registry, f"/v2/{image.name}/manifests/{image.tag}")
    if status != 200:
        return 0
    manifest = json.loads(body)
    return int(manifest.get("config", {}).get("size", 0)) + sum(
        int(layer.get("size", 0)) for layer in manifest.get("layers", [])
    )


def load_pushed() -> dict[str, dict[str, str]]:
    try:
        return json.loads(PUSHED.read_text())
    except (OSError, ValueError):
        return {}


def push(registry: str, image: Image, local_id: str) -> bool:
    """Push unless the registry has this very image; returns whether it pushed."""
    dest = f"{registry}/{image.name}:{image.tag}"
    pushed = load_pushed()
    record = pushed.get(dest, {})
    current = registry_digest(registry, image)
    if current and record.get("image") == local_id and record.get("digest") == current:
        return False
    log = LOGS / f"{image.name}.log"
    digestfile = CACHE / f"{image.name}.digest"
    run_logged(
        ["buildah", "push", "--tls-verify=false", "--digestfile", str(digestfile), image.ref,
         f"docker://{dest}"],
        log,
        f"{image.name}: push to {registry}",
        quiet=True,
    )  # fmt: skip
    pushed[dest] = {"image": local_id, "digest": digestfile.read_text().strip()}
    PUSHED.write_text(json.dumps(pushed, indent=1, sort_keys=True) + "\n")
    return True


# --------------------------------------------------------------------------- build


def build_args_and_secrets(image: Image) -> list[str]:
    args = []
    if image.uses_base:
        args += ["--build-arg", f"BASE={BASE_REF}"]
    # pip in RUN steps trusts what this machine trusts (TLS-intercepting proxies); Containerfiles
    # read it from the optional secret `ca-bundle`, and images never contain it
    bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    for candidate in (bundle, *CA_BUNDLES):
        if candidate and Path(candidate).is_file():
            args += ["--secret", f"id=ca-bundle,src={candidate}"]
            break
    return args


def input_digest(image: Image, base_id: str | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([BUILD_FORMAT, image.name, image.tag, base_id, image.extra_key()]).encode())
    h.update(tree_digest(image.inputs).encode())
    return h.hexdigest()


def build_one(image: Image, base_id: str | None) -> tuple[str, bool, float]:
    """Build unless the local image has the same input digest; returns (image ID, built, s)."""
    digest = input_digest(image, base_id)
    info = inspect_image(image.ref)
    if info and image_labels(info).get(LABEL_INPUTS) == digest:
        return str(info["FromImageID"]), False, 0.0
    log = LOGS / f"{image.name}.log"
    log.write_text("")
    t0 = time.monotonic()
    say(f"{image.name}: building {image.ref} (log: {log})")
    context = image.prepare(image, log) if image.prepare else image.context
    run_logged(
        ["buildah", "bud", "--isolation", ISOLATION, "--layers", "--force-rm", "--pull=never",
         "-f", str(image.containerfile), "-t", image.ref,
         "--label", f"{LABEL_INPUTS}={digest}",
         *build_args_and_secrets(image), str(context)],
        log,
        f"{image.name}: build",
        cwd=ROOT,
    )  # fmt: skip
    return image_id(image.ref), True, time.monotonic() - t0


def human(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def cmd_build(args: list[str]) -> None:
    no_push = "--no-push" in args
    names = [a for a in args if a != "--no-push"]
    bad = [a for a in names if a.startswith("-")]
    if bad:
        raise ImagesError(f"unknown option {bad[0]}; usage: build [--no-push] [NAME...]")
    images = select(names)
    registry = None if no_push else registry_address()
    if registry:
        check_registry(registry)  # before a long build, not after
    tools = ["buildah"] + (["go"] if any(i.name == "pause" for i in images) else [])
    ensure_tools(tools)
    CACHE.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    t_all = time.monotonic()
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time: shared caches and storage
        base_id = ensure_base() if any(i.uses_base for i in images) else None
        for image in images:
            local_id, built, seconds = build_one(image, base_id if image.uses_base else None)
            size = image_size(image.ref)
            what = f"built in {seconds:.0f}s" if built else "up to date"
            if registry is None:
                say(f"{image.name}: {what}, {size} uncompressed")
                continue
            t0 = time.monotonic()
            pushed = push(registry, image, local_id)
            note = f"pushed in {time.monotonic() - t0:.0f}s" if pushed else "registry has it"
            say(
                f"{image.name}: {what}, {note}: {image.ref} "
                f"({human(compressed_size(registry, image))} compressed, "
                f"{size} uncompressed)"
            )
    say(f"done in {time.monotonic() - t_all:.0f}s")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "build":
            cmd_build(args)
        elif cmd == "list":
            for image in select(args):
                print(image.ref)
        elif cmd == "pinned":
            # tags are reused (`notebook:1`): a node that has the tag cached would not pull a
            # rebuilt image, a digest-pinned reference always gets what was pushed
            registry = registry_address()
            for image in select(args):
                digest = registry_digest(registry, image)
                if digest is None:
                    raise ImagesError(f"{image.ref} is not in the registry: hack/images.sh build")
                print(f"{image.ref}@{digest}")
        else:
            raise ImagesError(
                f"unknown command {cmd!r}; try build [--no-push] [NAME...]|list|pinned [NAME...]"
            )
    except ImagesError as e:
        print(f"images: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

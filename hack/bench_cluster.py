"""`make bench`, cluster part: the controller against the fastest any controller could be.

For each N (default 100 and 1000; `BENCH_N="100"` for one), in fresh namespaces of the shared
local cluster (`KUBECONFIG`, else `.cluster/kubeconfig`):

- the limit: a bare client creates the StatefulSets and Services the controller would make for N
  notebooks (the same builders' objects, without an owner), 16 requests in flight; timed until N
  StatefulSets exist and N pods are Running;
- the controller: `python -m notebook_controller run --namespaces=<ns>` as a subprocess; N
  notebooks created through the API, 16 requests in flight; timed until N StatefulSets exist and
  N notebooks are `Ready=True`. Its writes come from the API server's audit log
  (`.cluster/audit.log`, user agent `notebook-controller`), split by kind, from creation to
  Ready and then in a quiet stretch; its CPU from /proc/<pid>/stat, its peak RSS from VmHWM.
  The quiet stretch is measured twice: right after the last Ready, and again 200 s after it,
  when failed probes (KWOK pods answer none) have backed off to the probe interval.

Then, on the real node (`BENCH_REAL=<n>`, default 5; 0 skips it): n notebooks of the standard
notebook image (`hack/images.sh build notebook`), where the idle reclaimer's probes reach a real
Jupyter: writes per notebook from creation until Ready and the first idle verdict, and how long
after the pod turned Ready the notebook showed Ready=True.

Figures, not assertions. Writes `.bench/latest.json` and `.bench/bench.png` (with matplotlib,
the `bench` extra). `BENCH_QUIET=<s>` sets the quiet stretch (default 60 s), `BENCH_STEADY=<s>`
when it is measured again (default 200 s after the last Ready; 0 skips it), `BENCH_PROFILE=1`
runs the controller under cProfile (`.bench/controller-<N>.prof`; slower: times mean less).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notebook_controller.api.models import GROUP, KIND, PLURAL, VERSION, Notebook  # noqa: E402
from notebook_controller.builders import services, workload  # noqa: E402
from notebook_controller.runtime.clock import parse_rfc3339  # noqa: E402
from notebook_controller.runtime.informer import FunctionHandler, Informer  # noqa: E402
from notebook_controller.runtime.kube import KubeClient, ResourceKind  # noqa: E402
from notebook_controller.wiring import pod_as_read  # noqa: E402
from tests.realnode import REAL_NODE_NAMESPACE_ANNOTATIONS, built_image  # noqa: E402

OUT = ROOT / ".bench"
AUDIT_LOG = ROOT / ".cluster" / "audit.log"
NOTEBOOKS = ResourceKind(GROUP, VERSION, PLURAL, KIND)
STATEFULSETS = ResourceKind("apps", "v1", "statefulsets", "StatefulSet")
SERVICES = ResourceKind("", "v1", "services", "Service")
PODS = ResourceKind("", "v1", "pods", "Pod")
SERVICEACCOUNTS = ResourceKind("", "v1", "serviceaccounts", "ServiceAccount")
NAMESPACES = ResourceKind("", "v1", "namespaces", "Namespace", namespaced=False)
CONCURRENCY = 16
SETTLE_SECONDS = 10  # after the last Ready, still counted as converging
# a failed probe is retried after 2 s, 32 s, then at the probe interval: this long after
# the last Ready, the quiet stretch is measured again (BENCH_STEADY=0: not at all)
STEADY_AFTER_SECONDS = float(os.environ.get("BENCH_STEADY", "200"))
CONTROLLER_AGENT = "notebook-controller"
BENCH_AGENT = "notebook-bench"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
JsonDict = dict[str, Any]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def notebook_body(index: int) -> JsonDict:
    return {
        "apiVersion": NOTEBOOKS.api_version,
        "kind": NOTEBOOKS.kind,
        "metadata": {"name": f"nb-{index:04d}"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "notebook", "image": "t9kpublic/jupyter:1"}]}
            }
        },
    }


def children(namespace: str, index: int) -> tuple[JsonDict, JsonDict]:
    """What the controller makes for notebook `index`, unowned (GC would remove orphans)."""
    raw = notebook_body(index)
    raw["metadata"].update({"namespace": namespace, "uid": str(uuid.uuid4())})
    notebook = Notebook.model_validate(raw)
    made = workload.statefulset(notebook), services.http_service(notebook)
    for obj in made:
        obj["metadata"].pop("ownerReferences", None)
    return made


async def bounded(jobs: Iterable[Callable[[], Awaitable[object]]]) -> None:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with limit:
            await job()

    async with asyncio.TaskGroup() as group:
        for job in jobs:
            group.create_task(one(job))


# --- watching what happens ------------------------------------------------------------------


@dataclass
class Timeline:
    """When each object first met a condition, seconds after `start`."""

    start: float
    seen: dict[str, float] = field(default_factory=dict)

    def mark(self, obj: JsonDict) -> None:
        name = obj["metadata"]["name"]
        if name not in self.seen:
            self.seen[name] = time.monotonic() - self.start

    def count(self) -> int:
        return len(self.seen)

    def at(self, n: int) -> float | None:
        times = sorted(self.seen.values())
        return times[n - 1] if len(times) >= n else None

    def curve(self) -> list[float]:
        return sorted(self.seen.values())


def _running(pod: JsonDict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _condition(obj: JsonDict, kind: str) -> JsonDict:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def _ready(notebook: JsonDict) -> bool:
    return _condition(notebook, "Ready").get("status") == "True"


def deep_size(obj: object) -> int:
    """Bytes of a JSON-like object and everything in it (shared strings counted each time)."""
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k) + deep_size(v) for k, v in obj.items())
    elif isinstance(obj, list):
        size += sum(deep_size(item) for item in obj)
    return size


def _always(_: JsonDict) -> bool:
    return True


class Watcher:
    """Informers on one namespace that mark each object's first time meeting a predicate."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.informers: list[Informer] = []
        self.start = time.monotonic()
        self.timelines: dict[str, Timeline] = {}

    def track(self, label: str, kind: ResourceKind, predicate: Callable[[JsonDict], bool]) -> None:
        # cached as the controller caches them, so their sizes are the controller's caches'
        transform = pod_as_read if kind == PODS else None
        informer = Informer(self.client, kind, namespaces=[self.namespace], transform=transform)
        timeline = self.timelines.setdefault(label, Timeline(self.start))

        def on(obj: JsonDict) -> None:
            if predicate(obj):
                timeline.mark(obj)

        informer.add_handler(FunctionHandler(add=on, update=lambda _, new: on(new)))
        self.informers.append(informer)

    def restart_clock(self) -> None:
        self.start = time.monotonic()
        for timeline in self.timelines.values():
            timeline.start = self.start
            timeline.seen.clear()

    async def until(self, label: str, n: int, progress: Callable[[], str]) -> float:
        last_report = 0.0
        while (reached := self.timelines[label].at(n)) is None:
            await asyncio.sleep(0.2)
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                say(progress())
        return reached


# --- the controller process -----------------------------------------------------------------


class ControllerProcess:
    def __init__(self, kubeconfig: str, namespace: str, log_path: Path, profile: Path | None):
        self.log_path = log_path
        prefix = [sys.executable]
        if profile is not None:
            prefix += ["-m", "cProfile", "-o", str(profile)]
        command = [
            *prefix,
            "-m",
            "notebook_controller",
            "run",
            f"--kubeconfig={kubeconfig}",
            f"--namespaces={namespace}",
            "--log-format=json",
            "--health-address=127.0.0.1:0",
            "--graceful-shutdown-timeout=5",
        ]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def cpu_seconds(self) -> float:
        return sum(self.cpu_user_system())

    def cpu_user_system(self) -> tuple[float, float]:
        """CPU seconds in user mode (Python) and in the kernel (sockets, epoll)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def memory_kb(self, field_name: str) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) if found else 0

    async def synced(self, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while "caches synced" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the controller did not start: see {self.log_path}")
            await asyncio.sleep(0.2)

    def _metrics(self) -> str:
        port = re.search(
            r'"port": (\d+), "event": "serving health and metrics"',
            self.log_path.read_text(errors="replace"),
        )
        if port is None:
            return ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10) as r:
            return str(r.read().decode())

    async def work(self) -> Counter[str]:
        """What it did so far: reconciles by controller (`controller_runtime_reconcile_total`),
        Jupyter probes (`notebook_controller_activity_probe_duration_seconds_count`), watch
        events received by resource (`notebook_controller_informer_watch_events_total`) and
        milliseconds in the garbage collector ("gc ms", `python_gc_duration_seconds_sum`) and
        the event loop's waits ("loop waits", `notebook_controller_event_loop_waits_total`)."""
        text = await asyncio.to_thread(self._metrics)
        found: Counter[str] = Counter()
        for line in text.splitlines():
            sample = re.match(r"(\w+)\{(.*)\} ([0-9.e+]+)$", line)
            if sample is None:
                continue
            metric, labels, value = sample.groups()
            if metric == "controller_runtime_reconcile_total":
                controller = re.search(r'controller="([^"]+)"', labels)
                found[controller.group(1) if controller else "?"] += int(float(value))
            elif metric == "notebook_controller_activity_probe_duration_seconds_count":
                probe = re.search(r'probe="([^"]+)"', labels)
                found[f"{probe.group(1) if probe else '?'} probe"] += int(float(value))
            elif metric == "notebook_controller_informer_watch_events_total":
                resource = re.search(r'resource="([^"]+)"', labels)
                found[f"{resource.group(1) if resource else '?'} event"] += int(float(value))
            elif metric == "python_gc_duration_seconds_sum":
                found["gc ms"] += round(1000 * float(value))
        waits = re.search(r"^notebook_controller_event_loop_waits_total ([0-9.e+]+)$", text, re.M)
        if waits is not None:
            found["loop waits"] += int(float(waits.group(1)))
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- audit log ------------------------------------------------------------------------------


def audit_position() -> int:
    return AUDIT_LOG.stat().st_size if AUDIT_LOG.exists() else 0


_FIELD_MANAGER = re.compile(r"[?&]fieldManager=([^&]+)")


def controller_writes(namespace: str, start: int, end: int) -> Counter[str]:
    """The controller's write requests in `namespace` between two audit log offsets, by
    `verb resource[/subresource] (field manager)`."""
    counted: Counter[str] = Counter()
    with AUDIT_LOG.open("rb") as log:
        log.seek(start)
        while log.tell() < end and (raw := log.readline()):
            if b'"ResponseComplete"' not in raw or namespace.encode() not in raw:
                continue
            event = json.loads(raw)
            ref = event.get("objectRef") or {}
            if (
                event.get("stage") != "ResponseComplete"
                or event.get("verb") not in WRITE_VERBS
                or ref.get("namespace") != namespace
                or not str(event.get("userAgent", "")).startswith(CONTROLLER_AGENT)
            ):
                continue
            kind = ref.get("resource", "?") + (
                f"/{ref['subresource']}" if "subresource" in ref else ""
            )
            manager = _FIELD_MANAGER.search(event.get("requestURI", ""))
            by = f" ({manager.group(1)})" if manager else ""
            counted[f"{event['verb']} {kind}{by}"] += 1
    return counted


def per_notebook(counts: Counter[str], n: int) -> str:
    return ", ".join(f"{key} {count / n:.1f}" for key, count in counts.most_common() if count)


# --- one N ----------------------------------------------------------------------------------


_created_namespaces: list[str] = []


async def make_namespace(client: KubeClient, name: str) -> None:
    _created_namespaces.append(name)
    await client.create(
        NAMESPACES, None, {"metadata": {"name": name, "labels": {"nbctl-bench": "true"}}}
    )
    # pods need the namespace's default ServiceAccount (the controller-manager makes it)
    for _ in range(600):
        if await client.get(SERVICEACCOUNTS, name, "default") is not None:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no default ServiceAccount in {name} after 2 minutes: is the cluster up?")


async def delete_namespace(client: KubeClient, name: str) -> None:
    """Delete and wait until it is gone: its pods' and Services' removal keeps the cluster's
    controller-manager busy (client-side rate limits) and would slow the next run."""
    await client.delete(NAMESPACES, None, name)
    started = time.monotonic()
    while await client.get(NAMESPACES, None, name) is not None:
        if time.monotonic() - started > 600:
            say(f"{name} still terminating after 10 min: going on")
            return
        await asyncio.sleep(2)
    say(f"{name} deleted ({time.monotonic() - started:.0f} s)")


async def run_limit(client: KubeClient, n: int, run_id: str) -> JsonDict:
    namespace = f"bench-limit-{n}-{run_id}"
    await make_namespace(client, namespace)
    say(f"N={n} limit: bare client creates {n} StatefulSets + {n} Services in {namespace}")
    watcher = Watcher(client, namespace)
    watcher.track("statefulsets", STATEFULSETS, _always)
    watcher.track("pods_running", PODS, _running)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(i.run()) for i in watcher.informers]
        for informer in watcher.informers:
            await informer.wait_synced()
        watcher.restart_clock()
        objects = [children(namespace, i) for i in range(n)]

        def create(sts: JsonDict, svc: JsonDict) -> Callable[[], Awaitable[object]]:
            async def both() -> None:
                await client.create(STATEFULSETS, namespace, sts)
                await client.create(SERVICES, namespace, svc)

            return both

        def progress() -> str:
            t = watcher.timelines
            return (
                f"N={n} limit: {t['statefulsets'].count()}/{n} StatefulSets,"
                f" {t['pods_running'].count()}/{n} pods Running"
                f" ({time.monotonic() - watcher.start:.0f} s)"
            )

        await bounded(create(sts, svc) for sts, svc in objects)
        sts_time = await watcher.until("statefulsets", n, progress)
        running_time = await watcher.until("pods_running", n, progress)
        for task in tasks:
            task.cancel()
    say(f"N={n} limit: StatefulSets exist {sts_time:.2f} s, pods Running {running_time:.1f} s")
    await delete_namespace(client, namespace)
    return {
        "namespace": namespace,
        "statefulsets_exist_s": round(sts_time, 2),
        "pods_running_s": round(running_time, 2),
        "curve_pods_running": [round(t, 2) for t in watcher.timelines["pods_running"].curve()],
    }


async def run_controller(
    client: KubeClient, kubeconfig: str, n: int, run_id: str, quiet: float, profile: bool
) -> JsonDict:
    namespace = f"bench-ctl-{n}-{run_id}"
    await make_namespace(client, namespace)
    OUT.mkdir(exist_ok=True)
    log_path = OUT / f"controller-{n}.log"
    profile_path = OUT / f"controller-{n}.prof" if profile else None
    controller = ControllerProcess(kubeconfig, namespace, log_path, profile_path)
    say(f"N={n} controller: pid {controller.process.pid} on {namespace}, log {log_path}")
    watcher = Watcher(client, namespace)
    watcher.track("statefulsets", STATEFULSETS, _always)
    watcher.track("pods_running", PODS, _running)
    watcher.track("ready", NOTEBOOKS, _ready)
    watcher.track("services", SERVICES, _always)
    try:
        await controller.synced()
        startup_cpu = controller.cpu_seconds()
        idle_rss_kb = controller.memory_kb("VmRSS")
        say(f"N={n} controller: synced, {startup_cpu:.2f} s CPU, RSS {idle_rss_kb / 1024:.0f} MB")
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(i.run()) for i in watcher.informers]
            for informer in watcher.informers:
                await informer.wait_synced()
            audit_start = audit_position()
            cpu_start = controller.cpu_seconds()
            user_start, system_start = controller.cpu_user_system()
            work_start = await controller.work()
            watcher.restart_clock()

            def create(index: int) -> Callable[[], Awaitable[object]]:
                return lambda: client.create(NOTEBOOKS, namespace, notebook_body(index))

            def progress() -> str:
                t = watcher.timelines
                return (
                    f"N={n} controller: {t['statefulsets'].count()}/{n} StatefulSets,"
                    f" {t['pods_running'].count()}/{n} pods Running,"
                    f" {t['ready'].count()}/{n} Ready ({time.monotonic() - watcher.start:.0f} s,"
                    f" controller CPU {controller.cpu_seconds() - cpu_start:.1f} s)"
                )

            await bounded(create(i) for i in range(n))
            created_time = time.monotonic() - watcher.start
            sts_time = await watcher.until("statefulsets", n, progress)
            ready_time = await watcher.until("ready", n, progress)
            running_time = watcher.timelines["pods_running"].at(n)
            converge_cpu = controller.cpu_seconds() - cpu_start
            user_end, system_end = controller.cpu_user_system()
            work = await controller.work()
            work.subtract(work_start)
            converge_gc = work.pop("gc ms", 0) / 1000
            converge_waits = work.pop("loop waits", 0)
            # coalesced "can't tell yet" writes land within ~5 s of Ready, then the audit log
            await asyncio.sleep(SETTLE_SECONDS)
            audit_ready = audit_position()
            cpu_quiet_start = controller.cpu_seconds()
            quiet_work = await controller.work()
            say(
                f"N={n} controller: all Ready at {ready_time:.1f} s; quiet stretch of {quiet:.0f} s"
            )
            await asyncio.sleep(quiet)
            quiet_cpu = controller.cpu_seconds() - cpu_quiet_start
            quiet_work = await controller.work() - quiet_work
            await asyncio.sleep(2)
            audit_end = audit_position()
            # and once failed probes have backed off to the probe interval (KWOK pods answer none)
            audit_steady = audit_steady_end = audit_end
            steady_cpu = 0.0
            steady_work: Counter[str] = Counter()
            if STEADY_AFTER_SECONDS:
                steady_in = watcher.start + ready_time + STEADY_AFTER_SECONDS - time.monotonic()
                if steady_in > 0:
                    say(f"N={n} controller: steady minute in {steady_in:.0f} s (probe back-off)")
                    await asyncio.sleep(steady_in)
                audit_steady = audit_position()
                cpu_steady_start = controller.cpu_seconds()
                steady_work = await controller.work()
                await asyncio.sleep(quiet)
                steady_cpu = controller.cpu_seconds() - cpu_steady_start
                steady_work = await controller.work() - steady_work
                await asyncio.sleep(2)
                audit_steady_end = audit_position()
            peak_rss_kb = controller.memory_kb("VmHWM")
            cache_bytes = {
                i.kind.plural: sum(map(deep_size, i.store.list())) for i in watcher.informers
            }
            rss_kb = controller.memory_kb("VmRSS")
            for task in tasks:
                task.cancel()
    finally:
        controller.stop()
    converging = controller_writes(namespace, audit_start, audit_ready)
    probes = Counter({k: v for k, v in work.items() if k.endswith(" probe")})
    watch_events = Counter({k: v for k, v in work.items() if k.endswith(" event")})
    reconciles = work - probes - watch_events
    quiet_writes = controller_writes(namespace, audit_ready, audit_end)
    steady_writes = controller_writes(namespace, audit_steady, audit_steady_end)
    events = sum(count for kind, count in converging.items() if kind.startswith("create events"))
    writes = sum(converging.values()) - events
    status = sum(count for kind, count in converging.items() if "/status" in kind)
    say(
        f"N={n} controller: StatefulSets exist {sts_time:.2f} s, Ready {ready_time:.1f} s,"
        f" {writes / n:.2f} writes per notebook ({status / n:.2f} status) + {events / n:.2f}"
        f" Events, CPU {converge_cpu:.1f} s, peak RSS {peak_rss_kb / 1024:.0f} MB,"
        f" quiet: {sum(quiet_writes.values())} writes, {quiet_cpu:.2f} s CPU; steady:"
        f" {sum(steady_writes.values())} writes, {steady_cpu:.2f} s CPU"
    )
    say(
        f"N={n} controller, per notebook until all Ready: {sum(reconciles.values()) / n:.1f}"
        f" reconciles ({per_notebook(reconciles, n)}), {per_notebook(probes, n) or 'no probe'},"
        f" {sum(watch_events.values()) / n:.1f} watch events ({per_notebook(watch_events, n)});"
        f" CPU {user_end - user_start:.1f} s user + {system_end - system_start:.1f} s system"
        f" ({converge_gc:.2f} s of it garbage collection), {converge_waits / n:.1f} event-loop"
        f" waits"
    )
    say(
        f"N={n} controller, quiet stretch: {dict(sorted(quiet_work.items()))}; steady:"
        f" {dict(sorted(steady_work.items()))}"
    )
    await delete_namespace(client, namespace)
    return {
        "namespace": namespace,
        "notebooks_created_s": round(created_time, 2),
        "statefulsets_exist_s": round(sts_time, 2),
        "pods_running_s": round(running_time or 0, 2),
        "ready_s": round(ready_time, 2),
        "writes_per_notebook": round(writes / n, 2),
        "status_writes_per_notebook": round(status / n, 2),
        "events_per_notebook": round(events / n, 2),
        "writes_by_kind": dict(sorted(converging.items())),
        "quiet_seconds": quiet,
        "quiet_writes": dict(sorted(quiet_writes.items())),
        "quiet_cpu_s": round(quiet_cpu, 3),
        # the same length of time once failed probes have backed off to the probe interval
        "steady_seconds_after_ready": STEADY_AFTER_SECONDS,
        "steady_writes": dict(sorted(steady_writes.items())),
        "steady_cpu_s": round(steady_cpu, 3),
        # reconciles by controller and probes in each stretch (what its CPU went to)
        "quiet_work": dict(sorted(quiet_work.items())),
        "steady_work": dict(sorted(steady_work.items())),
        "startup_cpu_s": round(startup_cpu, 2),
        "cpu_s": round(converge_cpu, 2),
        "cpu_ms_per_notebook": round(1000 * converge_cpu / n, 1),
        "cpu_user_s": round(user_end - user_start, 2),
        "cpu_system_s": round(system_end - system_start, 2),
        "gc_s": round(converge_gc, 2),
        "loop_waits_per_notebook": round(converge_waits / n, 1),
        # from creation until all Ready: what the CPU went to
        "reconciles_by_controller": dict(sorted(reconciles.items())),
        "probes": dict(sorted(probes.items())),
        "watch_events": dict(sorted(watch_events.items())),
        "rss_synced_empty_mb": round(idle_rss_kb / 1024, 1),
        "rss_converged_mb": round(rss_kb / 1024, 1),
        # what N notebooks add once converged: caches, queues, per-notebook state
        "rss_added_by_notebooks_mb": round((rss_kb - idle_rss_kb) / 1024, 1),
        # the same objects as the controller's informers cache them, in Python
        "cache_kb_per_notebook": {k: round(v / n / 1024, 1) for k, v in cache_bytes.items()},
        "peak_rss_mb": round(peak_rss_kb / 1024, 1),
        "curve_ready": [round(t, 2) for t in watcher.timelines["ready"].curve()],
        "curve_pods_running": [round(t, 2) for t in watcher.timelines["pods_running"].curve()],
        "profile": str(profile_path) if profile_path else None,
    }


# --- memory by part -------------------------------------------------------------------------

_PARTS = [
    ("bare interpreter", ""),
    ("aiohttp", "import aiohttp"),
    ("kube client (runtime.kube and its imports)", "import notebook_controller.runtime.kube"),
    ("pydantic", "import pydantic"),
    ("own modules (wiring, cli)", "import notebook_controller.wiring, notebook_controller.cli"),
]


def memory_by_part() -> list[JsonDict]:
    """Peak RSS after each import, in one fresh interpreter, as it grows part by part."""
    script = ["import re", "def hwm():", "    s = open('/proc/self/status').read()",
              "    return int(re.search(r'VmHWM:\\s+(\\d+)', s).group(1))"]  # fmt: skip
    for label, statement in _PARTS:
        if statement:
            script.append(statement)
        script.append(f"print({label!r}, hwm(), sep='\\t')")
    found = subprocess.run(
        [sys.executable, "-c", "\n".join(script)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    parts, previous = [], 0
    for line in found.stdout.splitlines():
        label, kb = line.split("\t")
        parts.append({"part": label, "added_mb": round((int(kb) - previous) / 1024, 1)})
        previous = int(kb)
    return parts


# --- the plot -------------------------------------------------------------------------------


def plot(results: list[JsonDict], path: Path) -> bool:
    if not results:  # BENCH_N="": the real node only
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed (pip install -e '.[bench]'): no plot")
        return False
    figure, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 3.6), squeeze=False)
    for axis, result in zip(axes[0], results, strict=True):
        n = result["n"]
        for label, curve, style in (
            ("limit: pods Running", result["limit"]["curve_pods_running"], "--"),
            ("controller: its pods Running", result["controller"]["curve_pods_running"], ":"),
            ("controller: notebooks Ready", result["controller"]["curve_ready"], "-"),
        ):
            axis.step([0, *curve], range(len(curve) + 1), style, where="post", label=label)
        axis.set_title(f"N = {n}")
        axis.set_xlabel("seconds since the first create")
        axis.set_ylabel("count")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    return True


# --- on the real node -----------------------------------------------------------------------


def _verdict(notebook: JsonDict) -> bool:
    return _ready(notebook) and _condition(notebook, "Idle").get("status") in ("True", "False")


async def run_real_node(client: KubeClient, kubeconfig: str, n: int, run_id: str) -> JsonDict:
    say("real node: hack/images.sh build notebook (cached after the first build)")
    image, _ = await asyncio.to_thread(built_image, "notebook")
    namespace = f"bench-real-{run_id}"
    await make_namespace(client, namespace)
    await client.patch(
        NAMESPACES, None, namespace, {"metadata": {"annotations": REAL_NODE_NAMESPACE_ANNOTATIONS}}
    )
    log_path = OUT / "controller-real.log"
    controller = ControllerProcess(kubeconfig, namespace, log_path, None)
    watcher = Watcher(client, namespace)
    watcher.track("ready", NOTEBOOKS, _ready)
    watcher.track("verdict", NOTEBOOKS, _verdict)
    say(f"real node: {n} notebooks of {image} in {namespace}, controller log {log_path}")
    try:
        await controller.synced()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(i.run()) for i in watcher.informers]
            for informer in watcher.informers:
                await informer.wait_synced()
            audit_start = audit_position()
            watcher.restart_clock()
            for index in range(n):
                body = notebook_body(index)
                body["spec"]["template"]["spec"]["containers"][0]["image"] = image
                await client.create(NOTEBOOKS, namespace, body)

            def progress() -> str:
                t = watcher.timelines
                return (
                    f"real node: {t['ready'].count()}/{n} Ready, {t['verdict'].count()}/{n} with"
                    f" an idle verdict ({time.monotonic() - watcher.start:.0f} s)"
                )

            await watcher.until("verdict", n, progress)
            await asyncio.sleep(SETTLE_SECONDS)
            audit_end = audit_position()
            lags = []
            for index in range(n):
                notebook = await client.get(NOTEBOOKS, namespace, f"nb-{index:04d}") or {}
                pod = await client.get(PODS, namespace, f"managed-notebook-nb-{index:04d}-0")
                shown = _condition(notebook, "Ready").get("lastTransitionTime")
                pod_ready = _condition(pod or {}, "Ready").get("lastTransitionTime")
                if shown and pod_ready:
                    lags.append((parse_rfc3339(shown) - parse_rfc3339(pod_ready)).total_seconds())
            for task in tasks:
                task.cancel()
    finally:
        controller.stop()
    writes = controller_writes(namespace, audit_start, audit_end)
    events = sum(count for kind, count in writes.items() if kind.startswith("create events"))
    total = sum(writes.values()) - events
    status = sum(count for kind, count in writes.items() if "/status" in kind)
    ready_s = watcher.timelines["ready"].at(n) or 0.0
    say(
        f"real node: {n} notebooks Ready in {ready_s:.1f} s, {total / n:.2f} writes per notebook"
        f" ({status / n:.2f} status) + {events / n:.2f} Events until their first idle verdict;"
        f" Ready shown {max(lags, default=0):.0f} s at most after the pod's Ready"
    )
    await delete_namespace(client, namespace)
    return {
        "n": n,
        "namespace": namespace,
        "image": image,
        "ready_s": round(ready_s, 2),
        "writes_per_notebook": round(total / n, 2),
        "status_writes_per_notebook": round(status / n, 2),
        "events_per_notebook": round(events / n, 2),
        "writes_by_kind": dict(sorted(writes.items())),
        "ready_shown_after_pod_ready_s": [round(lag, 1) for lag in lags],
    }


# --- main -----------------------------------------------------------------------------------


async def bench_one(
    client: KubeClient, kubeconfig: str, n: int, run_id: str, quiet: float, profile: bool
) -> JsonDict:
    limit = await run_limit(client, n, run_id)
    controller = await run_controller(client, kubeconfig, n, run_id, quiet, profile)
    ratios = {
        "statefulsets_exist": round(
            controller["statefulsets_exist_s"] / limit["statefulsets_exist_s"], 2
        ),
        "ready_vs_limit_pods_running": round(controller["ready_s"] / limit["pods_running_s"], 2),
    }
    return {"n": n, "limit": limit, "controller": controller, "ratios": ratios}


def install_crd(kubeconfig: str) -> None:
    """The Notebook CRD from deploy/crd (server-side: it is too large for a client-side apply),
    then wait until Notebooks are served."""
    kubectl = ["kubectl", f"--kubeconfig={kubeconfig}"]
    crd = ROOT / "deploy" / "crd" / "notebooks.tensorstack.dev.yaml"
    say(f"applying the Notebook CRD ({crd.relative_to(ROOT)})")
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts",
         f"--field-manager={BENCH_AGENT}", "-f", str(crd)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(120):
        served = subprocess.run([*kubectl, "get", "notebooks", "-A"], capture_output=True)
        if served.returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("Notebooks are not served 60 s after applying the CRD: is the cluster up?")


async def bench(sizes: list[int], quiet: float, profile: bool, real: int) -> JsonDict:
    kubeconfig = os.environ.get("KUBECONFIG") or str(ROOT / ".cluster" / "kubeconfig")
    await asyncio.to_thread(install_crd, kubeconfig)
    run_id = uuid.uuid4().hex[:5]
    client = await KubeClient.from_config(kubeconfig, user_agent=BENCH_AGENT)
    async with client:
        try:
            results = [
                await bench_one(client, kubeconfig, n, run_id, quiet, profile) for n in sizes
            ]
            real_node = await run_real_node(client, kubeconfig, real, run_id) if real else None
        finally:
            for namespace in _created_namespaces:
                await client.delete(NAMESPACES, None, namespace)  # the rest is GC's
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "concurrency": CONCURRENCY,
        "profiled": profile,
        "memory_by_part": memory_by_part(),
        "results": results,
        "real_node": real_node,
    }


def report(data: JsonDict) -> None:
    print(
        "\nN     run         STS exist  Ready/Running  writes/nb (status)  CPU    peak RSS  quiet"
    )
    for result in data["results"]:
        limit, ctl, n = result["limit"], result["controller"], result["n"]
        limit_sts, limit_running = limit["statefulsets_exist_s"], limit["pods_running_s"]
        print(f"{n:<5} limit       {limit_sts:>7.2f} s  {limit_running:>10.1f} s  {2:>9.2f}")
        print(f"{n:<5} controller  {ctl['statefulsets_exist_s']:>7.2f} s  {ctl['ready_s']:>10.1f} s"
              f"  {ctl['writes_per_notebook']:>9.2f} ({ctl['status_writes_per_notebook']:.2f})"
              f"  {ctl['cpu_s']:>5.1f} s {ctl['peak_rss_mb']:>6.0f} MB"
              f"  {sum(ctl['quiet_writes'].values())} writes"
              f" {ctl['quiet_cpu_s']:.2f} s CPU; steady {sum(ctl['steady_writes'].values())}"
              f" writes {ctl['steady_cpu_s']:.2f} s CPU")  # fmt: skip
        print(f"      ratios: {result['ratios']}; writes by kind: {ctl['writes_by_kind']}")
    print("memory by part (peak RSS growth on import, then the running controller):")
    for part in data["memory_by_part"]:
        print(f"  {part['part']:<56} {part['added_mb']:>6.1f} MB")
    for result in data["results"]:
        ctl = result["controller"]
        print(
            f"  {'started, caches synced, no notebook (RSS)':<56}"
            f" {ctl['rss_synced_empty_mb']:>6.1f} MB   (N={result['n']} run)"
        )
        print(f"  {'added by ' + str(result['n']) + ' converged notebooks (RSS)':<56}"
              f" {ctl['rss_added_by_notebooks_mb']:>6.1f} MB")  # fmt: skip
        caches = ", ".join(f"{k} {v:.1f}" for k, v in ctl["cache_kb_per_notebook"].items())
        print(f"  cached objects per notebook, KB (as an informer holds them): {caches}")
    real = data.get("real_node")
    if real:
        print(
            f"real node, {real['n']} notebooks: {real['writes_per_notebook']:.2f} writes per"
            f" notebook ({real['status_writes_per_notebook']:.2f} status) until the first idle"
            f" verdict; by kind: {real['writes_by_kind']}; Ready shown after the pod's Ready"
            f" (s): {real['ready_shown_after_pod_ready_s']}"
        )


def main() -> None:
    # the bench's own informers: warnings only
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = [int(n) for n in os.environ.get("BENCH_N", "100 1000").split()]
    quiet = float(os.environ.get("BENCH_QUIET", "60"))
    profile = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
    real = int(os.environ.get("BENCH_REAL", "5"))
    data = asyncio.run(bench(sizes, quiet, profile, real))
    OUT.mkdir(exist_ok=True)
    (OUT / "latest.json").write_text(json.dumps(data, indent=1) + "\n")
    report(data)
    if plot(data["results"], OUT / "bench.png"):
        say(f"wrote {OUT / 'latest.json'} and {OUT / 'bench.png'}")


if __name__ == "__main__":
    main()

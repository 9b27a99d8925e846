"""What the plugin shows about notebooks: one summary per Notebook (the fields a terminal user
asks about), rendered as kubectl-style tables, a describe page, JSON or YAML. No I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from notebook_controller.api.models import (
    CONDITION_IDLE,
    CONDITION_READY,
    CONDITION_SUSPENDED,
    GPU_PERCENT_RESOURCE,
    GPU_RESOURCE,
    RECLAIMED_AT_ANNOTATION,
)
from notebook_controller.builders.raw import (
    condition,
    is_paused,
    is_reclaimed,
    main_container,
    queue,
)
from notebook_controller.runtime.objects import JsonDict

_COMMAND_LABELS = {"open": "Open", "ssh": "SSH"}


def gpu_text(container: JsonDict) -> str:
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    if GPU_PERCENT_RESOURCE in merged:
        return f"{merged[GPU_PERCENT_RESOURCE]}%"
    if GPU_RESOURCE in merged:
        return f"{merged[GPU_RESOURCE]} GPU"
    return ""


@dataclass(frozen=True)
class Summary:
    """One notebook as the plugin shows it; `-o json` of `list` and `describe` carries these."""

    name: str
    namespace: str
    type: str
    phase: str
    ready: str
    idle: str
    idle_reason: str
    idle_message: str
    paused: bool
    paused_at: str | None
    reclaimed: bool
    gpu: str
    image: str
    queue: str | None
    url: str
    ssh: bool
    created: str

    @classmethod
    def of(cls, notebook: JsonDict) -> Summary:
        metadata = notebook.get("metadata") or {}
        spec = notebook.get("spec") or {}
        status = notebook.get("status") or {}
        annotations = metadata.get("annotations") or {}
        paused = is_paused(notebook)
        reclaimed_at = annotations.get(RECLAIMED_AT_ANNOTATION) if is_reclaimed(notebook) else None
        suspended = condition(notebook, CONDITION_SUSPENDED)
        paused_at = None
        if paused:
            paused_at = reclaimed_at or suspended.get("lastTransitionTime")
        idle = condition(notebook, CONDITION_IDLE)
        container = main_container(notebook)
        return cls(
            name=str(metadata.get("name", "")),
            namespace=str(metadata.get("namespace", "")),
            type=str(spec.get("type") or "jupyter"),
            phase=str(status.get("phase") or ""),
            ready=str(condition(notebook, CONDITION_READY).get("status") or "Unknown"),
            idle=str(idle.get("status") or ""),
            idle_reason=str(idle.get("reason") or ""),
            idle_message=str(idle.get("message") or ""),
            paused=paused,
            paused_at=paused_at,
            reclaimed=paused and reclaimed_at is not None,
            gpu=gpu_text(container),
            image=str(container.get("image") or ""),
            queue=queue(notebook),
            url=str(status.get("url") or ""),
            ssh=bool((spec.get("ssh") or {}).get("enabled")),
            created=str(metadata.get("creationTimestamp") or ""),
        )

    def idle_text(self, now: datetime) -> str:
        """One word, as a table cell: `True/NoActivity`; paused: `Paused/5m` (5m ago) or
        `Reclaimed/5m` when the idle reclaimer paused it."""
        if self.paused:
            verb = "Reclaimed" if self.reclaimed else "Paused"
            return f"{verb}/{age(self.paused_at, now)}" if self.paused_at else verb
        if not self.idle:
            return "-"
        return f"{self.idle}/{self.idle_reason}" if self.idle_reason else self.idle

    def as_json(self) -> JsonDict:
        return asdict(self)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(value: str | None, now: datetime) -> str:
    """kubectl's short durations: 45s, 12m, 5h, 3d."""
    then = parse_time(value)
    if then is None:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns left-aligned and three spaces apart, as kubectl prints them."""
    lines = [list(headers), *([cell or "-" for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def list_table(summaries: Sequence[Summary], *, wide: bool, all_namespaces: bool) -> str:
    now = datetime.now(UTC)
    headers = ["NAME", "TYPE", "PHASE", "READY", "IDLE", "GPU", "AGE"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    if wide:
        headers += ["PAUSED-AT", "QUEUE", "SSH", "IMAGE", "URL"]
    rows = []
    for s in summaries:
        row = [s.name, s.type, s.phase, s.ready, s.idle_text(now), s.gpu, age(s.created, now)]
        if all_namespaces:
            row.insert(0, s.namespace)
        if wide:
            row += [s.paused_at or "", s.queue or "", "yes" if s.ssh else "no", s.image, s.url]
        rows.append(row)
    return table(headers, rows)


def event_time(event: JsonDict) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def describe_json(
    notebook: JsonDict, events: Sequence[JsonDict], commands: dict[str, str]
) -> JsonDict:
    """`describe -o json`: the summary, the conditions, the events and how to connect."""
    return {
        **Summary.of(notebook).as_json(),
        "conditions": (notebook.get("status") or {}).get("conditions") or [],
        "events": [
            {
                "object": (e.get("involvedObject") or {}).get("kind"),
                "type": e.get("type"),
                "reason": e.get("reason"),
                "message": e.get("message"),
                "count": e.get("count", 1),
                "lastTimestamp": event_time(e),
            }
            for e in sorted(events, key=event_time)
        ],
        "commands": commands,
    }


def describe_text(described: JsonDict) -> str:
    now = datetime.now(UTC)
    s = described
    idle = "-"
    if s["paused"]:
        idle = f"paused at {s['paused_at']}" + (" (reclaimed when idle)" if s["reclaimed"] else "")
    elif s["idle"]:
        idle = f"{s['idle']} ({s['idle_reason']}): {s['idle_message']}".rstrip(": ")
    fields = [
        ("Name", s["name"]),
        ("Namespace", s["namespace"]),
        ("Type", s["type"]),
        ("Image", s["image"]),
        ("GPU", s["gpu"] or "-"),
        ("Queue", s["queue"] or "-"),
        ("Phase", s["phase"] or "-"),
        ("Ready", s["ready"]),
        ("Idle", idle),
        ("Age", age(s["created"], now)),
        ("URL", s["url"] or "-"),
        *((_COMMAND_LABELS.get(label, label), command) for label, command in s["commands"].items()),
    ]
    width = max(len(label) for label, _ in fields) + 2
    out = [f"{label + ':':<{width}}{value}" for label, value in fields]
    out.append("Conditions:")
    conditions = [
        [
            c.get("type", ""),
            c.get("status", ""),
            c.get("reason", ""),
            age(c.get("lastTransitionTime"), now),
            c.get("message", ""),
        ]
        for c in s["conditions"]
    ]
    out.append(_indent(table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], conditions)))
    out.append("Events:" if s["events"] else "Events:  <none>")
    if s["events"]:
        events = [
            [
                e["object"] or "",
                e["type"] or "",
                e["reason"] or "",
                age(e["lastTimestamp"], now),
                str(e["count"]),
                e["message"] or "",
            ]
            for e in s["events"]
        ]
        headers = ["OBJECT", "TYPE", "REASON", "AGE", "COUNT", "MESSAGE"]
        out.append(_indent(table(headers, events)))
    return "\n".join(out)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


def as_list(items: list[JsonDict]) -> JsonDict:
    return {"apiVersion": "v1", "kind": "List", "items": items}

"""The admin's idle-reclaim policy, read from a ConfigMap and hot-reloaded.

ConfigMap data keys (all optional; every value is a string, as ConfigMaps require):

    enabled: "true"              # reclaim idle notebooks at all
    idleTimeout: 1h              # no activity this long -> Idle=True
    reclaimGrace: 24h            # Idle this long -> the notebook is paused
    probeInterval: 5m            # how often each running jupyter notebook is probed
    probeTimeout: 10s            # per HTTP request / exec of a probe
    reclaimUnreachable: "true"   # also reclaim notebooks whose server never answers (crash loops)
    allowOptOut: "false"         # honour the per-notebook opt-out annotation
    namespaceSelector: |         # which namespaces the policy covers (absent: all)
      matchLabels: {team: ml}
      matchExpressions: [{key: tier, operator: NotIn, values: [prod]}]

Durations are written `90s`, `5m`, `1h`, `24h`, `1h30m`, `500ms`, or as plain seconds (`86400`,
T9k's spelling). T9k's own key `scanInterval` is accepted as a synonym of `probeInterval`. T9k's
`idleTimeout` means the time until the pause, ours the time until Idle=True: a ConfigMap in
T9k's spelling (`scanInterval` and `idleTimeout` without `reclaimGrace`) is refused with the two
keys to write instead. An unknown key is an error rather than silently ignored: a typo must not
leave a default in force.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

OPT_OUT_ANNOTATION: Final = "notebook.tensorstack.dev/idle-reclaim"
"""Set to `disabled` on a notebook to keep it from being reclaimed, where the policy allows it."""
OPT_OUT_VALUE: Final = "disabled"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_KEY_SYNONYMS: Final = {"scanInterval": "probeInterval"}


class PolicyError(ValueError):
    """The ConfigMap does not hold a valid policy; the message says which key and why."""


def parse_duration(text: str | int | float) -> timedelta:
    """`1h30m`, `90s`, `500ms` or plain seconds; raises PolicyError for anything else."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return _non_negative(timedelta(seconds=text), str(text))
    value = str(text).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return timedelta(seconds=float(value))
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(value):
        raise PolicyError(
            f"{value!r} is not a duration (write e.g. 90s, 5m, 1h, 1h30m or plain seconds)"
        )
    return timedelta(seconds=seconds)


def _non_negative(duration: timedelta, text: str) -> timedelta:
    if duration < timedelta(0):
        raise PolicyError(f"{text!r} is negative")
    return duration


def format_duration(duration: timedelta) -> str:
    """The shortest `1h30m`-style spelling (whole seconds), for messages."""
    total = int(duration.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{seconds}s" if seconds or not (hours or minutes) else "")
    return "".join(parts)


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SelectorRequirement(_Frozen):
    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_match_operator(self) -> SelectorRequirement:
        needs_values = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values and not self.values:
            raise ValueError(f"operator {self.operator} needs values")
        if not needs_values and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case SelectorOperator.IN:
                return labels.get(self.key) in self.values
            case SelectorOperator.NOT_IN:
                return labels.get(self.key) not in self.values
            case SelectorOperator.EXISTS:
                return self.key in labels
            case SelectorOperator.DOES_NOT_EXIST:
                return self.key not in labels


class LabelSelector(_Frozen):
    """A metav1.LabelSelector; the empty selector matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: tuple[SelectorRequirement, ...] = Field(default=(), alias="matchExpressions")

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )


class IdlePolicy(_Frozen):
    enabled: bool = True
    idle_timeout: timedelta = Field(default=timedelta(hours=1), alias="idleTimeout")
    reclaim_grace: timedelta = Field(default=timedelta(hours=24), alias="reclaimGrace")
    probe_interval: timedelta = Field(default=timedelta(minutes=5), alias="probeInterval")
    probe_timeout: timedelta = Field(default=timedelta(seconds=10), alias="probeTimeout")
    reclaim_unreachable: bool = Field(default=True, alias="reclaimUnreachable")
    allow_opt_out: bool = Field(default=False, alias="allowOptOut")
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector, alias="namespaceSelector"
    )

    @field_validator(
        "idle_timeout", "reclaim_grace", "probe_interval", "probe_timeout", mode="before"
    )
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return value if isinstance(value, timedelta) else parse_duration(value)

    @field_validator("namespace_selector", mode="before")
    @classmethod
    def _selector_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError as error:
                raise ValueError(f"not valid YAML: {error}") from error
            return parsed or {}
        return value

    @model_validator(mode="after")
    def _positive_durations(self) -> IdlePolicy:
        for name in ("idle_timeout", "probe_interval", "probe_timeout"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{_alias(name)} must be positive")
        if self.reclaim_grace < timedelta(0):
            raise ValueError("reclaimGrace must not be negative")
        return self

    @property
    def reclaim_after(self) -> timedelta:
        """How long without activity before a notebook is reclaimed."""
        return self.idle_timeout + self.reclaim_grace

    def covers_namespace(self, labels: Mapping[str, str]) -> bool:
        return self.namespace_selector.matches(labels)

    def opted_out(self, annotations: Mapping[str, str]) -> bool:
        return self.allow_opt_out and annotations.get(OPT_OUT_ANNOTATION) == OPT_OUT_VALUE

    def describe(self) -> dict[str, Any]:
        """A log-friendly summary."""
        return {
            "enabled": self.enabled,
            "idle_timeout": format_duration(self.idle_timeout),
            "reclaim_grace": format_duration(self.reclaim_grace),
            "probe_interval": format_duration(self.probe_interval),
            "probe_timeout": format_duration(self.probe_timeout),
            "reclaim_unreachable": self.reclaim_unreachable,
            "allow_opt_out": self.allow_opt_out,
        }


def _alias(field_name: str) -> str:
    return IdlePolicy.model_fields[field_name].alias or field_name


def policy_from_data(data: Mapping[str, str] | None) -> IdlePolicy:
    """The policy a ConfigMap's `data` describes; PolicyError names every bad key."""
    _refuse_t9k_idle_timeout(data or {})
    values: dict[str, Any] = {}
    for key, raw in (data or {}).items():
        name = _KEY_SYNONYMS.get(key, key)
        if name in values:
            raise PolicyError(f"{key}: given twice (also as {name})")
        values[name] = _parse_bool(raw) if name in _BOOL_KEYS else raw
    try:
        return IdlePolicy.model_validate(values)
    except ValidationError as error:
        raise PolicyError(_describe(error)) from None


def _refuse_t9k_idle_timeout(data: Mapping[str, str]) -> None:
    """T9k's ConfigMap (`scanInterval: 300`, `idleTimeout: 86400`) means by idleTimeout the time
    without activity until the notebook is *paused*; here idleTimeout is the time until
    `Idle=True`, and reclaimGrace the time Idle before the pause. Copied as is, T9k's settings
    would pause a day later than T9k does: refuse them, naming the two keys to write instead."""
    if "scanInterval" not in data or "idleTimeout" not in data or "reclaimGrace" in data:
        return
    try:
        total = parse_duration(data["idleTimeout"])
    except PolicyError:
        return  # reported with the key's name by the model
    idle = min(timedelta(hours=1), total)
    raise PolicyError(
        f"idleTimeout: with T9k's scanInterval this reads as T9k's idleTimeout (time without"
        f" activity until the notebook is paused, here {format_duration(total)}); this"
        " controller splits it: idleTimeout is the time until Idle=True and reclaimGrace the"
        f" time Idle before the pause: write idleTimeout: {format_duration(idle)} and"
        f" reclaimGrace: {format_duration(total - idle)} for T9k's behaviour"
    )


_BOOL_KEYS: Final = {"enabled", "reclaimUnreachable", "allowOptOut"}
_TRUE: Final = {"true", "yes", "on", "1"}
_FALSE: Final = {"false", "no", "off", "0"}


def _parse_bool(raw: Any) -> Any:
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    return raw  # pydantic reports it with the key's name


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "policy"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{location}: {message}")
    return "; ".join(problems)

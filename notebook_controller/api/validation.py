"""Validation of Notebooks at admission: schema constraints and CEL rules added to the CRD.

Each entry says where in the Notebook schema it applies (`spec.ssh`, `[]` for list items, `{}`
for map values) and what it adds. docs/api.md documents every rule with the message a user sees;
a unit test keeps the two in step. The aim is that a Notebook that can't run is refused by
`kubectl apply`, not left to fail later on a StatefulSet or pod the user never wrote.

CEL cost: the apiserver estimates each rule's worst case from the schema's size bounds, so the
lists and maps rules iterate over carry maxItems / maxProperties / maxLength.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from notebook_controller.api.models import (
    GPU_PERCENT_RESOURCE,
    GPU_RESOURCE,
    T9K_SCHEDULER_NAME,
)

Schema = dict[str, Any]

# Secret names (DNS-1123 subdomains; length bounded by maxLength 253 in the schema).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Container and queue names (DNS-1123 labels; length bounded by maxLength 63).
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

MAX_CONTAINERS = 64
MAX_VOLUMES = 64  # volumes of a pod, volumeMounts of a container (bounds CEL's cost estimate)
MAX_ENV = 512  # env entries of a container (bounds CEL's cost estimate)
MAX_ENV_NAME = 256
MAX_AUTHORIZED_KEYS = 32
MAX_RESOURCE_NAMES = 32
MAX_QUANTITY_LENGTH = 64


@dataclass(frozen=True)
class Rule:
    """One CEL rule (`x-kubernetes-validations` entry)."""

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None

    def as_schema(self) -> Schema:
        out: Schema = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Constraint:
    """Schema keywords and CEL rules for the node at `path` of the Notebook schema."""

    path: str
    schema: Schema = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()


def _quantity(expr: str) -> str:
    # Quantities are int-or-string: an integer (`30`) or a string (`"0.5"`, `1Gi`).
    return f"quantity(string({expr}))"


def _gpu_percent_rule(resource_map: str) -> Rule:
    value = f"self.{resource_map}['{GPU_PERCENT_RESOURCE}']"
    whole_percent = (
        f"isQuantity(string({value})) && {_quantity(value)}.isInteger()"
        f" && {_quantity(value)}.compareTo(quantity('1')) >= 0"
        f" && {_quantity(value)}.compareTo(quantity('100')) <= 0"
    )
    return Rule(
        rule=(
            f"!has(self.{resource_map}) || !('{GPU_PERCENT_RESOURCE}' in self.{resource_map})"
            f" || ({whole_percent})"
        ),
        message=(
            f"resources.{resource_map}[{GPU_PERCENT_RESOURCE}] must be a whole number from 1 to"
            " 100 (percent of one GPU's memory)"
        ),
        field_path=f".{resource_map}['{GPU_PERCENT_RESOURCE}']",
    )


# Extended resources: outside the kubernetes.io domain. Kubernetes wants them in whole numbers.
_EXTENDED_ONLY = "(k.contains('/') && !k.contains('kubernetes.io/'))"
# Kubernetes lets a request differ from (or go without) its limit only for native,
# non-hugepages resources.
_EXTENDED = f"({_EXTENDED_ONLY} || k.startsWith('hugepages-'))"
# The controller copies these requests into limits (the seed's GPU example gives only requests).
_LIMITS_FILLED_IN = f"['{GPU_RESOURCE}', '{GPU_PERCENT_RESOURCE}']"


def _whole_extended(resource_map: str) -> str:
    return (
        f"(!has(self.{resource_map}) || self.{resource_map}.all(k, !{_EXTENDED_ONLY}"
        f" || {_quantity(f'self.{resource_map}[k]')}.isInteger()))"
    )


def _each_request_with_a_limit(condition: str) -> str:
    """CEL: `condition` holds for every resource `k` given both a request and a limit."""
    return (
        "!has(self.requests) || !has(self.limits)"
        f" || self.requests.all(k, !(k in self.limits) || {condition})"
    )


_REQUEST_VS_LIMIT = f"{_quantity('self.requests[k]')}.compareTo({_quantity('self.limits[k]')})"


def _non_negative(resource_map: str) -> Rule:
    value = f"self.{resource_map}[k]"
    return Rule(
        rule=(
            f"!has(self.{resource_map}) || self.{resource_map}.all(k,"
            f" !isQuantity(string({value})) || {_quantity(value)}.compareTo(quantity('0')) >= 0)"
        ),
        message=f"resources.{resource_map} must not be negative",
        field_path=f".{resource_map}",
    )


RESOURCE_RULES = (
    _non_negative("requests"),
    _non_negative("limits"),
    _gpu_percent_rule("requests"),
    _gpu_percent_rule("limits"),
    Rule(
        rule=f"{_whole_extended('requests')} && {_whole_extended('limits')}",
        message=(
            "resources.requests and resources.limits of extended resources (such as"
            f" {GPU_RESOURCE}) must be whole numbers"
        ),
    ),
    Rule(
        rule=(
            "!has(self.requests) || self.requests.all(k, !"
            f"{_EXTENDED} || (has(self.limits) && k in self.limits) || k in {_LIMITS_FILLED_IN})"
        ),
        message=(
            "resources.limits must be given for every extended resource or hugepages in"
            f" resources.requests (only {GPU_RESOURCE} and {GPU_PERCENT_RESOURCE} get their"
            " limit from the request)"
        ),
        field_path=".limits",
        reason="FieldValueRequired",
    ),
    Rule(
        rule=_each_request_with_a_limit(f"!{_EXTENDED} || {_REQUEST_VS_LIMIT} == 0"),
        message=(
            "resources.requests of an extended resource (such as"
            f" {GPU_PERCENT_RESOURCE}) or of hugepages must equal its resources.limits"
        ),
        field_path=".requests",
    ),
    Rule(
        rule=_each_request_with_a_limit(f"{_REQUEST_VS_LIMIT} <= 0"),
        message="resources.requests must not exceed resources.limits",
        field_path=".requests",
    ),
)

_RESOURCE_MAP = {"maxProperties": MAX_RESOURCE_NAMES}
_QUANTITY = {"maxLength": MAX_QUANTITY_LENGTH}


# The controller sets these on the main container (`notebook`, else the first): the path the
# notebook is served under, and whether sshd starts (spec.ssh.enabled).
_CONTROLLER_ENV = "['NB_PREFIX', 'ENABLE_SSH_SERVER']"
_CONTROLLER_ENV_MESSAGE = (
    "spec.template.spec.containers[].env: NB_PREFIX and ENABLE_SSH_SERVER are set by the"
    " controller (the path the notebook is served under, and spec.ssh.enabled): remove them from"
    " the main container's env"
)


def _container_constraints(containers: str) -> tuple[Constraint, ...]:
    """Checks the pod would fail later, for `containers` or `initContainers`."""
    path = f"spec.template.spec.{containers}"
    return (
        Constraint(path, {"maxItems": MAX_CONTAINERS}),
        Constraint(f"{path}[]", {"required": ["image"]}),
        Constraint(f"{path}[].image", {"minLength": 1}),
        Constraint(
            f"{path}[].name",
            {"maxLength": 63},
            (
                Rule(
                    rule=f"self.matches('{DNS_LABEL}')",
                    message=(
                        f"spec.template.spec.{containers}[].name must be a DNS label: lowercase"
                        " letters, digits and '-', starting and ending with a letter or digit"
                    ),
                ),
            ),
        ),
        Constraint(
            f"{path}[]",
            rules=(
                ()
                if containers != "containers"
                else (
                    Rule(
                        rule=(
                            "self.name != 'notebook' || !has(self.env)"
                            f" || !self.env.exists(e, e.name in {_CONTROLLER_ENV})"
                        ),
                        message=_CONTROLLER_ENV_MESSAGE,
                        field_path=".env",
                        reason="FieldValueForbidden",
                    ),
                )
            ),
        ),
        Constraint(f"{path}[].resources", rules=RESOURCE_RULES),
        Constraint(f"{path}[].volumeMounts", {"maxItems": MAX_VOLUMES}),
        Constraint(f"{path}[].volumeMounts[].name", {"maxLength": 63}),
        Constraint(f"{path}[].env", {"maxItems": MAX_ENV}),
        Constraint(f"{path}[].env[].name", {"maxLength": MAX_ENV_NAME}),
        Constraint(f"{path}[].resources.requests", _RESOURCE_MAP),
        Constraint(f"{path}[].resources.limits", _RESOURCE_MAP),
        Constraint(f"{path}[].resources.requests{{}}", _QUANTITY),
        Constraint(f"{path}[].resources.limits{{}}", _QUANTITY),
    )


_HAS_QUEUE = "has(self.scheduler) && has(self.scheduler.t9kScheduler)"
_HAD_QUEUE = "has(oldSelf.scheduler) && has(oldSelf.scheduler.t9kScheduler)"
_SAME_QUEUE = "self.scheduler.t9kScheduler.queue == oldSelf.scheduler.t9kScheduler.queue"
# paused: no pod, so nothing would have to move; the next pod starts in the new queue
_WAS_PAUSED = (
    "((has(oldSelf.runMode) && oldSelf.runMode == 'paused')"
    " || (has(oldSelf.suspend) && oldSelf.suspend))"
)

CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint(
        "spec",
        rules=(
            Rule(
                rule=(
                    "!has(self.runMode) || !has(self.suspend)"
                    " || (self.runMode == 'paused') == self.suspend"
                ),
                message=(
                    "spec.runMode and spec.suspend disagree: runMode paused goes with suspend"
                    " true, runMode running with suspend false (giving one of them is enough)"
                ),
                field_path=".suspend",
            ),
            Rule(
                rule=f"!({_HAD_QUEUE}) || ({_HAS_QUEUE} && {_SAME_QUEUE}) || {_WAS_PAUSED}",
                message=(
                    "spec.scheduler.t9kScheduler.queue can't be changed or removed while the"
                    " notebook runs: a running pod can't move to another queue (pause the"
                    " notebook, change the queue, resume it)"
                ),
                field_path=".scheduler",
            ),
            Rule(
                rule=(
                    f"!({_HAS_QUEUE}) || !has(self.template.spec.schedulerName)"
                    f" || self.template.spec.schedulerName == '{T9K_SCHEDULER_NAME}'"
                ),
                message=(
                    "spec.template.spec.schedulerName must be unset or"
                    f" {T9K_SCHEDULER_NAME} when spec.scheduler.t9kScheduler is set"
                ),
                field_path=".template.spec.schedulerName",
            ),
        ),
    ),
    Constraint(
        "spec.ssh",
        rules=(
            Rule(
                rule=(
                    "!has(self.enabled) || !self.enabled"
                    " || (has(self.authorized_keys) && size(self.authorized_keys) > 0)"
                ),
                message=(
                    "spec.ssh.authorized_keys must name at least one Secret when"
                    " spec.ssh.enabled is true"
                ),
                field_path=".authorized_keys",
                reason="FieldValueRequired",
            ),
        ),
    ),
    Constraint(
        "spec.ssh.authorized_keys",
        {"maxItems": MAX_AUTHORIZED_KEYS, "x-kubernetes-list-type": "set"},
    ),
    Constraint(
        "spec.ssh.authorized_keys[]",
        {"maxLength": 253},
        (
            Rule(
                rule=f"self.matches('{DNS_SUBDOMAIN}')",
                message=(
                    "spec.ssh.authorized_keys entries must be Secret names: lowercase letters,"
                    " digits, '-' and '.', starting and ending with a letter or digit"
                ),
            ),
        ),
    ),
    Constraint(
        "spec.scheduler.t9kScheduler.queue",
        {"maxLength": 63},
        (
            Rule(
                rule=f"self.matches('{DNS_LABEL}')",
                message=(
                    "spec.scheduler.t9kScheduler.queue must be a queue name: lowercase letters,"
                    " digits and '-', starting and ending with a letter or digit"
                ),
            ),
        ),
    ),
    Constraint(
        "spec.template.spec",
        rules=(
            Rule(
                rule="!has(self.restartPolicy) || self.restartPolicy == 'Always'",
                message=(
                    "spec.template.spec.restartPolicy must be Always (or unset): a notebook's"
                    " pod is restarted whenever it exits"
                ),
                field_path=".restartPolicy",
            ),
            *(
                Rule(
                    rule=(
                        f"!has(self.{key}) || self.{key}.all(c, !has(c.volumeMounts)"
                        " || c.volumeMounts.all(m, has(self.volumes)"
                        " && self.volumes.exists(v, v.name == m.name)))"
                    ),
                    message=(
                        f"spec.template.spec.{key}[].volumeMounts[].name must name a volume in"
                        " spec.template.spec.volumes"
                    ),
                    field_path=f".{key}",
                    reason="FieldValueInvalid",
                )
                for key in ("containers", "initContainers")
            ),
            Rule(
                # the main container is `notebook`, else the first: here, the first
                rule=(
                    "self.containers.exists(c, c.name == 'notebook')"
                    " || !has(self.containers[0].env)"
                    f" || !self.containers[0].env.exists(e, e.name in {_CONTROLLER_ENV})"
                ),
                message=_CONTROLLER_ENV_MESSAGE,
                field_path=".containers",
                reason="FieldValueForbidden",
            ),
            Rule(
                rule="!has(self.activeDeadlineSeconds)",
                message=(
                    "spec.template.spec.activeDeadlineSeconds can't be set: a notebook's pod"
                    " runs until the notebook is paused"
                ),
                field_path=".activeDeadlineSeconds",
                reason="FieldValueForbidden",
            ),
            Rule(
                rule="!has(self.ephemeralContainers) || size(self.ephemeralContainers) == 0",
                message=(
                    "spec.template.spec.ephemeralContainers can't be set: ephemeral containers"
                    " are added to a running pod (kubectl debug)"
                ),
                field_path=".ephemeralContainers",
                reason="FieldValueForbidden",
            ),
        ),
    ),
    Constraint("spec.template.spec.containers", {"minItems": 1}),
    Constraint("spec.template.spec.volumes", {"maxItems": MAX_VOLUMES}),
    Constraint("spec.template.spec.volumes[].name", {"maxLength": 63}),
    *_container_constraints("containers"),
    *_container_constraints("initContainers"),
)

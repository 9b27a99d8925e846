"""One typed settings object, from flags, then `NBC_*` environment variables, then defaults.

Every field is a flag `--field-name` and an environment variable `NBC_FIELD_NAME`; lists are
comma-separated. Flags win over the environment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from notebook_controller.runtime.loop import DEFAULT_BATCH_INTERVAL

ENV_PREFIX = "NBC_"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    kubeconfig: str | None = None
    """Path to a kubeconfig; unset: in-cluster config, else $KUBECONFIG or ~/.kube/config."""
    namespaces: list[str] = Field(default_factory=list)
    """Namespaces to watch (comma-separated); empty: all namespaces."""
    workers: int = Field(8, ge=1)
    """Concurrent reconciles per controller (each waits for its requests' answers: with
    --io-batch-seconds, a round trip takes up to that long)."""
    io_batch_seconds: float = Field(DEFAULT_BATCH_INTERVAL, ge=0, le=1)
    """The event loop takes in I/O and timers in rounds at least this far apart: watch events,
    answers and timers due meanwhile are handled in one wake-up (less CPU; up to this much
    latency per request or timer); 0: woken for each arrival."""
    leader_elect: bool = False
    """Run leader election so only one replica reconciles (the Deployment turns it on)."""
    lease_name: str = "notebook-controller"
    """Name of the coordination.k8s.io Lease used for leader election."""
    lease_namespace: str = "default"
    """Namespace of the Lease (default: the pod's namespace, else "default")."""
    lease_duration: float = Field(15.0, gt=0)
    """Seconds a lease stays valid without renewal: how long a successor waits after a crash."""
    renew_deadline: float = Field(10.0, gt=0)
    """Seconds the leader keeps retrying a renewal before giving up leadership."""
    retry_period: float = Field(2.0, gt=0)
    """Seconds between lease renewals and between acquisition attempts."""
    health_address: str = "127.0.0.1:8081"
    """host:port serving /healthz, /readyz and /metrics (in-cluster default 0.0.0.0:8081)."""
    graceful_shutdown_timeout: float = Field(30.0, ge=0)
    """Seconds to let in-flight reconciles finish after SIGTERM."""
    log_format: Literal["json", "console"] = "json"
    """json (default off a terminal) or console (default on a terminal)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged."""
    external_url_base: str | None = None
    """Base URL users reach notebooks at, for status.url (e.g. https://example.org)."""
    jupyter_url_template: str | None = None
    """URL of a notebook's Jupyter server, placeholders {namespace} {service} {prefix}; set: probe
    it directly (default: in a pod http://{service}.{namespace}.svc:80{prefix}, else through the
    API server's Service proxy)."""
    jupyter_probe_mode: Literal["auto", "direct", "apiserver-proxy"] = "auto"
    """How the idle reclaimer reaches Jupyter: direct (the URL template), apiserver-proxy (the API
    server's Service proxy, with the controller's credentials), or auto (direct in a pod or with
    a template, else the proxy)."""
    check_key_secrets: bool = False
    """Read the Secrets named in ssh.authorized_keys and report them in the SSHKeysReady condition
    (off: Secrets are never read, the condition is not set). Needs get/list/watch on every Secret
    of the watched namespaces: deploy/components/check-key-secrets, docs/security.md."""
    status_coalesce_seconds: float = Field(10.0, ge=0)
    """Status changes on a notebook's way to Ready within this window go out as one write (Ready
    turning True waits up to 1 s for the idle reclaimer's first verdict; Ready turning False, a
    Ready notebook's changes and a pause go at once); 0: every change at once."""
    idle_coalesce_seconds: float = Field(0.0, ge=0)
    """Hold the idle reclaimer's "can't tell yet" (NotRunning, NotReady, a failed probe) this long
    (verdicts go at once). 0 (default): written at once — a crash-looping notebook shows
    Idle=Unknown/NotReady as soon as it is seen — except before a notebook's first verdict, held
    10 s either way."""
    idle_policy_configmap: str = "notebook-controller-idle-policy"
    """ConfigMap holding the idle-reclaim policy (hot-reloaded)."""
    idle_policy_namespace: str = "default"
    """Namespace of the idle-policy ConfigMap (default: the pod's namespace, else "default")."""

    @field_validator("jupyter_url_template")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        if value:
            try:
                value.format(namespace="ns", service="svc", prefix="/p/")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    "only the placeholders {namespace}, {service} and {prefix} are known"
                ) from error
        return value

    @model_validator(mode="after")
    def _template_is_direct(self) -> Settings:
        if self.jupyter_url_template and self.jupyter_probe_mode == "apiserver-proxy":
            raise ValueError(
                "--jupyter-url-template applies to direct probes; drop it with"
                " --jupyter-probe-mode=apiserver-proxy"
            )
        return self

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def load(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        flags = vars(build_parser().parse_args(list(argv or [])))
        return cls.from_sources(flags, environ or {})

    @classmethod
    def from_sources(cls, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
        """Flags (only those given) over `NBC_*` variables over defaults."""
        values: dict[str, Any] = _runtime_defaults(environ)
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw:
                values[name] = raw
        values.update({name: value for name, value in flags.items() if name in cls.model_fields})
        return cls.model_validate(values)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """One flag per settings field; an unset flag leaves the environment or default in force."""
    parser = parser or argparse.ArgumentParser(prog="notebook-controller run")
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env_help = f"{field.description or ''} [env {ENV_PREFIX}{name.upper()}]"
        if field.annotation is bool:
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=env_help,
            )
        else:
            parser.add_argument(flag, default=argparse.SUPPRESS, help=env_help)
    return parser


def _runtime_defaults(environ: Mapping[str, str]) -> dict[str, Any]:
    """Defaults that depend on where the process runs."""
    in_cluster = bool(environ.get("KUBERNETES_SERVICE_HOST"))
    namespace = _pod_namespace() or "default"
    return {
        "lease_namespace": namespace,
        "idle_policy_namespace": namespace,
        "health_address": "0.0.0.0:8081" if in_cluster else "127.0.0.1:8081",
        "log_format": "console" if sys.stderr.isatty() else "json",
    }


def _pod_namespace() -> str | None:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None

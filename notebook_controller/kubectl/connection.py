"""Where the plugin talks to: kubeconfig, context, namespace and impersonation, as kubectl
takes them, for both the API client and the `kubectl` subprocesses (port-forward, logs)."""

from __future__ import annotations

import os
import shutil
import ssl
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

import yaml

from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.kubeconfig import (
    ConfigError,
    Configuration,
    in_cluster,
    kubeconfig_configuration,
    kubeconfig_paths,
    load_configuration,
)

USER_AGENT: Final = "kubectl-notebook"
_IN_CLUSTER_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class PluginError(Exception):
    """An error shown to the user as one line, `error: <message>`, exit 1."""


@dataclass(frozen=True)
class Target:
    """kubectl's connection flags, as given on the command line (None: not given)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    impersonate: str | None = None

    def resolved_namespace(self) -> str:
        """-n, else the context's namespace, else `default` (in a pod: the pod's namespace)."""
        if self.namespace:
            return self.namespace
        if self.kubeconfig is None and not os.environ.get("KUBECONFIG") and in_cluster():
            return _IN_CLUSTER_NAMESPACE.read_text().strip()
        return context_namespace(kubeconfig_paths(self.kubeconfig), self.context) or "default"

    def kubectl_flags(self) -> list[str]:
        """The same target for a `kubectl` subprocess (namespace not included)."""
        flags: list[str] = []
        if self.kubeconfig:
            flags.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            flags.append(f"--context={self.context}")
        if self.impersonate:
            flags.append(f"--as={self.impersonate}")
        return flags

    def plugin_flags(self, namespace: str) -> list[str]:
        """The same target for a nested run of this plugin (ssh's ProxyCommand)."""
        return ["-n", namespace, *self.kubectl_flags()]

    async def client(self) -> KubeClient:
        """The controller's client, on the controller's kubeconfig loader (one for both)."""
        try:
            configuration = await self._configuration()
        except ConfigError as error:
            where = f"kubeconfig context {self.context}: " if self.context else ""
            raise PluginError(f"{where}{error}") from error
        if self.impersonate:
            configuration = _Impersonating.of(configuration, self.impersonate)
        return KubeClient(configuration, timeout=30.0, user_agent=USER_AGENT)

    async def _configuration(self) -> Configuration:
        if self.context is None:
            return await load_configuration(self.kubeconfig)
        configuration = kubeconfig_configuration(kubeconfig_paths(self.kubeconfig), self.context)
        if configuration.exec_plugin is not None:
            await configuration.auth()  # fail now, not at the first request
        return configuration


@dataclass
class _Impersonating(Configuration):
    """A configuration whose requests also carry `Impersonate-User` (kubectl's --as)."""

    impersonate: str = ""

    @classmethod
    def of(cls, base: Configuration, user: str) -> _Impersonating:
        return cls(**{f.name: getattr(base, f.name) for f in fields(base)}, impersonate=user)

    async def auth(self) -> tuple[dict[str, str], ssl.SSLContext | bool]:
        headers, ssl_context = await super().auth()
        return {**headers, "Impersonate-User": self.impersonate}, ssl_context


def context_namespace(paths: list[Path], context: str | None) -> str | None:
    """The namespace of `context` (default: the current one) in the merged kubeconfig files,
    where the first file to name a context or the current context wins, as kubectl merges."""
    contexts: dict[str, Any] = {}
    current: str | None = None
    for path in paths:
        try:
            loaded: Any = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue  # an unreadable file is reported when the client loads it
        current = current or loaded.get("current-context") or None
        for entry in loaded.get("contexts") or []:
            contexts.setdefault(entry.get("name"), entry.get("context") or {})
    found = contexts.get(context or current or "", {}).get("namespace")
    return str(found) if found else None


def kubectl_binary() -> str:
    """kubectl, which runs this plugin and is therefore on PATH (`$KUBECTL` overrides)."""
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not found:
        raise PluginError("kubectl not found on PATH: install kubectl or set KUBECTL to its path")
    return found

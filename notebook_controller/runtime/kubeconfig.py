"""Where the API server is and how to authenticate to it: in-cluster or from a kubeconfig.

What client-go's clientcmd does for the cases a controller meets: a bearer token (inline or
`tokenFile`, re-read as it rotates), client certificates (files or inline data), basic auth, exec
credential plugins (client.authentication.k8s.io, re-run when their credential expires), the
cluster's CA, `insecure-skip-tls-verify`, `tls-server-name` and `proxy-url`. The legacy
`auth-provider` plugins (removed from kubectl) are refused with a message saying to use exec.

Kept apart from kubernetes_asyncio on purpose: importing its client package loads every generated
model and API class (~40 MB of RSS) while the controller needs none of them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import yaml

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# client-go re-reads a token file at most once a minute
_TOKEN_FILE_REREAD_SECONDS: Final = 60.0
# re-run an exec plugin this long before its credential expires
_EXEC_EXPIRY_MARGIN_SECONDS: Final = 10.0
_EXEC_TIMEOUT_SECONDS: Final = 60.0

JsonDict = dict[str, Any]


class ConfigError(Exception):
    """The kubeconfig or the in-cluster environment can't give a usable configuration."""


@dataclass
class _Credential:
    """A bearer token and/or client certificate, valid until `expires` (monotonic; None: ever)."""

    token: str | None = None
    ssl_context: ssl.SSLContext | None = None
    expires: float | None = None


@dataclass
class ExecPlugin:
    """A client.authentication.k8s.io exec plugin (kubeconfig `users[].user.exec`)."""

    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    api_version: str = "client.authentication.k8s.io/v1"
    cluster: JsonDict | None = None  # set when provideClusterInfo

    async def run(self) -> JsonDict:
        exec_info: JsonDict = {
            "apiVersion": self.api_version,
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
        if self.cluster is not None:
            exec_info["spec"]["cluster"] = self.cluster
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(exec_info)}
        try:
            process = await asyncio.create_subprocess_exec(
                self.command,
                *self.args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            async with asyncio.timeout(_EXEC_TIMEOUT_SECONDS):
                stdout, stderr = await process.communicate()
        except (OSError, TimeoutError) as error:
            raise ConfigError(f"exec credential plugin {self.command} failed: {error!r}") from error
        if process.returncode != 0:
            message = stderr.decode(errors="replace").strip()
            raise ConfigError(
                f"exec credential plugin {self.command} exited {process.returncode}: {message}"
            )
        try:
            credential: Any = json.loads(stdout)
            status: JsonDict = credential["status"]
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"exec credential plugin {self.command} printed no ExecCredential status"
            ) from error
        return status


@dataclass
class Configuration:
    """The API server's address, its TLS settings and a source of credentials.

    `Configuration(host="http://127.0.0.1:8080")` is a bare one (tests, local proxies).
    """

    host: str
    verify_ssl: bool = True
    ca_data: str | None = None  # PEM
    tls_server_name: str | None = None
    proxy: str | None = None
    token: str | None = None
    token_file: Path | None = None
    basic_auth: tuple[str, str] | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    exec_plugin: ExecPlugin | None = None
    # credentials from elsewhere (an adopted kubernetes_asyncio client): the headers to send
    auth_hook: Callable[[], Awaitable[dict[str, str]]] | None = None
    _credential: _Credential = field(default_factory=_Credential, repr=False)
    _token_read_at: float = field(default=-1e9, repr=False)
    _base_ssl: ssl.SSLContext | None = field(default=None, repr=False)
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    # --- per request ------------------------------------------------------------------------

    async def auth(self) -> tuple[dict[str, str], ssl.SSLContext | bool]:
        """The Authorization header (if any) and the TLS context for the next request."""
        if self.auth_hook is not None:
            return await self.auth_hook(), self.ssl_context()
        if self.exec_plugin is not None:
            await self._refresh_exec()
        elif self.token_file is not None:
            self._reread_token_file()
        credential = self._credential
        headers: dict[str, str] = {}
        token = credential.token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.basic_auth is not None:
            pair = ":".join(self.basic_auth).encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        return headers, credential.ssl_context or self.ssl_context()

    def ssl_context(self) -> ssl.SSLContext | bool:
        """False for plain http; otherwise the context with the CA and the client certificate."""
        if not self.host.startswith("https"):
            return False
        if self._base_ssl is None:
            self._base_ssl = self._new_ssl_context(self.client_cert_file, self.client_key_file)
        return self._base_ssl

    def _new_ssl_context(self, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_data) if self.ca_data else (
            ssl.create_default_context()
        )  # fmt: skip
        if not self.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
        return context

    def _reread_token_file(self) -> None:
        assert self.token_file is not None
        now = time.monotonic()
        if now - self._token_read_at < _TOKEN_FILE_REREAD_SECONDS:
            return
        try:
            self._credential.token = self.token_file.read_text().strip() or None
        except OSError as error:
            if self._credential.token is None:
                raise ConfigError(
                    f"can't read the token file {self.token_file}: {error}"
                ) from error
        self._token_read_at = now

    async def _refresh_exec(self) -> None:
        credential = self._credential
        if credential.expires is None and (credential.token or credential.ssl_context):
            return
        if credential.expires is not None and time.monotonic() < credential.expires:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._credential is credential:  # nobody refreshed it meanwhile
                self._credential = await self._run_exec()

    async def _run_exec(self) -> _Credential:
        assert self.exec_plugin is not None
        status = await self.exec_plugin.run()
        refreshed = _Credential(token=status.get("token"))
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if cert and key and self.host.startswith("https"):
            with _pem_files(cert, key) as (cert_file, key_file):
                refreshed.ssl_context = self._new_ssl_context(cert_file, key_file)
        if not refreshed.token and refreshed.ssl_context is None:
            raise ConfigError(
                f"exec credential plugin {self.exec_plugin.command} gave neither a token nor"
                " a client certificate"
            )
        expiry = status.get("expirationTimestamp")
        if expiry:
            seconds_left = _parse_time(expiry) - time.time()
            refreshed.expires = time.monotonic() + seconds_left - _EXEC_EXPIRY_MARGIN_SECONDS
        return refreshed


@contextmanager
def _pem_files(cert: str, key: str) -> Iterator[tuple[str, str]]:
    """Inline certificate and key in private temporary files while TLS loads them."""
    paths: list[str] = []
    try:
        for content in (cert, key):
            handle, path = tempfile.mkstemp(prefix="nbc-", suffix=".pem")  # mode 0600
            paths.append(path)
            with os.fdopen(handle, "w") as written:
                written.write(content)
        yield paths[0], paths[1]
    finally:
        for path in paths:
            os.unlink(path)


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --- loading ------------------------------------------------------------------------------


def in_cluster(
    environ: Mapping[str, str] | None = None, token_file: Path = SERVICE_ACCOUNT_DIR / "token"
) -> bool:
    """Whether this process runs in a pod, decided as client-go does (clientcmd's in-cluster
    config is possible): KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are set and the
    service account's token file exists."""
    env = os.environ if environ is None else environ
    if not env.get("KUBERNETES_SERVICE_HOST") or not env.get("KUBERNETES_SERVICE_PORT"):
        return False
    return token_file.is_file()


def in_cluster_configuration(
    environ: Mapping[str, str] | None = None, directory: Path = SERVICE_ACCOUNT_DIR
) -> Configuration:
    env = os.environ if environ is None else environ
    host, port = env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        ca_data = (directory / "ca.crt").read_text()
    except OSError as error:
        raise ConfigError(f"in-cluster CA {directory / 'ca.crt'} unreadable: {error}") from error
    configuration = Configuration(
        host=f"https://{host}:{port}", ca_data=ca_data, token_file=directory / "token"
    )
    configuration._reread_token_file()
    return configuration


def kubeconfig_paths(explicit: str | None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """An explicit file, else $KUBECONFIG's list, else ~/.kube/config."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ if environ is None else environ
    listed = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [Path("~/.kube/config").expanduser()]


def kubeconfig_configuration(paths: list[Path], context: str | None = None) -> Configuration:
    """The configuration of `context` (default: current-context) from the merged files: the
    first file to set a name wins, as kubectl merges them."""
    merged: dict[str, dict[str, JsonDict]] = {"clusters": {}, "users": {}, "contexts": {}}
    current: str | None = None
    base_dirs: dict[tuple[str, str], Path] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            loaded: Any = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"can't read kubeconfig {path}: {error}") from error
        current = current or loaded.get("current-context") or None
        for section, entries in merged.items():
            for entry in loaded.get(section) or []:
                name = entry.get("name")
                if name is not None and name not in entries:
                    entries[name] = entry.get(section[:-1]) or {}
                    base_dirs[(section, name)] = path.parent
    chosen = context or current
    if not chosen or chosen not in merged["contexts"]:
        raise ConfigError(
            f"no usable context in kubeconfig {', '.join(map(str, paths))}: pass --kubeconfig"
            " or set KUBECONFIG"
        )
    ctx = merged["contexts"][chosen]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if cluster_name not in merged["clusters"]:
        raise ConfigError(f"kubeconfig context {chosen} names unknown cluster {cluster_name}")
    cluster = merged["clusters"][cluster_name]
    user = merged["users"].get(user_name, {}) if user_name else {}
    return _configuration(
        cluster,
        user,
        base_dirs[("clusters", cluster_name)],
        base_dirs.get(("users", user_name or ""), Path.cwd()),
    )


def environment_proxy(host: str) -> str | None:
    """The proxy $HTTPS_PROXY/$HTTP_PROXY give for `host`, unless $NO_PROXY excludes it, read
    once (aiohttp's trust_env would read the environment and ~/.netrc on every request)."""
    parsed = urllib.parse.urlsplit(host)
    if urllib.request.proxy_bypass(parsed.hostname or ""):
        return None
    return urllib.request.getproxies_environment().get(parsed.scheme or "https")


def _configuration(
    cluster: JsonDict, user: JsonDict, cluster_dir: Path, user_dir: Path
) -> Configuration:
    if not cluster.get("server"):
        raise ConfigError("the kubeconfig's cluster has no server")
    if user.get("auth-provider"):
        name = user["auth-provider"].get("name", "?")
        raise ConfigError(f"kubeconfig auth-provider {name} is not supported: use an exec plugin")
    configuration = Configuration(
        host=str(cluster["server"]).rstrip("/"),
        verify_ssl=not cluster.get("insecure-skip-tls-verify", False),
        ca_data=_data_or_file(cluster, "certificate-authority", cluster_dir),
        tls_server_name=cluster.get("tls-server-name"),
        proxy=cluster.get("proxy-url") or environment_proxy(str(cluster["server"])),
        token=user.get("token"),
        token_file=_path(user.get("tokenFile"), user_dir),
    )
    if user.get("username") and user.get("password"):
        configuration.basic_auth = (str(user["username"]), str(user["password"]))
    cert = _data_or_file(user, "client-certificate", user_dir)
    key = _data_or_file(user, "client-key", user_dir)
    if cert and key and configuration.host.startswith("https"):
        with _pem_files(cert, key) as (cert_file, key_file):
            configuration._base_ssl = configuration._new_ssl_context(cert_file, key_file)
    if user.get("exec"):
        configuration.exec_plugin = _exec_plugin(user["exec"], cluster, user_dir)
    if configuration.token_file is not None:
        configuration._reread_token_file()
    return configuration


def _exec_plugin(spec: JsonDict, cluster: JsonDict, user_dir: Path) -> ExecPlugin:
    command = str(spec.get("command") or "")
    if not command:
        raise ConfigError("the kubeconfig's exec plugin has no command")
    if os.sep in command and not os.path.isabs(command):
        command = str(user_dir / command)  # relative to the kubeconfig, as client-go does
    provide = bool(spec.get("provideClusterInfo"))
    return ExecPlugin(
        command=command,
        args=[str(a) for a in spec.get("args") or []],
        env={str(e["name"]): str(e["value"]) for e in spec.get("env") or []},
        api_version=str(spec.get("apiVersion") or "client.authentication.k8s.io/v1"),
        cluster=_cluster_info(cluster) if provide else None,
    )


def _cluster_info(cluster: JsonDict) -> JsonDict:
    info: JsonDict = {"server": cluster.get("server")}
    if cluster.get("certificate-authority-data"):
        info["certificate-authority-data"] = cluster["certificate-authority-data"]
    if cluster.get("insecure-skip-tls-verify"):
        info["insecure-skip-tls-verify"] = True
    return info


def _path(value: str | None, base: Path) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _data_or_file(section: JsonDict, key: str, base: Path) -> str | None:
    """`<key>-data` (base64) or the file `<key>` names, relative to the kubeconfig."""
    data = section.get(f"{key}-data")
    if data:
        return base64.b64decode(data).decode()
    path = _path(section.get(key), base)
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as error:
        raise ConfigError(f"kubeconfig {key} {path} unreadable: {error}") from error


async def load_configuration(kubeconfig: str | None = None) -> Configuration:
    """An explicit kubeconfig, else in-cluster, else $KUBECONFIG or ~/.kube/config."""
    if kubeconfig is None and in_cluster():
        return in_cluster_configuration()
    configuration = kubeconfig_configuration(kubeconfig_paths(kubeconfig))
    if configuration.exec_plugin is not None:
        await configuration.auth()  # fail now, not at the first request
    return configuration

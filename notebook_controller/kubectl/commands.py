"""One coroutine per `kubectl notebook` command. Each returns the process's exit code; errors a
user can act on are raised as PluginError (shown as one line) or come from the API server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from notebook_controller.builders import raw
from notebook_controller.builders.names import host_key_secret_name, http_service_name, pod_name
from notebook_controller.builders.services import HTTP_SERVICE_PORT
from notebook_controller.builders.ssh import SSH_PORT
from notebook_controller.kubectl import sshaccess, views
from notebook_controller.kubectl.connection import PluginError, Target, kubectl_binary
from notebook_controller.kubectl.manifests import (
    NotebookRequest,
    key_secret_manifest,
    notebook_manifest,
    public_key_error,
)
from notebook_controller.kubectl.portforward import port_forward
from notebook_controller.reconcilers.notebooks import NOTEBOOKS
from notebook_controller.runtime.kinds import EVENTS, SECRETS
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.objects import JsonDict

RESOURCE: Final = "notebook.tensorstack.dev"
POLL_INTERVAL: Final = 1.0


@dataclass
class Session:
    target: Target
    namespace: str
    client: KubeClient

    def hint(self, command: str, name: str) -> str:
        return f"kubectl notebook {command} {name} -n {self.namespace}"

    async def notebook(self, name: str) -> JsonDict:
        found = await self.client.get(NOTEBOOKS, self.namespace, name)
        if found is None:
            raise PluginError(f'notebook "{name}" not found in namespace "{self.namespace}"')
        return found


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- list, describe ------------------------------------------------------------------------


async def list_notebooks(
    session: Session, *, all_namespaces: bool, selector: str | None, output: str | None
) -> int:
    found = await session.client.list(
        NOTEBOOKS, None if all_namespaces else session.namespace, selector
    )
    items: list[JsonDict] = sorted(
        found.get("items") or [],
        key=lambda nb: (nb["metadata"].get("namespace", ""), nb["metadata"]["name"]),
    )
    for item in items:  # a list's items carry no kind
        item.setdefault("apiVersion", found.get("apiVersion"))
        item.setdefault("kind", "Notebook")
    if output in ("json", "yaml"):
        print(views.dump(views.as_list(items), output))
        return 0
    if not items:
        where = "any namespace" if all_namespaces else f"namespace {session.namespace}"
        say(f"No notebooks found in {where}.")
        return 0
    summaries = [views.Summary.of(item) for item in items]
    print(views.list_table(summaries, wide=output == "wide", all_namespaces=all_namespaces))
    return 0


async def events_of(session: Session, kind: str, name: str) -> list[JsonDict]:
    try:
        found = await session.client.list(
            EVENTS,
            session.namespace,
            field_selector=f"involvedObject.kind={kind},involvedObject.name={name}",
        )
    except ApiError as error:
        if error.status != 403:
            raise
        return []  # describing works without the right to read events
    items: list[JsonDict] = found.get("items") or []
    return items


async def describe(session: Session, name: str, output: str | None) -> int:
    notebook = await session.notebook(name)
    uid = notebook["metadata"].get("uid")
    events = [
        e
        for e in await events_of(session, "Notebook", name)
        if (e.get("involvedObject") or {}).get("uid") == uid
    ]
    # the pod's too: image pulls, scheduling, probes are where a start goes wrong
    events += await events_of(session, "Pod", pod_name(name))
    commands = {"open": session.hint("open", name)}
    if views.Summary.of(notebook).ssh:
        commands["ssh"] = session.hint("ssh", name)
    described = views.describe_json(notebook, events, commands)
    if output in ("json", "yaml"):
        print(views.dump(described, output))
    else:
        print(views.describe_text(described))
    return 0


# --- create, pause, resume, delete ---------------------------------------------------------


def read_public_key(path: str) -> str:
    file = Path(path)
    if file.suffix != ".pub" and file.with_name(file.name + ".pub").is_file():
        file = file.with_name(file.name + ".pub")  # given the private key: use its public half
    try:
        text = file.read_text()
    except OSError as error:
        raise PluginError(f"can't read the SSH public key {file}: {error.strerror}") from error
    problem = public_key_error(text, str(file))
    if problem:
        raise PluginError(problem)
    return text


def client_dry_run(request: NotebookRequest, output: str | None) -> str:
    """What `create` would send, made here without asking the cluster."""
    objects = [notebook_manifest(request)]
    if request.public_key is not None:
        objects.append(key_secret_manifest(request, None))
    return views.dump(views.as_list(objects), output or "yaml")


async def create(
    session: Session,
    request: NotebookRequest,
    *,
    dry_run: str,
    output: str | None,
    wait: bool,
    ready_within: float,
) -> int:
    notebook = notebook_manifest(request)
    with_key = request.public_key is not None
    query = [("dryRun", "All")] if dry_run == "server" else []
    path = NOTEBOOKS.path(session.namespace)
    created = await session.client.request("POST", path, query=query, body=notebook)
    objects = [created]
    if with_key:
        secret = key_secret_manifest(request, created)
        try:
            objects.append(
                await session.client.request(
                    "POST", SECRETS.path(session.namespace), query=query, body=secret
                )
            )
        except ApiError:
            if not query:  # no half-made notebook: one without its key can't be logged into
                await session.client.delete(NOTEBOOKS, session.namespace, request.name)
            raise
    if output or dry_run == "server":
        print(views.dump(views.as_list(objects), output or "yaml"))
    else:
        print(f"{RESOURCE}/{request.name} created")
        if with_key:
            print(f"secret/{secret['metadata']['name']} created")
    if dry_run == "server" or not wait:
        return 0
    await wait_ready(session, request.name, ready_within)
    say(f"open it: {session.hint('open', request.name)}")
    if with_key:
        say(f"log in: {session.hint('ssh', request.name)}")
    return 0


async def pause(session: Session, name: str) -> int:
    notebook = await session.notebook(name)
    if raw.is_paused(notebook):
        print(f"{RESOURCE}/{name} already paused")
        return 0
    await session.client.patch(
        NOTEBOOKS, session.namespace, name, raw.run_mode_patch(notebook, paused=True)
    )
    print(f"{RESOURCE}/{name} paused")
    return 0


async def set_running(session: Session, notebook: JsonDict) -> bool:
    """Resume `notebook` if paused or marked reclaimed; whether anything was patched."""
    if not raw.is_paused(notebook) and not raw.is_reclaimed(notebook):
        return False
    patch = raw.run_mode_patch(notebook, paused=False)
    name = notebook["metadata"]["name"]
    await session.client.patch(NOTEBOOKS, session.namespace, name, patch)
    return True


async def resume(session: Session, name: str, *, wait: bool, ready_within: float) -> int:
    notebook = await session.notebook(name)
    if await set_running(session, notebook):
        print(f"{RESOURCE}/{name} resumed")
    else:
        print(f"{RESOURCE}/{name} already running")
    if wait:
        await wait_ready(session, name, ready_within)
    return 0


async def delete(session: Session, name: str) -> int:
    notebook = await session.notebook(name)
    await session.client.delete(
        NOTEBOOKS, session.namespace, name, preconditions_uid=notebook["metadata"].get("uid")
    )
    print(f'{RESOURCE} "{name}" deleted')
    return 0


async def wait_ready(session: Session, name: str, ready_within: float) -> JsonDict:
    """Poll until Ready=True, with a progress line on stderr (rewritten in place on a terminal)."""
    started = time.monotonic()
    interactive = sys.stderr.isatty()
    shown = ""
    while True:
        notebook = await session.notebook(name)
        ready = raw.condition(notebook, "Ready")
        elapsed = time.monotonic() - started
        if ready.get("status") == "True" and not raw.is_paused(notebook):
            say(("\r\x1b[K" if interactive else "") + f"notebook {name} is Ready ({elapsed:.1f}s)")
            return notebook
        phase = (notebook.get("status") or {}).get("phase") or "Pending"
        reason = ": ".join(p for p in (ready.get("reason"), ready.get("message")) if p)
        line = f"waiting for notebook {name}: {phase}" + (f", {reason}" if reason else "")
        if interactive:
            print(f"\r\x1b[K{line[:200]} ({elapsed:.0f}s)", end="", file=sys.stderr, flush=True)
        elif line != shown:
            say(line)
        shown = line
        if elapsed > ready_within:
            if interactive:
                say("")
            raise PluginError(
                f"notebook {name} not Ready after {ready_within:.0f}s ({reason or phase}); "
                f"see {session.hint('describe', name)}"
            )
        await asyncio.sleep(POLL_INTERVAL)


# --- open, logs ------------------------------------------------------------------------------


async def open_notebook(
    session: Session,
    name: str,
    *,
    resume_paused: bool,
    browser: bool,
    local_port: int,
    ready_within: float,
) -> int:
    notebook = await session.notebook(name)
    if raw.is_paused(notebook):
        if not resume_paused:
            raise PluginError(
                f"notebook {name} is paused: run `kubectl notebook open {name} --resume` "
                f"or `{session.hint('resume', name)}`"
            )
        await set_running(session, notebook)  # stdout is for the URL only
        say(f"resuming notebook {name}")
    notebook = await wait_ready(session, name, ready_within)
    path = (notebook.get("status") or {}).get("url") or ""
    if path.startswith("http"):  # an external URL base is configured: serve the path locally
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    service = f"svc/{http_service_name(name)}"
    async with port_forward(
        session.target, session.namespace, service, HTTP_SERVICE_PORT, local_port
    ) as forward:
        stopped = asyncio.Event()  # before the URL is out: whoever reads it may stop us
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        url = f"http://127.0.0.1:{forward.local_port}{path}"
        print(url, flush=True)
        if browser and not (has_graphical_browser() and webbrowser.open(url)):
            say("no browser here: open the URL above")
        say("forwarding; press Ctrl-C to stop")
        ended = asyncio.ensure_future(forward.process.wait())
        stopping = asyncio.ensure_future(stopped.wait())
        await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (ended, stopping):
            task.cancel()
        if not stopped.is_set():
            raise PluginError(forward.failure())
    return 0


def has_graphical_browser() -> bool:
    """Whether a browser can open beside the terminal; without a display, Python's webbrowser
    would start a text browser (lynx, w3m) inside the user's terminal."""
    if os.environ.get("BROWSER") or sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def logs(
    session: Session, name: str, *, follow: bool, tail: int | None, previous: bool
) -> int:
    notebook = await session.notebook(name)
    if raw.is_paused(notebook):
        raise PluginError(f"notebook {name} is paused: it has no pod, so no logs")
    container = raw.main_container(notebook).get("name") or ""
    argv = [
        kubectl_binary(),
        *session.target.kubectl_flags(),
        "-n",
        session.namespace,
        "logs",
        f"pod/{pod_name(name)}",
        f"--container={container}",
        *(["--follow"] if follow else []),
        *([f"--tail={tail}"] if tail is not None else []),
        *(["--previous"] if previous else []),
    ]
    process = await asyncio.create_subprocess_exec(*argv)
    return await process.wait()


# --- ssh ---------------------------------------------------------------------------------------


async def host_key(session: Session, name: str) -> str:
    """The notebook's host public key from its host-key Secret (the pin)."""
    notebook = await session.notebook(name)
    if not views.Summary.of(notebook).ssh:
        raise PluginError(
            f"notebook {name} has SSH disabled: set spec.ssh.enabled and spec.ssh.authorized_keys"
            " (or create it with --ssh-key)"
        )
    secret_name = host_key_secret_name(name)
    secret = await session.client.get(SECRETS, session.namespace, secret_name)
    if secret is None:
        raise PluginError(
            f"host-key Secret {secret_name} not found in namespace {session.namespace}: the "
            "controller creates it for a notebook with SSH enabled; is the controller running?"
        )
    key = sshaccess.host_public_key(secret)
    if key is None:
        raise PluginError(f"host-key Secret {secret_name} holds no public key")
    if raw.is_paused(notebook):
        raise PluginError(f"notebook {name} is paused: `{session.hint('resume', name)}` first")
    return key


def ssh_binary() -> str:
    found = shutil.which("ssh")
    if not found:
        raise PluginError("ssh not found on PATH: install the OpenSSH client")
    return found


async def ssh(
    session: Session, name: str, identity: str | None, flags: list[str], remote: list[str]
) -> int:
    key = await host_key(session, name)
    alias = sshaccess.host_alias(name, session.namespace, session.target.context)
    proxy = sshaccess.proxy_command(
        name, session.target.plugin_flags(session.namespace), None, via_kubectl=False
    )
    with tempfile.TemporaryDirectory(prefix="kubectl-notebook-") as directory:
        known_hosts = Path(directory) / "known_hosts"
        sshaccess.write_known_hosts(known_hosts, alias, key)
        options = sshaccess.ssh_options(alias, known_hosts, proxy, identity)
        argv = sshaccess.ssh_argv(options, alias, remote, flags)
        process = await asyncio.create_subprocess_exec(ssh_binary(), *argv[1:])
        return await process.wait()


async def ssh_config(
    session: Session, name: str, identity: str | None, known_hosts: str | None
) -> int:
    key = await host_key(session, name)
    alias = sshaccess.host_alias(name, session.namespace, session.target.context)
    path = Path(known_hosts) if known_hosts else sshaccess.default_known_hosts(alias)
    sshaccess.write_known_hosts(path, alias, key)
    flags = session.target.plugin_flags(session.namespace)
    if session.target.kubeconfig is None and (env := os.environ.get("KUBECONFIG")):
        # an IDE may start ssh without the shell's KUBECONFIG
        flags.append(f"--kubeconfig={env}")
    proxy = sshaccess.proxy_command(name, flags, path, via_kubectl=True)
    options = sshaccess.ssh_options(alias, path, proxy, identity)
    print(sshaccess.config_block(alias, options))
    return 0


async def ssh_proxy(session: Session, name: str, known_hosts: str | None) -> int:
    """ssh's ProxyCommand: refresh the pin from the Secret, then relay to the pod's sshd."""
    key = await host_key(session, name)
    if known_hosts:
        alias = sshaccess.host_alias(name, session.namespace, session.target.context)
        sshaccess.write_known_hosts(Path(known_hosts), alias, key)
    resource = f"pod/{pod_name(name)}"
    async with port_forward(session.target, session.namespace, resource, SSH_PORT) as forward:
        with contextlib.suppress(ConnectionError):
            await sshaccess.relay(forward.local_port)
    return 0

"""`kubectl notebook ...`: arguments, dispatch, and kubectl's conventions for the outcome:
exit 0 ok, 1 error (one line `error: ...` on stderr), 2 usage."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import aiohttp

from notebook_controller.kubectl import commands, completion
from notebook_controller.kubectl.connection import PluginError, Target
from notebook_controller.kubectl.manifests import NotebookRequest
from notebook_controller.runtime.kube import ApiError

DESCRIPTION = """Notebooks (tensorstack.dev/v1beta1) from the terminal: list, create, open in a
browser, ssh, pause, resume, logs. Connection flags as kubectl's: -n, --context, --kubeconfig,
--as."""
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """`300`, `30s`, `5m`, `1h` -> seconds."""
    found = _DURATION.match(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90s, 5m)")
    return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def path(text: str) -> str:
    """A file argument with `~` expanded (ssh config files need absolute paths)."""
    return os.path.abspath(os.path.expanduser(text))


def _connection_flags() -> argparse.ArgumentParser:
    # SUPPRESS: given before or after the command, neither parser overwrites the other's value
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="namespace")
    flags.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context")
    flags.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file")
    flags.add_argument("--as", dest="impersonate", default=argparse.SUPPRESS, help="user")
    return flags


def parser() -> argparse.ArgumentParser:
    connection = _connection_flags()
    top = argparse.ArgumentParser(
        prog="kubectl notebook", description=DESCRIPTION, parents=[connection]
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str | None, **kwargs: Any) -> argparse.ArgumentParser:
        if help_ is None:  # not listed in the help
            return sub.add_parser(name, parents=[connection], **kwargs)
        return sub.add_parser(name, parents=[connection], help=help_, description=help_, **kwargs)

    listing = command("list", "list notebooks: phase, Ready, Idle, GPU, age", aliases=["ls"])
    listing.add_argument("-A", "--all-namespaces", action="store_true")
    listing.add_argument("-l", "--selector", help="label selector")
    listing.add_argument("-o", "--output", choices=["json", "yaml", "wide"])

    describe = command("describe", "conditions, events, URL and SSH command of a notebook")
    describe.add_argument("name")
    describe.add_argument("-o", "--output", choices=["json", "yaml"])

    create = command("create", "create a notebook (and its SSH key Secret) and wait for Ready")
    create.add_argument("name")
    create.add_argument("--image", required=True, help="the notebook image")
    create.add_argument("--cpu", help="CPU request and limit, e.g. 1 or 500m")
    create.add_argument("--memory", help="memory request and limit, e.g. 2Gi")
    create.add_argument("--gpu-percent", type=int, help="percent of one GPU's memory (1-100)")
    create.add_argument("--queue", help="T9k Scheduler queue")
    create.add_argument(
        "--ssh-key", type=path, metavar="PUBLIC_KEY_FILE", help="enable SSH with this key"
    )
    create.add_argument("--rstudio", action="store_true", help="an RStudio notebook")
    create.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    create.add_argument("-o", "--output", choices=["json", "yaml"])
    create.add_argument("--no-wait", dest="wait", action="store_false")
    create.add_argument("--timeout", type=duration, default=300.0, help="for Ready (5m)")

    open_ = command("open", "port-forward to the notebook and open (or print) its URL")
    open_.add_argument("name")
    open_.add_argument("--resume", action="store_true", help="resume it first if paused")
    open_.add_argument("--no-browser", dest="browser", action="store_false")
    open_.add_argument("--port", type=int, default=0, help="local port (default: a free one)")
    open_.add_argument("--timeout", type=duration, default=300.0)

    ssh = command("ssh", "ssh into the notebook (host key pinned from its Secret)")
    ssh.add_argument("name")
    ssh.add_argument("-i", "--identity", type=path, help="private key file")
    ssh.add_argument(
        "-t", dest="tty", action="count", default=0, help="ask for a terminal (-tt: force)"
    )
    ssh.add_argument(
        "-L",
        dest="forwards",
        action="append",
        default=[],
        metavar="[LOCAL:]PORT:HOST:HOSTPORT",
        help="forward a local port to HOST:HOSTPORT as seen from the notebook, as ssh -L",
    )
    ssh_config = command("ssh-config", "print a ~/.ssh/config block for IDEs (Remote-SSH)")
    ssh_config.add_argument("name")
    ssh_config.add_argument("-i", "--identity", type=path, help="private key file")
    ssh_config.add_argument("--known-hosts", type=path, help="where to keep the pinned host key")
    proxy = command("ssh-proxy", None)  # ssh's ProxyCommand
    proxy.add_argument("name")
    proxy.add_argument("--known-hosts", type=path)

    pause = command("pause", "pause: no pod; Services, Secrets, volumes kept")
    pause.add_argument("name")
    resume = command("resume", "resume a paused (or reclaimed) notebook and wait for Ready")
    resume.add_argument("name")
    resume.add_argument("--no-wait", dest="wait", action="store_false")
    resume.add_argument("--timeout", type=duration, default=300.0)

    logs = command("logs", "the notebook container's log")
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int)
    logs.add_argument("-p", "--previous", action="store_true")

    delete = command("delete", "delete a notebook (its key Secret, Services and pod go too)")
    delete.add_argument("name")

    complete = command("completion", "shell completion script")
    complete.add_argument("shell", choices=["bash", "zsh"])
    return top


def create_request(args: argparse.Namespace, namespace: str) -> NotebookRequest:
    return NotebookRequest(
        name=args.name,
        namespace=namespace,
        image=args.image,
        cpu=args.cpu,
        memory=args.memory,
        gpu_percent=args.gpu_percent,
        queue=args.queue,
        public_key=commands.read_public_key(args.ssh_key) if args.ssh_key else None,
        rstudio=args.rstudio,
    )


async def dispatch(args: argparse.Namespace, remote: list[str]) -> int:
    target = Target(
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        namespace=getattr(args, "namespace", None),
        impersonate=getattr(args, "impersonate", None),
    )
    if args.command == "completion":
        print(completion.script(args.shell))
        return 0
    if args.command == "create" and args.dry_run == "client":  # no cluster needed
        request = create_request(args, target.resolved_namespace())
        print(commands.client_dry_run(request, args.output))
        return 0
    client = await target.client()
    async with client:
        session = commands.Session(target, target.resolved_namespace(), client)
        return await run(session, args, remote)


async def run(session: commands.Session, args: argparse.Namespace, remote: list[str]) -> int:
    match args.command:
        case "list" | "ls":
            return await commands.list_notebooks(
                session,
                all_namespaces=args.all_namespaces,
                selector=args.selector,
                output=args.output,
            )
        case "describe":
            return await commands.describe(session, args.name, args.output)
        case "create":
            return await commands.create(
                session,
                create_request(args, session.namespace),
                dry_run=args.dry_run,
                output=args.output,
                wait=args.wait,
                ready_within=args.timeout,
            )
        case "open":
            return await commands.open_notebook(
                session,
                args.name,
                resume_paused=args.resume,
                browser=args.browser,
                local_port=args.port,
                ready_within=args.timeout,
            )
        case "ssh":
            flags = ["-t"] * args.tty + [f"-L{forward}" for forward in args.forwards]
            return await commands.ssh(session, args.name, args.identity, flags, remote)
        case "ssh-config":
            return await commands.ssh_config(session, args.name, args.identity, args.known_hosts)
        case "ssh-proxy":
            return await commands.ssh_proxy(session, args.name, args.known_hosts)
        case "pause":
            return await commands.pause(session, args.name)
        case "resume":
            return await commands.resume(
                session, args.name, wait=args.wait, ready_within=args.timeout
            )
        case "logs":
            return await commands.logs(
                session, args.name, follow=args.follow, tail=args.tail, previous=args.previous
            )
        case "delete":
            return await commands.delete(session, args.name)
    raise PluginError(f"unknown command {args.command}")


def api_error_line(error: ApiError) -> str:
    message = " ".join(error.message.split()) or f"{error.status} {error.reason}"
    if error.status == 404 and "could not find the requested resource" in message:
        message += " (is the Notebook CRD installed? kubectl get crd notebooks.tensorstack.dev)"
    return message


def main(argv: Sequence[str] | None = None) -> NoReturn:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["__complete"]:  # what the completion scripts call
        sys.exit(completion.complete_command(given[1:]))
    remote: list[str] = []
    if "--" in given:  # `ssh NAME -- command...`: the rest is the remote command
        split = given.index("--")
        given, remote = given[:split], given[split + 1 :]
    args = parser().parse_args(given)  # usage errors exit 2
    try:
        code = asyncio.run(dispatch(args, remote))
    except PluginError as error:
        code = _fail(str(error))
    except ApiError as error:
        code = _fail(api_error_line(error))
    except BrokenPipeError:  # `kubectl notebook list | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    except (aiohttp.ClientError, TimeoutError) as error:
        code = _fail(f"cannot reach the API server: {error or type(error).__name__}")
    except OSError as error:
        code = _fail(str(error))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def _fail(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def complete_main() -> NoReturn:
    """`kubectl_complete-notebook`: kubectl's plugin completion (cobra's __complete protocol)."""
    sys.exit(completion.complete_command(sys.argv[1:]))

"""The console and the notebook gateway: one aiohttp server, one process.

    /                        the notebooks the user may see, per namespace (live: /rows every 2 s)
    /rows                    that list as an HTML fragment
    /create                  the Create form (GET) and its submission (POST)
    /notebooks/<ns>/<nb>/<action>   POST pause | resume | delete
    /t9k/notebooks/projects/<ns>/name/<nb>/…   the gateway to the notebook's Jupyter
    /healthz                 liveness

Every request is identified first (`identity.identify`); every state-changing console request
must carry the CSRF token (double submit: the `console_csrf` cookie and the page's token in the
`X-CSRF-Token` header or the `csrf` form field) and, when the browser sends one, an Origin equal
to the console's own. Jupyter's requests through the gateway are left to Jupyter's own XSRF check.
Every action goes to the API server as the user (impersonation), so the API server's answer —
a 403 included — is what the user reads.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import secrets
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from notebook_controller.builders.raw import run_mode_patch
from notebook_controller.console import pages
from notebook_controller.console.forms import CreateForm
from notebook_controller.console.gateway import (
    CONSOLE_COOKIE,
    ROUTE,
    Gateway,
    UpstreamMode,
    _Ttl,
)
from notebook_controller.console.identity import IdentityMode, IdentitySettings, identify
from notebook_controller.console.kubeapi import KubeApi, User
from notebook_controller.console.views import view
from notebook_controller.logs import configure_logging
from notebook_controller.runtime.kube import ApiError, in_cluster

log = structlog.get_logger(__name__)

CSRF_COOKIE: Final = CONSOLE_COOKIE
CSRF_HEADER: Final = "X-CSRF-Token"
RIGHTS_TTL: Final = 10.0
ACTIONS: Final = ("pause", "resume", "delete")
NO_CRD: Final = (
    "this cluster does not serve Notebooks (tensorstack.dev/v1beta1): install the CRD with "
    "kubectl apply --server-side -f deploy/crd/"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ConsoleSettings:
    kubeconfig: str | None = None
    address: str = "127.0.0.1:8090"
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    namespaces: tuple[str, ...] = ()
    """Namespaces to show; empty: those the user may list (as the user)."""
    upstream: UpstreamMode = "cluster-ip"
    ssh_host: str = ""
    images: tuple[str, ...] = ()
    """Images offered in the Create form (suggestions; any image may be typed)."""
    log_format: Literal["json", "console"] = "console"
    log_level: str = "info"


class Console:
    def __init__(self, settings: ConsoleSettings, api: KubeApi) -> None:
        self.settings = settings
        self.api = api
        self.gateway = Gateway(api, settings.identity, settings.upstream)
        self._rights: _Ttl[pages.Rights] = _Ttl(RIGHTS_TTL)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._identity, self._csrf])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_route("*", ROUTE, self.gateway.handle)
        app.router.add_get("/", self.index)
        app.router.add_get("/rows", self.rows)
        app.router.add_get("/create", self.create_form)
        app.router.add_post("/create", self.create)
        app.router.add_post("/notebooks/{namespace}/{name}/{action}", self.action)
        app.on_startup.append(lambda _: self.gateway.start())
        app.on_cleanup.append(lambda _: self.gateway.close())
        return app

    # --- middlewares ----------------------------------------------------------------------

    @web.middleware
    async def _identity(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        user = identify(self.settings.identity, request.headers)
        if user is None:
            log.info("unidentified request refused", path=request.path, remote=request.remote)
            raise web.HTTPUnauthorized(
                text="sign in through the platform's proxy: this console only trusts the user "
                "it names\n"
            )
        request["user"] = user
        return await handler(request)

    @web.middleware
    async def _csrf(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        gateway = request.path.startswith("/t9k/notebooks/")
        if request.method in ("GET", "HEAD", "OPTIONS") or gateway:
            response = await handler(request)
            issued = request.get("csrf")
            if issued and CSRF_COOKIE not in request.cookies and not response.prepared:
                response.set_cookie(CSRF_COOKIE, issued, httponly=True, samesite="Strict", path="/")
            return response
        cookie = request.cookies.get(CSRF_COOKIE, "")
        presented = request.headers.get(CSRF_HEADER, "")
        if not presented and request.content_type == "application/x-www-form-urlencoded":
            presented = str((await request.post()).get("csrf", ""))
        origin = request.headers.get("Origin")
        if origin and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text=f"cross-site request from {origin} refused\n")
        if not cookie or not hmac.compare_digest(cookie.encode(), presented.encode()):
            raise web.HTTPForbidden(
                text="missing or wrong CSRF token: reload the console page and try again\n"
            )
        return await handler(request)

    # --- pages ------------------------------------------------------------------------------

    @staticmethod
    def _csrf_token(request: web.Request) -> str:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        request["csrf"] = token
        return token

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def index(self, request: web.Request) -> web.Response:
        token = self._csrf_token(request)
        fragment = await self._rows(request["user"])
        html = pages.list_page(request["user"].name, token, fragment)
        return web.Response(text=html, content_type="text/html", headers=_NO_STORE)

    async def rows(self, request: web.Request) -> web.Response:
        self._csrf_token(request)
        fragment = await self._rows(request["user"])
        return web.Response(text=fragment, content_type="text/html", headers=_NO_STORE)

    async def _namespaces(self, user: User) -> tuple[list[str], list[str]]:
        if self.settings.namespaces:
            return list(self.settings.namespaces), []
        try:
            return await self.api.list_namespaces(user), []
        except ApiError as error:
            return [], [
                f"you may not list namespaces ({error.message}); ask the operator to start the "
                "console with --namespaces"
            ]

    async def _rows(self, user: User) -> str:
        problems: list[str] = []
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        everywhere = await self._list_everywhere(user) if not self.settings.namespaces else None
        if everywhere is not None:  # one list for users who may list notebooks cluster-wide
            for item in everywhere:
                by_namespace.setdefault(item["metadata"]["namespace"], []).append(item)
        else:
            namespaces, problems = await self._namespaces(user)

            async def one(namespace: str) -> None:
                try:
                    by_namespace[namespace] = await self.api.list_notebooks(user, namespace)
                except ApiError as error:
                    if error.status != 403:  # where RBAC shows nothing, neither do we
                        problems.append(
                            NO_CRD if error.status == 404 else f"{namespace}: {error.message}"
                        )

            await asyncio.gather(*(one(ns) for ns in namespaces))

        async def section(namespace: str) -> pages.NamespaceRows:
            notebooks = sorted(
                (view(item, self.settings.ssh_host) for item in by_namespace[namespace]),
                key=lambda v: v.name,
            )
            return pages.NamespaceRows(namespace, notebooks, await self.rights(user, namespace))

        sections = await asyncio.gather(*(section(ns) for ns in sorted(by_namespace)))
        return pages.rows(sections, sorted(set(problems)))

    async def _list_everywhere(self, user: User) -> list[dict[str, Any]] | None:
        try:
            return await self.api.list_notebooks(user, None)
        except ApiError:
            return None

    async def rights(self, user: User, namespace: str) -> pages.Rights:
        key = (user, namespace)
        found = self._rights.get(key)
        if found is None:
            patch, delete, create = await asyncio.gather(
                *(self.api.may(user, verb, namespace) for verb in ("patch", "delete", "create"))
            )
            found = pages.Rights(patch=patch, delete=delete, create=create)
            self._rights.put(key, found)
        return found

    # --- actions ----------------------------------------------------------------------------

    async def action(self, request: web.Request) -> web.Response:
        user: User = request["user"]
        namespace = request.match_info["namespace"]
        name = request.match_info["name"]
        action = request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound(text=f"no action {action}: use one of {', '.join(ACTIONS)}\n")
        try:
            if action == "delete":
                await self.api.delete_notebook(user, namespace, name)
                done = f"deleted notebook {namespace}/{name}"
            else:
                current = await self.api.get_notebook(user, namespace, name)
                patch = run_mode_patch(current, paused=action == "pause")
                await self.api.patch_notebook(user, namespace, name, patch)
                done = f"{'paused' if action == 'pause' else 'resumed'} notebook {namespace}/{name}"
        except ApiError as error:
            log.info(
                "action refused",
                user=user.name,
                action=action,
                notebook=f"{namespace}/{name}",
                status=error.status,
            )
            return web.Response(
                status=error.status if 400 <= error.status < 600 else 502,
                text=f"{action} {namespace}/{name} refused by the API server: {error.message}",
            )
        log.info("action", user=user.name, action=action, notebook=f"{namespace}/{name}")
        return web.Response(text=done)

    async def create_form(self, request: web.Request) -> web.Response:
        token = self._csrf_token(request)
        namespaces, _ = await self._namespaces(request["user"])
        form = CreateForm.empty(request.query.get("namespace", ""))
        return self._create_page(request, token, form, namespaces)

    def _create_page(
        self,
        request: web.Request,
        token: str,
        form: CreateForm,
        namespaces: Sequence[str],
        status: int = 200,
    ) -> web.Response:
        html = pages.create_page(
            request["user"].name, token, form, namespaces, self.settings.images
        )
        return web.Response(text=html, status=status, content_type="text/html")

    async def create(self, request: web.Request) -> web.Response:
        user: User = request["user"]
        token = self._csrf_token(request)
        posted = await request.post()
        form = CreateForm.from_post({k: str(v) for k, v in posted.items()})
        namespaces, _ = await self._namespaces(user)
        if not form.check_local():
            return self._create_page(request, token, form, namespaces, status=422)
        namespace = form.values["namespace"]
        body = form.notebook()
        try:
            # dry run first: every refusal is known before anything exists
            await self.api.create_notebook(user, namespace, body, dry_run=True)
            await self.api.create_notebook(user, namespace, body)
        except ApiError as error:
            form.add_refusal(error.status, error.message, error.body)
            log.info("create refused", user=user.name, namespace=namespace, status=error.status)
            return self._create_page(
                request,
                token,
                form,
                namespaces,
                status=error.status if error.status >= 400 else 502,
            )
        log.info("created", user=user.name, notebook=f"{namespace}/{form.values['name']}")
        raise web.HTTPSeeOther(location="./")


_NO_STORE: Final = {"Cache-Control": "no-store"}


# --- command line ----------------------------------------------------------------------------


def build_parser(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--kubeconfig", default=env("KUBECONFIG") or None)
    parser.add_argument(
        "--address", default=env("CONSOLE_ADDRESS", "127.0.0.1:8090"), help="host:port to serve"
    )
    parser.add_argument(
        "--identity",
        choices=("kubeconfig", "header"),
        default=env("CONSOLE_IDENTITY", "kubeconfig"),
        help="kubeconfig: the kubeconfig's user acts (local); header: the user a trusted proxy "
        "names, impersonated",
    )
    parser.add_argument("--user-header", default="X-Forwarded-User")
    parser.add_argument("--groups-header", default="X-Forwarded-Groups")
    parser.add_argument("--proxy-secret-header", default="X-Console-Proxy-Secret")
    parser.add_argument(
        "--proxy-secret-file",
        default=env("CONSOLE_PROXY_SECRET_FILE"),
        help="file holding the secret the trusted proxy sends (header mode)",
    )
    parser.add_argument(
        "--namespaces",
        default=env("CONSOLE_NAMESPACES", ""),
        help="comma-separated namespaces to show (default: all the user may list)",
    )
    parser.add_argument(
        "--upstream",
        choices=("auto", "service-dns", "cluster-ip"),
        default="auto",
        help="how the gateway reaches a notebook: its Service's DNS name (in a pod) or ClusterIP",
    )
    parser.add_argument(
        "--ssh-host",
        default=env("CONSOLE_SSH_HOST", ""),
        help="the node address shown in SSH command lines",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        dest="images",
        help="an image offered in the Create form (repeatable)",
    )
    parser.add_argument("--log-format", choices=("json", "console"), default="console")
    parser.add_argument("--log-level", default="info")


def settings_from_args(args: argparse.Namespace) -> ConsoleSettings:
    mode: IdentityMode = args.identity
    secret = ""
    if mode == "header":
        if not args.proxy_secret_file:
            raise SystemExit(
                "--identity=header needs --proxy-secret-file: the secret the trusted proxy sends"
            )
        secret = Path(args.proxy_secret_file).read_text().strip()
        if len(secret) < 16:
            raise SystemExit(
                f"{args.proxy_secret_file}: the proxy secret is shorter than 16 "
                "characters; write a long random one"
            )
    upstream: UpstreamMode
    if args.upstream == "auto":
        upstream = "service-dns" if in_cluster() and not args.kubeconfig else "cluster-ip"
    else:
        upstream = args.upstream
    return ConsoleSettings(
        kubeconfig=args.kubeconfig,
        address=args.address,
        identity=IdentitySettings(
            mode=mode,
            user_header=args.user_header,
            groups_header=args.groups_header,
            secret_header=args.proxy_secret_header,
            proxy_secret=secret,
        ),
        namespaces=tuple(n.strip() for n in args.namespaces.split(",") if n.strip()),
        upstream=upstream,
        ssh_host=args.ssh_host,
        images=tuple(args.images),
        log_format=args.log_format,
        log_level=args.log_level,
    )


async def serve(settings: ConsoleSettings) -> None:
    api = await KubeApi.connect(settings.kubeconfig)
    console = Console(settings, api)
    runner = web.AppRunner(console.app(), access_log=None)
    await runner.setup()
    host, _, port = settings.address.rpartition(":")
    site = web.TCPSite(runner, host or "0.0.0.0", int(port))
    await site.start()
    bound = runner.addresses[0] if runner.addresses else settings.address
    url = f"http://{bound[0]}:{bound[1]}/" if isinstance(bound, tuple) else str(bound)
    log.info(
        "console listening", url=url, identity=settings.identity.mode, upstream=settings.upstream
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("console stopping")
        await runner.cleanup()
        await api.close()


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(serve(settings))
    return 0

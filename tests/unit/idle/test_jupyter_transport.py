"""How the idle reclaimer reaches Jupyter: the mode chosen at startup, the URLs each mode builds,
the API server proxy transport over a stand-in kube client, and failure messages in words."""

from __future__ import annotations

import errno
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from notebook_controller.idle.jupyter import (
    IN_CLUSTER_URL_TEMPLATE,
    ApiServerProxy,
    DirectTransport,
    JupyterProbe,
    ProbeFailed,
    ProbeMode,
    api_server_status,
    choose_route,
    connection_words,
    proxy_path,
)
from notebook_controller.runtime.kube import RawResponse, in_cluster
from notebook_controller.settings import Settings

API_SERVER = "https://10.0.0.1:6443"
NS = "team-a"
NB = "nb"
SERVICE = f"managed-notebook-http-{NB}"
PREFIX = f"/t9k/notebooks/projects/{NS}/name/{NB}/"
PROXY_BASE = f"{API_SERVER}/api/v1/namespaces/{NS}/services/{SERVICE}:80/proxy{PREFIX}"
STARTED = "2025-01-06T09:00:00.000000Z"


# --- mode selection -----------------------------------------------------------------------


@pytest.mark.parametrize("where", [True, False])
def test_a_url_template_means_direct_probes_anywhere(where: bool) -> None:
    route = choose_route(url_template="http://127.0.0.1:8888{prefix}", in_cluster=where)
    assert route.mode is ProbeMode.DIRECT
    assert route.url_template == "http://127.0.0.1:8888{prefix}"
    assert route.why == "--jupyter-url-template"


def test_in_a_pod_probes_go_to_the_service_by_its_dns_name() -> None:
    route = choose_route(url_template=None, in_cluster=True)
    assert (route.mode, route.url_template) == (ProbeMode.DIRECT, IN_CLUSTER_URL_TEMPLATE)


def test_outside_the_cluster_probes_go_through_the_api_server() -> None:
    route = choose_route(url_template=None, in_cluster=False)
    assert (route.mode, route.url_template) == (ProbeMode.APISERVER_PROXY, None)
    assert "not in a pod" in route.why
    assert route.describe(API_SERVER + "/") == (
        f"{API_SERVER}/api/v1/namespaces/{{namespace}}/services/{{service}}:80/proxy{{prefix}}"
    )


def test_an_explicit_mode_wins_over_where_the_process_runs() -> None:
    direct = choose_route(url_template=None, in_cluster=False, mode="direct")
    assert (direct.mode, direct.url_template) == (ProbeMode.DIRECT, IN_CLUSTER_URL_TEMPLATE)
    assert direct.describe(API_SERVER) == IN_CLUSTER_URL_TEMPLATE
    proxied = choose_route(url_template=None, in_cluster=True, mode="apiserver-proxy")
    assert proxied.mode is ProbeMode.APISERVER_PROXY
    with pytest.raises(ValueError, match="direct probes only"):
        choose_route(url_template="http://x{prefix}", in_cluster=False, mode="apiserver-proxy")


def token_file(tmp_path: Path) -> Path:
    token = tmp_path / "token"
    token.write_text("a-token")
    return token


SERVICE_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_in_cluster_needs_the_service_env_and_the_token_file(tmp_path: Path) -> None:
    token = token_file(tmp_path)
    assert in_cluster(SERVICE_ENV, token)
    assert not in_cluster(SERVICE_ENV, tmp_path / "missing")
    assert not in_cluster(SERVICE_ENV, tmp_path)  # a directory is not a token
    assert not in_cluster({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, token)  # as client-go
    assert not in_cluster({**SERVICE_ENV, "KUBERNETES_SERVICE_HOST": ""}, token)
    assert not in_cluster({}, token)


def test_settings_carry_the_mode_and_check_the_template() -> None:
    assert Settings.load([], {}).jupyter_probe_mode == "auto"
    flags = ["--jupyter-probe-mode", "apiserver-proxy"]
    assert Settings.load(flags, {}).jupyter_probe_mode == "apiserver-proxy"
    env = {"NBC_JUPYTER_PROBE_MODE": "direct"}
    assert Settings.load([], env).jupyter_probe_mode == "direct"
    with pytest.raises(ValidationError, match="applies to direct probes"):
        Settings.load(["--jupyter-url-template=http://x{prefix}", *flags], {})
    with pytest.raises(ValidationError, match="only the placeholders"):
        Settings.load(["--jupyter-url-template=http://{svc}.{namespace}{prefix}"], {})
    with pytest.raises(ValidationError):
        Settings.load(["--jupyter-probe-mode=sideways"], {})


# --- URLs ---------------------------------------------------------------------------------


def test_the_proxy_path_puts_the_base_url_right_after_proxy() -> None:
    assert proxy_path(namespace=NS, service=SERVICE, prefix=PREFIX) == (
        f"/api/v1/namespaces/{NS}/services/{SERVICE}:80/proxy{PREFIX}"
    )
    assert proxy_path(namespace=NS, service=SERVICE, prefix="/") == (
        f"/api/v1/namespaces/{NS}/services/{SERVICE}:80/proxy/"
    )
    assert proxy_path(namespace=NS, service=SERVICE, prefix="a/b", port="http") == (
        f"/api/v1/namespaces/{NS}/services/{SERVICE}:http/proxy/a/b/"
    )


def test_each_transport_builds_its_base_url() -> None:
    proxy = ApiServerProxy(StandInClient([]), API_SERVER + "/")
    assert proxy.base_url(namespace=NS, service=SERVICE, prefix=PREFIX) == PROXY_BASE
    status_url = proxy.base_url(namespace=NS, service=SERVICE, prefix=PREFIX) + "api/status"
    assert status_url == (
        f"{API_SERVER}/api/v1/namespaces/team-a/services/managed-notebook-http-nb:80/proxy"
        "/t9k/notebooks/projects/team-a/name/nb/api/status"
    )
    direct = DirectTransport(session=None, url_template=IN_CLUSTER_URL_TEMPLATE)  # type: ignore[arg-type]
    assert direct.base_url(namespace=NS, service=SERVICE, prefix=PREFIX) == (
        f"http://{SERVICE}.{NS}.svc:80{PREFIX}"
    )


# --- the proxy transport, over a stand-in for KubeClient.raw_get ----------------------------


def status_object(code: int, reason: str, message: str) -> RawResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return RawResponse(code, reason, json.dumps(body).encode(), "application/json")


def jupyter(body: Any, status: int = 200) -> RawResponse:
    return RawResponse(status, "OK", json.dumps(body).encode(), "application/json")


JUPYTER_ANSWERS = {
    "api/status": jupyter({"started": STARTED, "last_activity": "2025-01-06T09:30:00Z"}),
    "api/kernels": jupyter(
        [{"id": "k", "last_activity": "2025-01-06T09:10:00Z", "execution_state": "idle"}]
    ),
    "api/terminals": jupyter([{"name": "1", "last_activity": "2025-01-06T09:45:00Z"}]),
}


class StandInClient:
    """Answers raw_get from a table keyed by the path's end (or raises what the table says)."""

    def __init__(self, answers: Any) -> None:
        self.answers = dict(answers)
        self.calls: list[tuple[str, list[tuple[str, str]], float | None]] = []

    async def raw_get(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        call_timeout: float | None = None,
    ) -> RawResponse:
        self.calls.append((path, list(query), call_timeout))
        for end, answer in self.answers.items():
            if path.endswith(end):
                if isinstance(answer, BaseException):
                    raise answer
                assert isinstance(answer, RawResponse)
                return answer
        return RawResponse(404, "Not Found", b'{"message": "Not Found", "reason": null}', "")


def proxy_probe(client: StandInClient) -> JupyterProbe:
    return JupyterProbe(ApiServerProxy(client, API_SERVER), timeout=3)


async def test_a_probe_through_the_proxy_asks_for_the_three_apis_untracked() -> None:
    client = StandInClient(JUPYTER_ANSWERS)
    seen = await proxy_probe(client).probe(namespace=NS, service=SERVICE, prefix=PREFIX)
    assert seen.reachable and (seen.kernels, seen.terminals) == (1, 1)
    assert seen.last_activity is not None and seen.last_activity.isoformat().startswith(
        "2025-01-06T09:45"
    )
    base = PROXY_BASE.removeprefix(API_SERVER)
    assert sorted(client.calls) == sorted(
        (base + api, [("no_track_activity", "1")], 3) for api in JUPYTER_ANSWERS
    )


async def test_jupyters_own_404_on_terminals_is_terminals_disabled() -> None:
    answers = {**JUPYTER_ANSWERS, "api/terminals": jupyter({"message": "Not Found"}, 404)}
    seen = await proxy_probe(StandInClient(answers)).probe(
        namespace=NS, service=SERVICE, prefix=PREFIX
    )
    assert seen.reachable and seen.terminals == 0


@pytest.mark.parametrize(
    ("answer", "failure", "words"),
    [
        (
            status_object(
                503,
                "ServiceUnavailable",
                "error trying to reach service: dial tcp 10.244.64.9:8888: connect: "
                "connection refused",
            ),
            "connection",
            "Jupyter did not answer through the API server's proxy at "
            f"{PROXY_BASE}api/status: error trying to reach service: dial tcp 10.244.64.9:8888:"
            " connect: connection refused; check the pod is Running and Jupyter listens on 8888"
            " under NB_PREFIX",
        ),
        (
            status_object(503, "ServiceUnavailable", f'no endpoints available for service "{NB}"'),
            "connection",
            f'no endpoints available for service "{NB}"; check the pod is Running',
        ),
        (
            status_object(404, "NotFound", f'services "{SERVICE}" not found'),
            "proxy",
            f"the API server would not proxy to {PROXY_BASE}api/status (404: services"
            f' "{SERVICE}" not found); the notebook\'s HTTP Service is missing',
        ),
        (
            status_object(403, "Forbidden", "services ... is forbidden"),
            "proxy",
            "the controller's credentials need get on services/proxy",
        ),
        (
            RawResponse(404, "Not Found", b"<html>404: Not Found</html>", "text/html"),
            "http-404",
            f"Jupyter answered 404 Not Found at {PROXY_BASE}api/status; is NB_PREFIX Jupyter's"
            " base_url?",
        ),
        (
            RawResponse(200, "OK", b"<html>a login page</html>", "text/html"),
            "bad-response",
            f"the answer at {PROXY_BASE}api/status is not JSON, so not Jupyter's",
        ),
        (TimeoutError(), "timeout", f"at {PROXY_BASE}api/status within 3s"),
        (
            aiohttp.ClientConnectorError(
                SimpleNamespace(host="10.0.0.1", port=6443, ssl=True),  # type: ignore[arg-type]
                ConnectionRefusedError(
                    errno.ECONNREFUSED, "Connect call failed ('10.0.0.1', 6443)"
                ),
            ),
            "connection",
            f"the API server did not answer at {API_SERVER}: connection refused",
        ),
        (
            aiohttp.ServerDisconnectedError(),
            "connection",
            "the server closed the connection without answering",
        ),
    ],
)
async def test_failures_through_the_proxy_read_as_words(
    answer: Any, failure: str, words: str
) -> None:
    seen = await proxy_probe(StandInClient({**JUPYTER_ANSWERS, "api/status": answer})).probe(
        namespace=NS, service=SERVICE, prefix=PREFIX
    )
    assert (seen.reachable, seen.failure) == (False, failure)
    assert words in seen.detail, seen.detail
    assert "Error(" not in seen.detail and "<class" not in seen.detail


def test_only_the_api_servers_own_status_objects_are_proxy_failures() -> None:
    refused = status_object(503, "ServiceUnavailable", "no endpoints available for service x")
    assert api_server_status(refused.status, refused.body) == "no endpoints available for service x"
    assert api_server_status(404, b'{"message": "Not Found", "reason": null}') is None
    assert api_server_status(404, b"<html>not found</html>") is None
    assert api_server_status(200, refused.body) is None


def test_connection_words() -> None:
    key = SimpleNamespace(host="svc.ns.svc", port=80, ssl=False)
    dns = aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))  # type: ignore[arg-type]
    assert connection_words(dns) == "the name svc.ns.svc does not resolve"
    unreachable = OSError(errno.EHOSTUNREACH, "Connect call failed ('10.244.0.1', 8888)")
    assert connection_words(unreachable) == "no route to host"
    assert connection_words(aiohttp.ClientPayloadError("x")) == "the answer was cut off"


async def test_the_reconciler_builds_the_transport_its_route_names() -> None:
    from kubernetes_asyncio.client import ApiClient, Configuration

    from notebook_controller.idle.jupyter import JupyterRoute
    from notebook_controller.reconcilers.idle import IdleReconciler
    from notebook_controller.runtime.kube import KubeClient

    client = KubeClient(ApiClient(Configuration(host=API_SERVER)))
    route = JupyterRoute(ProbeMode.APISERVER_PROXY)
    reconciler = IdleReconciler(client, None, notebooks=None, pods=None, policies=None, route=route)  # type: ignore[arg-type]
    transport = reconciler.probe().transport
    assert isinstance(transport, ApiServerProxy) and transport.client is client
    assert transport.base_url(namespace=NS, service=SERVICE, prefix=PREFIX) == PROXY_BASE
    await client.close()


def test_a_transport_with_a_template_is_a_mistake() -> None:
    with pytest.raises(TypeError):
        JupyterProbe(ApiServerProxy(StandInClient({}), API_SERVER), url_template="http://x")


def test_probe_failed_keeps_its_class() -> None:
    failed = ProbeFailed("proxy", "words")
    assert (failed.failure, failed.detail, str(failed)) == ("proxy", "words", "words")

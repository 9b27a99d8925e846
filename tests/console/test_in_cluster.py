"""The console as deployed (`kubectl apply -k deploy/console/local`: the controller's image with
the console's command, on the real node), in trusted-header mode behind a stand-in for the
platform's proxy (this test, sending the shared secret): a kernel cell runs through the in-cluster
gateway (the Service's DNS name), a user without a Role gets 403, and the console's
ServiceAccount may do nothing but impersonate and review access.

Scoped like tests/deploy/test_in_cluster.py: a generated overlay puts the install in its own
namespace with prefixed names; everything applied is deleted at the end."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.console.console import SECRET_HEADER, grant, run_cell
from tests.e2e.controller import ControllerProcess
from tests.kube import ROOT, Cluster
from tests.product.notebooks import seed_notebook, wait_notebook_ready
from tests.realnode import REAL_NODE, built_image

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]

NB = "notebook-sample"  # the seed's name

CONSOLE_OVERLAY = ROOT / "deploy" / "console" / "local"
SELECTOR = "app.kubernetes.io/name=notebook-console"


@dataclass(frozen=True)
class ConsoleInstall:
    namespace: str
    prefix: str
    secret: str
    url: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.prefix}notebook-console"

    def headers(self, user: str) -> dict[str, str]:
        return {SECRET_HEADER: self.secret, "X-Forwarded-User": user}


@pytest.fixture
def console_install(cluster: Cluster, tmp_path: Path, real_node: str) -> Iterator[ConsoleInstall]:
    built_image("notebook-controller")  # rebuilt only when its inputs changed
    suffix = uuid.uuid4().hex[:6]
    namespace, prefix = f"t-console-{suffix}", f"t-console-{suffix}-"
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "namePrefix": prefix,
        "labels": [{"pairs": {"nbctl-test": "true"}}],
        "resources": [os.path.relpath(CONSOLE_OVERLAY, tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    rendered = cluster.kubectl("kustomize", str(tmp_path)).stdout
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered)
    secret = secrets.token_urlsafe(32)
    try:
        cluster.kubectl("create", "namespace", namespace)
        cluster.kubectl(
            "-n", namespace, "create", "secret", "generic", "notebook-console-proxy",
            "--from-literal=secret=" + secret,
        )  # fmt: skip
        cluster.kubectl("apply", "-f", str(manifest))
        cluster.kubectl(
            "-n", namespace, "rollout", "status", f"deployment/{prefix}notebook-console",
            "--timeout=300s", timeout=320,
        )  # fmt: skip
        service = cluster.get_json("service", f"{prefix}notebook-console", "-n", namespace)
        yield ConsoleInstall(namespace, prefix, secret, f"http://{service['spec']['clusterIP']}/")
    finally:
        logs = cluster.kubectl("-n", namespace, "logs", "-l", SELECTOR, "--tail=40", check=False)
        print(f"--- in-cluster console log ---\n{logs.stdout}{logs.stderr}")
        cluster.kubectl("delete", "-f", str(manifest), "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_deployed_console_runs_a_cell_through_its_gateway_with_least_privilege(
    cluster: Cluster,
    real_namespace: str,
    controller: ControllerProcess,
    notebook_image: str,
    console_install: ConsoleInstall,
) -> None:
    namespace = real_namespace
    alice, mallory = f"alice-{namespace}", f"mallory-{namespace}"
    grant(cluster, namespace, alice, ("get", "list"))
    cluster.apply(seed_notebook("notebook-example.yaml", notebook_image), namespace)
    notebook = wait_notebook_ready(cluster, namespace, NB)
    pods = cluster.get_json("pods", "-n", console_install.namespace, "-l", SELECTOR)["items"]
    assert [p["spec"]["nodeName"] for p in pods] == [REAL_NODE]
    lab = console_install.url.rstrip("/") + notebook["status"]["url"].removesuffix("lab")

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(
            headers=console_install.headers(alice), cookie_jar=jar
        ) as session:
            # the Service DNS route answers once kube-proxy and the pod's DNS know the notebook
            async def answers() -> bool:
                async with session.get(lab + "api/status") as r:
                    return r.status == 200

            for _ in range(60):
                if await answers():
                    break
                await asyncio.sleep(1)
            seen["output"] = await run_cell(
                session, lab, lab.replace("http://", "ws://"), "print(6 * 7)"
            )
            async with session.get(console_install.url + "rows") as r:
                seen["rows"] = await r.text()
        async with (
            aiohttp.ClientSession(headers=console_install.headers(mallory)) as session,
            session.get(lab + "lab") as r,
        ):
            seen["mallory"] = r.status
        return seen

    seen = asyncio.run(scenario())
    assert seen["output"] == "42\n", seen
    assert seen["mallory"] == 403, seen

    # the console's own identity: impersonate users and groups, create access reviews; no reads
    rules = cluster.kubectl("auth", "can-i", "--list", f"--as={console_install.username}").stdout
    print(f"\nthe console's ServiceAccount may:\n{rules}")
    for verb, resource in (
        ("impersonate", "users"),
        ("impersonate", "groups"),
        ("create", "subjectaccessreviews.authorization.k8s.io"),
    ):
        assert_can(cluster, console_install.username, verb, resource, namespace, True)
    for verb, resource in (
        ("impersonate", "serviceaccounts"),
        ("get", "notebooks.tensorstack.dev"),
        ("list", "notebooks.tensorstack.dev"),
        ("get", "services"),
        ("get", "secrets"),
        ("list", "namespaces"),
    ):
        assert_can(cluster, console_install.username, verb, resource, namespace, False)
    print(json.dumps({"output": seen["output"], "mallory": seen["mallory"]}))


def assert_can(
    cluster: Cluster, user: str, verb: str, resource: str, namespace: str, expected: bool
) -> None:
    got = cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, f"--as={user}", check=False
    ).stdout.strip()
    assert got == ("yes" if expected else "no"), f"{user} can-i {verb} {resource}: {got}"

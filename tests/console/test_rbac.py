"""Kubernetes RBAC decides what each console user sees and does (no controller needed: the
console shows and changes Notebook objects). Two users with Roles in two namespaces, a viewer
without `patch`, the trusted-proxy check and CSRF."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.console.console import ConsoleProcess, csrf_token, grant, user_session
from tests.kube import Cluster, get
from tests.product.notebooks import seed_notebook

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture
def console_args(namespace: str, second_namespace: str) -> list[str]:
    return ["--identity=header", f"--namespaces={namespace},{second_namespace}"]


def notebook(name: str) -> dict[str, Any]:
    manifest = seed_notebook("notebook-example.yaml")
    manifest["metadata"]["name"] = name
    return manifest


def notebooks_shown(fragment: str) -> set[str]:
    return set(re.findall(r'<tr data-notebook="([^"]+)"', fragment))


def button(fragment: str, key: str, action: str) -> str:
    row = fragment.split(f'<tr data-notebook="{key}">', 1)[1].split("</tr>", 1)[0]
    found = re.search(rf'<button data-action="{action}"[^>]*>', row)
    assert found, row
    return found[0]


def test_each_user_sees_and_acts_only_where_rbac_allows(
    cluster: Cluster, namespace: str, second_namespace: str, console: ConsoleProcess
) -> None:
    ns_a, ns_b = namespace, second_namespace
    alice, bob, carol = (f"{who}-{ns_a}" for who in ("alice", "bob", "carol"))
    grant(cluster, ns_a, alice)
    grant(cluster, ns_b, bob)
    grant(cluster, ns_a, carol, ("get", "list", "watch"))  # a viewer: no patch, no delete
    cluster.apply(notebook("nb-a"), ns_a)
    cluster.apply(notebook("nb-b"), ns_b)

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for user in (alice, bob, carol):
            async with user_session(console, user) as session:
                token = await csrf_token(session, console)
                async with session.get(console.url + "rows") as r:
                    seen[f"{user} rows"] = await r.text()
                csrf = {"X-CSRF-Token": token}
                if user == alice:
                    for target in (f"{ns_b}/nb-b/pause", f"{ns_a}/nb-a/pause"):
                        async with session.post(
                            f"{console.url}notebooks/{target}", headers=csrf
                        ) as r:
                            seen[f"alice {target}"] = (r.status, await r.text())
                    seen["alice paused"] = get(cluster, ns_a, "notebook", "nb-a")
                    async with session.post(
                        f"{console.url}notebooks/{ns_a}/nb-a/resume", headers=csrf
                    ) as r:
                        seen["alice resume"] = (r.status, await r.text())
                    seen["alice resumed"] = get(cluster, ns_a, "notebook", "nb-a")
                    # CSRF: no token; a token but another site's Origin
                    async with session.post(f"{console.url}notebooks/{ns_a}/nb-a/pause") as r:
                        seen["no token"] = (r.status, await r.text())
                    async with session.post(
                        f"{console.url}notebooks/{ns_a}/nb-a/pause",
                        headers={"X-CSRF-Token": token, "Origin": "http://evil.example"},
                    ) as r:
                        seen["other origin"] = (r.status, await r.text())
                if user == carol:
                    async with session.post(
                        f"{console.url}notebooks/{ns_a}/nb-a/pause", headers=csrf
                    ) as r:
                        seen["carol pause"] = (r.status, await r.text())
                    async with session.post(
                        f"{console.url}notebooks/{ns_a}/nb-a/delete", headers=csrf
                    ) as r:
                        seen["carol delete"] = (r.status, await r.text())
        async with (
            user_session(console, alice) as session,
        ):
            session.headers.pop("X-Console-Proxy-Secret")  # a forged header: no proxy secret
            async with session.get(console.url + "rows") as r:
                seen["forged"] = (r.status, await r.text())
        return seen

    seen = asyncio.run(scenario())
    assert notebooks_shown(seen[f"{alice} rows"]) == {f"{ns_a}/nb-a"}
    assert notebooks_shown(seen[f"{bob} rows"]) == {f"{ns_b}/nb-b"}
    assert notebooks_shown(seen[f"{carol} rows"]) == {f"{ns_a}/nb-a"}
    assert f'data-namespace="{ns_b}"' not in seen[f"{alice} rows"]
    assert f'href="create?namespace={ns_a}"' in seen[f"{alice} rows"]
    assert "Create here" not in seen[f"{carol} rows"]  # a viewer may not create

    # alice on bob's notebook: the API server's 403, in its words; nb-b untouched
    status, text = seen[f"alice {ns_b}/nb-b/pause"]
    assert status == 403, text
    assert f'User "{alice}" cannot get resource "notebooks"' in text, text
    assert (get(cluster, ns_b, "notebook", "nb-b") or {})["spec"]["runMode"] == "running"

    assert seen[f"alice {ns_a}/nb-a/pause"] == (200, f"paused notebook {ns_a}/nb-a")
    assert seen["alice paused"]["spec"]["runMode"] == "paused"
    assert seen["alice resume"] == (200, f"resumed notebook {ns_a}/nb-a")
    assert seen["alice resumed"]["spec"]["runMode"] == "running"

    # the viewer: Pause/Resume/Delete shown disabled, and a direct POST refused by the API server
    rows = seen[f"{carol} rows"]
    for action in ("pause", "resume", "delete"):
        assert " disabled " in button(rows, f"{ns_a}/nb-a", action), button(
            rows, f"{ns_a}/nb-a", action
        )
    assert "you may not patch notebooks in" in button(rows, f"{ns_a}/nb-a", "pause")
    status, text = seen["carol pause"]
    assert status == 403, text
    assert f'User "{carol}" cannot patch resource "notebooks"' in text, text
    status, text = seen["carol delete"]
    assert status == 403 and f'User "{carol}" cannot delete resource "notebooks"' in text, text
    assert get(cluster, ns_a, "notebook", "nb-a") is not None

    assert seen["no token"][0] == 403 and "CSRF token" in seen["no token"][1], seen["no token"]
    assert seen["other origin"][0] == 403, seen["other origin"]
    assert "cross-site request" in seen["other origin"][1]
    status, text = seen["forged"]
    assert status == 401 and "nb-a" not in text, seen["forged"]
    assert (get(cluster, ns_a, "notebook", "nb-a") or {})["spec"]["runMode"] == "running"

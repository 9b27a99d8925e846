"""The Create form against the real API server: every bad field gets the API server's own
message next to it, nothing is created (the form is dry-run first); a good form creates the
Notebook the seed's GPU example describes, and a user without `create` reads the 403."""

from __future__ import annotations

import asyncio
import re
from html import unescape
from typing import Any

import pytest

from tests.console.console import ConsoleProcess, csrf_token, grant, user_session
from tests.kube import Cluster, get

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

GPU = "tensorstack.dev/nvidia-gpu-percent"


def errors(page: str) -> dict[str, str]:
    """Field → message shown next to it."""
    return {
        field: unescape(text)
        for field, text in re.findall(r'data-error-for="([^"]*)">([^<]*)<', page)
    }


def form(namespace: str, **values: str) -> dict[str, str]:
    return {
        "namespace": namespace,
        "name": "nb-form",
        "type": "jupyter",
        "image": "registry.nbctl.local/notebook:1",
        **values,
    }


def test_create_form_shows_the_api_servers_message_per_field(
    cluster: Cluster, namespace: str, console: ConsoleProcess
) -> None:
    owner, viewer = f"owner-{namespace}", f"viewer-{namespace}"
    grant(cluster, namespace, owner)
    grant(cluster, namespace, viewer, ("get", "list"))
    bad = {
        "name": "Bad_Name",
        "image": "",
        "cpu": "lots",
        "memory": "1Gb",
        "gpu_percent": "abc",
        "type": "jupyterx",
    }
    good = {
        "cpu": "0.5",
        "memory": "1Gi",
        "gpu_percent": "30",
        "queue": "default",
        "ssh": "on",
        "ssh_key_secret": "my-public-key",
    }

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with user_session(console, owner) as session:
            token = await csrf_token(session, console)
            async with session.post(
                console.url + "create", data={**form(namespace, **bad), "csrf": token}
            ) as r:
                seen["bad"] = (r.status, await r.text())
            async with session.post(
                console.url + "create", data={**form(namespace, ssh="on"), "csrf": token}
            ) as r:
                seen["ssh without key"] = (r.status, await r.text())
            seen["after bad"] = cluster.get_json("notebooks", "-n", namespace)["items"]
            async with session.post(
                console.url + "create",
                data={**form(namespace, **good), "csrf": token},
                allow_redirects=False,
            ) as r:
                seen["good"] = (r.status, r.headers.get("Location"))
            async with session.post(
                console.url + "create", data=form(namespace, name="no-token")
            ) as r:
                seen["no token"] = r.status
        async with user_session(console, viewer) as session:
            token = await csrf_token(session, console)
            async with session.post(
                console.url + "create", data={**form(namespace, name="nb-viewer"), "csrf": token}
            ) as r:
                seen["viewer"] = (r.status, await r.text())
        return seen

    seen = asyncio.run(scenario())
    status, page = seen["bad"]
    assert status == 422, page[:2000]
    shown = errors(page)
    print(f"\nmessages next to the fields: {shown}")
    assert set(shown) >= {"name", "image", "cpu", "memory", "gpu_percent", "type"}, shown
    assert 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123' in shown["name"]
    assert "containers[0].image" in shown["image"] and "at least 1 chars" in shown["image"]
    assert 'Invalid value: "lots"' in shown["cpu"] and "should match" in shown["cpu"]
    assert 'Invalid value: "1Gb"' in shown["memory"]
    assert 'Invalid value: "abc"' in shown["gpu_percent"]
    assert 'Unsupported value: "jupyterx"' in shown["type"]
    # what the user typed is kept in the form
    assert 'value="Bad_Name"' in page and 'value="lots"' in page
    status, page = seen["ssh without key"]
    assert status == 422, page[:2000]
    assert "ssh_key_secret" in errors(page), errors(page)
    print(f"SSH on without a key Secret: {errors(page)}")
    assert seen["after bad"] == [], "a refused form created something"

    assert seen["good"] == (303, "./"), seen["good"]
    created = get(cluster, namespace, "notebook", "nb-form")
    assert created is not None
    spec = created["spec"]
    assert spec["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "0.5",
        "memory": "1Gi",
        GPU: 30,
    }
    assert spec["scheduler"] == {"t9kScheduler": {"queue": "default"}}
    assert spec["ssh"]["enabled"] is True and spec["ssh"]["authorized_keys"] == ["my-public-key"]

    assert seen["no token"] == 403
    assert get(cluster, namespace, "notebook", "no-token") is None
    status, page = seen["viewer"]
    assert status == 403, page[:2000]
    assert f"User &#x27;{viewer}&#x27;" in page or f'User "{viewer}"' in unescape(page), page
    assert "cannot create resource" in unescape(page)
    assert get(cluster, namespace, "notebook", "nb-viewer") is None

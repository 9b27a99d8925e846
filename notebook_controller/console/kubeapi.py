"""Requests to the API server on a user's behalf: the console's own credentials plus
`Impersonate-User` / `Impersonate-Group` headers, so Kubernetes RBAC decides every action.

In kubeconfig mode (`make run`) there is no impersonation: the kubeconfig's user acts. Answers
are raw dicts; a non-2xx answer raises `ApiError` with the server's Status message, which is what
the console shows the user.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict

from notebook_controller.reconcilers.notebooks import NOTEBOOKS
from notebook_controller.runtime.kinds import (
    SELF_SUBJECT_ACCESS_REVIEWS,
    SERVICES,
    SUBJECT_ACCESS_REVIEWS,
)
from notebook_controller.runtime.kube import (
    PATCH_CONTENT_TYPES,
    ApiError,
    error_from_body,
)
from notebook_controller.runtime.kubeconfig import Configuration, load_configuration
from notebook_controller.runtime.objects import JsonDict


@dataclass(frozen=True)
class User:
    """Who is asking. `impersonate=False`: the console's own (kubeconfig) user."""

    name: str
    groups: tuple[str, ...] = ()
    impersonate: bool = True

    def headers(self) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        if self.impersonate:
            headers.add("Impersonate-User", self.name)
            for group in self.groups:
                headers.add("Impersonate-Group", group)
        return headers


class KubeApi:
    """One aiohttp session to the API server with the console's credentials."""

    def __init__(self, session: aiohttp.ClientSession, configuration: Configuration) -> None:
        self.host = configuration.host.rstrip("/")
        self._session = session
        self._configuration = configuration

    @classmethod
    async def connect(cls, kubeconfig: str | None, call_timeout: float = 30.0) -> KubeApi:
        configuration = await load_configuration(kubeconfig)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=50),
            timeout=aiohttp.ClientTimeout(total=call_timeout),
        )
        return cls(session, configuration)

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        user: User,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> JsonDict:
        headers = user.headers()
        auth, ssl_context = await self._configuration.auth()
        headers.update(auth)
        headers["Accept"] = "application/json"
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        try:
            async with self._session.request(
                method,
                self.host + path,
                params=list(query),
                headers=headers,
                data=data,
                ssl=ssl_context,
                proxy=self._configuration.proxy,
                server_hostname=self._configuration.tls_server_name,
            ) as response:
                raw = await response.read()
                status, reason = response.status, response.reason or ""
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiError(
                503,
                "ServiceUnavailable",
                f"the API server did not answer ({error.__class__.__name__}: {error}); "
                "try again in a moment",
            ) from error
        if not 200 <= status <= 299:
            raise error_from_body(status, reason, raw)
        parsed: Any = json.loads(raw) if raw else {}
        return parsed if isinstance(parsed, dict) else {}

    # --- verbs the console uses ----------------------------------------------------------

    async def list_notebooks(self, user: User, namespace: str | None) -> list[JsonDict]:
        found = await self.request(user, "GET", NOTEBOOKS.path(namespace))
        items: list[JsonDict] = found.get("items") or []
        return items

    async def list_namespaces(self, user: User) -> list[str]:
        found = await self.request(user, "GET", "/api/v1/namespaces")
        return sorted(item["metadata"]["name"] for item in found.get("items") or [])

    async def create_notebook(
        self, user: User, namespace: str, body: JsonDict, *, dry_run: bool = False
    ) -> JsonDict:
        query = [("dryRun", "All")] if dry_run else []
        query.append(("fieldValidation", "Strict"))
        return await self.request(user, "POST", NOTEBOOKS.path(namespace), query=query, body=body)

    async def get_notebook(self, user: User, namespace: str, name: str) -> JsonDict:
        return await self.request(user, "GET", NOTEBOOKS.path(namespace, name))

    async def patch_notebook(self, user: User, namespace: str, name: str, patch: Any) -> JsonDict:
        return await self.request(
            user,
            "PATCH",
            NOTEBOOKS.path(namespace, name),
            body=patch,
            content_type=PATCH_CONTENT_TYPES["json"]
            if isinstance(patch, list)
            else PATCH_CONTENT_TYPES["merge"],
        )

    async def delete_notebook(self, user: User, namespace: str, name: str) -> None:
        await self.request(user, "DELETE", NOTEBOOKS.path(namespace, name))

    async def may(
        self,
        user: User,
        verb: str,
        namespace: str,
        name: str | None = None,
        resource: str = "notebooks",
        group: str = "tensorstack.dev",
    ) -> bool:
        """Whether RBAC lets `user` do `verb` (an access review; the console's own user asks a
        SelfSubjectAccessReview, anyone else a SubjectAccessReview naming them)."""
        attributes: JsonDict = {
            "namespace": namespace,
            "verb": verb,
            "group": group,
            "resource": resource,
        }
        if name:
            attributes["name"] = name
        spec: JsonDict = {"resourceAttributes": attributes}
        kind = SELF_SUBJECT_ACCESS_REVIEWS
        if user.impersonate:
            # the API server adds system:authenticated to an impersonated user: so does the review
            spec |= {"user": user.name, "groups": [*user.groups, "system:authenticated"]}
            kind = SUBJECT_ACCESS_REVIEWS
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": kind.kind, "spec": spec}
        console = User("", impersonate=False)  # the review itself: the console's own right
        answer = await self.request(console, "POST", kind.path(), body=review)
        return bool((answer.get("status") or {}).get("allowed"))

    async def get_service(self, namespace: str, name: str) -> JsonDict | None:
        """A Service read with the console's own credentials (out of cluster only: in a pod the
        gateway uses the Service's DNS name and reads nothing)."""
        try:
            return await self.request(
                User("", impersonate=False), "GET", SERVICES.path(namespace, name)
            )
        except ApiError as error:
            if error.is_not_found:
                return None
            raise

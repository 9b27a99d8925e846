"""Who is asking: the kubeconfig's user (local `make run`), or the user a trusted
authenticating proxy names in a header.

Trust is a shared secret: the proxy sends it in `X-Console-Proxy-Secret` (the header name is
configurable) and only a request carrying it has its `X-Forwarded-User` / `X-Forwarded-Groups`
read. A request without it (or with a wrong one) is anonymous whatever user header it carries:
a forged header from outside the proxy is ignored. The identity and secret headers are removed
before anything is proxied to a notebook.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from notebook_controller.console.kubeapi import User

IdentityMode = Literal["kubeconfig", "header"]
KUBECONFIG_USER: Final = "kubeconfig user"


@dataclass(frozen=True)
class IdentitySettings:
    mode: IdentityMode = "kubeconfig"
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    secret_header: str = "X-Console-Proxy-Secret"
    proxy_secret: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"IdentitySettings(mode={self.mode!r}, user_header={self.user_header!r})"

    @property
    def private_headers(self) -> tuple[str, ...]:
        """Headers that must never reach a notebook."""
        return (self.user_header, self.groups_header, self.secret_header)


def identify(settings: IdentitySettings, headers: Mapping[str, str]) -> User | None:
    """The requesting user, or None when a trusted proxy has not named one."""
    if settings.mode == "kubeconfig":
        return User(KUBECONFIG_USER, impersonate=False)
    presented = headers.get(settings.secret_header, "")
    if not settings.proxy_secret or not hmac.compare_digest(
        presented.encode(), settings.proxy_secret.encode()
    ):
        return None
    name = headers.get(settings.user_header, "").strip()
    if not name or name.startswith("system:"):
        return None  # the proxy's users are people, never the cluster's own identities
    groups = tuple(
        g.strip()
        for g in headers.get(settings.groups_header, "").split(",")
        if g.strip() and not g.strip().startswith("system:")
    )
    return User(name, groups)

"""Deterministic names and labels of a notebook's children.

Every child name is `<prefix>-<notebook name>` when that fits and is a valid DNS-1035 label;
otherwise the notebook name is made dot-free, truncated, and followed by a hash of the full name,
so two notebooks never share a child and the same notebook always gets the same one. The limits:

- Services and Secrets: DNS-1035 label, at most 63 characters, no dots, starts with a letter.
- StatefulSet: at most 52 characters, because the controller labels its pods with
  `controller-revision-hash: <statefulset>-<hash of up to 10 characters>` (a label value, at most
  63) and the pod `<statefulset>-0` becomes the pod's hostname (a DNS label).
- The `notebook.tensorstack.dev/name` label value: at most 63 characters (dots are allowed).
"""

from __future__ import annotations

import hashlib
from typing import Final

from notebook_controller.api.models import NAME_LABEL

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "notebook-controller"
MANAGED_SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGED_BY}"

STATEFULSET_PREFIX: Final = "managed-notebook"
HTTP_SERVICE_PREFIX: Final = "managed-notebook-http"
SSH_SERVICE_PREFIX: Final = "managed-notebook-ssh"
HOST_KEY_SECRET_PREFIX: Final = "managed-notebook-hostkey"

DNS_LABEL_MAX: Final = 63
STATEFULSET_NAME_MAX: Final = 52
LABEL_VALUE_MAX: Final = 63
_HASH_LEN: Final = 8


def name_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:_HASH_LEN]


def bounded_name(prefix: str, name: str, max_len: int = DNS_LABEL_MAX) -> str:
    """`prefix-name`, or a truncated dot-free form of it ending in a hash of `name`."""
    plain = f"{prefix}-{name}"
    if len(plain) <= max_len and "." not in name:
        return plain
    room = max_len - len(prefix) - 2 - _HASH_LEN
    stem = name.replace(".", "-")[:room].rstrip("-")
    return f"{prefix}-{stem}-{name_hash(name)}" if stem else f"{prefix}-{name_hash(name)}"


def statefulset_name(notebook: str) -> str:
    return bounded_name(STATEFULSET_PREFIX, notebook, STATEFULSET_NAME_MAX)


def pod_name(notebook: str) -> str:
    """The StatefulSet's only pod (ordinal 0)."""
    return f"{statefulset_name(notebook)}-0"


def http_service_name(notebook: str) -> str:
    return bounded_name(HTTP_SERVICE_PREFIX, notebook)


def ssh_service_name(notebook: str) -> str:
    return bounded_name(SSH_SERVICE_PREFIX, notebook)


def host_key_secret_name(notebook: str) -> str:
    return bounded_name(HOST_KEY_SECRET_PREFIX, notebook)


def name_label_value(notebook: str) -> str:
    """Value of `notebook.tensorstack.dev/name`: the name itself, unless longer than a label."""
    if len(notebook) <= LABEL_VALUE_MAX:
        return notebook
    stem = notebook[: LABEL_VALUE_MAX - _HASH_LEN - 1].rstrip("-.")
    return f"{stem}-{name_hash(notebook)}"


def selector_labels(notebook: str) -> dict[str, str]:
    """Labels that select the notebook's pod (the StatefulSet selector, immutable)."""
    return {NAME_LABEL: name_label_value(notebook)}


def child_labels(notebook: str) -> dict[str, str]:
    """Labels on every object the controller makes (its informers select on MANAGED_BY)."""
    return {MANAGED_BY_LABEL: MANAGED_BY, **selector_labels(notebook)}

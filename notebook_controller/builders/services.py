"""The notebook's Services: HTTP always (80 -> http), SSH while enabled (22 -> 2222)."""

from __future__ import annotations

from typing import Any, Final

from notebook_controller.api.models import Notebook, SSHServiceType
from notebook_controller.builders.meta import child_metadata, with_applied_hash
from notebook_controller.builders.names import (
    http_service_name,
    selector_labels,
    ssh_service_name,
)
from notebook_controller.builders.ssh import SSH_PORT
from notebook_controller.builders.workload import http_target_port

HTTP_SERVICE_PORT: Final = 80
SSH_SERVICE_PORT: Final = 22


def _service(
    notebook: Notebook, name: str, service_type: str, port: dict[str, Any]
) -> dict[str, Any]:
    return with_applied_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": child_metadata(notebook, name),
            "spec": {
                "type": service_type,
                "selector": selector_labels(notebook.name),
                "ports": [{**port, "protocol": "TCP"}],
            },
        }
    )


def http_service(notebook: Notebook) -> dict[str, Any]:
    port = {"name": "http", "port": HTTP_SERVICE_PORT, "targetPort": http_target_port(notebook)}
    return _service(notebook, http_service_name(notebook.name), "ClusterIP", port)


def ssh_service(notebook: Notebook) -> dict[str, Any] | None:
    """The SSH Service, or None when SSH is off (then it must not exist)."""
    if not notebook.spec.ssh_enabled or notebook.spec.ssh is None:
        return None
    port = {"name": "ssh", "port": SSH_SERVICE_PORT, "targetPort": SSH_PORT}
    service_type = SSHServiceType(notebook.spec.ssh.service_type).value
    return _service(notebook, ssh_service_name(notebook.name), service_type, port)

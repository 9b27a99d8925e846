"""The notebook's StatefulSet: one replica (zero while paused) running the template's pod.

The main container (named `notebook`, else the first) gets NB_PREFIX and ENABLE_SSH_SERVER
(the CRD refuses them in the user's env) and, where the user left them unset, a port named
`http`, a readiness probe (on the user's `http` port if declared) and `workingDir`.
`podManagementPolicy: Parallel` lets a template change replace a pod that is not Ready (with
OrderedReady the StatefulSet controller waits forever for a broken pod before rolling it).
"""

from __future__ import annotations

from typing import Any, Final

from notebook_controller.api.models import Notebook, NotebookType
from notebook_controller.builders.meta import child_metadata, with_applied_hash
from notebook_controller.builders.names import child_labels, selector_labels, statefulset_name
from notebook_controller.builders.scheduling import scheduled_pod_spec, scheduling_labels
from notebook_controller.builders.ssh import ssh_volume_mounts, ssh_volumes

MAIN_CONTAINER: Final = "notebook"
HTTP_PORT_NAME: Final = "http"
JUPYTER_PORT: Final = 8888
RSTUDIO_PORT: Final = 8787
WORKING_DIR: Final = "/t9k/mnt"


def nb_prefix(notebook: Notebook) -> str:
    """The path the notebook is served under (Jupyter's base_url)."""
    return f"/t9k/notebooks/projects/{notebook.namespace}/name/{notebook.name}/"


def server_port(notebook: Notebook) -> int:
    return RSTUDIO_PORT if notebook.spec.type is NotebookType.RSTUDIO else JUPYTER_PORT


def main_container_index(containers: list[dict[str, Any]]) -> int:
    return next((i for i, c in enumerate(containers) if c.get("name") == MAIN_CONTAINER), 0)


def main_container(notebook: Notebook) -> dict[str, Any]:
    containers: list[dict[str, Any]] = notebook.spec.template.spec.get("containers") or [{}]
    return containers[main_container_index(containers)]


def http_target_port(notebook: Notebook) -> str | int:
    """What the HTTP Service targets: the `http` port, else the user's port with our number."""
    ports = main_container(notebook).get("ports") or []
    if any(p.get("name") == HTTP_PORT_NAME for p in ports):
        return HTTP_PORT_NAME
    if any(p.get("containerPort") == server_port(notebook) for p in ports):
        return server_port(notebook)
    return HTTP_PORT_NAME


def serving_port(notebook: Notebook) -> int:
    """Where the main container serves: its `http` port if the user declared one, else ours."""
    for port in main_container(notebook).get("ports") or []:
        if port.get("name") == HTTP_PORT_NAME and isinstance(port.get("containerPort"), int):
            return int(port["containerPort"])
    return server_port(notebook)


def _readiness_probe(notebook: Notebook) -> dict[str, Any]:
    if notebook.spec.type is NotebookType.RSTUDIO:
        # RStudio has no unauthenticated status endpoint: a listening server is a ready one.
        return {"tcpSocket": {"port": serving_port(notebook)}, "periodSeconds": 5}
    return {
        "httpGet": {"path": f"{nb_prefix(notebook)}api/status", "port": serving_port(notebook)},
        "periodSeconds": 5,
    }


def _with_defaults(notebook: Notebook, container: dict[str, Any]) -> dict[str, Any]:
    result = dict(container)
    env = list(container.get("env") or [])
    defined = {item.get("name") for item in env}
    ssh_flag = "true" if notebook.spec.ssh_enabled else "false"
    for name, value in (("NB_PREFIX", nb_prefix(notebook)), ("ENABLE_SSH_SERVER", ssh_flag)):
        if name not in defined:
            env.append({"name": name, "value": value})
    result["env"] = env
    ports = list(container.get("ports") or [])
    port = server_port(notebook)
    if not any(p.get("name") == HTTP_PORT_NAME or p.get("containerPort") == port for p in ports):
        ports.append({"name": HTTP_PORT_NAME, "containerPort": port, "protocol": "TCP"})
    result["ports"] = ports
    result.setdefault("readinessProbe", _readiness_probe(notebook))
    result.setdefault("workingDir", WORKING_DIR)
    mounts = ssh_volume_mounts(ssh_volumes(notebook))
    if mounts:
        result["volumeMounts"] = [*(container.get("volumeMounts") or []), *mounts]
    return result


def pod_spec(notebook: Notebook) -> dict[str, Any]:
    spec = dict(notebook.spec.template.spec)
    containers = list(spec.get("containers") or [])
    if containers:
        index = main_container_index(containers)
        containers[index] = _with_defaults(notebook, containers[index])
        spec["containers"] = containers
    volumes = ssh_volumes(notebook)
    if volumes:
        spec["volumes"] = [*(spec.get("volumes") or []), *volumes]
    return scheduled_pod_spec(notebook, spec)


def statefulset(notebook: Notebook) -> dict[str, Any]:
    """The desired StatefulSet, with the applied-hash annotation (see runtime.diff)."""
    return with_applied_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": child_metadata(notebook, statefulset_name(notebook.name)),
            "spec": {
                "replicas": 0 if notebook.spec.paused else 1,
                "selector": {"matchLabels": selector_labels(notebook.name)},
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {
                        "labels": {**child_labels(notebook.name), **scheduling_labels(notebook)}
                    },
                    "spec": pod_spec(notebook),
                },
            },
        }
    )

from __future__ import annotations

from notebook_controller.api.models import Notebook
from notebook_controller.builders import services
from tests.unit.builders.seeds import with_spec


def test_http_service_targets_the_named_port(basic: Notebook) -> None:
    service = services.http_service(basic)
    assert service["metadata"]["name"] == "managed-notebook-http-notebook-sample"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == {"notebook.tensorstack.dev/name": "notebook-sample"}


def test_http_service_targets_a_user_port_by_number_when_it_has_another_name(
    basic: Notebook,
) -> None:
    containers = [{"name": "n", "image": "x", "ports": [{"name": "web", "containerPort": 8888}]}]
    nb = with_spec(basic, template={"spec": {"containers": containers}})
    assert services.http_service(nb)["spec"]["ports"][0]["targetPort"] == 8888


def test_ssh_service_follows_ssh_spec(ssh: Notebook) -> None:
    service = services.ssh_service(ssh)
    assert service is not None
    assert service["metadata"]["name"] == "managed-notebook-ssh-notebook-sample"
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"] == [
        {"name": "ssh", "port": 22, "targetPort": 2222, "protocol": "TCP"}
    ]


def test_no_ssh_service_without_ssh(basic: Notebook, ssh: Notebook) -> None:
    assert services.ssh_service(basic) is None
    disabled = with_spec(ssh, ssh={"enabled": False, "authorized_keys": ["my-public-key"]})
    assert services.ssh_service(disabled) is None

"""The generated Notebook CRD: in step with the models, structural, described, documented."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notebook_controller.api import crdgen

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "deploy" / "crd" / "notebooks.tensorstack.dev.yaml"
API_DOC = ROOT / "docs" / "api.md"

# Keywords of apiextensions.k8s.io/v1 JSONSchemaProps this generator may emit; anything else
# (x-kubernetes-patch-strategy, $ref, title, nullable, ...) is a bug.
ALLOWED_KEYWORDS = {
    "description",
    "type",
    "format",
    "properties",
    "items",
    "additionalProperties",
    "required",
    "enum",
    "default",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return crdgen.build_crd()


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    version = crd["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"])


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (`[]` list items, `{}` map values)."""
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}" if path else name)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(node.get(key), dict):
            yield from nodes(node[key], path + suffix)


def at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for step in path.split("."):
        node = node["properties"][step.removesuffix("[]")]
        if step.endswith("[]"):
            node = node["items"]
    return node


def test_committed_crd_is_what_generation_gives() -> None:
    assert COMMITTED.read_text() == crdgen.render_crd(), (
        "deploy/crd is stale: run `make manifests` and commit the result"
    )


def test_generation_is_deterministic_across_processes() -> None:
    """Another interpreter with another hash seed writes byte-identical YAML."""
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-m", "notebook_controller.api.crdgen"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == crdgen.render_crd()


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node in nodes(schema):
        unknown = set(node) - ALLOWED_KEYWORDS
        assert not unknown, f"{path or '<root>'}: keywords a CRD doesn't take: {unknown}"
        if node.get("x-kubernetes-int-or-string"):
            assert node.get("anyOf", INT_OR_STRING) == INT_OR_STRING, path
        else:
            assert "type" in node, f"{path}: no type"
            assert "anyOf" not in node, f"{path}: anyOf outside int-or-string"


def test_no_field_is_left_unvalidated(schema: dict[str, Any]) -> None:
    text = json.dumps(schema)
    assert "x-kubernetes-preserve-unknown-fields" not in text
    assert 'additionalProperties": true' not in text


def test_every_property_has_a_description(schema: dict[str, Any]) -> None:
    undescribed = [
        path
        for path, node in nodes(schema)
        if path not in ("", "metadata")
        and not path.endswith(("[]", "{}"))
        and not node.get("description", "").strip()
    ]
    assert undescribed == []


def test_descriptions_come_from_the_model_docstrings(schema: dict[str, Any]) -> None:
    ssh = at(schema, "spec.ssh")
    assert ssh["properties"]["authorized_keys"]["description"].startswith(
        "Names of Secrets in the notebook's namespace holding SSH public keys"
    )
    # Docstrings are unwrapped: kubectl explain re-flows paragraphs itself.
    assert "\n" not in at(schema, "spec.type")["description"]


def test_pod_template_spec_is_the_full_podspec(schema: dict[str, Any]) -> None:
    pod = at(schema, "spec.template.spec")
    assert pod["required"] == ["containers"]
    assert {"containers", "initContainers", "volumes", "affinity", "tolerations"} <= set(
        pod["properties"]
    )
    container = at(schema, "spec.template.spec.containers[]")
    assert {"image", "env", "ports", "resources", "volumeMounts", "readinessProbe"} <= set(
        container["properties"]
    )
    assert container["required"] == ["image", "name"]
    limits = at(schema, "spec.template.spec.containers[].resources.limits")
    assert limits["additionalProperties"]["x-kubernetes-int-or-string"] is True
    assert at(schema, "spec.template.spec.containers")["x-kubernetes-list-type"] == "map"
    assert "full core/v1 PodSpec" in pod["description"]


def test_defaults(schema: dict[str, Any]) -> None:
    assert at(schema, "spec.type")["default"] == "jupyter"
    # runMode has no default: a lone `suspend: true` must not meet an implicit `running`.
    assert "default" not in at(schema, "spec.runMode")
    assert "default" not in at(schema, "spec.suspend")
    assert at(schema, "spec.ssh.enabled")["default"] is False
    assert at(schema, "spec.ssh.serviceType")["default"] == "ClusterIP"
    assert not [path for path, node in nodes(at(schema, "status")) if "default" in node]


def test_enums(schema: dict[str, Any]) -> None:
    assert at(schema, "spec.type")["enum"] == ["jupyter", "rstudio"]
    assert at(schema, "spec.runMode")["enum"] == ["running", "paused"]
    assert at(schema, "spec.ssh.serviceType")["enum"] == ["ClusterIP", "NodePort", "LoadBalancer"]


def test_status_conditions_merge_by_type(schema: dict[str, Any]) -> None:
    """Two field managers each server-side-apply their own condition entries."""
    conditions = at(schema, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {"type", "status"}
    assert set(conditions["items"]["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "lastProbeTime",
    }


def test_status_shape(schema: dict[str, Any]) -> None:
    status = at(schema, "status")["properties"]
    assert set(status) == {"phase", "url", "pod", "ssh", "conditions", "observedGeneration"}
    assert set(status["pod"]["properties"]) == {"reference", "phase"}
    assert set(status["ssh"]["properties"]) == {
        "serviceName",
        "port",
        "clusterIp",
        "nodePort",
        "protocol",
        "lastSshClientActivity",
    }


def test_names_subresource_and_columns(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert spec["names"]["shortNames"] == ["nb"]
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"].upper(): c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["TYPE", "PHASE", "READY", "IDLE", "AGE", "URL"]
    assert columns["URL"]["priority"] == 1
    assert all("priority" not in c for name, c in columns.items() if name != "URL")


def test_size_needs_server_side_apply_but_fits_etcd(crd: dict[str, Any]) -> None:
    """Client-side apply would copy the CRD into a 256 KiB annotation; etcd takes 1.5 MiB."""
    size = len(json.dumps(crd, separators=(",", ":")))
    assert 256 * 1024 < size < 1024 * 1024


def validation_messages(schema: dict[str, Any]) -> list[str]:
    return [
        rule["message"]
        for _, node in nodes(schema)
        for rule in node.get("x-kubernetes-validations", [])
    ]


def test_every_rule_message_is_documented(schema: dict[str, Any]) -> None:
    doc = re.sub(r"\s+", " ", API_DOC.read_text())
    messages = validation_messages(schema)
    assert len(messages) >= 10
    undocumented = [m for m in messages if m not in doc]
    assert undocumented == [], "document these in docs/api.md"


def test_every_rule_message_names_its_field(schema: dict[str, Any]) -> None:
    for message in validation_messages(schema):
        assert re.match(r"^(spec\.|resources\.)[A-Za-z_.\[\]/-]+", message), message


def test_cel_rules_are_bounded_for_the_cost_estimator(schema: dict[str, Any]) -> None:
    """Rules that iterate need bounded inputs, or the apiserver refuses the CRD."""
    for path, node in nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            if "quantity(" in rule["rule"]:
                for map_name in ("requests", "limits"):
                    resource_map = node["properties"][map_name]
                    assert resource_map["maxProperties"] <= 32, path
                    assert resource_map["additionalProperties"]["maxLength"] <= 64, path
            if "matches(" in rule["rule"]:
                assert node["maxLength"] <= 253, path
    for containers in ("containers", "initContainers"):
        assert at(schema, f"spec.template.spec.{containers}")["maxItems"] == 64


def test_vendored_podspec_matches_the_pinned_kubernetes() -> None:
    pins = dict(
        line.split("=", 1)
        for line in (ROOT / "hack/cluster/versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    header = crdgen.render_crd().splitlines()[1]
    assert header.endswith(f"PodSpec of Kubernetes {pins['KUBERNETES_VERSION']}.")

"""The vendored upstream PodSpec schema and its conversion to a CRD schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notebook_controller.api import podspec

REF = "#/components/schemas/"


def openapi(schemas: dict[str, Any]) -> dict[str, Any]:
    return {"components": {"schemas": schemas}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    return podspec.structural_podspec()


def test_vendored_file_records_its_source() -> None:
    doc = podspec.load()
    assert doc["source"] == {
        "module": "k8s.io/kubernetes",
        "version": podspec.kubernetes_version(),
        "path": "api/openapi-spec/v3/api__v1_openapi.json",
    }
    assert doc["root"] == "io.k8s.api.core.v1.PodSpec"


def test_vendored_file_holds_only_what_podspec_reaches() -> None:
    schemas = podspec.load()["schemas"]
    assert "io.k8s.api.core.v1.Container" in schemas
    assert "io.k8s.api.core.v1.Pod" not in schemas
    assert "io.k8s.api.core.v1.Service" not in schemas
    # ObjectMeta's own references (managedFields, ownerReferences) aren't used: see below.
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry" not in schemas


def test_refresh_trims_to_the_closure_of_podspec(tmp_path: Path) -> None:
    spec = tmp_path / podspec.SPEC_PATH
    spec.parent.mkdir(parents=True)
    spec.write_text(
        json.dumps(
            openapi(
                {
                    podspec.ROOT: {"properties": {"c": {"items": ref("C"), "type": "array"}}},
                    "C": {"properties": {"q": {"allOf": [ref(podspec.QUANTITY)]}}},
                    podspec.QUANTITY: {"oneOf": [{"type": "string"}, {"type": "number"}]},
                    "Unrelated": {"type": "object"},
                }
            )
        )
    )
    dest = tmp_path / "out.json"
    podspec.refresh("v9.9.9", module_dir=tmp_path, dest=dest)
    doc = json.loads(dest.read_text())
    assert doc["source"]["version"] == "v9.9.9"
    assert sorted(doc["schemas"]) == sorted(["C", podspec.ROOT, podspec.QUANTITY])


def test_quantities_take_integers_and_strings(pod: dict[str, Any]) -> None:
    container = pod["properties"]["containers"]["items"]
    quantity = container["properties"]["resources"]["properties"]["limits"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert quantity["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert quantity["pattern"] == podspec.QUANTITY_PATTERN


def test_int_or_string_ports(pod: dict[str, Any]) -> None:
    probe = pod["properties"]["containers"]["items"]["properties"]["readinessProbe"]
    port = probe["properties"]["httpGet"]["properties"]["port"]
    assert port["x-kubernetes-int-or-string"] is True
    assert "pattern" not in port


def test_nested_object_meta_keeps_only_labels_and_annotations(pod: dict[str, Any]) -> None:
    volume = pod["properties"]["volumes"]["items"]["properties"]
    meta = volume["ephemeral"]["properties"]["volumeClaimTemplate"]["properties"]["metadata"]
    assert set(meta["properties"]) == {"labels", "annotations"}


def test_defaults_are_dropped_except_for_list_map_keys(pod: dict[str, Any]) -> None:
    container = pod["properties"]["containers"]["items"]
    assert "default" not in container["properties"]["name"]
    port = container["properties"]["ports"]["items"]["properties"]
    # ports is a list-map keyed by (containerPort, protocol); protocol is optional.
    assert port["protocol"]["default"] == "TCP"
    assert "default" not in port["containerPort"]


def test_client_only_extensions_are_dropped(pod: dict[str, Any]) -> None:
    text = json.dumps(pod)
    for keyword in ("$ref", "allOf", "oneOf", "x-kubernetes-patch", "x-kubernetes-unions"):
        assert keyword not in text


def test_recursive_schema_is_refused() -> None:
    inliner = podspec._Inliner({"A": {"properties": {"a": ref("A")}, "type": "object"}})
    with pytest.raises(ValueError, match="recursive schema A"):
        inliner.named("A", ())

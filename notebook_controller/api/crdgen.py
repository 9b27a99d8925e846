"""Generate the Notebook CustomResourceDefinition from the models (`make manifests`).

    python -m notebook_controller.api.crdgen --output deploy/crd/notebooks.tensorstack.dev.yaml

The schema is structural, as the apiserver wants it: every node typed and inlined (no `$ref`),
no titles, optional fields simply optional (a null sent for them is pruned), and every property
described (from the models' docstrings) so that `kubectl explain` is useful. `spec.template.spec`
is the full core/v1 PodSpec of the pinned Kubernetes release (podspec.py); validation.py adds
the constraints and CEL rules.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from notebook_controller.api import models, podspec
from notebook_controller.api.validation import CONSTRAINTS, Constraint

Schema = dict[str, Any]

CRD_NAME = f"{models.PLURAL}.{models.GROUP}"
# Where the models leave a free-form object that the CRD fills with an upstream schema.
PODSPEC_PATH = "spec.template.spec"

_OBJECT_FIELDS = {
    "apiVersion": (
        "APIVersion defines the versioned schema of this representation of an object. Servers"
        " should convert recognized schemas to the latest internal value, and may reject"
        " unrecognized values. More info:"
        " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
    ),
    "kind": (
        "Kind is a string value representing the REST resource this object represents."
        " Servers may infer this from the endpoint the client submits requests to. Cannot be"
        " updated. In CamelCase. More info:"
        " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
    ),
}

PRINTER_COLUMNS: list[Schema] = [
    {
        "name": "Type",
        "type": "string",
        "jsonPath": ".spec.type",
        "description": "Kind of notebook server.",
    },
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Pending, Running, Suspended or Failed.",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{models.CONDITION_READY}")].status',
        "description": "Whether the notebook is ready to serve.",
    },
    {
        "name": "Idle",
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{models.CONDITION_IDLE}")].status',
        "description": "Whether the notebook has been idle long enough to be marked so.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "URL",
        "type": "string",
        "jsonPath": ".status.url",
        "priority": 1,
        "description": "Where the notebook's web UI is served.",
    },
]


def _unwrap(text: str) -> str:
    """Docstrings are wrapped at 100 columns; explain output reads better with paragraphs."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


class _ModelSchema:
    """A pydantic JSON schema made structural."""

    def __init__(self, model: type[BaseModel], *, keep_defaults: bool) -> None:
        raw = model.model_json_schema(by_alias=True)
        self.defs: dict[str, Schema] = raw.pop("$defs", {})
        self.keep_defaults = keep_defaults
        self.root = self.node(raw)

    def node(self, node: Schema) -> Schema:
        out: Schema = {}
        ref = node.get("$ref")
        branches = [b for b in node.get("anyOf", []) if b != {"type": "null"}]
        if len(branches) == 1:  # Optional[X]: absent (or a pruned null) means unset
            out = self.node(branches[0])
        elif branches:
            raise ValueError(f"a CRD schema can't express the union {node['anyOf']}")
        if ref is not None:
            out = self.node(self.defs[ref.removeprefix("#/$defs/")])
        for key, value in node.items():
            if key in ("$ref", "anyOf", "title"):
                continue
            if key == "default" and (value is None or not self.keep_defaults):
                continue
            if key == "additionalProperties" and value is True:
                continue
            if key == "description":
                value = _unwrap(value)
            elif key == "properties":
                value = {name: self.node(prop) for name, prop in value.items()}
            elif key == "items":
                value = self.node(value)
            out[key] = value
        return out


def _node(schema: Schema, path: str) -> Schema:
    """The node at a dotted `path` (`[]` steps into list items, `{}` into map values)."""
    node = schema
    for step in path.split("."):
        name = step.removesuffix("[]").removesuffix("{}")
        node = node["properties"][name]
        if step.endswith("[]"):
            node = node["items"]
        elif step.endswith("{}"):
            node = node["additionalProperties"]
    return node


def _apply(schema: Schema, constraint: Constraint) -> None:
    node = _node(schema, constraint.path)
    for key, value in constraint.schema.items():
        if key == "required":
            node["required"] = sorted({*node.get("required", []), *value})
        else:
            node[key] = value
    if constraint.rules:
        rules = node.setdefault("x-kubernetes-validations", [])
        rules.extend(rule.as_schema() for rule in constraint.rules)


def _undescribed(node: Schema, path: str) -> list[str]:
    missing = [] if node.get("description") else [path]
    for name, prop in node.get("properties", {}).items():
        missing += _undescribed(prop, f"{path}.{name}")
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        child = node.get(key)
        if isinstance(child, dict) and "properties" in child:
            missing += [p for p in _undescribed(child, path + suffix) if p != path + suffix]
    return missing


def _sorted(node: Any) -> Any:
    """Keys in a fixed order, so the generated file diffs cleanly."""
    if isinstance(node, dict):
        return {key: _sorted(node[key]) for key in sorted(node)}
    if isinstance(node, list):
        return [_sorted(item) for item in node]
    return node


def notebook_schema() -> Schema:
    """The openAPIV3Schema of Notebook."""
    spec = _ModelSchema(models.NotebookSpec, keep_defaults=True).root
    status = _ModelSchema(models.NotebookStatus, keep_defaults=False).root
    status["properties"]["conditions"].update(
        {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
    )
    schema: Schema = {
        "type": "object",
        "description": _unwrap(models.Notebook.__doc__ or ""),
        "required": ["spec"],
        "properties": {
            **{name: {"type": "string", "description": d} for name, d in _OBJECT_FIELDS.items()},
            # The apiserver owns metadata's schema: a CRD may not describe it.
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    holder = _node(schema, PODSPEC_PATH.rsplit(".", 1)[0])
    field = PODSPEC_PATH.rsplit(".", 1)[1]
    description = holder["properties"][field]["description"]
    holder["properties"][field] = {**podspec.structural_podspec(), "description": description}
    for constraint in CONSTRAINTS:
        _apply(schema, constraint)
    missing = [path for path in _undescribed(schema, "") if path != ".metadata"]
    if missing:
        raise ValueError(f"fields without a description (add a docstring): {missing}")
    sorted_schema: Schema = _sorted(schema)
    return sorted_schema


def build_crd() -> Schema:
    """The Notebook CustomResourceDefinition."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": models.GROUP,
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.SINGULAR,
                "shortNames": list(models.SHORT_NAMES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS),
                    "schema": {"openAPIV3Schema": notebook_schema()},
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML committed under deploy/crd/."""
    header = (
        "# Generated by `make manifests` (python -m notebook_controller.api.crdgen): do not edit.\n"
        f"# spec.template.spec is core/v1 PodSpec of Kubernetes {podspec.kubernetes_version()}.\n"
    )
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the Notebook CRD.")
    parser.add_argument("--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    text = render_crd()
    if args.output is None:
        sys.stdout.write(text)
        return
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)


if __name__ == "__main__":
    main()

"""The core/v1 PodSpec schema of the pinned Kubernetes release, as a CRD (structural) schema.

`openapi/core_v1_podspec.json` is vendored verbatim from the release's published OpenAPI v3
(`api/openapi-spec/v3/api__v1_openapi.json` in the k8s.io/kubernetes module), trimmed to the
schemas PodSpec reaches. `make refresh-podspec` re-vendors it for the version pinned in
hack/cluster/versions.env:

    python -m notebook_controller.api.podspec --version v1.37.2

`structural_podspec()` turns it into what a CRD accepts: references inlined, the
strategic-merge-patch and union extensions dropped, Quantity and IntOrString as
`x-kubernetes-int-or-string`, and defaults kept only where a list-map key needs one (pod
defaulting happens when the pod is created, not in the Notebook).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

VENDORED = Path(__file__).with_name("openapi") / "core_v1_podspec.json"
MODULE = "k8s.io/kubernetes"
SPEC_PATH = "api/openapi-spec/v3/api__v1_openapi.json"
ROOT = "io.k8s.api.core.v1.PodSpec"
_REF_PREFIX = "#/components/schemas/"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# Same grammar as resource.Quantity's parser (what controller-gen puts in CRDs).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# Keywords of the upstream schemas that a CRD schema keeps (others are OpenAPI-for-clients only:
# x-kubernetes-patch-*, x-kubernetes-unions, ...). `default` is handled separately.
_KEPT = {
    "description",
    "type",
    "format",
    "properties",
    "items",
    "additionalProperties",
    "required",
    "enum",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
}
_KEPT_FORMATS = {"int32", "int64", "double", "date-time", "byte"}


def _refs(node: Any) -> set[str]:
    return set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(node)))


def trim(openapi: dict[str, Any], root: str = ROOT) -> dict[str, Schema]:
    """The schemas of `openapi` reachable from `root` (ObjectMeta's own references excluded:
    structural_podspec() replaces it by labels and annotations)."""
    schemas: dict[str, Schema] = openapi["components"]["schemas"]
    kept: dict[str, Schema] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        kept[name] = schemas[name]
        if name != OBJECT_META:
            pending.extend(_refs(schemas[name]))
    return dict(sorted(kept.items()))


def load() -> dict[str, Any]:
    """The vendored document: {"source": {...}, "root": ..., "schemas": {...}}."""
    doc: dict[str, Any] = json.loads(VENDORED.read_text())
    return doc


def kubernetes_version() -> str:
    """The Kubernetes release the vendored PodSpec comes from."""
    return str(load()["source"]["version"])


class _Inliner:
    def __init__(self, schemas: dict[str, Schema]) -> None:
        self.schemas = schemas

    def named(self, name: str, stack: tuple[str, ...]) -> Schema:
        if name in stack:
            raise ValueError(f"recursive schema {name}: can't inline it into a CRD")
        if name in (QUANTITY, INT_OR_STRING):
            out: Schema = {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": True,
            }
            if name == QUANTITY:
                out["pattern"] = QUANTITY_PATTERN
            return out
        if name == OBJECT_META:
            meta = self.schemas[OBJECT_META]["properties"]
            return {
                "type": "object",
                "properties": {k: self.node(meta[k], stack) for k in ("labels", "annotations")},
            }
        return self.node(self.schemas[name], (*stack, name))

    def node(self, node: Schema, stack: tuple[str, ...]) -> Schema:
        ref = node.get("$ref")
        if ref is None and len(node.get("allOf", [])) == 1:
            ref = node["allOf"][0].get("$ref")
        out: Schema = {}
        if ref is not None:
            out = self.named(ref.removeprefix(_REF_PREFIX), stack)
        for key, value in node.items():
            if key not in _KEPT:
                continue
            if key == "format" and value not in _KEPT_FORMATS:
                continue
            if key == "properties":
                value = {k: self.node(v, stack) for k, v in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                value = self.node(value, stack)
            else:
                value = copy.deepcopy(value)
            out[key] = value
        if "properties" in out:
            out.setdefault("type", "object")
        self._keep_list_map_key_defaults(node, out)
        return out

    def _keep_list_map_key_defaults(self, source: Schema, out: Schema) -> None:
        """A CRD requires every list-map key to be required or defaulted (e.g. ports' protocol)."""
        keys = out.get("x-kubernetes-list-map-keys")
        if not keys:
            return
        item_ref = source["items"].get("$ref") or source["items"]["allOf"][0]["$ref"]
        upstream = self.schemas[item_ref.removeprefix(_REF_PREFIX)]
        for key in keys:
            default = upstream["properties"][key].get("default")
            if default is not None and key not in out["items"].get("required", []):
                out["items"]["properties"][key]["default"] = default


def structural_podspec() -> Schema:
    """PodSpec as a structural CRD schema (fresh copy, free to modify)."""
    doc = load()
    return _Inliner(doc["schemas"]).named(doc["root"], ())


def download_module(version: str) -> Path:
    """Directory of k8s.io/kubernetes@version in the Go module cache (downloads it)."""
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.run(
            ["go", "mod", "download", "-json", f"{MODULE}@{version}"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
    return Path(json.loads(proc.stdout)["Dir"])


def refresh(version: str, module_dir: Path | None = None, dest: Path = VENDORED) -> None:
    """Re-vendor the PodSpec schemas of Kubernetes `version` (from `module_dir` if given)."""
    module_dir = module_dir or download_module(version)
    openapi = json.loads((module_dir / SPEC_PATH).read_text())
    doc = {
        "source": {"module": MODULE, "version": version, "path": SPEC_PATH},
        "root": ROOT,
        "schemas": trim(openapi),
    }
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="Kubernetes release, e.g. v1.37.2")
    parser.add_argument("--module-dir", type=Path, help="an unpacked k8s.io/kubernetes module")
    args = parser.parse_args(argv)
    refresh(args.version, args.module_dir)
    print(f"vendored {ROOT} of {MODULE}@{args.version} into {VENDORED}")


if __name__ == "__main__":
    main()

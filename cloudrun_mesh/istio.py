"""Istio's published VirtualService schema, applied the way ``kubectl apply --validate=strict`` would.

A CRD's structural schema prunes unknown fields silently; the API server's strict field validation
turns them into errors. We do the same at construction time so that a misspelt field fails
``pulumi preview`` on the laptop instead of being dropped by the cluster.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping

API_GROUP = "networking.istio.io"
API_VERSION = "v1"
KIND = "VirtualService"
CRD_PATH = Path(__file__).parent / "schemas" / "istio-virtualservice-crd.yaml"


class VirtualServiceSpecError(ValueError):
    """A VirtualService spec that the cluster would reject under strict field validation."""


def _strict(node: Any) -> Any:
    """Copy of an OpenAPI v3 schema where every object with declared properties rejects others."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def _validator(version: str):
    # Deferred imports: only programs that export a service pay for the schema and jsonschema, once.
    import jsonschema
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with CRD_PATH.open(encoding="utf-8") as fh:
        crd = yaml.load(fh, Loader=loader)
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in versions:
        raise VirtualServiceSpecError(f"the vendored CRD does not serve {API_GROUP}/{version}")
    spec_schema = versions[version]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return jsonschema.Draft7Validator(_strict(spec_schema))


def validate_spec(spec: Mapping[str, Any], version: str = API_VERSION) -> None:
    """Raise ``VirtualServiceSpecError`` listing every violation of the strict schema."""
    errors = sorted(_validator(version).iter_errors(spec), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors:
            where = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
            lines.append(f"{where}: {e.message}")
        raise VirtualServiceSpecError(
            f"VirtualService spec does not match {API_GROUP}/{version} (strict): " + "; ".join(lines)
        )

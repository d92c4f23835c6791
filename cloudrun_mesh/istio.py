"""Istio's published VirtualService schema, applied the way ``kubectl apply --validate=strict`` would.

A CRD's structural schema prunes unknown fields silently; the API server's strict field validation
turns them into errors. We do the same at construction time so that a misspelt field fails
``pulumi preview`` on the laptop instead of being dropped by the cluster.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Protocol

API_GROUP = "networking.istio.io"
API_VERSION = "v1"
KIND = "VirtualService"
CRD_PATH = Path(__file__).parent / "schemas" / "istio-virtualservice-crd.yaml"


# One (sub)schema of the CRD's OpenAPI v3 schema, as YAML loads it: an object of keywords, or a
# boolean schema below it (JSON Schema's `true`/`false`).
Schema = dict[str, Any]


class VirtualServiceSpecError(ValueError):
    """A VirtualService spec that the cluster would reject under strict field validation."""


class _SchemaViolation(Protocol):
    """What the report reads of a jsonschema ``ValidationError`` (jsonschema ships no type information)."""

    @property
    def absolute_path(self) -> Sequence[str | int]: ...

    @property
    def message(self) -> str: ...


class _SpecValidator(Protocol):
    """What ``validate_spec`` calls on a jsonschema ``Draft7Validator``."""

    def iter_errors(self, instance: Any) -> Iterator[_SchemaViolation]: ...


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


@functools.cache
def _spec_schema(version: str) -> Schema:
    """The strict schema of ``spec`` in one served version of the vendored CRD, loaded once."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with CRD_PATH.open(encoding="utf-8") as fh:
        crd = yaml.load(fh, Loader=loader)
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in versions:
        raise VirtualServiceSpecError(f"the vendored CRD does not serve {API_GROUP}/{version}")
    spec = _strict(versions[version]["schema"]["openAPIV3Schema"]["properties"]["spec"])
    if not isinstance(spec, dict):
        raise VirtualServiceSpecError(f"the vendored CRD's {API_GROUP}/{version} spec schema is not an object schema")
    return spec


@functools.cache
def _validator(version: str) -> _SpecValidator:
    # Imported only to report violations (or for a schema the quick check cannot read): importing
    # jsonschema costs more than evaluating a whole small stack.
    import jsonschema

    validator: _SpecValidator = jsonschema.Draft7Validator(_spec_schema(version))
    return validator


# The quick check: jsonschema's Draft 7 verdict for the keywords this schema uses. Keywords it
# evaluates exactly as Draft7Validator does, and keywords Draft7Validator asserts nothing with here
# (annotations; `format` without a format checker; `nullable` is OpenAPI's, not JSON Schema's).
_EVALUATED = frozenset(
    {"type", "enum", "properties", "required", "additionalProperties", "items", "minimum", "maximum",
     "allOf", "anyOf", "oneOf", "not"}
)
_IGNORED = frozenset({"description", "title", "format", "nullable", "default", "examples", "$comment"})
_TYPES = {  # Draft 7's type checker
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, numbers.Number) and not isinstance(v, bool),
    "integer": lambda v: not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, float) and v.is_integer())),
}


def _subschemas(schema: Schema) -> list[Schema | bool]:
    subs = [*schema.get("properties", {}).values(), *schema.get("allOf", ()), *schema.get("anyOf", ()), *schema.get("oneOf", ())]
    return subs + [schema[k] for k in ("additionalProperties", "items", "not") if k in schema]


def _readable(schema: Any) -> bool:
    """Whether the quick check can judge ``schema`` and every schema below it."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or not set(schema) <= _EVALUATED | _IGNORED:
        return False
    types = schema.get("type", [])
    if not all(t in _TYPES for t in ([types] if isinstance(types, str) else types)):
        return False
    if not all(isinstance(e, str) for e in schema.get("enum", ())):  # so equality is plain ==
        return False
    if not isinstance(schema.get("properties", {}), dict) or isinstance(schema.get("items", {}), list):
        return False
    return all(_readable(s) for s in _subschemas(schema))


@functools.cache
def _quick_schema(version: str) -> Optional[Schema]:
    schema = _spec_schema(version)
    return schema if _readable(schema) else None


def _accepts(schema: Any, value: Any) -> bool:
    if isinstance(schema, bool):
        return schema
    types = schema.get("type")
    if types is not None and not any(_TYPES[t](value) for t in ([types] if isinstance(types, str) else types)):
        return False
    if "enum" in schema and not any(e == value for e in schema["enum"]):
        return False
    if isinstance(value, dict):
        if any(k not in value for k in schema.get("required", ())):
            return False
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        if not all(_accepts(props[k] if k in props else extra, v) for k, v in value.items()):
            return False
    if isinstance(value, list) and not all(_accepts(schema.get("items", True), v) for v in value):
        return False
    if _TYPES["number"](value) and (value < schema.get("minimum", value) or value > schema.get("maximum", value)):
        return False
    return (
        all(_accepts(s, value) for s in schema.get("allOf", ()))
        and ("anyOf" not in schema or any(_accepts(s, value) for s in schema["anyOf"]))
        and ("oneOf" not in schema or sum(_accepts(s, value) for s in schema["oneOf"]) == 1)
        and ("not" not in schema or not _accepts(schema["not"], value))
    )


def validate_spec(spec: Mapping[str, Any], version: str = API_VERSION) -> None:
    """Raise ``VirtualServiceSpecError`` listing every violation of the strict schema."""
    quick = _quick_schema(version)
    if quick is not None and _accepts(quick, spec):
        return
    errors = sorted(_validator(version).iter_errors(spec), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors:
            where = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
            lines.append(f"{where}: {e.message}")
        raise VirtualServiceSpecError(
            f"VirtualService spec does not match {API_GROUP}/{version} (strict): " + "; ".join(lines)
        )

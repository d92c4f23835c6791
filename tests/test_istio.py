"""The strict VirtualService check: its fast path gives exactly jsonschema's verdict."""

from __future__ import annotations

import collections
import random

import pytest

from cloudrun_mesh import istio


def _instance(schema, rnd: random.Random, depth: int = 0):
    """A random value that mostly follows ``schema`` and often breaks it somewhere."""
    odd = [None, 0, -1, 1.5, 2.0, "", "x", True, {}, [], {"unknownField": 1}, 4294967296]
    if isinstance(schema, bool) or depth > 6 or rnd.random() < 0.08:
        return rnd.choice(odd)
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema and rnd.random() < 0.5:
            value = _instance({k: v for k, v in schema.items() if k != combinator}, rnd, depth)
            extra = _instance(rnd.choice(schema[combinator]), rnd, depth + 1)
            if isinstance(value, dict) and isinstance(extra, dict):
                value.update(extra)
            return value
    if "enum" in schema:
        return rnd.choice(schema["enum"] + ["NOT_LISTED"])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        keys = [k for k in props if rnd.random() < 0.3] + [k for k in schema.get("required", ()) if rnd.random() < 0.9]
        value = {k: _instance(props[k], rnd, depth + 1) if k in props else "v" for k in keys}
        if isinstance(schema.get("additionalProperties"), dict) and rnd.random() < 0.5:
            value[f"key{rnd.randint(0, 9)}"] = _instance(schema["additionalProperties"], rnd, depth + 1)
        return value
    if kind == "array":
        return [_instance(schema.get("items", True), rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    if kind == "integer":
        low, high = schema.get("minimum", -5), schema.get("maximum", 100)
        return rnd.choice([low, high, low - 1, high + 1, float(low), 1.5])
    return {"string": "mesh", "boolean": False, "number": 0.5}.get(kind, rnd.choice(odd))


def test_quick_schema_check_gives_jsonschemas_verdict():
    # validate_spec answers valid specs without importing jsonschema; jsonschema still reports
    # every violation. The quick verdict must be jsonschema's, on valid and invalid specs alike.
    schema = istio._quick_schema(istio.API_VERSION)
    assert schema is not None, "the vendored schema uses a keyword the quick check cannot judge"
    validator = istio._validator(istio.API_VERSION)
    rnd = random.Random(6)
    verdicts = collections.Counter()
    for _ in range(3000):
        spec = _instance(schema, rnd)
        verdict = validator.is_valid(spec)
        assert istio._accepts(schema, spec) is verdict, spec
        verdicts[verdict] += 1
    assert min(verdicts.values()) > 500, verdicts


@pytest.mark.parametrize("schema", [{"type": "string", "pattern": "^a"}, {"enum": [1]}, {"items": [{}]}, {"$ref": "#"}])
def test_quick_check_leaves_other_keywords_to_jsonschema(schema):
    assert not istio._readable({"type": "object", "properties": {"field": schema}})

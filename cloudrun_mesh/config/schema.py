"""The JSON Schema of the stack configuration, the single source of the keys' shapes and values.

``cloudrun_mesh/schemas/stack-config.schema.json`` (draft 2020-12) describes a whole stack file
(`Pulumi.<stack>.yaml`) for editors; ``$defs/config`` is what ``validate`` checks, on the values the
engine hands over. The validator is built once, on first use, and reused.

Patterns are written for both readers of the schema: editors evaluate them as ECMA-262 regular
expressions, where `$` is the end of the text; Python's `re.search` would let `$` match before a final
newline (`"ads\\n"` would pass), so here every `pattern` must match the *whole* value
(``re.fullmatch``), as issue 17 requires.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cloudrun_mesh.config.problems import Problem, did_you_mean, show

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "stack-config.schema.json"
# What the keyword errors say when a schema gives no `x-rule` (every property of ours has one).
YAML11_BOOLEANS = ("yes", "no", "on", "off", "y", "n")
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "boolean": "true or false", "array": "a list",
               "object": "an object", "number": "a number", "null": "empty"}


@functools.cache
def schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        loaded: dict[str, Any] = json.load(fh)
    return loaded


def config_schema() -> dict[str, Any]:
    result: dict[str, Any] = schema()["$defs"]["config"]
    return result


def property_schema(key: str) -> dict[str, Any]:
    """The schema of one config key (`cloudrun-mesh:dns`, `gcp:region`)."""
    result: dict[str, Any] = config_schema()["properties"][key]
    return result


def default(key: str, field: str | None = None) -> Any:
    """The declared default of a key or of one field of an object key."""
    prop = property_schema(key)
    if field is not None:
        prop = (prop.get("items") or prop)["properties"][field]
    return prop.get("default")


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _pattern_fullmatch(validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and _compiled(pattern).fullmatch(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _validator() -> Any:
    """The draft 2020-12 validator of ``$defs/config``, with whole-value patterns; built once."""
    from jsonschema import validators

    cls = validators.extend(validators.Draft202012Validator, {"pattern": _pattern_fullmatch})
    return cls(config_schema())


def validate(instance: Mapping[str, Any]) -> list[Problem]:
    """Every problem of shape or value, each naming its key path and the rule (the schema's `x-rule`).

    A valid configuration (every evaluation of a good stack) is judged by ``accepts`` alone: importing
    jsonschema costs more than a small stack's whole evaluation (bench/bench.py). jsonschema runs only
    when ``accepts`` refuses, to name every problem; tests/test_config_schema.py holds both verdicts
    equal.
    """
    if accepts(config_schema(), instance):
        return []
    problems: list[Problem] = []
    for error in _validator().iter_errors(dict(instance)):
        problems.extend(_problems(error))
    return problems


# The quick verdict: draft 2020-12's, for the keywords this schema uses. `propertyNames` is left to
# keys.check_keys (as ``_problems`` leaves its errors); annotations assert nothing.
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, float) and v.is_integer())),
}
_KNOWN_KEYWORDS = frozenset({
    "type", "enum", "properties", "required", "additionalProperties", "items", "minimum", "maximum", "pattern",
    "minItems", "maxItems", "uniqueItems", "maxLength", "propertyNames", "description", "x-rule", "default", "examples",
})


def accepts(schema: Any, value: Any) -> bool:
    if isinstance(schema, bool):
        return schema
    if not set(schema) <= _KNOWN_KEYWORDS:
        raise ValueError(f"the quick check does not evaluate {sorted(set(schema) - _KNOWN_KEYWORDS)}")
    if "type" in schema and not _TYPES[schema["type"]](value):
        return False
    if "enum" in schema and not any(e == value and type(e) is type(value) for e in schema["enum"]):
        return False
    if isinstance(value, dict):
        if any(k not in value for k in schema.get("required", ())):
            return False
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        if not all(accepts(props[k] if k in props else extra, v) for k, v in value.items()):
            return False
    if isinstance(value, list):
        if not all(accepts(schema.get("items", True), v) for v in value):
            return False
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return False
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            return False
    if _TYPES["integer"](value) or isinstance(value, float):
        if not schema.get("minimum", value) <= value <= schema.get("maximum", value):
            return False
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            return False
        if "pattern" in schema and _compiled(schema["pattern"]).fullmatch(value) is None:
            return False
    return True


def key_path(parts: Any) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _problems(error: Any) -> list[Problem]:
    keyword = error.validator
    sub: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    path = key_path(error.absolute_path)
    value = error.instance
    if keyword == "propertyNames":
        return []  # top-level keys: checked by keys.check_keys, with a did-you-mean and nesting hints
    if keyword == "additionalProperties":
        allowed = list(sub.get("properties", {}))
        return [Problem(f"{path}.{k}", f"is not a known key{did_you_mean(k, allowed)}; allowed keys are {', '.join(allowed)}")
                for k in value if k not in allowed]
    if keyword == "required":
        return [Problem(f"{path}.{k}", "is required") for k in error.validator_value if k not in value]
    rule = sub.get("x-rule") or (f"must be {_TYPE_WORDS.get(str(error.validator_value), error.validator_value)}"
                                 if keyword == "type" else error.message)
    if keyword == "type" and value is None:
        return [Problem(path, f"{rule}; it is empty (null)")]
    hint = did_you_mean(value, error.validator_value, "{!r}") if keyword == "enum" and isinstance(value, str) else ""
    if keyword == "type" and error.validator_value == "boolean" and isinstance(value, str) and value.lower() in YAML11_BOOLEANS:
        # The Pulumi CLI reads stack files with gopkg.in/yaml.v3, whose YAML 1.2 core schema keeps
        # yes/no/on/off as text (resolve.go in go-yaml/yaml v3.0.1; see cloudrun_mesh/stackfile.py).
        hint = (f" (YAML 1.1 reads {value!r} as a boolean, but the Pulumi CLI reads YAML 1.2 and passes the text "
                f"{value!r}: write {str(value.lower() in ('yes', 'on', 'y')).lower()})")
    got = f"{len(value)} items" if keyword in ("minItems", "maxItems") else (
        f"{len(value)} characters" if keyword == "maxLength" else show(value))
    return [Problem(path, f"{rule}; got {got}{hint}")]

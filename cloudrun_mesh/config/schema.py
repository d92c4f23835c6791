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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cloudrun_mesh.config.problems import Problem, did_you_mean, show

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "stack-config.schema.json"
# What the keyword errors say when a schema gives no `x-rule` (every property of ours has one).
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
    """Every problem of shape or value, each naming its key path and the rule (the schema's `x-rule`)."""
    problems: list[Problem] = []
    for error in _validator().iter_errors(dict(instance)):
        problems.extend(_problems(error))
    return problems


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
    got = f"{len(value)} items" if keyword in ("minItems", "maxItems") else (
        f"{len(value)} characters" if keyword == "maxLength" else show(value))
    return [Problem(path, f"{rule}; got {got}{hint}")]

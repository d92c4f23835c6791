"""Reading Pulumi.yaml and Pulumi.<stack>.yaml: bounded, and with the values the Pulumi CLI would see.

A stack file is hostile input (a pull request from a fork can change one and CI plans it), so it is
read with fixed bounds (docs/input-limits.md, "Stack files"): at most `MAX_BYTES` bytes of a regular
file, at most `MAX_DEPTH` levels of nesting, aliases standing for at most `MAX_ALIAS_NODES` values.
The YAML is composed here from the parser's event stream, without recursion, so that no input ever
reaches PyYAML's recursive composer or builds an alias expansion before it has been counted.

Values are read as the Pulumi CLI reads them. The CLI decodes stack files with gopkg.in/yaml.v3
(pulumi/pulumi sdk/go/common/encoding/marshal.go, `yamlMarshaler.Unmarshal`; sdk/go.mod pins
gopkg.in/yaml.v3 v3.0.1), so plain scalars resolve by yaml.v3's resolve.go (go-yaml/yaml tag v3.0.1,
`resolve`): YAML 1.2 core booleans (`true`/`True`/`TRUE`, `false`/...), so `yes`, `no`, `on` and `off`
stay text; nulls `~`, `null`, empty; ints with Go's base prefixes (`0x`, `0o`, `0b`, and a leading `0`
as octal) and `_` separators; floats; and an unquoted date is a timestamp. yaml.v3's decoder
(decode.go, `mapping`) refuses a mapping key written twice ("mapping key ... already defined at line
..."), and Pulumi refuses a key that is not text anywhere in the file (sdk/go/common/workspace/
project.go, `SimplifyMarshalledValue`: "expected only string keys"). Config values reach the program
as text: strings as they are, everything else as Go's encoding/json writes it
(sdk/go/common/resource/config/object.go, `MarshalString`), and a top-level `key:` with no value as
the empty string (sdk/go/common/workspace/loaders.go, `checkForEmptyConfig`).

``locations`` gives the line and column of each config key path for the config module's messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import yaml

from cloudrun_mesh.text import InputFileError, kind_of, read_regular_file, terminal

PROJECT_DIR = Path(__file__).resolve().parents[1]

# The bounds (docs/input-limits.md). The shipped stack files are 0.6 to 1.4 kB and 6 levels deep.
MAX_BYTES = 1 << 20  # 1 MiB, checked before anything is parsed
MAX_DEPTH = 64  # nested mappings and sequences, aliases expanded
MAX_ALIAS_NODES = 100_000  # values that aliases stand for, counted before anything is expanded

# The top-level keys of a stack settings file; anything else is a config key written without the
# `config:` root. (Pulumi's ProjectStack: sdk/go/common/workspace/project.go in pulumi/pulumi.)
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")

_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: the same events, faster
_CORE = "tag:yaml.org,2002:"
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2}))"
    r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?))?"
)
# yaml.v3 resolve.go `yamlStyleFloat`, and what Go's strconv.ParseFloat takes after a leading `.`.
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
                   **{f"{s}{v}": (-math.inf if s == "-" else math.inf)
                      for s in ("", "+", "-") for v in (".inf", ".Inf", ".INF")}}


class _GoTime(str):
    """A timestamp, as the text Pulumi hands the program; still a timestamp where yaml.v3 types it (a key)."""


class StackFileError(ValueError):
    """A Pulumi.yaml or Pulumi.<stack>.yaml that cannot be read as a project or stack file. One paragraph."""


class UnknownStackError(LookupError):
    """No Pulumi.<stack>.yaml for the requested stack."""


# --------------------------------------------------------------------------------------------
# Composing: events to a node graph, iteratively, with every bound checked as the events arrive.
# --------------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("kind", "tag", "value", "plain", "line", "column", "size", "height", "items", "open")

    def __init__(self, kind: str, tag: Optional[str], line: int, column: int) -> None:
        self.kind = kind  # "scalar", "map" or "seq"
        self.tag = tag
        self.value = ""
        self.plain = False
        self.line = line  # 1-based
        self.column = column
        self.size = 1  # values in this node with every alias inside it expanded
        self.height = 0  # nesting below this node, aliases expanded
        self.items: list[_Node] = []  # a mapping's keys and values alternate
        self.open = kind != "scalar"


def _pairs(node: _Node) -> list[tuple[_Node, _Node]]:
    """A mapping's (key, value) nodes; the parser gives every key its value (an empty one is null)."""
    return list(zip(node.items[0::2], node.items[1::2], strict=True))


def _at(node: _Node) -> str:
    return f"line {node.line}, column {node.column}"


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown position"


def _events(name: str, text: str) -> Iterator[Any]:
    loader = _PARSER(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    except yaml.MarkedYAMLError as exc:
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        mark = exc.problem_mark or exc.context_mark
        # YAML's line breaks (https://yaml.org/spec/1.2.2/#54-line-break-characters), as the marks count them
        lines = re.split(r"\r\n|[\n\r\x85\u2028\u2029]", text, maxsplit=mark.line + 1) if mark is not None else []
        line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
        tab = mark is not None and "\t" in line[:mark.column + 1]
        hint = " YAML does not allow tabs for indentation: indent with spaces." if tab else ""
        if "maximum nesting depth" in problem:  # libyaml's own cap (1,000), met while scanning ahead
            raise StackFileError(f"{name}: {_mark(mark)}: values nest more than {MAX_DEPTH} levels deep.") from None
        raise StackFileError(f"{name} is not valid YAML: {terminal(problem)} at {_mark(mark)}.{hint}") from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{name} is not valid YAML: {terminal(exc)}.") from None
    finally:
        loader.dispose()


def _compose(name: str, text: str) -> Optional[_Node]:
    """The first document as a node graph (an alias is the anchored node itself), or None if empty.
    Only the first document is read, as yaml.v3's `Unmarshal` does (yaml.go, `unmarshal`: one `p.parse()`)."""
    stack: list[_Node] = []
    anchors: dict[str, _Node] = {}
    root: Optional[_Node] = None
    aliased = 0

    def add(node: _Node) -> None:
        nonlocal root
        if stack:
            stack[-1].items.append(node)
        else:
            root = node

    for event in _events(name, text):
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            target = anchors.get(event.anchor or "")
            if target is None:
                raise StackFileError(f"{name}: {_mark(mark)}: the alias `*{terminal(event.anchor)}` has no anchor "
                                     f"`&{terminal(event.anchor)}` before it.")
            if target.open:
                raise StackFileError(f"{name}: {_mark(mark)}: the alias `*{terminal(event.anchor)}` is inside "
                                     "its own anchor, which would make the value infinite.")
            aliased += target.size
            if aliased > MAX_ALIAS_NODES:
                raise StackFileError(f"{name}: {_mark(mark)}: aliases stand for more than {MAX_ALIAS_NODES:,} "
                                     "values in all; write the values out, or use fewer aliases.")
            if len(stack) + target.height > MAX_DEPTH:
                raise StackFileError(f"{name}: {_mark(mark)}: the alias `*{terminal(event.anchor)}` nests values "
                                     f"more than {MAX_DEPTH} levels deep.")
            add(target)
        elif isinstance(event, yaml.ScalarEvent):
            node = _Node("scalar", event.tag, mark.line + 1, mark.column + 1)
            node.value = event.value
            # Plain and untagged: resolved by yaml.v3's rules; quoted, block or tagged: not (decode.go, `scalar`).
            node.plain = event.tag is None and event.style in (None, "")
            if event.anchor is not None:
                anchors[event.anchor] = node
            add(node)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH:
                raise StackFileError(f"{name}: {_mark(mark)}: values nest more than {MAX_DEPTH} levels deep.")
            kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
            node = _Node(kind, event.tag, mark.line + 1, mark.column + 1)
            if event.anchor is not None:
                anchors[event.anchor] = node
            add(node)
            stack.append(node)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            node = stack.pop()
            node.open = False
            node.size = 1 + sum(item.size for item in node.items)
            node.height = 1 + max((item.height for item in node.items), default=0)
        elif isinstance(event, yaml.DocumentEndEvent):
            break
    return root


# --------------------------------------------------------------------------------------------
# Constructing: yaml.v3's resolution of scalars, its merge keys, its duplicate-key rule.
# --------------------------------------------------------------------------------------------


def _go_time_text(m: re.Match[str]) -> Optional[str]:
    """A yaml.v3 timestamp as Pulumi hands it to the program: Go's `time.Time.String()`
    (object.go `unmarshalObject`, `case time.Time: newObject(v.String())`). None when Go's
    time.Parse would refuse the value (a day or hour out of range), which leaves it text."""
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    hour, minute, second, frac, zone = 0, 0, 0, "", "Z"
    if m[4] is not None:
        hour, minute, second, frac, zone = int(m[4]), int(m[5]), int(m[6]), m[7] or "", m[8]
    elif m[9] is not None:
        hour, minute, second, frac = int(m[9]), int(m[10]), int(m[11]), m[12] or ""
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not (1 <= month <= 12 and 1 <= day <= days[month - 1] and hour < 24 and minute < 60 and second < 60):
        return None
    frac = frac[:9].rstrip("0")
    text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}{'.' + frac if frac else ''}"
    if zone == "Z" or zone in ("+00:00", "-00:00"):
        # A zero offset on a machine whose local zone is UTC (CI runners, containers) prints as UTC.
        return f"{text} +0000 UTC"
    offset = zone.replace(":", "")
    return f"{text} {offset} {offset}"  # Go's fabricated zone for an offset prints the offset twice


def _go_int(plain: str) -> Optional[int]:
    """Go's strconv.ParseInt(plain, 0, 64), then ParseUint(plain, 0, 64) (which takes no sign)."""
    if not _GO_INT.fullmatch(plain):
        return None
    digits = plain.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "xXoObB":
        number = int(digits[2:], {"x": 16, "o": 8, "b": 2}[digits[1].lower()])
    elif len(digits) > 1 and digits[0] == "0":
        number = int(digits, 8)
    elif len(digits) > 20:  # past 2**64 (and past Python's limit on decimal text to int)
        return None
    else:
        number = int(digits)
    number = -number if plain[0] == "-" else number
    if -(1 << 63) <= number < (1 << 63) or (plain[0] not in "+-" and number < (1 << 64)):
        return number
    return None


def _resolve_plain(value: str) -> Any:
    """A plain scalar as yaml.v3's `resolve("", value)` reads it (resolve.go, go-yaml/yaml v3.0.1)."""
    if value in _NULLS:
        return None
    if value in _BOOLS:
        return _BOOLS[value]
    if value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    if value == "<<":
        return value
    first = value[0]
    if first == ".":
        return float(value) if _DOT_FLOAT.fullmatch(value) else value
    if not (first.isascii() and (first.isdigit() or first in "+-")):
        return value
    ts = _TIMESTAMP.fullmatch(value)
    if ts is not None:
        when = _go_time_text(ts)
        if when is not None:
            return _GoTime(when)
    plain = value.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return number
    if _YAML_FLOAT.fullmatch(plain):
        number_f = float(plain)
        if not math.isinf(number_f):  # Go's ParseFloat reports a range error: the value stays text
            return number_f
    return value


def _scalar(name: str, node: _Node) -> Any:
    tag = node.tag
    if tag is not None and tag.startswith(_CORE):
        tag = "!!" + tag[len(_CORE):]
    if node.plain:
        return _resolve_plain(node.value)
    if tag in (None, "!", "!!str"):
        return node.value
    if tag == "!!binary":
        try:
            data = base64.b64decode(re.sub(r"[\r\n]", "", node.value), validate=True)
        except (binascii.Error, ValueError):
            raise StackFileError(f"{name}: {_at(node)}: the `!!binary` value is not base64 "
                                 "(yaml.v3, which the Pulumi CLI reads stack files with, refuses it).") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StackFileError(f"{name}: {_at(node)}: the `!!binary` value is not UTF-8 text once decoded; "
                                 "a config value must be text.") from None
    if tag in ("!!int", "!!float", "!!bool", "!!null", "!!timestamp"):
        value = _resolve_plain(node.value)
        kinds: dict[str, tuple[type, ...]] = {"!!int": (int,), "!!float": (int, float), "!!bool": (bool,),
                                              "!!null": (type(None),), "!!timestamp": (_GoTime,)}
        good = isinstance(value, kinds[tag]) and not (tag in ("!!int", "!!float") and isinstance(value, bool))
        if not good:
            raise StackFileError(f"{name}: {_at(node)}: `{tag} {terminal(node.value)}` is not a "
                                 f"{tag[2:]} (yaml.v3, which the Pulumi CLI reads stack files with, refuses it).")
        return float(value) if tag == "!!float" else value
    # Any other tag (`!!set` on a scalar, `!local`): yaml.v3 keeps the text (resolve.go, `resolvableTag`).
    return node.value


class _Builder:
    """Python values from the node graph; each node is built once (an alias shares the value),
    so the work is linear in the file, and every position is recorded."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.built: dict[int, Any] = {}
        self.positions: dict[int, dict[str, tuple[int, int]]] = {}

    def build(self, node: _Node) -> Any:
        # Depth is at most MAX_DEPTH (checked while composing), so this recursion is bounded.
        known = self.built.get(id(node))
        if known is not None or id(node) in self.built:
            return known
        if node.kind == "scalar":
            value = _scalar(self.name, node)
        elif node.kind == "seq":
            value = [self.build(item) for item in node.items]
        else:
            value = self._mapping(node)
        self.built[id(node)] = value
        return value

    def _mapping(self, node: _Node) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, _Node] = {}
        merges: list[_Node] = []
        for key_node, value_node in _pairs(node):
            # yaml.v3 compares keys by kind and written text (decode.go, `mapping`): `1` and "1" collide.
            if key_node.kind == "scalar":
                seen = first.get(key_node.value)
                if seen is not None:
                    raise StackFileError(
                        f"{self.name}: {_at(key_node)}: the key `{terminal(key_node.value)}` is written twice in "
                        f"one mapping, first at line {seen.line}; the Pulumi CLI refuses the file (yaml.v3: "
                        "\"mapping key already defined\"). Keep one of them.")
                first[key_node.value] = key_node
            if key_node.kind == "scalar" and key_node.value == "<<" and (key_node.plain or key_node.tag == _CORE + "merge"):
                merges.append(value_node)
                continue
            key = self.build(key_node) if key_node.kind == "scalar" else None
            if not isinstance(key, str) or isinstance(key, _GoTime) or key_node.kind != "scalar":
                # a non-text scalar key read as a string is a timestamp in Go's time text
                what = "a mapping or list" if key_node.kind != "scalar" else ("a date" if isinstance(key, str) else kind_of(key))
                raise StackFileError(
                    f"{self.name}: {_at(key_node)}: the key `{terminal(key_node.value)}` is {what}, not text; "
                    "the Pulumi CLI accepts only text keys (\"expected only string keys\"). Quote it if it is "
                    f"meant as text: `\"{terminal(key_node.value)}\":`.")
            out[key] = self.build(value_node)
        for merge in merges:
            sources = merge.items if merge.kind == "seq" else [merge]
            for source in sources:
                if source.kind != "map":
                    raise StackFileError(f"{self.name}: {_at(merge)}: a merge key `<<` takes a mapping or a list "
                                         "of mappings (an alias of one).")
                for k, v in self.build(source).items():
                    out.setdefault(k, v)  # explicit keys win, then the first mapping merged
        return out


def _located(root: _Node, project: Optional[str]) -> dict[str, tuple[int, int]]:
    """Key path under `config:` -> (line, column) of the key (or list item), iteratively."""
    out: dict[str, tuple[int, int]] = {}
    if root.kind != "map":
        return out
    todo: list[tuple[_Node, str]] = []
    for key_node, value_node in _pairs(root):
        if key_node.kind == "scalar" and key_node.value == "config":
            todo.append((value_node, ""))
    while todo:
        node, path = todo.pop()
        if node.kind == "map":
            merged: list[_Node] = []
            for key_node, value_node in _pairs(node):
                if key_node.kind != "scalar":
                    continue
                if key_node.value == "<<":  # merged keys: after the explicit ones, the first source first
                    merged.extend(value_node.items if value_node.kind == "seq" else [value_node])
                    continue
                key = key_node.value if path else _config_key(key_node.value, project)
                sub = f"{path}.{key}" if path else key
                if sub in out:  # an explicit key, met before a merged one of the same name
                    continue
                out[sub] = (key_node.line, key_node.column)
                todo.append((value_node, sub))
            todo.extend((source, path) for source in reversed(merged) if source.kind == "map")
        elif node.kind == "seq":
            for i, item in enumerate(node.items):
                sub = f"{path}[{i}]"
                out.setdefault(sub, (item.line, item.column))
                todo.append((item, sub))
    return dict(sorted(out.items(), key=lambda entry: entry[1]))  # in the file's order


def _config_key(key: str, project: Optional[str]) -> str:
    """A config key as Pulumi names it: `name` -> `<project>:name` (loaders.go,
    `stackConfigNamespacedWithProject`), `ns:config:name` -> `ns:name` (resource/config/key.go, `ParseKey`)."""
    parts = key.split(":")
    if len(parts) == 1 and project:
        return f"{project}:{key}"
    if len(parts) == 3 and parts[1] == "config":
        return f"{parts[0]}:{parts[2]}"
    return key


# --------------------------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------------------------


class _Read:
    __slots__ = ("data", "root")

    def __init__(self, data: Any, root: Optional[_Node]) -> None:
        self.data = data
        self.root = root


def _read(path: Path) -> _Read:
    name = path.name
    try:
        raw = read_regular_file(path, MAX_BYTES, "stack file" if name != "Pulumi.yaml" else "project file")
    except InputFileError as exc:
        raise StackFileError(f"{name}: {str(exc)[len(exc.path) + 2:]}") from None
    if raw.startswith(b"\xef\xbb\xbf"):  # the CLI strips a UTF-8 byte order mark (loaders.go)
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise StackFileError(f"{name}: line {line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8.") from None
    root = _compose(name, text)
    data = _Builder(name).build(root) if root is not None else None
    return _Read(data, root)


def _read_mapping(path: Path) -> _Read:
    read = _read(Path(path))
    if read.data is None:
        read.data = {}
    if not isinstance(read.data, dict):
        raise StackFileError(f"{Path(path).name} must be a YAML mapping (with a `config:` key); "
                             f"got {'a list' if isinstance(read.data, list) else 'a single value'}.")
    return read


def _read_yaml(path: Path) -> dict[str, Any]:
    """A project or stack file as a mapping (empty for an empty file)."""
    data: dict[str, Any] = _read_mapping(path).data
    return data


def _project_name(project_dir: Path) -> str:
    name = _read_yaml(project_dir / "Pulumi.yaml").get("name")
    if not isinstance(name, str) or not name:
        raise StackFileError("Pulumi.yaml: `name:` must be the project's name (text).")
    return name


def _read_stack_file(path: Path, project: Optional[str] = None) -> dict[str, Any]:
    """The `config:` mapping of a stack file, keys named as Pulumi names them."""
    path = Path(path)
    read = _read_mapping(path)
    data: dict[str, Any] = read.data
    stray = [str(k) for k in data if k not in STACK_FILE_KEYS]
    if stray:
        raise StackFileError(
            f"{path.name} has {', '.join(f'`{terminal(k)}`' for k in stray)} at the top level, where a stack file only has "
            f"{', '.join(f'`{k}`' for k in STACK_FILE_KEYS)}: configuration keys go under `config:` "
            "(`config:` on its own line, each key indented below it)."
        )
    config = data.get("config")
    if config is not None and not isinstance(config, dict):
        raise StackFileError(f"{path.name}: `config:` must be a mapping of keys to values; got "
                             f"{'a list' if isinstance(config, list) else 'a single value'}.")
    root = read.root

    def where(key: str) -> str:  # positions are worked out only for a message
        return _where(_located(root, project) if root is not None else {}, key)

    out: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in (config or {}).items():
        parts = key.split(":")
        if len(parts) > 3 or (len(parts) == 3 and parts[1] != "config"):
            raise StackFileError(
                f"{path.name}: {where(key)}the config key `{terminal(key)}` has too many `:`; Pulumi "
                "reads config keys as `<namespace>:<name>` (or the older `<namespace>:config:<name>`).")
        full = _config_key(key, project)
        if full in written:
            raise StackFileError(
                f"{path.name}: {where(full)}`{terminal(key)}` and `{terminal(written[full])}` are one config "
                f"key, `{terminal(full)}`, written twice; the Pulumi CLI would keep one at random. Keep one of them.")
        written[full] = key
        _check_numbers(path.name, full, value, where)
        out[full] = value
    return out


def _where(where: Mapping[str, tuple[int, int]], key: str) -> str:
    at = where.get(key)
    return f"line {at[0]}, column {at[1]}: " if at else ""


def _check_numbers(name: str, key: str, value: Any, where: Callable[[str], str]) -> None:
    """Pulumi stores config values as JSON, which has no NaN or infinity: the CLI stops on them
    (object.go, `MarshalString` -> encoding/json "unsupported value")."""
    todo: list[tuple[str, Any]] = [(key, value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise StackFileError(f"{name}: {where(path)}`{terminal(path)}` is {item}, which a Pulumi config "
                                 "value cannot hold (it is stored as JSON); quote it if it is meant as text.")
        if isinstance(item, dict):
            todo.extend((f"{path}.{k}", v) for k, v in item.items())
        elif isinstance(item, list):
            todo.extend((f"{path}[{i}]", v) for i, v in enumerate(item))


def _go_float(value: float) -> str:
    """A float as Go's encoding/json writes it (shortest digits; exponent form outside [1e-6, 1e21))."""
    if value == 0 or 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", repr(value))


def _go_string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, map keys sorted (depth is bounded by MAX_DEPTH)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_go_string(str(k))}:{_go_json(v)}" for k, v in sorted(value.items())) + "}"
    return _go_string(str(value))


def _encode(value: Any, top_level: bool = True) -> str:
    """A config value as the CLI hands it to the program: text as is, a top-level null as the empty
    string (loaders.go, `checkForEmptyConfig`), anything else as Go's JSON."""
    if isinstance(value, str):
        return value
    if value is None and top_level:
        return ""
    return _go_json(value)


def _stacks(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def stack_config(
    stack: Optional[str],
    overrides: Optional[Mapping[str, Any]] = None,
    project_dir: Path = PROJECT_DIR,
) -> dict[str, str]:
    """Project defaults from Pulumi.yaml, then Pulumi.<stack>.yaml, then overrides (None removes a key)."""
    project = _read_yaml(project_dir / "Pulumi.yaml")
    name = project.get("name")
    if not isinstance(name, str) or not name:
        raise StackFileError("Pulumi.yaml: `name:` must be the project's name (text).")
    values: dict[str, Any] = {}
    declared = project.get("config") or {}
    if not isinstance(declared, dict):
        raise StackFileError("Pulumi.yaml: `config:` must be a mapping of keys to declarations.")
    for key, decl in declared.items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(decl, Mapping) and "default" in decl:
            values[full] = decl["default"]
    if stack is not None:
        # Pulumi's grammar for a stack name (sdk/go/common/tokens/stack_name.go, `ParseStackName`): it
        # also keeps the file name inside the project folder.
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", stack):
            raise UnknownStackError(f"the stack name {terminal(repr(stack))} is not one Pulumi accepts: 1 to 100 "
                                    "letters, digits, `-`, `_` or `.`.")
        path = project_dir / f"Pulumi.{stack}.yaml"
        if not path.exists():
            raise UnknownStackError(
                f"unknown stack {stack!r}: there is no {path.name} (stacks here: {', '.join(_stacks(project_dir)) or 'none'})"
            )
        values.update(_read_stack_file(path, name))
    for key, value in (overrides or {}).items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return {k: _encode(v) for k, v in values.items()}


def locations(path: Path, project: Optional[str] = None) -> dict[str, tuple[int, int]]:
    """Key path under ``config:`` (``cloudrun-mesh:services[0].name``, ``gcp:project``) -> (line, column),
    both 1-based; empty when the file cannot be read (its own errors are reported elsewhere). Keys are
    named as Pulumi names them (a key without a namespace gets the project's, from Pulumi.yaml beside
    the file, or `project`)."""
    path = Path(path)
    try:
        read = _read(path)
        if project is None:
            try:
                project = _project_name(path.parent)
            except StackFileError:
                project = None
    except StackFileError:
        return {}
    return _located(read.root, project) if read.root is not None else {}

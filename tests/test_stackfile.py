"""Stack files as hostile input: bounded reads, values as the Pulumi CLI reads them, duplicate keys,
key locations, and any text in never being anything but a value or one StackFileError."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cloudrun_mesh import stackfile

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

# The bounds every read of a hostile file is held to (docs/input-limits.md, "Stack files").
SECONDS = 2.0
PEAK_BYTES = 64 << 20  # Python allocations while reading (tracemalloc)
CHILD_ADDRESS_SPACE = 1 << 30  # the child that reads them cannot grow past this
# In-process reads of small generated texts: far above what they take (milliseconds), so that a
# stall of this shared machine is not mistaken for unbounded work.
PROPERTY_SECONDS = 5.0


def _laughs() -> str:
    """The "billion laughs" file: nine levels of nine aliases (9**9 values), under a key nobody reads."""
    rows = ['    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"    {cur}: &{cur} [{','.join(['*' + prev] * 9)}]")
    return "config:\n  gcp:region: us-central1\n  team:unused:\n" + "\n".join(rows) + "\n"


def _alias_chain() -> str:
    """Each anchor 40 levels deep holds an alias of the one before: 3 anchors are 120 levels."""
    rows = ["config:", "  team:deep:"]
    for i, name in enumerate("abc"):
        inner = "1" if i == 0 else f"*{'abc'[i - 1]}"
        rows.append(f"    {name}: &{name} " + "[" * 40 + inner + "]" * 40)
    return "\n".join(rows) + "\n"


def _block_nesting(levels: int) -> str:
    return "config:\n  team:deep:\n" + "".join(f"{'  ' * (i + 2)}k{i}:\n" for i in range(levels)) + f"{'  ' * (levels + 2)}v\n"


Special = Callable[[Path], None]


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _too_large(path: Path) -> None:
    path.write_bytes(b"config:\n  team:x: 1\n" + b"#" * stackfile.MAX_BYTES)


@dataclass(frozen=True)
class Hostile:
    content: Union[str, bytes, Special]
    says: tuple[str, ...]  # fragments of the one-paragraph message
    at: Optional[tuple[int, int]] = None  # line, column named in the message


# Each class of issue 17's stack-file door; each case names the guard that refuses it.
HOSTILE: dict[str, Hostile] = {
    # Unbounded work
    "billion-laughs": Hostile(_laughs(), ("aliases stand for more than 100,000 values",), (9, 12)),
    "deep-flow-nesting": Hostile("config:\n  team:x: " + "[" * 100_000, ("nest more than 64 levels", "line 2, column")),
    "deep-block-nesting": Hostile(_block_nesting(80), ("nest more than 64 levels",), (65, 129)),
    "alias-nesting": Hostile(_alias_chain(), ("nests values more than 64 levels deep", "`*a`"), (4, 51)),
    "recursive-anchor": Hostile("config:\n  team:x: &a [1, *a]\n", ("inside its own anchor",), (2, 18)),
    "undefined-alias": Hostile("config:\n  team:x: *nope\n", ("`*nope` has no anchor",), (2, 11)),
    "over-the-size-limit": Hostile(_too_large, ("1,048,596 bytes; at most 1,048,576",)),
    "fifo": Hostile(_fifo, ("not a regular file",)),
    "directory": Hostile(_directory, ("not a regular file",)),
    "device": Hostile(_device, ("not a regular file",)),
    # Not YAML, or not UTF-8
    "not-utf8": Hostile(b"config:\n  team:x: \xff\n", ("line 2", "not UTF-8")),
    "tab-indent": Hostile("config:\n\tgcp:region: x\n", ("not valid YAML", "indent with spaces"), (2, 1)),
    "nul-byte": Hostile("config:\n  team:x: a\x00b\n", ("not valid YAML",)),
    "unclosed-flow": Hostile("config:\n  team:x: {a: [1\n", ("not valid YAML",), (3, 1)),
    # Keys and values the Pulumi CLI refuses
    "number-key": Hostile("config:\n  1: x\n", ("the key `1` is a number, not text", '"1":'), (2, 3)),
    "null-key": Hostile("config:\n  ~: x\n", ("the key `~` is null, not text",), (2, 3)),
    "boolean-key-nested": Hostile("config:\n  cloudrun-mesh:dns:\n    true: x\n", ("the key `true` is a boolean",), (3, 5)),
    "date-key": Hostile("config:\n  team:x:\n    2025-01-01: launch\n", ("the key `2025-01-01` is a date",), (3, 5)),
    "mapping-key": Hostile("config:\n  ? {a: 1}\n  : x\n", ("is a mapping or list, not text",), (2, 5)),
    "nan-value": Hostile("config:\n  cloudrun-mesh:dns:\n    ttl: .nan\n", ("`cloudrun-mesh:dns.ttl` is nan",), (3, 5)),
    "infinite-value": Hostile("config:\n  team:x: -.inf\n", ("`team:x` is -inf",), (2, 3)),
    "bad-base64": Hostile("config:\n  team:x: !!binary '%%%'\n", ("`!!binary` value is not base64",), (2, 11)),
    "binary-not-text": Hostile("config:\n  team:x: !!binary /w==\n", ("not UTF-8 text once decoded",), (2, 11)),
    "int-tag-on-text": Hostile("config:\n  team:x: !!int abc\n", ("`!!int abc` is not a int",), (2, 11)),
    "bool-tag-on-yes": Hostile("config:\n  cloudrun-mesh:protect: !!bool yes\n", ("`!!bool yes` is not a bool",), (2, 26)),
    "three-colons": Hostile("config:\n  a:b:c: x\n", ("`a:b:c` has too many `:`",), (2, 3)),
    "merge-of-text": Hostile("config:\n  team:x: {<<: text}\n", ("merge key `<<` takes a mapping",), (2, 16)),
    # Duplicate keys
    "duplicate-key": Hostile("config:\n  cloudrun-mesh:protect: true\n  cloudrun-mesh:protect: false\n",
                             ("`cloudrun-mesh:protect` is written twice", "first at line 2"), (3, 3)),
    "two-config-roots": Hostile("config:\n  gcp:region: a\nconfig:\n  gcp:region: b\n",
                                ("`config` is written twice", "first at line 1"), (3, 1)),
    "duplicate-in-list-item": Hostile("config:\n  cloudrun-mesh:services:\n    - name: ads\n      port: 1\n      name: b\n",
                                      ("`name` is written twice", "first at line 3"), (5, 7)),
    "one-key-two-spellings": Hostile("config:\n  protect: true\n  cloudrun-mesh:protect: false\n",
                                     ("`cloudrun-mesh:protect` and `protect` are one config key",), (2, 3)),
    # Not a stack file
    "top-level-list": Hostile("- config\n", ("must be a YAML mapping",)),
    "config-a-list": Hostile("config:\n  - a\n", ("`config:` must be a mapping",)),
    "key-without-config-root": Hostile("gcp:region: x\n", ("`gcp:region` at the top level",)),
}


def _stack_name(case: str) -> str:
    return "hostile-" + case


def _write(project: Path, case: str, content: Union[str, bytes, Special]) -> None:
    path = project / f"Pulumi.{_stack_name(case)}.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content(path)


def _limit_child() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


def read_bounded(project: Path, stacks: list[str], timeout: float = 120.0) -> dict[str, dict]:
    """Read each stack in one child process (stackfile_bounds.py) under an address-space limit."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "stackfile_bounds.py"), str(project), *stacks],
        capture_output=True, text=True, timeout=timeout, preexec_fn=_limit_child, cwd=ROOT,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["stack"]: r for r in results}


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory) -> dict[str, dict]:
    project = tmp_path_factory.mktemp("hostile")
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    for case, hostile in HOSTILE.items():
        _write(project, case, hostile.content)
    return read_bounded(project, [_stack_name(c) for c in HOSTILE])


def test_the_billion_laughs_file_is_as_small_as_the_issue_says():
    assert len(_laughs().encode()) < 700


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_stack_file_is_refused_in_one_paragraph_within_the_bounds(case, hostile_results):
    hostile = HOSTILE[case]
    result = hostile_results.get(_stack_name(case))
    assert result is not None, "the read did not finish: the child process ran out of time or memory"
    assert result["outcome"] == "refused", result
    message = result["message"]
    assert f"Pulumi.{_stack_name(case)}.yaml" in message
    assert "\n" not in message and "Traceback" not in message
    for fragment in hostile.says:
        assert fragment in message, message
    if hostile.at is not None:
        assert f"line {hostile.at[0]}, column {hostile.at[1]}" in message, message
    assert result["seconds"] < SECONDS, result["seconds"]
    assert result["peak"] < PEAK_BYTES, result["peak"]


@pytest.mark.slow
def test_a_stack_file_at_the_size_limit_is_read_within_the_bounds(tmp_path):
    # The largest file read, made of many small keys: the cost of a legitimate file at the limit.
    body = "".join(f"  team:key{i:06d}: value{i}\n" for i in range(30_000))
    text = "config:\n" + body
    text += "#" * (stackfile.MAX_BYTES - len(text.encode()))
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.big.yaml").write_text(text)
    result = read_bounded(tmp_path, ["big"])["big"]
    assert result["outcome"] == "read" and len(result["values"]) > 30_000, result.get("message")
    assert result["seconds"] < 10 * SECONDS and result["peak"] < 4 * PEAK_BYTES, result


# --------------------------------------------------------------------------------------------
# Values as yaml.v3 (the Pulumi CLI's YAML library) reads them.
# --------------------------------------------------------------------------------------------

ACCEPTED = {
    # valid YAML the CLI accepts under another namespace: read and passed on, never our error
    "team:launch-date: 2025-01-01": ("team:launch-date", "2025-01-01 00:00:00 +0000 UTC"),
    "team:when: 2001-12-14t21:59:43.10-05:00": ("team:when", "2001-12-14 21:59:43.1 -0500 -0500"),
    "team:quoted-date: '2025-01-01'": ("team:quoted-date", "2025-01-01"),
    "team:not-a-date: 2025-02-30": ("team:not-a-date", "2025-02-30"),
    "team:blob: !!binary aGVsbG8=": ("team:blob", "hello"),
    "team:set: !!set {a, b}": ("team:set", '{"a":null,"b":null}'),
    "team:local: !thing text": ("team:local", "text"),
    "team:flags: [on, off, y, n, yes, no]": ("team:flags", '["on","off","y","n","yes","no"]'),
    # YAML 1.2 core: yes/no/on/off are text; only true/True/TRUE and false/... are booleans
    "cloudrun-mesh:protect: yes": ("cloudrun-mesh:protect", "yes"),
    "cloudrun-mesh:adopt: off": ("cloudrun-mesh:adopt", "off"),
    "cloudrun-mesh:protect: True": ("cloudrun-mesh:protect", "true"),
    "team:nums: [0x1F, 0o17, 0b101, 0777, 1_000, 09, 1e3, .5, -0]": ("team:nums", "[31,15,5,511,1000,9,1000,0.5,0]"),
    "team:big: 18446744073709551616": ("team:big", "18446744073709552000"),
    "team:huge: 1e400": ("team:huge", "1e400"),
    "team:digits: " + "9" * 5000: ("team:digits", "9" * 5000),
    "team:nulls: [~, null, NULL, ]": ("team:nulls", "[null,null,null]"),
    "cloudrun-mesh:services:": ("cloudrun-mesh:services", ""),
    "team:html: {a: '<b>&'}": ("team:html", '{"a":"\\u003cb\\u003e\\u0026"}'),
    "team:sorted: {b: 1, a: 2}": ("team:sorted", '{"a":2,"b":1}'),
    "protect: true": ("cloudrun-mesh:protect", "true"),
    "gcp:config:region: europe-west1": ("gcp:region", "europe-west1"),
    "team:quoted-one: {'1': a, '~': b}": ("team:quoted-one", '{"1":"a","~":"b"}'),
    "team:shared: &s {a: 1}\n  team:again: *s": ("team:again", '{"a":1}'),
    "team:base: &b {a: 1, b: 2}\n  team:merged: {<<: *b, b: 3}": ("team:merged", '{"a":1,"b":3}'),
    "team:merged2: {<<: [{a: 1}, {a: 2, c: 3}]}": ("team:merged2", '{"a":1,"c":3}'),
}


def _read_text(tmp: Path, text: str) -> dict[str, str]:
    shutil.copy(ROOT / "Pulumi.yaml", tmp / "Pulumi.yaml")
    (tmp / "Pulumi.t.yaml").write_text(text)
    return stackfile.stack_config("t", project_dir=tmp)


@pytest.mark.parametrize("line", sorted(ACCEPTED))
def test_values_are_read_as_the_pulumi_cli_reads_them(line, tmp_path):
    key, expected = ACCEPTED[line]
    values = _read_text(tmp_path, f"config:\n  {line}\n")
    assert values[key] == expected


def test_only_the_first_document_is_read(tmp_path):
    values = _read_text(tmp_path, "config:\n  team:x: a\n---\nconfig:\n  team:x: b\n")
    assert values["team:x"] == "a"


def test_a_byte_order_mark_is_skipped_as_the_cli_skips_it(tmp_path):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.t.yaml").write_bytes(b"\xef\xbb\xbfconfig:\n  team:x: a\n")
    assert stackfile.stack_config("t", project_dir=tmp_path)["team:x"] == "a"


def test_the_shipped_stacks_read_as_before():
    # Objects as Go's JSON (sorted keys, compact); the program decodes the same values. Every stack
    # file there is, whatever it holds.
    stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
    assert stacks
    for stack in stacks:
        values = stackfile.stack_config(stack)
        if "cloudrun-mesh:protect" in values:
            assert values["cloudrun-mesh:protect"] in ("true", "false")
        for key in ("cloudrun-mesh:dns", "cloudrun-mesh:clients", "cloudrun-mesh:services"):
            if key in values:
                assert isinstance(json.loads(values[key]), (dict, list)), (stack, key)


# --------------------------------------------------------------------------------------------
# Locations: every key path, list items included.
# --------------------------------------------------------------------------------------------


def _locations_point_at_their_keys(file: Path) -> dict[str, tuple[int, int]]:
    where = stackfile.locations(file)
    lines = file.read_text().splitlines()
    for path, (line, column) in where.items():
        leaf = path.rsplit(".", 1)[-1].split("[")[0]
        text = lines[line - 1][column - 1:]
        if path.endswith("]"):
            assert lines[line - 1][column - 3:column - 1] == "- " or text[:1] in "-[{", (path, text)
        else:
            assert text.startswith(leaf), (path, text)
    return where


def test_locations_name_every_key_path_including_list_items(tmp_path):
    # The tests' prod-like stack file (tests/stackkit.py): two services, a client with three invokers.
    from stackkit import PROD_LIKE, write_stack

    where = _locations_point_at_their_keys(write_stack(tmp_path, "prod", PROD_LIKE))
    assert "cloudrun-mesh:services[0].name" in where and "cloudrun-mesh:clients[1].invokers[2]" in where


@pytest.mark.parametrize("file", sorted(ROOT.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_locations_in_each_stack_file_point_at_their_keys(file):
    assert _locations_point_at_their_keys(file)


def test_locations_name_keys_as_pulumi_does_and_follow_merges(tmp_path):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text("config:\n  protect: true\n  gcp:config:region: x\n  team:b: &b {a: 1}\n  team:m:\n    <<: *b\n    c: 2\n")
    where = stackfile.locations(path)
    assert where["cloudrun-mesh:protect"] == (2, 3)
    assert where["gcp:region"] == (3, 3)
    assert where["team:m.a"] == (4, 15) and where["team:m.c"] == (7, 5)


def test_locations_of_an_unreadable_file_are_empty(tmp_path):
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text("config:\n  a: [\n")
    assert stackfile.locations(path) == {}
    os.mkfifo(tmp_path / "Pulumi.f.yaml")
    assert stackfile.locations(tmp_path / "Pulumi.f.yaml") == {}


# --------------------------------------------------------------------------------------------
# Any text in: a value or one StackFileError, nothing else, quickly.
# --------------------------------------------------------------------------------------------

_SCRATCH = Path(tempfile.mkdtemp(prefix="stackfile-prop-"))
shutil.copy(ROOT / "Pulumi.yaml", _SCRATCH / "Pulumi.yaml")

# Pieces of YAML syntax, so that generated text reaches anchors, tags, flows and nesting often.
_PIECES = st.sampled_from([
    "config:", "\n", "  ", "- ", ": ", "cloudrun-mesh:", "gcp:", "team:x", "protect", "services", "name",
    "&a ", "*a", "&b ", "*b", "<<", "[", "]", "{", "}", ", ", "? ", "!!binary ", "!!set ", "!!int ", "!x ",
    "'", '"', "|\n", ">\n", "#", "~", "1", "0x1F", ".nan", "yes", "2025-01-01", "---\n", "...\n", "%YAML 1.2\n",
    "\t", "\x00", "\ufeff", "\\", "é",
])


def _read_any(text: str) -> None:
    path = _SCRATCH / "Pulumi.p.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    start = time.perf_counter()
    try:
        values = stackfile.stack_config("p", project_dir=_SCRATCH)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
    except stackfile.StackFileError as exc:
        message = str(exc)
        assert message.startswith("Pulumi.p.yaml") and "\n" not in message, message
    assert time.perf_counter() - start < PROPERTY_SECONDS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
@example("config:\n  1: x\n")
@example("config:\n  team:x: &a [*a]\n")
def test_any_text_is_a_stack_file_or_one_stack_file_error(text):
    _read_any(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=60).map("".join))
@example("config:\n  team:x: &a [1]\n  team:y: {<<: *a}\n")
@example("config:\n  team:x: !!binary ===\n")
@example("[")  # an error at the end of a text without a final line break
def test_any_yaml_like_text_is_a_stack_file_or_one_stack_file_error(text):
    _read_any(text)


@pytest.mark.parametrize("stack", ["../dev", "dev\n", "a/b", "", "x" * 101, "dev;rm"])
def test_a_stack_name_outside_pulumis_grammar_is_refused_before_any_file_is_opened(stack):
    with pytest.raises(stackfile.UnknownStackError, match="not one Pulumi accepts"):
        stackfile.stack_config(stack)

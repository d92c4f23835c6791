"""The README is the front door: it must name every config key, stack output and command flag."""

from __future__ import annotations

import argparse
import importlib

import pytest
from testkit import ROOT

from cloudrun_mesh import config
from cloudrun_mesh.__main__ import COMMANDS

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_both_commands_are_documented():
    assert "make plan" in README and "make test" in README
    assert README.index("make plan") < README.index("make test")  # the plan is the first command


@pytest.mark.parametrize("key", config.TOP_LEVEL_KEYS)
def test_every_top_level_key(key):
    assert f"`cloudrun-mesh:{key}" in README


@pytest.mark.parametrize("obj, field", [(o, f) for o, fields in config.FIELDS.items() for f in fields])
def test_every_object_field(obj, field):
    list_item = {"services": "services[i]", "clients": "clients[i]"}.get(obj)
    if list_item:
        assert f"`{list_item}.{field}`" in README
    elif obj == "cluster":  # one row: `cloudrun-mesh:cluster.name` / `.location` / `.project`
        row = next(line for line in README.splitlines() if "`cloudrun-mesh:cluster.name`" in line)
        assert field == "name" or f"`.{field}`" in row
    else:
        assert f"`cloudrun-mesh:{obj}.{field}`" in README


def test_every_stack_output(dev_run):
    for name in dev_run.outputs:
        assert f"`{name}`" in README, name


def _flags(command: str) -> list[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(COMMANDS[command]).add_parser(sub)
    [subparser] = sub.choices.values()
    return [s for a in subparser._actions for s in a.option_strings if s.startswith("--") and s != "--help"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_flag(command):
    flags = _flags(command)
    assert flags
    for flag in flags:
        assert f"`{flag}" in README, f"{command} {flag}"


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def test_environments_section_names_what_must_differ():
    text = _section("Environments")
    for key in ("cloudrun-mesh:dns.zone", "cloudrun-mesh:dns.suffix", "clients[i].name", "services[i].namespace"):
        assert f"`{key}`" in text, key
    assert "tests/test_environments.py" in text


def test_every_checkov_check_the_sample_may_fail_is_explained():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    accepted = next(line for line in makefile.splitlines() if line.startswith("CHECKOV_ACCEPTED"))
    checks = accepted.split(":=", 1)[1].strip().split(",")
    assert 0 < len(checks) <= 4
    text = _section("The sample workload")
    rows = [line for line in text.splitlines() if line.startswith("| `CKV")]
    assert sorted(row.split("`")[1].split()[0] for row in rows) == sorted(checks)


def test_every_marker_of_the_plan_is_explained():
    from cloudrun_mesh.offline import harness

    text = _section("Quick start: see the plan, offline").split("\n### ")[0]
    rows = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `<")}
    assert rows == set(harness.MARKERS)


def _reference_rows() -> dict[str, list[str]]:
    """The configuration reference table: first cell (the key, without backticks) -> the other cells."""
    rows = {}
    for line in _section("Configuration reference").splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0].split("`")[1]] = cells[1:]
    return rows


def _reference_key(obj: str, field: str) -> str:
    if obj in ("services", "clients"):
        return f"{obj}[i].{field}"
    if obj == "cluster":  # one row for the three fields
        return "cloudrun-mesh:cluster.name"
    return f"cloudrun-mesh:{obj}.{field}"


@pytest.mark.parametrize(
    "key",
    sorted({f"cloudrun-mesh:{k}" for k in (*config.SCALAR_DEFAULTS, "services", "clients")}
           | {_reference_key(o, f) for o, fields in config.FIELDS.items() for f in fields}),
)
def test_every_key_has_a_reference_row_with_type_default_and_rule(key):
    rows = _reference_rows()
    assert key in rows, f"no row for `{key}` in the configuration reference"
    type_, default, rule = rows[key]
    assert type_ in ("string", "strings", "int", "bool", "list"), (key, type_)
    assert default and rule and len(rule) > 20, key


def test_the_reference_shows_both_ways_of_writing_a_nested_key():
    text = _section("Configuration reference")
    assert "```yaml" in text and "pulumi config set --path 'cloudrun-mesh:" in text

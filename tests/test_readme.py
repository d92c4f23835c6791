"""The docs stay true: the README is the front door, every config key, stack output and command flag
is documented, every link and anchor resolves, and every code example is executed or checked."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from docs_support import README, ROOT, page, pages, section
from markdown_it import MarkdownIt
from stackkit import example_evaluation, example_value

from cloudrun_mesh import config
from cloudrun_mesh.__main__ import COMMANDS
from cloudrun_mesh.offline import harness, plan

FRONT = page(README)
CONFIGURATION = page("docs/configuration.md")
MAX_README_LINES = 260
# The page that documents each command's flags.
COMMAND_PAGES = {"plan": "docs/offline-plan.md", "verify": "docs/verify.md", "policy": "docs/policies.md"}


def test_both_commands_are_documented():
    assert "make plan" in FRONT and "make test" in FRONT
    assert FRONT.index("make plan") < FRONT.index("make test")  # the plan is the first command


def test_the_readme_stays_a_front_door():
    assert len(FRONT.splitlines()) < MAX_README_LINES


def test_the_readme_links_every_page():
    linked = {_split(href)[0] for href in _links(README)}
    assert set(pages()) - {README} <= {os.path.normpath(path) for path in linked}


@pytest.mark.parametrize("name", [p for p in pages() if p != README])
def test_every_page_starts_with_a_summary_and_a_way_back(name):
    lines = page(name).splitlines()
    assert lines[0].startswith("# ") and lines[1] == ""
    back = os.path.relpath(ROOT / README, (ROOT / name).parent)
    assert lines[2].endswith(f"[← README]({back})") and len(lines[2]) > len(back) + 30


@pytest.mark.parametrize("key", config.TOP_LEVEL_KEYS)
def test_every_top_level_key(key):
    assert f"`cloudrun-mesh:{key}" in CONFIGURATION


@pytest.mark.parametrize("obj, field", [(o, f) for o, fields in config.FIELDS.items() for f in fields])
def test_every_object_field(obj, field):
    list_item = {"services": "services[i]", "clients": "clients[i]"}.get(obj)
    if list_item:
        assert f"`{list_item}.{field}`" in CONFIGURATION
    elif obj == "cluster":  # one row: `cloudrun-mesh:cluster.name` / `.location` / `.project`
        row = next(line for line in CONFIGURATION.splitlines() if "`cloudrun-mesh:cluster.name`" in line)
        assert field == "name" or f"`.{field}`" in row
    else:
        assert f"`cloudrun-mesh:{obj}.{field}`" in CONFIGURATION


def test_every_stack_output(dev_run):
    outputs = section("Stack outputs")
    for name in dev_run.outputs:
        assert f"`{name}`" in outputs, name


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(COMMANDS[command]).add_parser(sub)
    [subparser] = sub.choices.values()
    subparser.allow_abbrev = False  # an example spells each flag in full
    return subparser


def _flags(command: str) -> list[str]:
    return [s for a in _parser(command)._actions for s in a.option_strings if s.startswith("--") and s != "--help"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_flag(command):
    flags = _flags(command)
    assert flags
    text = page(COMMAND_PAGES[command])
    for flag in flags:
        assert f"`{flag}" in text, f"{command} {flag}"


def test_environments_section_names_what_must_differ():
    text = section("Environments")
    for key in ("cloudrun-mesh:dns.zone", "cloudrun-mesh:dns.suffix", "clients[i].name", "services[i].namespace"):
        assert f"`{key}`" in text, key
    assert "tests/test_environments.py" in text


def test_every_checkov_check_the_sample_may_fail_is_explained():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    accepted = next(line for line in makefile.splitlines() if line.startswith("CHECKOV_ACCEPTED"))
    checks = accepted.split(":=", 1)[1].strip().split(",")
    assert 0 < len(checks) <= 4
    text = section("The sample workload")
    rows = [line for line in text.splitlines() if line.startswith("| `CKV")]
    assert sorted(row.split("`")[1].split()[0] for row in rows) == sorted(checks)


def test_every_marker_of_the_plan_is_explained():
    text = section("Quick start: see the plan, offline").split("\n### ")[0]
    rows = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `<")}
    assert rows == set(harness.MARKERS)


def _reference_rows() -> dict[str, list[str]]:
    """The configuration reference table: first cell (the key, without backticks) -> the other cells."""
    rows = {}
    for line in section("Configuration reference").splitlines():
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
    text = section("Configuration reference")
    assert "```yaml" in text and "pulumi config set --path 'cloudrun-mesh:" in text


# --------------------------------------------------------------------------------------------
# Links and anchors, as GitHub renders them.
# --------------------------------------------------------------------------------------------

MD = MarkdownIt("commonmark").enable("table")


def github_slug(title: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation removed (hyphens kept), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page, a repeated one numbered as GitHub does (`-1`, `-2`)."""
    seen: dict[str, int] = {}
    found = set()
    tokens = MD.parse(text)
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            inline = tokens[i + 1]
            plain = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
            slug = github_slug(plain)
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def _links(name: str, text: str | None = None) -> list[str]:
    """The targets of every relative link and image of a page (not web, mail or other schemes)."""
    hrefs = []

    def walk(tokens):
        for token in tokens:
            if token.type == "link_open":
                hrefs.append(token.attrGet("href"))
            elif token.type == "image":
                hrefs.append(token.attrGet("src"))
            if token.children:
                walk(token.children)

    walk(MD.parse(page(name) if text is None else text))
    return [h for h in hrefs if not re.match(r"[a-z][a-z0-9+.-]*:", h or "", re.I)]


def _split(href: str) -> tuple[str, str]:
    path, _, anchor = href.partition("#")
    return path, anchor


def broken_links(name: str, text: str | None = None) -> list[str]:
    """Each relative link of the page `name` (its text, or `text` in its place) that does not resolve."""
    broken = []
    for href in _links(name, text):
        path, anchor = _split(href)
        target = (ROOT / name).parent / path if path else ROOT / name
        if not target.exists():
            broken.append(f"{name}: {href}: no file {path}")
        elif anchor:
            target_text = text if not path and text is not None else target.read_text(encoding="utf-8")
            if target.suffix != ".md" or anchor not in anchors(target_text):
                broken.append(f"{name}: {href}: no heading #{anchor} in {os.path.relpath(target, ROOT)}")
    return broken


@pytest.mark.parametrize("name", pages())
def test_every_relative_link_and_anchor_resolves(name):
    assert _links(name) or name == "bench/README.md"
    assert broken_links(name) == []


def test_the_link_check_catches_a_missing_file_or_heading():
    text = page(README) + "\n[a](docs/nope.md) [b](docs/verify.md#no-such-heading) [c](#where-to-go-next)\n"
    assert broken_links(README, text) == [
        "README.md: docs/nope.md: no file docs/nope.md",
        "README.md: docs/verify.md#no-such-heading: no heading #no-such-heading in docs/verify.md",
    ]
    assert github_slug("2. What the first `pulumi up` does") == "2-what-the-first-pulumi-up-does"
    assert anchors("# A\n## A\n") == {"a", "a-1"}


# --------------------------------------------------------------------------------------------
# Every code example of every page is executed or checked.
# --------------------------------------------------------------------------------------------


def code_blocks() -> list[tuple[str, str, str]]:
    """(page, info string, content) of every fenced code block of every page."""
    return [(name, t.info.strip(), t.content) for name in pages() for t in MD.parse(page(name)) if t.type == "fence"]


BLOCKS = code_blocks()
MAKE_TARGETS = set(re.search(r"^\.PHONY: (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split())


def _example_id(block: tuple[str, str, str]) -> str:
    return f"{block[0]}:{block[1]}:{block[2].splitlines()[0][:40]}"


def test_every_block_has_a_language_this_file_checks():
    assert {info for _, info, _ in BLOCKS} <= {"sh", "yaml", "text", "console"}  # console: tests/test_policy.py
    assert len(BLOCKS) >= 18  # every example of the former single README (its make plan and make test now share one)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[1] == "yaml"], ids=_example_id)
def test_every_yaml_example_is_a_valid_stack_configuration(block):
    document = yaml.safe_load(block[2])
    values = document["config"]
    raw = {k.split(":", 1)[1]: v for k, v in values.items() if k.startswith("cloudrun-mesh:")}
    assert set(values) - {f"cloudrun-mesh:{k}" for k in raw} <= {"gcp:project", "gcp:region"}
    parsed = config.parse(raw, values.get("gcp:project", "my-project"), values.get("gcp:region", "us-central1"))
    assert parsed.project == values.get("gcp:project", "my-project")


def _commands(script: str) -> list[list[str]]:
    """The simple commands of a shell example, each as its words (comments, redirections and the
    operators `&&`, `||`, `;`, `|` split them)."""
    joined = script.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for word in lexer:
            if word in (";", "&&", "||", "|", "(", ")", "&"):
                commands.append(words)
                words = []
            elif word in (">", ">>", "<"):
                next(lexer, None)  # the redirection's file
            else:
                words.append(word)
        commands.append(words)
    return [c for c in commands if c]


REPOSITORY_FILE = re.compile(r"(policy|tests|bench|\.github|cloudrun_mesh|components)/[\w./-]*\.(py|json|txt|yaml|yml|md)")


def _check_command(words: list[str]) -> None:
    for word in words:  # a file of this repository that an example names (a flag's value included)
        path = word.split("=", 1)[-1]
        assert not REPOSITORY_FILE.fullmatch(path) or (ROOT / path).is_file(), f"{' '.join(words)}: no file {path}"
    if words[0] == "make":
        targets = [w for w in words[1:] if "=" not in w]
        assert targets and set(targets) <= MAKE_TARGETS, words
        variables = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        assert set(variables) <= {"STACK", "ARGS"}, words
        if "STACK" in variables:
            assert variables["STACK"] in harness.stacks() or variables["STACK"] == "<stack>", words
        if "ARGS" in variables and targets[0] in COMMANDS:
            _parser(targets[0]).parse_args(shlex.split(variables["ARGS"]))
    elif words[:3] in (["python", "-m", "cloudrun_mesh"], [".venv/bin/python", "-m", "cloudrun_mesh"]):
        assert words[3] in COMMANDS, words
        _parser(words[3]).parse_args(words[4:])
    elif words[0].startswith((".venv/bin/python", "python3")) and len(words) > 1 and words[1].endswith(".py"):
        assert (ROOT / words[1]).is_file(), words
        if words[1] == "bench/bench.py":
            bench = subprocess.run([sys.executable, words[1], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert bench.returncode == 0 and all(w.split("=")[0] in bench.stdout for w in words[2:] if w.startswith("--"))


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[1] == "sh"], ids=_example_id)
def test_every_shell_example_parses_and_names_what_exists(block):
    syntax = subprocess.run(["bash", "-n"], input=block[2], capture_output=True, text=True, timeout=10)
    assert syntax.returncode == 0, syntax.stderr
    for words in _commands(block[2]):
        _check_command(words)


def test_the_shell_check_catches_an_unknown_target_or_flag():
    with pytest.raises(AssertionError):
        _check_command(["make", "plann"])
    with pytest.raises(AssertionError, match="no file policy/config/prod.json"):
        _check_command(["pulumi", "preview", "--policy-pack-config", "policy/config/prod.json"])
    with pytest.raises(SystemExit):
        _check_command([".venv/bin/python", "-m", "cloudrun_mesh", "plan", "--stak", "dev"])
    with pytest.raises(SystemExit):
        _check_command(["make", "plan", "STACK=prod", "ARGS=--difff base.json"])
    with pytest.raises(SystemExit):  # a prefix argparse would accept is not the documented flag
        _check_command(["make", "plan", "STACK=prod", "ARGS=--dif base.json"])


# The text examples show what a command prints; each is compared with a real run.
VERIFY_EXAMPLE = "Checking 2 pairs"  # tests/test_verify_cli.py, test_readme_example_matches_a_run
DIFF_EXAMPLE = "Previewing update (prod) offline, compared with main"
PLAN_EXAMPLE = "Previewing update (dev) offline: nothing"
DISCOVERY_EXAMPLE = "::error::.github/promotion:2:"


def test_every_text_example_is_one_this_file_knows():
    firsts = sorted(content.splitlines()[0] for _, info, content in BLOCKS if info == "text")
    assert len(firsts) == 4
    assert [f for f in firsts if not f.startswith((VERIFY_EXAMPLE, DIFF_EXAMPLE, PLAN_EXAMPLE, DISCOVERY_EXAMPLE))] == []
    checker = (ROOT / "tests" / "test_verify_cli.py").read_text(encoding="utf-8")
    assert 'page("docs/verify.md")' in checker and "def test_readme_example_matches_a_run" in checker


def _text_example(first: str) -> str:
    return next(content for _, info, content in BLOCKS if info == "text" and content.startswith(first))


def test_the_diff_example_is_what_the_plan_prints():
    base = {"gcp:project": "my-project"}
    # The example prod stack of the tests (tests/stackkit.py): the shipped one is the users' to edit.
    dns = {**example_value("prod", "cloudrun-mesh:dns"), "suffix": "mesh.example"}
    before = plan.build_plan(example_evaluation("prod", base, preview=True))
    after = plan.build_plan(example_evaluation("prod", {**base, "cloudrun-mesh:dns": dns}, preview=True))
    example = _text_example(DIFF_EXAMPLE).splitlines()
    assert example == plan.format_plan(after, plan.diff_plans(before, after), before, base_label="main")


def test_the_plan_example_is_what_the_plan_prints(tmp_path, monkeypatch, update_snapshots):
    # What `make plan` prints for the Makefile's default stack, dev, with `--project my-project` (as
    # the page says): the stack file Pulumi.dev.yaml as it is, or the tests' dev-like stack when there
    # is none. `make snapshots` rewrites the example after the stack file changed: review the diff.
    import io
    from pathlib import Path

    from stackkit import examples_project

    project_dir = harness.PROJECT_DIR if "dev" in harness.stacks() else examples_project()
    monkeypatch.chdir(tmp_path)  # files named as `make plan` names them, under build/plan
    out, err = io.StringIO(), io.StringIO()
    code = plan.run_plan("dev", Path("build/plan"), project="my-project", stdout=out, stderr=err, env={},
                         color="never", project_dir=project_dir)
    assert code == 0, err.getvalue()
    shown, printed = _text_example(PLAN_EXAMPLE), out.getvalue()
    if update_snapshots and shown != printed:
        path = ROOT / "docs" / "offline-plan.md"
        doc = path.read_text(encoding="utf-8")
        assert doc.count(shown) == 1
        path.write_text(doc.replace(shown, printed), encoding="utf-8")
    else:
        assert shown.splitlines() == printed.splitlines()


def test_the_discovery_error_example_is_what_the_script_prints(tmp_path):
    for name in ("dev", "prod"):
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "promotion").write_text("dev\nstaging\nprod\n")
    result = subprocess.run([sys.executable, str(ROOT / ".github" / "scripts" / "stacks.py"), "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() + result.stderr.strip().splitlines() == [_text_example(DISCOVERY_EXAMPLE).strip()]



def test_the_readme_states_each_doors_limits_as_the_code_holds_them():
    from cloudrun_mesh import stackfile
    from cloudrun_mesh.offline import plan
    from cloudrun_mesh.verify import check, targets

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    stated = [
        f"stack files at most {stackfile.MAX_BYTES >> 20} MiB, {stackfile.MAX_DEPTH} levels deep",
        f"aliases standing for at most {stackfile.MAX_ALIAS_NODES:,} values",
        f"at most {plan.BASE_LIMIT >> 20} MiB and {plan.BASE_DEPTH} levels",
        f"at most {targets.MAX_OUTPUTS_BYTES >> 20} MiB, {targets.MAX_JSON_DEPTH} levels and {targets.MAX_PAIRS:,} client",
        f"with at most {check.MAX_WORKERS} workers",
    ]
    missing = [claim for claim in stated if claim not in readme]
    assert not missing, f"README.md no longer states the limits the code holds: {missing}"

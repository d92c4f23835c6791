"""What a person reads: golden printouts, `--diff` and Markdown per shipped stack; colour rules; usage
errors before evaluation; the base plan door (bounded, checked, nothing injected); --out keeps what it
did not write.

Golden files are regenerated with `make snapshots` and reviewed in the
diff. They hold what the shipped stacks print today; editing a stack changes them on purpose.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import time

import pytest
from markdown_it import MarkdownIt
from testkit import ROOT, shared_evaluation

from cloudrun_mesh.__main__ import main
from cloudrun_mesh.offline import display, harness, plan, plan_diff, plan_report

GOLDEN = ROOT / "tests" / "golden"
pytestmark = pytest.mark.usefixtures("shared_program_runs")
ESC = re.compile(r"\x1b")
MD = MarkdownIt("gfm-like")  # CommonMark plus GFM tables, with raw HTML on, as GitHub renders


def plan_for(stack: str) -> dict:
    return plan.build_plan(shared_evaluation(stack, {"gcp:project": "my-project"}, preview=True))


def changed(base: dict) -> dict:
    """A head that differs from its base the ways a review meets: a replacement, an update, a
    creation, a deletion and an output."""
    head = copy.deepcopy(base)

    def first(type_: str) -> dict | None:
        # Whatever a stack holds: a change is made where the stack has such a resource.
        return next((r for r in head["resources"] if r["type"] == type_), None)

    if (zone := first("gcp:dns/managedZone:ManagedZone")) is not None:
        zone["inputs"]["dnsName"] = "changed." + str(zone["inputs"].get("dnsName", ""))
    if (record := first("gcp:dns/recordSet:RecordSet")) is not None:
        record["inputs"]["ttl"] = int(record["inputs"].get("ttl") or 300) + 1
    if (gone := first("kubernetes:core/v1:Service") or first("gcp:serviceaccount/account:Account")) is not None:
        head["resources"] = [r for r in head["resources"] if r["urn"] != gone["urn"]]
    head["outputs"] = {**head["outputs"], "dnsZone": "changed"}
    return head


def check_golden(name: str, content: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(exist_ok=True)
        path.write_text(content, encoding="utf-8")
    assert path.is_file(), f"{name}: no golden file; run `make snapshots` and review it"
    assert content == path.read_text(encoding="utf-8"), (
        f"{name} changed: review the difference and run `make snapshots` if it is intended")


@pytest.mark.parametrize("stack", harness.stacks())
def test_golden_printout_diff_and_markdown(stack, update_snapshots):
    base = plan_for(stack)
    head = changed(base)
    d = plan.diff_plans(base, head)
    printout = "\n".join(plan.format_plan(base)) + "\n"
    diff_out = "\n".join(plan.format_plan(head, d, base, base_label="main")) + "\n"
    report = plan_report.markdown(head, d, base, "main", plan.format_plan(head, d, base, base_label="main"))
    check_golden(f"{stack}.plan.txt", printout, update_snapshots)
    check_golden(f"{stack}.diff.txt", diff_out, update_snapshots)
    check_golden(f"{stack}.report.md", report, update_snapshots)


def test_every_stack_has_its_golden_files():
    names = sorted(p.name for p in GOLDEN.iterdir())
    assert names == sorted(f"{s}.{k}" for s in harness.stacks() for k in ("plan.txt", "diff.txt", "report.md"))


# -- colour ----------------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("choice, stream, env, expected", [
    ("auto", Tty(), {}, True),
    ("auto", io.StringIO(), {}, False),          # a CI log, a pipe, a file
    ("auto", Tty(), {"NO_COLOR": "1"}, False),   # https://no-color.org
    ("auto", Tty(), {"TERM": "dumb"}, False),
    ("always", io.StringIO(), {}, True),
    ("never", Tty(), {}, False),
])
def test_colour_follows_the_cli_rules(choice, stream, env, expected):
    assert display.use_color(choice, stream, env) is expected


def test_no_escape_code_reaches_a_non_tty_or_the_markdown(tmp_path):
    base_dir = tmp_path / "base"
    assert plan.run_plan("dev", base_dir, stdout=io.StringIO(), stderr=io.StringIO(), env={}) == plan.EXIT_OK
    base = json.loads((base_dir / "dev" / "plan.json").read_text())
    (tmp_path / "base.json").write_text(json.dumps(changed(base)))
    out, md = io.StringIO(), tmp_path / "pr.md"
    assert plan.run_plan("dev", tmp_path / "head", diff=tmp_path / "base.json", markdown_file=md, stdout=out,
                         stderr=io.StringIO(), env={}) == plan.EXIT_OK
    assert not ESC.search(out.getvalue()) and not ESC.search(md.read_text())
    # On a terminal the same run is coloured, and the report still is not.
    tty = Tty()
    assert plan.run_plan("dev", tmp_path / "head", diff=tmp_path / "base.json", markdown_file=md, stdout=tty,
                         stderr=io.StringIO(), env={}) == plan.EXIT_OK
    assert "\x1b[38;5;13m+-" in tty.getvalue()  # a replacement in the CLI's bright magenta
    assert not ESC.search(md.read_text())


# -- usage errors: exit 2 naming the flag, before anything is evaluated ----------------------------


@pytest.mark.parametrize("argv, flag", [
    (["--color", "rainbow"], "--color"),
    (["--show-everything"], "--show-everything"),
])
def test_bad_flags_are_usage_errors(argv, flag, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--out", str(tmp_path), *argv])
    assert exc.value.code == 2 and flag in capsys.readouterr().err
    assert not (tmp_path / "dev").exists()


def test_fail_on_without_diff_is_refused_before_evaluating(tmp_path, monkeypatch):
    def evaluate(*_args, **_kwargs):
        raise AssertionError("evaluated")

    monkeypatch.setattr(plan, "evaluate_offline", evaluate)
    err = io.StringIO()
    assert plan.run_plan("dev", tmp_path, fail_on=["delete"], stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    assert "--fail-on needs --diff" in err.getvalue() and not any(tmp_path.iterdir())
    assert plan.run_plan("dev", tmp_path, color="sometimes", stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    assert "--color 'sometimes'" in err.getvalue()


# -- the base plan door -------------------------------------------------------------------------------


def _base_error(tmp_path, content: str | bytes) -> str:
    base = tmp_path / "base.json"
    base.write_bytes(content if isinstance(content, bytes) else content.encode())
    err = io.StringIO()
    assert plan.run_plan("dev", tmp_path / "out", diff=base, stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    message = err.getvalue().strip()
    assert message.count("\n") == 0 and "Traceback" not in message and message.startswith("error: --diff ")
    assert not (tmp_path / "out").exists()
    return message


URN = "urn:pulumi:dev::p::t:m:T::a"


@pytest.mark.parametrize("document, expected", [
    ({"stack": "dev", "resources": 7}, "`resources` must be a list, not a number"),
    ({"stack": "dev", "resources": [7]}, "resources[0] must be an object, not a number"),
    ({"stack": "dev", "resources": [{"urn": URN, "type": "t:m:T", "inputs": [1]}]},
     "resources[0].inputs must be an object, not a list"),
    ({"stack": "dev", "resources": [{"urn": URN, "type": "t:m:T", "dependencies": "x"}]},
     "resources[0].dependencies must be a list of strings, not a string"),
    ({"stack": "dev", "resources": [], "outputs": []}, "`outputs` must be an object, not a list"),
    ({"stack": "dev", "resources": [{"urn": URN, "type": "t:m:T", "protect": "yes"}]},
     "resources[0].protect must be true or false, not a string"),
])
def test_a_malformed_base_names_the_path(tmp_path, document, expected):
    assert expected in _base_error(tmp_path, json.dumps(document))


def test_a_parent_cycle_in_the_base_is_an_error(tmp_path):
    a, b = "urn:pulumi:dev::p::c:m:C::a", "urn:pulumi:dev::p::c:m:C::b"
    document = {"stack": "dev", "resources": [
        {"urn": a, "type": "c:m:C", "custom": False, "parent": b},
        {"urn": b, "type": "c:m:C", "custom": False, "parent": a},
    ]}
    assert "parents form a cycle" in _base_error(tmp_path, json.dumps(document))


def test_a_deep_or_huge_or_special_base_is_refused_at_once(tmp_path):
    assert "nest 100,001 levels deep" in _base_error(tmp_path, "[" * 100_001 + "]" * 100_001)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    err = io.StringIO()
    started = time.monotonic()
    assert plan.run_plan("dev", tmp_path / "out", diff=fifo, stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    assert time.monotonic() - started < 10 and "not a regular file" in err.getvalue()
    err = io.StringIO()
    assert plan.run_plan("dev", tmp_path / "out", diff=plan.Path("/dev/zero"), stdout=io.StringIO(),
                         stderr=err) == plan.EXIT_USAGE
    assert "not a regular file" in err.getvalue()


def test_base_values_cannot_inject_into_the_terminal_or_the_markdown():
    base = plan_for("dev")
    hostile = "x```\n`</code><img src=x onerror=alert(1)>[link](http://e.test)\x1b[31m\u009b31m\n::error title=X::y"
    zone = next(r for r in base["resources"] if r["type"] == "gcp:dns/managedZone:ManagedZone")
    zone["inputs"]["description"] = hostile
    extra = {**copy.deepcopy(zone), "urn": zone["urn"] + hostile.replace("::", ":"), "name": "n" + hostile}
    base["resources"].append(extra)
    base["outputs"][hostile] = hostile
    head = plan_for("dev")
    d = plan.diff_plans(base, head)
    printed = "\n".join(plan.format_plan(head, d, base, base_label=hostile))
    assert "\x1b" not in printed and "\x9b" not in printed and not any(line.startswith("::") for line in printed.splitlines())
    assert "\\x1b[31m\\x9b31m\\n::error" in printed
    report = plan_report.markdown(head, d, base, hostile, plan.format_plan(head, d, base))
    assert "\x1b" not in report and "\x9b" not in report
    # Rendered as GitHub would (CommonMark with raw HTML on): no HTML, image or link from a value, and
    # exactly the blocks the report writes, each holding the hostile value verbatim where it is shown.
    tokens = MD.parse(report)
    every = tokens + [child for t in tokens if t.children for child in t.children]
    ours = {"<details open><summary>Every change</summary>\n", "<details><summary>Full plan</summary>\n", "</details>\n"}
    assert not {t.type for t in every} & {"html_inline", "image", "link_open"}
    assert {t.content for t in every if t.type == "html_block"} <= ours
    fences = [t for t in tokens if t.type == "fence"]
    assert [t.info for t in fences] == ["diff", "diff", "mermaid", ""]
    assert "<img src=x" in fences[1].content and "<img src=x" in fences[3].content
    # Inside a diff block every line starts with our own marker: a value never picks its colour.
    for t in fences[:2]:
        assert all(line[:1] in "+-! R" for line in t.content.splitlines()), t.content
    chart = report.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert '"' not in "".join(re.findall(r'\["(.*?)"\]', chart)) and "`" not in chart


def test_a_fence_is_longer_than_any_backtick_run_inside():
    block = plan_report.fence(["```", "a ````` b"], "diff")
    assert block[0] == "``````diff" and block[-1] == "``````"
    [fence] = [t for t in MD.parse("\n".join(block)) if t.type == "fence"]
    assert fence.content == "```\na ````` b\n"


# -- what --out writes, and what it never touches -----------------------------------------------------


def test_out_keeps_files_it_did_not_write(tmp_path):
    out = tmp_path / "out"
    assert plan.run_plan("dev", out, stdout=io.StringIO(), stderr=io.StringIO()) == plan.EXIT_OK
    mine = out / "dev" / "k8s" / "hand-written.yaml"
    mine.write_text("kind: ConfigMap\n")
    written = json.loads((out / "dev" / plan.WRITTEN_LIST).read_text())
    stale = out / "dev" / "k8s" / "default-service-old.yaml"
    stale.write_text("left by an earlier plan\n")
    (out / "dev" / plan.WRITTEN_LIST).write_text(json.dumps([*written, "k8s/default-service-old.yaml"]))
    assert plan.run_plan("dev", out, stdout=io.StringIO(), stderr=io.StringIO()) == plan.EXIT_OK
    assert mine.read_text() == "kind: ConfigMap\n"  # never listed: kept
    assert not stale.exists()  # written by an earlier plan and no longer planned: removed
    # A file of the same name as a manifest, not written by a plan: refused, left as it was.
    target = out / "dev" / "k8s" / "default-service-ads.yaml"
    (out / "dev" / plan.WRITTEN_LIST).write_text(json.dumps(["plan.json"]))
    target.write_text("mine\n")
    err = io.StringIO()
    assert plan.run_plan("dev", out, stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    assert "was not written by an earlier plan" in err.getvalue() and target.read_text() == "mine\n"


def test_hard_links_to_the_base_or_the_report_are_never_written(tmp_path):
    out = tmp_path / "out"
    assert plan.run_plan("dev", out, stdout=io.StringIO(), stderr=io.StringIO()) == plan.EXIT_OK
    base = tmp_path / "base.json"
    os.link(out / "dev" / "plan.json", base)
    before = base.read_bytes()
    err = io.StringIO()
    assert plan.run_plan("dev", out, diff=base, stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    assert "hard link" in err.getvalue() and base.read_bytes() == before
    # --markdown pointed at the plan file (by name or by a link) is refused.
    err = io.StringIO()
    assert plan.run_plan("dev", out, markdown_file=out / "dev" / "plan.json", stdout=io.StringIO(),
                         stderr=err) == plan.EXIT_USAGE
    assert "--markdown" in err.getvalue() and json.loads((out / "dev" / "plan.json").read_text())["stack"] == "dev"
    link = tmp_path / "report-link.md"
    os.link(out / "dev" / "plan.json", link)
    assert plan.run_plan("dev", out, markdown_file=link, stdout=io.StringIO(), stderr=io.StringIO()) == plan.EXIT_USAGE


# -- adoption: what is approved is the fields, not the option ------------------------------------------


def test_lifting_ignore_changes_shows_the_fields_that_will_be_applied():
    head = plan_for("dev")
    base = copy.deepcopy(head)
    deployment = next(r for r in base["resources"] if r["type"] == "kubernetes:apps/v1:Deployment")
    deployment["ignoreChanges"] = ["spec"]
    c = plan.diff_plans(base, head).change_of(deployment["urn"])
    assert c is not None and c.action == plan_diff.UPDATE
    paths = [f.path for f in c.fields]
    assert "(ignoreChanges)" not in paths and paths and all(p.startswith("spec.") for p in paths)
    assert all(f.old == plan_diff.LIVE_VALUE for f in c.fields)


# -- scale -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_forty_thousand_deletions_are_drawn_and_listed_in_linear_time():
    head = plan_for("dev")
    base = copy.deepcopy(head)
    template = next(r for r in base["resources"] if r["type"] == "gcp:dns/recordSet:RecordSet")
    for i in range(40_000):
        base["resources"].append({**template, "urn": f"{template['urn']}-{i}", "name": f"r-{i}"})
    started = time.monotonic()
    d = plan.diff_plans(base, head)
    report = plan_report.markdown(head, d, base, "main")
    plan.format_plan(head, d, base)
    assert len(d.of(plan_diff.DELETE)) == 40_000 and "```mermaid" in report
    assert time.monotonic() - started < 30  # was 53 s for the picture alone


def test_turning_adoption_off_shows_the_fields_not_the_option():
    from test_adopt import GUIDE

    config = {"gcp:project": "my-project", **GUIDE}
    adopted = plan.build_plan(harness.run_program("dev", config={**config, "cloudrun-mesh:adopt": True},
                                                  preview=True).raise_error())
    owned = plan.build_plan(harness.run_program("dev", config=config, preview=True).raise_error())
    d = plan.diff_plans(adopted, owned)
    lifted = [c for c in d.changes if any(f.old == plan_diff.LIVE_VALUE for f in c.fields)]
    kinds = {plan_diff.name_of(c.urn) for c in lifted}
    assert any("deployment" in k for k in kinds), kinds
    for c in lifted:
        assert not any(f.path == "(ignoreChanges)" for f in c.fields), c.urn
    printed = "\n".join(plan.format_plan(owned, d, adopted))
    assert "<the live value, kept until now by ignoreChanges> => " in printed
    assert "(ignoreChanges)" not in printed


def test_the_uptime_check_count_is_printed_when_the_program_exports_it():
    p = copy.deepcopy(plan_for("dev"))
    assert "Uptime check" not in "\n".join(plan.format_plan(p))
    p["outputs"][plan.UPTIME_OUTPUT] = 43200
    lines = plan.format_plan(p)
    assert "Uptime check executions per month: 43,200" in lines
    assert lines.index("Uptime check executions per month: 43,200") > lines.index("Resources:")


def test_the_markers_line_names_only_the_markers_the_plan_holds():
    from cloudrun_mesh.offline import fakes, harness, plan

    held = {"criticalPath": [], "outputs": {"check": fakes.ASSIGNED_BY_MONITORING}, "markers": sorted(harness.MARKERS)}
    [line] = [x for x in plan._additions(held) if x.startswith("Markers")]
    assert fakes.ASSIGNED_BY_MONITORING in line
    assert fakes.READ_FROM_GKE not in line and fakes.READ_FROM_RESOURCE_MANAGER not in line
    assert not [x for x in plan._additions({**held, "outputs": {}}) if x.startswith("Markers")]

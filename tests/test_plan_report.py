"""The Markdown report and its Mermaid picture: structure, states, and readability at scale.

No Mermaid parser is installed (the real one needs a browser-like DOM), so the flowchart is
checked line by line against the subset of Mermaid's flowchart grammar the report uses.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from stackkit import example_evaluation as shared_evaluation  # dev and prod: the tests' own example stacks

from cloudrun_mesh.offline import harness, plan, plan_report

NODE = re.compile(r'^\s*(n\d+)\["([^"]*)"\]:::(\w+)$')
EDGE = re.compile(r"^\s*(n\d+) --> (n\d+)$")
SUBGRAPH = re.compile(r'^\s*subgraph (c\d+)\["([^"]*)"\]$')
CLASSDEF = re.compile(r"^\s*classDef (\w+) [\w#:,.\- ]+$")


def check_flowchart(lines: list[str]) -> dict:
    """Parse the flowchart, failing on any line outside the grammar; returns nodes, edges, groups."""
    assert lines[0] == "flowchart LR"
    nodes: dict[str, tuple[str, str]] = {}
    edges: list[tuple[str, str]] = []
    classes: set[str] = set()
    groups: dict[str, list[str]] = {}
    open_group = None
    for line in lines[1:]:
        if m := CLASSDEF.match(line):
            classes.add(m.group(1))
        elif m := SUBGRAPH.match(line):
            assert open_group is None, "nested subgraph"
            open_group = m.group(2)
            groups[open_group] = []
        elif line.strip() == "end":
            assert open_group is not None, "end without subgraph"
            open_group = None
        elif m := NODE.match(line):
            nid, label, state = m.groups()
            assert nid not in nodes, f"node {nid} defined twice"
            assert "<" not in label.replace("<br/>", "") and ">" not in label.replace("<br/>", "")
            nodes[nid] = (label, state)
            if open_group is not None:
                groups[open_group].append(nid)
        elif m := EDGE.match(line):
            edges.append(m.groups())
        else:
            pytest.fail(f"not a flowchart line: {line!r}")
    assert open_group is None, "subgraph not closed"
    assert {state for _, state in nodes.values()} <= classes
    for a, b in edges:
        assert a in nodes and b in nodes and a != b
    assert len(edges) == len(set(edges))
    return {"nodes": nodes, "edges": edges, "groups": groups}


def mermaid_block(report: str) -> list[str]:
    return report.split("```mermaid\n", 1)[1].split("\n```", 1)[0].splitlines()


def plan_for(stack: str, config: dict | None = None) -> dict:
    return plan.build_plan(shared_evaluation(stack, {"gcp:project": "my-project", **(config or {})}, preview=True))


@pytest.fixture(scope="module")
def prod() -> dict:
    return plan_for("prod")


def by_label(chart: dict) -> dict[str, str]:
    return {label.split("<br/>")[-1]: state for label, state in chart["nodes"].values()}


def test_without_a_base_every_resource_is_created(prod):
    report = plan_report.markdown(prod)
    chart = check_flowchart(mermaid_block(report))
    states = by_label(chart)
    assert states["dns-zone"] == "create" and states["mesh-revision"] == "read"
    assert len(chart["nodes"]) == len([r for r in prod["resources"] if r["custom"]])
    assert set(chart["groups"]) >= {"PrivateMeshZone dns", "MeshCloudRunService run-mesh-svc"}
    # Dependencies: the record waits for the zone and the reserved address.
    ids = {label.split("<br/>")[-1]: nid for nid, (label, _) in chart["nodes"].items()}
    assert (ids["dns-zone"], ids["dns-wildcard"]) in chart["edges"]
    assert (ids["dns-address"], ids["dns-wildcard"]) in chart["edges"]


def test_states_of_a_change(prod):
    head = copy.deepcopy(prod)
    zone = next(r for r in head["resources"] if r["name"] == "dns-zone")
    zone["inputs"]["dnsName"] = "other.private."
    record = next(r for r in head["resources"] if r["name"] == "dns-wildcard")
    record["inputs"]["ttl"] = 60
    head["resources"] = [r for r in head["resources"] if r["name"] != "svc-ads-deployment"]
    d = plan.diff_plans(prod, head)
    report = plan_report.markdown(head, d, prod, "main")
    states = by_label(check_flowchart(mermaid_block(report)))
    assert states["dns-zone"] == "replace" and states["dns-wildcard"] == "update"
    assert states["svc-ads-deployment"] == "delete"  # drawn from the base plan
    assert states["run-mesh-svc-sa"] == "unchanged"
    # Destruction leads the report, each with what forces it and what pulumi up will say.
    lines = report.splitlines()
    assert lines[0] == "### cloudrun-mesh offline plan: `prod`, compared with main"
    assert lines[2:4] == ["```diff", "Resources:"]  # the summary first
    assert report.index("#### Deleted or replaced") < report.index("<details open><summary>Every change")
    destroyed = report.split("#### Deleted or replaced", 1)[1]
    assert "- **delete** `svc-ads-deployment`" in destroyed
    assert 'forced by `dnsName`: `"mesh.private." => "other.private."`' in destroyed
    assert destroyed.count(":no_entry: refused by pulumi up") >= 2


def test_a_replacement_carried_on_from_another_says_where_its_new_value_comes_from(prod):
    # The member of the trafficdirector grant is unknown on both sides; what changes it is the new account.
    head = copy.deepcopy(prod)
    account = next(r for r in head["resources"] if r["name"] == "run-mesh-svc-sa")
    account["inputs"]["accountId"] = "mesh-svc-2"
    destroyed = plan_report.markdown(head, plan.diff_plans(prod, head), prod).split("#### Deleted or replaced", 1)[1]
    assert ("- **replace** `run-mesh-svc-trafficdirector`" in destroyed
            and "(a new value from `run-mesh-svc-sa`, which is replaced)" in destroyed)


def test_import_state_is_drawn(prod):
    head = copy.deepcopy(prod)
    base = copy.deepcopy(prod)
    base["resources"] = [r for r in base["resources"] if r["name"] != "dns-zone"]
    zone = next(r for r in head["resources"] if r["name"] == "dns-zone")
    zone["importId"] = "projects/my-project/managedZones/prod"
    states = by_label(check_flowchart(mermaid_block(plan_report.markdown(head, plan.diff_plans(base, head), base))))
    assert states["dns-zone"] == "import"


def test_labels_are_escaped():
    assert plan_report._label('a "b" <c> & d') == "a #34;b#34; #60;c#62; #38; d"


def test_hundreds_of_resources_stay_readable():
    services = [{"name": f"svc-{i:03d}", "namespace": f"ns-{i % 4}", "deploySample": i < 40} for i in range(160)]
    base = plan_for("dev", {"cloudrun-mesh:services": services})
    head = copy.deepcopy(base)
    for r in head["resources"]:  # services[7] moves to another namespace
        if r["name"].startswith("svc-svc-007-"):
            r["inputs"]["metadata"]["namespace"] = "moved"
    d = plan.diff_plans(base, head)
    assert len([r for r in head["resources"] if r["custom"]]) > 2 * plan_report.MAX_NODES
    report = plan_report.markdown(head, d, base, "main")
    chart = check_flowchart(mermaid_block(report))
    assert len(chart["nodes"]) <= plan_report.MAX_NODES and len(chart["edges"]) <= plan_report.MAX_EDGES
    states = by_label(chart)
    # Every changed resource is drawn, one by one.
    for name in ("svc-svc-007-virtualservice", "svc-svc-007-deployment", "svc-svc-007-service"):
        assert states[name] == "replace", name
    # Unchanged components with several resources are folded into one node each...
    assert any(label.startswith("3 resources, unchanged") for label, _ in chart["nodes"].values())
    # ...and what still does not fit is left out, with a note saying how much.
    assert "are drawn as one node per component" in report
    assert re.search(r"_\d+ resources are not drawn \(the picture is capped at \d+ nodes", report)
    assert len(report) < 50_000  # mermaid's default maxTextSize


def test_report_through_the_command_has_the_picture_and_the_full_plan(tmp_path):
    md = tmp_path / "report.md"
    assert plan.run_plan("prod", tmp_path, markdown_file=md, stdout=open("/dev/null", "w"),
                         stderr=open("/dev/null", "w")) == plan.EXIT_OK
    report = md.read_text()
    check_flowchart(mermaid_block(report))
    assert "<details><summary>Full plan</summary>" in report and harness.UNKNOWN in report
    assert json.loads((tmp_path / "prod" / "plan.json").read_text())["stack"] == "prod"

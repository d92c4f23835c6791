"""The offline plan: golden URN/input snapshots, rendered manifests, --diff and exit codes."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys

import pytest
import yaml

from cloudrun_mesh import harness, plan
from cloudrun_mesh.__main__ import main
from conftest import ROOT

SNAPSHOTS = ROOT / "tests" / "snapshots"


def plan_for(stack: str) -> dict:
    run = harness.run_program(stack, config={"gcp:project": plan.PLACEHOLDER_PROJECT}, preview=True).raise_error()
    return plan.build_plan(run)


@pytest.fixture(scope="module")
def plans() -> dict[str, dict]:
    return {stack: plan_for(stack) for stack in ("dev", "prod")}


def snapshot_of(p: dict) -> dict:
    return {
        r["urn"]: {k: r[k] for k in ("type", "parent", "inputs", "protect", "dependencies", "provider")}
        for r in p["resources"]
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_matches_the_golden_snapshot(stack, plans, update_snapshots):
    path = SNAPSHOTS / f"{stack}.json"
    current = snapshot_of(plans[stack])
    if update_snapshots:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    golden = json.loads(path.read_text(encoding="utf-8"))
    gone, new = sorted(set(golden) - set(current)), sorted(set(current) - set(golden))
    assert not gone and not new, (
        f"URNs changed for stack {stack}: this replaces resources in real stacks; add an alias or update the "
        f"snapshot on purpose (pytest --update-snapshots).\n  removed: {gone}\n  added: {new}"
    )
    for urn in golden:
        assert current[urn] == golden[urn], f"{urn} changed; update the snapshot on purpose if intended"


def test_every_stack_file_has_a_snapshot():
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.json")) == harness.stacks()


def test_plan_document_shape(plans):
    p = plans["dev"]
    assert p["preview"] is True and p["stack"] == "dev"
    assert p["summary"] == {"resources": len(p["resources"]), "criticalPath": len(p["criticalPath"])}
    urns = [r["urn"] for r in p["resources"]]
    assert urns == sorted(urns)
    for r in p["resources"]:
        assert {"urn", "type", "name", "parent", "inputs", "dependencies", "propertyDependencies", "protect",
                "deleteBeforeReplace", "replaceOnChanges", "aliases"} <= set(r)
    assert p["outputs"]["cloudRunUrls"] == {"mesh-svc-dev": harness.UNKNOWN}


def test_human_output_has_tree_dependencies_critical_path_outputs_and_summary(plans):
    text = "\n".join(plan.format_plan(plans["prod"]))
    assert "    cloudrun-mesh:index:PrivateMeshZone  dns  [protect]" in text
    assert "        gcp:dns/recordSet:RecordSet  dns-wildcard  [protect]" in text
    assert "depends on: dns-address, dns-zone" in text
    assert "[read]" in text
    assert "Critical path (" in text and "cloudRunUrls: " in text
    p = plans["prod"]
    assert text.splitlines()[-1] == f"{p['summary']['resources']} resources, critical path {p['summary']['criticalPath']}"


# -- rendered manifests ---------------------------------------------------------------------


def test_manifests_are_apply_ready(tmp_path, plans):
    plan.write_plan(plans["prod"], tmp_path)
    files = sorted((tmp_path / "k8s").glob("*.yaml"))
    docs = [yaml.safe_load(f.read_text()) for f in files]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "Namespace", "Service", "VirtualService", "VirtualService"]
    api = {d["kind"]: d["apiVersion"] for d in docs}
    assert api == {"Deployment": "apps/v1", "Namespace": "v1", "Service": "v1", "VirtualService": "networking.istio.io/v1"}
    for d in docs:
        assert d["metadata"]["name"] and (d["metadata"].get("namespace") or d["kind"] == "Namespace")
        assert harness.UNKNOWN not in json.dumps(d)
        assert d["kind"].lower() in files[docs.index(d)].name
    services = {d["metadata"]["name"]: d["metadata"]["namespace"] for d in docs if d["kind"] == "Service"}
    for vs in (d for d in docs if d["kind"] == "VirtualService"):
        dest = vs["spec"]["http"][0]["route"][0]["destination"]["host"]
        if dest in services:
            assert vs["metadata"]["namespace"] == services[dest]
    assert (tmp_path / "k8s" / "cluster-namespace-ads.yaml").is_file()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert isinstance(deployment["spec"]["replicas"], int)


def test_manifests_validate_against_the_vendored_schema(tmp_path, plans):
    from cloudrun_mesh import istio

    plan.write_plan(plans["prod"], tmp_path)
    for f in (tmp_path / "k8s").glob("*virtualservice*.yaml"):
        istio.validate_spec(yaml.safe_load(f.read_text())["spec"])


# -- diff -------------------------------------------------------------------------------------


def test_diff_of_identical_plans_is_empty(plans):
    d = plan.diff_plans(plans["dev"], copy.deepcopy(plans["dev"]))
    assert d.empty and plan.format_diff(d) == ["No changes against the base plan."]


def test_diff_reports_added_removed_changed(plans):
    base = copy.deepcopy(plans["dev"])
    head = copy.deepcopy(plans["dev"])
    record = next(r for r in head["resources"] if r["type"] == "gcp:dns/recordSet:RecordSet")
    record["inputs"]["ttl"] = 60
    dropped = head["resources"].pop(next(i for i, r in enumerate(head["resources"]) if r["name"] == "svc-ads-deployment"))
    lines = plan.format_diff(plan.diff_plans(base, head))
    assert f"- delete   {plan.short(dropped['urn'])}" in lines
    assert any(line.startswith("~ update") and "dns-wildcard" in line and "inputs.ttl" in line for line in lines)
    d = plan.diff_plans(head, base)
    assert d.added == [dropped["urn"]]


def test_diff_flags_urn_changes_as_replacements_unless_aliased(plans):
    base = plans["dev"]
    head = copy.deepcopy(base)
    moved = next(r for r in head["resources"] if r["name"] == "dns-zone")
    old_urn = moved["urn"]
    moved["urn"] = old_urn.replace("cloudrun-mesh:index:PrivateMeshZone$", "")
    moved["parent"] = ""
    d = plan.diff_plans(base, head)
    assert d.replaced_by_urn == [(old_urn, moved["urn"])] and not d.added and not d.removed
    assert any("REPLACE" in line and "add an alias" in line for line in plan.format_diff(d))
    moved["aliases"] = [old_urn]
    d = plan.diff_plans(base, head)
    assert d.aliased == [(old_urn, moved["urn"])] and not d.replaced_by_urn


# -- command --------------------------------------------------------------------------------


def test_command_writes_files_and_prints_the_summary(tmp_path, capsys):
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path), "--markdown", str(tmp_path / "pr.md")]) == 0
    out = capsys.readouterr()
    assert "resources, critical path" in out.out
    assert "placeholder 'my-project'" in out.err
    written = json.loads((tmp_path / "dev" / "plan.json").read_text())
    assert written["stack"] == "dev"
    assert (tmp_path / "dev" / "k8s" / "default-virtualservice-ads-external.yaml").exists()
    assert "offline plan: `dev`" in (tmp_path / "pr.md").read_text()


def test_command_diff_against_an_earlier_plan(tmp_path, capsys):
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path / "base")]) == 0
    base_file = tmp_path / "base" / "dev" / "plan.json"
    base = json.loads(base_file.read_text())
    base["resources"] = [r for r in base["resources"] if r["name"] != "dns-wildcard"]
    base_file.write_text(json.dumps(base))
    capsys.readouterr()
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path / "head"), "--diff", str(base_file)]) == 0
    out = capsys.readouterr().out
    assert "+ create   gcp:dns/recordSet:RecordSet::dns-wildcard" in out
    assert "1 to create, 0 to delete, 0 to replace, 0 to update" in out


def test_unknown_stack_exit_code_and_message(tmp_path):
    err = io.StringIO()
    assert plan.run_plan("staging", tmp_path, stderr=err) == plan.EXIT_USAGE
    assert "unknown stack 'staging'" in err.getvalue() and "dev, prod" in err.getvalue()


def test_bad_config_exit_code_and_message(tmp_path):
    err = io.StringIO()
    assert plan.run_plan("dev", tmp_path, project="Not A Project", stderr=err, stdout=io.StringIO()) == plan.EXIT_CONFIG
    assert "configuration error" in err.getvalue() and "`gcp:project`" in err.getvalue()
    assert not (tmp_path / "dev" / "plan.json").exists()


def test_bad_diff_file(tmp_path):
    bad = tmp_path / "base.json"
    bad.write_text("{not json")
    err = io.StringIO()
    assert plan.run_plan("dev", tmp_path, diff=bad, stderr=err) == plan.EXIT_USAGE
    assert "--diff" in err.getvalue()


def test_module_entry_point_prints_no_traceback_on_user_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cloudrun_mesh", "plan", "--stack", "nope", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == plan.EXIT_USAGE
    assert "Traceback" not in proc.stderr and "unknown stack 'nope'" in proc.stderr

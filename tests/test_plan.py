"""The offline plan: rendered manifests, --diff and exit codes (URN snapshots: tests/test_program.py)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest
import yaml
from stackkit import PROD_LIKE, scratch_project
from stackkit import example_evaluation as shared_evaluation  # dev and prod: the tests' own example stacks
from testkit import ROOT

from cloudrun_mesh.__main__ import main
from cloudrun_mesh.offline import fakes, harness, plan

# The command tests share the evaluations of the stacks as written (conftest.shared_program_runs).
pytestmark = pytest.mark.usefixtures("shared_program_runs")


def plan_for(stack: str) -> dict:
    # As a stack file that sets its project: the snapshots hold the program's own values.
    run = shared_evaluation(stack, {"gcp:project": "my-project"}, preview=True)
    return plan.build_plan(run)


@pytest.fixture(scope="module")
def plans() -> dict[str, dict]:
    return {stack: plan_for(stack) for stack in harness.stacks()}


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
    assert p["gcpProject"] == "my-project" and set(p["markers"]) == set(harness.MARKERS)


def _row(lines: list[str], name: str) -> list[str]:
    """The cells of the table row of a resource: prefix, type (with its tree glyphs), name, plan, info."""
    [line] = [ln for ln in lines if f"  {name}  " in ln + "  " and ("─" in ln or "pulumi:pulumi:Stack" in ln)]
    return re.split(r"(?<=[^│ ])\s{2,}", line.strip())


def test_human_output_reads_like_pulumi_preview(plans):
    p = plans["prod"]
    lines = plan.format_plan(p)
    assert lines[0] == "Previewing update (prod) offline: nothing is contacted"
    assert re.fullmatch(r" {5}Type {2,}Name {2,}Plan {2,}Info", lines[2])
    assert _row(lines, "cloudrun-mesh-prod") == ["+", "pulumi:pulumi:Stack", "cloudrun-mesh-prod", "create"]
    # Tree glyphs under the stack, simplified type tokens (tokens.Type.DisplayName).
    dns = _row(lines, "dns")
    assert dns[0] == "+" and re.fullmatch(r"[├└]─ cloudrun-mesh:index:PrivateMeshZone", dns[1]) and dns[2:] == ["dns", "create"]
    assert re.fullmatch(r"(│  )?├─ gcp:dns:ManagedZone", _row(lines, "dns-zone")[1])
    assert re.fullmatch(r"(│  )?└─ gcp:dns:RecordSet", _row(lines, "dns-wildcard")[1])
    revision = _row(lines, "mesh-revision")
    assert revision[0] == ">" and revision[-1] == "read"
    text = "\n".join(lines)
    assert "Outputs:\n    cloudRunUrls" in text
    custom = [r for r in p["resources"] if not r["read"]]
    summary = lines.index("Resources:")
    # Every resource but the read, and the stack itself, as the CLI counts a first update.
    assert lines[summary + 1] == f"    + {len(custom) + 1} to create" and lines[summary + 2] == ""
    assert lines[summary + 3].startswith(f"Critical path ({p['summary']['criticalPath']}): ")
    assert "\x1b" not in text  # no colour unless asked for


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


def test_manifests_are_in_conventional_key_order(tmp_path, plans):
    plan.write_plan(plans["prod"], tmp_path)
    for f in (tmp_path / "k8s").glob("*.yaml"):
        text = f.read_text()
        top = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "-"))]
        assert top[:3] == ["apiVersion", "kind", "metadata"] and top[3:4] in ([], ["spec"]), f.name
        doc = yaml.safe_load(text)
        assert list(doc["metadata"])[0] == "name"
        if doc["kind"] == "Deployment":
            [container] = doc["spec"]["template"]["spec"]["containers"]
            assert list(container)[0] == "name"
        ports = (doc.get("spec") or {}).get("ports") or []
        assert all(list(port)[0] == "name" for port in ports if "name" in port)


def test_conventional_order_does_not_depend_on_the_order_given():
    # The order protobuf hands a Struct over differs between versions: the result must not.
    given = {"spec": {"ports": [{"port": 80, "name": "http"}]}, "metadata": {"namespace": "a", "name": "b"},
             "kind": "Service", "apiVersion": "v1"}
    reordered = {k: given[k] for k in reversed(list(given))}
    for obj in (given, reordered):
        ordered = plan.conventional_order(obj)
        assert list(ordered) == ["apiVersion", "kind", "metadata", "spec"]
        assert list(ordered["metadata"]) == ["name", "namespace"]
        assert list(ordered["spec"]["ports"][0]) == ["name", "port"]


def test_manifests_validate_against_the_vendored_schema(tmp_path, plans):
    from cloudrun_mesh import istio

    plan.write_plan(plans["prod"], tmp_path)
    for f in (tmp_path / "k8s").glob("*virtualservice*.yaml"):
        istio.validate_spec(yaml.safe_load(f.read_text())["spec"])


# -- honest stand-ins ---------------------------------------------------------------------------

CLUSTER = {"cloudrun-mesh:cluster": {"name": "mesh-cluster", "location": "us-central1"}}


@pytest.mark.parametrize("stack, config", [("dev", {}), ("prod", {}), ("dev", CLUSTER)], ids=["dev", "prod", "cluster"])
def test_no_invented_value_appears_in_the_plan(stack, config):
    run = shared_evaluation(stack, {"gcp:project": "my-project", **config}, preview=True)
    text = json.dumps(plan.build_plan(run))
    for literal in (*fakes.STAND_INS, fakes.FAKE_RESERVED_ADDRESS, "run.app", "10.96.12.34"):
        assert literal not in text, literal
    assert fakes.READ_FROM_CLUSTER in text  # the mesh name, read at deploy


def test_markers_replace_what_the_cluster_and_gke_would_answer():
    run = shared_evaluation("dev", {"gcp:project": "my-project", **CLUSTER}, preview=True)
    p = plan.build_plan(run)
    assert p["outputs"]["meshName"] == fakes.READ_FROM_CLUSTER
    iam = next(r for r in p["resources"] if r["type"] == "gcp:projects/iAMMember:IAMMember")
    assert iam["inputs"]["project"] == fakes.READ_FROM_CLUSTER  # the mesh project comes from the mesh name
    provider = next(r for r in p["resources"] if r["type"] == "pulumi:providers:kubernetes")
    kubeconfig = json.loads(provider["inputs"]["kubeconfig"])
    cluster = kubeconfig["clusters"][0]["cluster"]
    assert cluster == {"server": fakes.READ_FROM_GKE, "certificate-authority-data": fakes.READ_FROM_GKE}
    assert kubeconfig["current-context"] == "gke_my-project_us-central1_mesh-cluster"  # the program's own value
    assert p["outputs"]["fetchUrls"] == {"mesh-svc-dev": {"ads": harness.UNKNOWN}}
    # The printout and the Markdown show the same markers.
    assert fakes.READ_FROM_CLUSTER in "\n".join(plan.format_plan(p))


def test_evaluation_outside_preview_still_gets_the_fake_cloud():
    run = shared_evaluation("dev", {"gcp:project": "my-project"})
    assert run.outputs["meshName"] == fakes.FAKE_MESH_NAME


# -- adopted resources (the import option) ---------------------------------------------------


def _adopting_program():
    import pulumi
    import pulumi_gcp as gcp

    class Adopted(pulumi.ComponentResource):
        def __init__(self, name):
            super().__init__("test:index:Adopted", name)
            self.zone = gcp.dns.ManagedZone(
                f"{name}-zone",
                gcp.dns.ManagedZoneArgs(name="prod", dns_name="mesh.private.", visibility="private"),
                opts=pulumi.ResourceOptions(parent=self, import_="projects/my-project/managedZones/prod"),
            )
            self.register_outputs({})

    Adopted("adopt")


def test_an_imported_resource_is_recorded_and_shown_as_import():
    run = harness.run_program("dev", config={"gcp:project": "my-project"}, preview=True, program=_adopting_program)
    p = plan.build_plan(run.raise_error())
    [zone] = [r for r in p["resources"] if r["type"] == "gcp:dns/managedZone:ManagedZone"]
    assert zone["importId"] == "projects/my-project/managedZones/prod"
    assert _row(plan.format_plan(p), "adopt-zone")[::3] == ["=", "import"]
    assert "[id=projects/my-project/managedZones/prod]" in _row(plan.format_plan(p), "adopt-zone")
    others = [r for r in plan_for("dev")["resources"]]
    assert all(r["importId"] is None for r in others)
    d = plan.diff_plans({**p, "resources": []}, p)
    actions = {c.type: (c.action, c.import_id) for c in d.changes}
    assert actions == {"gcp:dns/managedZone:ManagedZone": ("import", zone["importId"]), "test:index:Adopted": ("create", None)}
    assert any(line.startswith("= ") and "(import)" in line and "managedZones/prod" in line for line in plan.format_diff(d))


# -- command --------------------------------------------------------------------------------


def test_command_writes_files_and_prints_the_summary(tmp_path, capsys):
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path), "--markdown", str(tmp_path / "md" / "pr.md")]) == 0
    out = capsys.readouterr()
    assert "Resources:\n    + " in out.out and "to create" in out.out
    # "Wrote" names every file.
    wrote = out.out.splitlines()[-1]
    assert wrote.startswith(f"Wrote {tmp_path / 'dev' / 'plan.json'}, ") and "-virtualservice-" in wrote
    assert wrote.endswith(f"the Markdown report {tmp_path / 'md' / 'pr.md'}")
    # The placeholder note exactly when the stack file sets no project (`pulumi config set gcp:project` does).
    assert (f"a placeholder, shown as {fakes.PROJECT_AT_DEPLOY}" in out.err) == ("gcp:project" not in harness.stack_config("dev"))
    written = json.loads((tmp_path / "dev" / "plan.json").read_text())
    assert written["stack"] == "dev"
    assert list((tmp_path / "dev" / "k8s").glob("*-virtualservice-*.yaml"))
    report = (tmp_path / "md" / "pr.md").read_text()
    assert "offline plan: `dev`" in report and "```mermaid" in report


def test_command_diff_against_an_earlier_plan(tmp_path, capsys):
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path / "base")]) == 0
    base_file = tmp_path / "base" / "dev" / "plan.json"
    base = json.loads(base_file.read_text())
    base["resources"] = [r for r in base["resources"] if r["name"] != "dns-wildcard"]
    base_file.write_text(json.dumps(base))
    capsys.readouterr()
    md = tmp_path / "pr.md"
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path / "head"), "--diff", str(base_file),
                 "--markdown", str(md), "--base-label", "main at abc1234"]) == 0
    out = capsys.readouterr().out.splitlines()
    # The change summary first, then the table folded to the change and its parents.
    # Unchanged: the stack and every resource but the read (read again at every deploy).
    assert out[2:5] == ["Resources:", "    + 1 to create", f"    {len(base['resources'])} unchanged"]
    assert _row(out, "dns-wildcard") == ["+", "└─ gcp:dns:RecordSet", "dns-wildcard", "create"]
    assert not any("svc-ads-service" in line for line in out[:out.index("")] if "─" in line)
    # The --diff details: the inputs the create sends.
    start = out.index("        + gcp:dns/recordSet:RecordSet: (create)")
    assert out[start + 2].strip().startswith("managedZone: ")
    assert md.read_text().splitlines()[0] == "### cloudrun-mesh offline plan: `dev`, compared with main at abc1234"


def test_the_base_plan_is_never_overwritten(tmp_path):
    # The base inside --out, exactly where this run would write: refused before anything is written.
    assert plan.run_plan("dev", tmp_path, stdout=io.StringIO(), stderr=io.StringIO()) == plan.EXIT_OK
    base_file = tmp_path / "dev" / "plan.json"
    before = base_file.read_bytes()
    err = io.StringIO()
    assert plan.run_plan("dev", tmp_path, diff=base_file, stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    assert "would be overwritten" in err.getvalue() and base_file.read_bytes() == before
    err = io.StringIO()
    assert plan.run_plan("dev", tmp_path / "other", diff=base_file, markdown_file=base_file,
                         stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    assert base_file.read_bytes() == before
    # Elsewhere inside --out (a copy kept beside the stack folder): read first, left as it was.
    kept = tmp_path / "base-plan.json"
    kept.write_bytes(before)
    assert plan.run_plan("dev", tmp_path, diff=kept, stdout=io.StringIO(), stderr=io.StringIO()) == plan.EXIT_OK
    assert kept.read_bytes() == before


def test_diff_against_another_stack_warns_first(tmp_path):
    assert plan.run_plan("prod", tmp_path, stdout=io.StringIO(), stderr=io.StringIO()) == plan.EXIT_OK
    out, err = io.StringIO(), io.StringIO()
    md = tmp_path / "pr.md"
    assert plan.run_plan("dev", tmp_path, diff=tmp_path / "prod" / "plan.json", markdown_file=md,
                         stdout=out, stderr=err) == plan.EXIT_OK
    printed = out.getvalue().splitlines()
    assert printed[2].startswith("warning: The base plan is of stack 'prod', this one of 'dev'")
    assert "warning: The base plan is of stack 'prod'" in err.getvalue()
    report = md.read_text()
    assert report.index("Resources:") < report.index("[!WARNING]") < report.index("#### Deleted or replaced")
    assert "compared with the base plan" in report.splitlines()[0]  # neutral default label


@pytest.mark.parametrize("fail_on, expected", [("replace,delete", plan.EXIT_FAIL_ON), ("create", plan.EXIT_OK)])
def test_fail_on_gates_destruction(tmp_path, fail_on, expected):
    assert plan.run_plan("dev", tmp_path / "base", stdout=io.StringIO(), stderr=io.StringIO()) == plan.EXIT_OK
    base_file = tmp_path / "base" / "dev" / "plan.json"
    base = json.loads(base_file.read_text())
    zone = next(r for r in base["resources"] if r["name"] == "dns-zone")
    zone["inputs"]["dnsName"] = "old.private."  # this run changes it back: a replacement
    base_file.write_text(json.dumps(base))
    io.StringIO()
    code = main(["plan", "--stack", "dev", "--out", str(tmp_path / "head"), "--diff", str(base_file), "--fail-on", fail_on])
    assert code == expected


def test_fail_on_rejects_unknown_categories_and_needs_a_diff(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--fail-on", "replace,destroy"])
    assert exc.value.code == 2 and "destroy" in capsys.readouterr().err
    err = io.StringIO()
    assert plan.run_plan("dev", tmp_path, fail_on=["replace"], stdout=io.StringIO(), stderr=err) == plan.EXIT_USAGE
    assert "--fail-on needs --diff" in err.getvalue()


# -- where gcp:project comes from ------------------------------------------------------------


@pytest.mark.parametrize(
    "values, flag, env, expected, source",
    [
        ({"gcp:project": "from-stack-file"}, "from-flag", {"GOOGLE_PROJECT": "from-env"}, None, "from the stack file"),
        ({}, "from-flag", {"GOOGLE_CLOUD_PROJECT": "from-env"}, "from-flag", "from --project"),
        ({}, None, {"GOOGLE_CLOUD_PROJECT": "cloud-env"}, "cloud-env", "$GOOGLE_CLOUD_PROJECT"),
        ({}, None, {"GOOGLE_PROJECT": "first-env", "GOOGLE_CLOUD_PROJECT": "cloud-env"}, "first-env", "$GOOGLE_PROJECT"),
        ({}, None, {}, plan.PLACEHOLDER_PROJECT, "placeholder"),
    ],
)
def test_project_sources_only_fill_a_missing_project(values, flag, env, expected, source):
    filled, note = plan.resolve_project(values, flag, env)
    assert filled == expected and source in note


def test_a_placeholder_project_is_shown_as_a_marker_everywhere(tmp_path):
    # No project from the stack file, --project or the environment: a deploy takes it from its own
    # environment, so the plan must not print the placeholder as if it were the project.
    out = io.StringIO()
    project = scratch_project(tmp_path / "project", {"prod": PROD_LIKE})  # a prod that sets no gcp:project
    code = plan.run_plan("prod", tmp_path, markdown_file=tmp_path / "pr.md", env={}, stdout=out, stderr=io.StringIO(),
                         project_dir=project)
    assert code == plan.EXIT_OK
    written = [tmp_path / "prod" / "plan.json", tmp_path / "pr.md", *(tmp_path / "prod" / "k8s").glob("*.yaml")]
    for text in (out.getvalue(), *(path.read_text() for path in written)):
        assert plan.PLACEHOLDER_PROJECT not in text
    p = json.loads(written[0].read_text())
    assert p["gcpProject"] == fakes.PROJECT_AT_DEPLOY and fakes.PROJECT_AT_DEPLOY in p["markers"]
    sa = next(r for r in p["resources"] if r["type"] == "gcp:serviceaccount/account:Account")
    assert sa["inputs"]["project"] == fakes.PROJECT_AT_DEPLOY
    assert f'project_id="{fakes.PROJECT_AT_DEPLOY}"' in p["outputs"]["loggingFilters"]["mesh-svc"]
    assert f"--project={fakes.PROJECT_AT_DEPLOY}" in p["outputs"]["proxyStatusCommands"][0]


def test_environment_project_reaches_the_plan(tmp_path):
    err = io.StringIO()
    code = plan.run_plan("dev", tmp_path, env={"GOOGLE_CLOUD_PROJECT": "env-project"}, stdout=io.StringIO(), stderr=err)
    assert code == plan.EXIT_OK and "$GOOGLE_CLOUD_PROJECT" in err.getvalue()
    assert json.loads((tmp_path / "dev" / "plan.json").read_text())["gcpProject"] == "env-project"


# -- user mistakes: one paragraph, exit 2 ------------------------------------------------------


def _mistake(tmp_path, **kwargs) -> str:
    err = io.StringIO()
    assert plan.run_plan(stdout=io.StringIO(), stderr=err, **kwargs) == plan.EXIT_USAGE
    message = err.getvalue().strip().splitlines()
    assert len([line for line in message if line.startswith("error:")]) == 1 and "Traceback" not in err.getvalue()
    # The error's paragraph (a configuration error lists its problems on the lines below it).
    return "\n".join(message[[line.startswith("error:") for line in message].index(True):])


def _broken_stack_message(tmp_path, text: str) -> str:
    """The error for a project whose stack file `broken` holds ``text``."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (project / "Pulumi.broken.yaml").write_text(text)
    return _mistake(tmp_path, stack="broken", out=tmp_path / "out", project_dir=project)


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    msg = _broken_stack_message(tmp_path, "config:\n  gcp:region: us-central1\n  cloudrun-mesh:dns: {suffix: [unclosed\n")
    assert "Pulumi.broken.yaml is not valid YAML" in msg and "line 4, column 1" in msg


def test_stack_file_without_config_root(tmp_path):
    msg = _broken_stack_message(tmp_path, "gcp:region: us-central1\ncloudrun-mesh:protect: true\n")
    assert "`gcp:region`, `cloudrun-mesh:protect` at the top level" in msg and "under `config:`" in msg


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    msg = _mistake(tmp_path, stack="dev", out=blocker / "plan")
    assert msg.startswith("error: --out: cannot write to")


def test_bad_diff_files(tmp_path):
    bad = tmp_path / "base.json"
    bad.write_text("{not json")
    assert "not valid JSON" in _mistake(tmp_path, stack="dev", out=tmp_path, diff=bad)
    bad.write_text('{"hello": "world"}')
    assert "`stack` must be a string, not null" in _mistake(tmp_path, stack="dev", out=tmp_path, diff=bad)
    assert "cannot be read" in _mistake(tmp_path, stack="dev", out=tmp_path, diff=tmp_path / "missing.json")
    assert not (tmp_path / "dev" / "plan.json").exists()


def test_unknown_stack_exit_code_and_message(tmp_path):
    absent = "-".join(["no", *harness.stacks()])  # a name no stack file has, whichever there are
    msg = _mistake(tmp_path, stack=absent, out=tmp_path)
    assert f"unknown stack '{absent}'" in msg and ", ".join(harness.stacks()) in msg


def test_bad_config_exit_code_and_message(tmp_path):
    msg = _mistake(tmp_path, stack="dev", out=tmp_path, project="Not A Project")
    assert "configuration error" in msg and "`gcp:project`" in msg
    assert not (tmp_path / "dev" / "plan.json").exists()


def test_module_entry_point_prints_no_traceback_on_user_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cloudrun_mesh", "plan", "--stack", "nope", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == plan.EXIT_USAGE == 2
    assert "Traceback" not in proc.stderr and "unknown stack 'nope'" in proc.stderr

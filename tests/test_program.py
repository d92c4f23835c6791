"""The whole program, the URN snapshots of every stack file, and the guarantees of the shared harness.

What the program registers for given values is tested on stacks this module writes itself
(``stackkit``: a dev-like and a prod-like stack in a scratch project), so a team can edit or add stack
files freely. The stack files of the repository are tested for what holds for any valid stack: each
has a URN snapshot that the one documented command (``make snapshots``) writes,
and every resource has its place in the component tree.
"""

from __future__ import annotations

import json

import pulumi
import pytest
from stackkit import DEV_LIKE, PROD_LIKE, evaluate_stack, scratch_project
from testkit import PROJECT, ROOT, evaluate, shared_evaluation

from cloudrun_mesh.offline import graph, harness, plan
from cloudrun_mesh.offline.harness import UNKNOWN

SNAPSHOTS = ROOT / "tests" / "snapshots"

ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD = "gcp:dns/recordSet:RecordSet"
VS = "kubernetes:networking.istio.io/v1:VirtualService"
K8S_SERVICE = "kubernetes:core/v1:Service"
RUN = "gcp:cloudrunv2/service:Service"
IAM = "gcp:projects/iAMMember:IAMMember"
SA = "gcp:serviceaccount/account:Account"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
CPR = "kubernetes:mesh.cloud.google.com/v1beta1:ControlPlaneRevision"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return scratch_project(tmp_path_factory.mktemp("program-project"), {"dev": DEV_LIKE, "prod": PROD_LIKE})




# -- URN snapshots of every stack file --------------------------------------------------------------


def plan_for(stack: str) -> dict:
    # As a stack file that sets its project: the snapshots hold the program's own values.
    run = shared_evaluation(stack, {"gcp:project": "my-project"}, preview=True)
    return plan.build_plan(run)


def snapshot_of(p: dict) -> dict:
    return {
        r["urn"]: {k: r[k] for k in ("type", "parent", "inputs", "protect", "dependencies", "provider")}
        for r in p["resources"]
    }


@pytest.fixture(scope="module")
def plans() -> dict[str, dict]:
    return {stack: plan_for(stack) for stack in harness.stacks()}


@pytest.fixture(scope="module", autouse=True)
def stale_snapshots_removed(request) -> None:
    # `--update-snapshots` writes the snapshot of every stack file and removes the snapshots of stack
    # files that no longer exist (a stack renamed or deleted), before any snapshot test runs.
    if request.config.getoption("--update-snapshots"):
        for path in SNAPSHOTS.glob("*.json"):
            if path.stem not in harness.stacks():
                path.unlink()


@pytest.mark.parametrize("stack", harness.stacks())
def test_plan_matches_the_golden_snapshot(stack, plans, update_snapshots):
    path = SNAPSHOTS / f"{stack}.json"
    current = snapshot_of(plans[stack])
    if update_snapshots:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert path.is_file(), (
        f"no URN snapshot for stack {stack}: write it with `make snapshots` and review it")
    golden = json.loads(path.read_text(encoding="utf-8"))
    gone, new = sorted(set(golden) - set(current)), sorted(set(current) - set(golden))
    assert not gone and not new, (
        f"URNs changed for stack {stack}: this replaces resources in real stacks; add an alias or update the "
        f"snapshot on purpose (make snapshots).\n  removed: {gone}\n  added: {new}"
    )
    for urn in golden:
        assert current[urn] == golden[urn], f"{urn} changed; update the snapshot on purpose if intended"


def test_every_stack_file_has_a_snapshot_and_no_snapshot_outlives_its_stack():
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.json")) == harness.stacks(), (
        "tests/snapshots/ and the Pulumi.<stack>.yaml files differ: `make snapshots` writes "
        "the missing snapshots and removes the ones whose stack file is gone")


# -- what the program registers, on this module's own stacks ----------------------------------------


def test_dev_registers_the_guide(dev_run):
    types = sorted(r.type for r in dev_run.resources() if r.custom)
    # The guide's resources, and the invoker binding of the deploy workflow's smoke-check identity.
    assert types == sorted([ZONE, RECORD, "kubernetes:apps/v1:Deployment", K8S_SERVICE, VS, CPR, SA, IAM, RUN, INVOKER])
    assert dev_run.one(CPR).read and dev_run.one(CPR).id == "istio-system/asm-managed"
    assert not any(r.protect for r in dev_run.resources())


def test_dev_outputs(dev_run):
    url = "https://mesh-svc-dev-123456789012.us-central1.run.app"
    assert dev_run.outputs["cloudRunUrls"] == {"mesh-svc-dev": url}
    assert dev_run.outputs["exportedHosts"] == {"ads": "ads.mesh-dev.private"}
    assert dev_run.outputs["fetchUrls"] == {"mesh-svc-dev": {"ads": f"{url}/fortio/fetch/ads.mesh-dev.private"}}
    assert dev_run.outputs["meshName"].startswith("projects/123456789012/locations/global/meshes/")
    assert dev_run.outputs["dnsZone"] == "mesh-dev"
    assert dev_run.outputs["recordAddress"] == "10.0.0.1"


def test_a_stack_with_only_project_and_region_reproduces_the_guide():
    run = evaluate(None, {"gcp:region": "us-central1"})
    zone, record = run.one(ZONE), run.one(RECORD)
    assert (zone.inputs["name"], zone.inputs["dnsName"], zone.inputs["visibility"]) == ("prod", "mesh.private.", "private")
    assert (record.inputs["name"], record.inputs["rrdatas"], record.inputs["ttl"]) == ("*.mesh.private.", ["10.0.0.1"], 3600)
    deployment = run.one("kubernetes:apps/v1:Deployment").inputs
    assert deployment["metadata"] == {"name": "ads", "namespace": "default"}
    vs = run.one(VS).inputs
    assert vs["metadata"] == {"name": "ads-external", "namespace": "default"}
    assert vs["spec"]["hosts"] == ["ads.mesh.private"] and vs["spec"]["gateways"] == ["external-mesh"]
    assert run.one(CPR).id == "istio-system/asm-managed"
    svc = run.one(RUN).inputs
    assert (svc["name"], svc["location"], svc["ingress"]) == ("mesh-svc", "us-central1", "INGRESS_TRAFFIC_ALL")
    assert svc["template"]["vpcAccess"] == {"networkInterfaces": [{"network": "default"}]}
    assert run.one(SA).inputs["accountId"] == "mesh-svc"
    assert run.one(IAM).inputs["role"] == "roles/trafficdirector.client"
    assert run.resources(INVOKER) == [] and run.resources("kubernetes:core/v1:Namespace") == []
    assert run.outputs["fetchUrls"] == {
        "mesh-svc": {"ads": "https://mesh-svc-123456789012.us-central1.run.app/fortio/fetch/ads.mesh.private"}}


def test_prod_is_protected_and_reserves_its_address(prod_run):
    custom = [r for r in prod_run.resources() if r.custom and not r.read]
    assert custom and all(r.protect for r in custom), [r.name for r in custom if not r.protect]
    assert all(r.inputs["deletionProtection"] is True for r in prod_run.resources(RUN))
    address = prod_run.one("gcp:compute/address:Address")
    assert address.inputs["addressType"] == "INTERNAL"
    record = prod_run.one(RECORD)
    assert address.urn in record.property_dependencies["rrdatas"]
    assert prod_run.outputs["recordAddress"] == "10.128.0.53"


def test_prod_services_and_clients(prod_run):
    assert {r.inputs["metadata"]["namespace"] for r in prod_run.resources(VS)} == {"ads", "payments"}
    assert sorted(prod_run.outputs["fetchUrls"]) == ["checkout-web", "mesh-svc"]
    assert sorted(prod_run.outputs["fetchUrls"]["checkout-web"]) == ["ads", "payments"]
    regions = {r.inputs["name"]: r.inputs["location"] for r in prod_run.resources(RUN)}
    assert regions == {"mesh-svc": "us-central1", "checkout-web": "europe-west1"}
    members = sorted(r.inputs["member"] for r in prod_run.resources(INVOKER))
    assert members == sorted([
        "group:platform-oncall@example.com",
        "group:platform-oncall@example.com",
        "serviceAccount:checkout-ci@example-ci.iam.gserviceaccount.com",
        "serviceAccount:verify-prod@example-ci.iam.gserviceaccount.com",
        "serviceAccount:verify-prod@example-ci.iam.gserviceaccount.com",
    ])


@pytest.mark.parametrize("stack", harness.stacks())
def test_every_child_is_parented_to_a_component_and_named_after_it(stack):
    run = shared_evaluation(stack)
    components = {r.urn: r for r in run.resources() if not r.custom}
    for r in run.resources():
        if r.custom:
            assert r.parent in components, r.urn
            assert r.name.startswith(components[r.parent].name + "-"), r.name


def test_dependencies_flow_through_outputs(dev_run):
    zone, record = dev_run.one(ZONE), dev_run.one(RECORD)
    assert record.property_dependencies["managedZone"] == [zone.urn]
    vs, svc = dev_run.one(VS), dev_run.one(K8S_SERVICE)
    assert set(vs.property_dependencies["spec"]) == {svc.urn, zone.urn}
    run, iam, sa, cpr = dev_run.one(RUN), dev_run.one(IAM), dev_run.one(SA), dev_run.one(CPR)
    assert iam.property_dependencies["member"] == [sa.urn]
    assert iam.property_dependencies["project"] == [cpr.urn]
    assert set(run.property_dependencies["template"]) == {iam.urn, cpr.urn}
    # No blanket depends_on anywhere: every dependency is carried by a property.
    for r in dev_run.resources():
        carried = {u for urns in r.property_dependencies.values() for u in urns}
        assert set(r.dependencies) <= carried, r.urn


def test_critical_path_is_the_real_chain():
    run = evaluate(None, {"gcp:region": "us-central1", "cloudrun-mesh:clients": [{"name": "mesh-svc", "invokers": ["user:a@example.com"]}]})
    path = [u.split("::")[-1] for u in graph.critical_path(run.registrations)]
    assert path == ["run-mesh-svc-sa", "run-mesh-svc-trafficdirector", "run-mesh-svc-service",
                    "run-mesh-svc-invoker-user-a-example-com"]


def test_explicit_mesh_name_skips_discovery_and_sets_the_mesh_project():
    name = "projects/other-project/locations/global/meshes/m1"
    run = evaluate(None, {"gcp:region": "us-central1", "cloudrun-mesh:mesh": {"name": name}})
    assert run.resources(CPR) == []
    assert run.one(IAM).inputs["project"] == "other-project"
    assert run.one(RUN).inputs["template"]["serviceMesh"]["mesh"] == name
    assert run.outputs["meshName"] == name


def test_mesh_project_override_wins():
    run = evaluate(None, {"gcp:region": "us-central1", "cloudrun-mesh:mesh": {"project": "mesh-host-project"}})
    assert run.one(IAM).inputs["project"] == "mesh-host-project"
    assert "project" not in run.one(IAM).property_dependencies


def test_preview_leaves_provider_computed_values_unknown(project):
    run = evaluate_stack(project, "dev", preview=True)
    assert run.outputs["cloudRunUrls"] == {"mesh-svc-dev": UNKNOWN}
    assert run.outputs["fetchUrls"] == {"mesh-svc-dev": {"ads": UNKNOWN}}  # the keys are known, the URLs are not
    assert run.one(RUN).inputs["template"]["serviceAccount"] == UNKNOWN
    # Values known before deploy stay known.
    assert run.outputs["exportedHosts"] == {"ads": "ads.mesh-dev.private"}


def test_evaluations_do_not_leak_state(project):
    first = evaluate_stack(project, "prod")
    second = evaluate_stack(project, "dev")
    assert {r.urn.split("::")[0] for r in second.registrations} == {"urn:pulumi:dev"}
    assert len(second.registrations) < len(first.registrations)
    assert second.config.get("cloudrun-mesh:protect") == "false"


def test_harness_rejects_duplicate_urns_like_the_real_engine():
    def program():
        pulumi.CustomResource("test:index:Thing", "same", {})
        pulumi.CustomResource("test:index:Thing", "same", {})

    run = harness.run_program(None, config={"gcp:project": PROJECT}, program=program)
    assert isinstance(run.error, harness.DuplicateUrnError) or "duplicate resource URN" in str(run.error)


def test_harness_surfaces_errors_raised_in_apply():
    def program():
        out = pulumi.Output.from_input("x").apply(lambda _: (_ for _ in ()).throw(ValueError("boom in apply")))
        pulumi.export("broken", out)

    run = harness.run_program(None, config={"gcp:project": PROJECT}, program=program)
    assert run.error is not None and "boom in apply" in str(run.error)


def test_unknown_stack_is_an_error(project):
    # A project of known stacks: whichever stack files the repository has, this name is not one here.
    with pytest.raises(harness.UnknownStackError, match=r"unknown stack 'qa': there is no Pulumi\.qa\.yaml \(stacks here: dev, prod\)"):
        harness.run_program("qa", project_dir=project)


def test_a_failed_evaluation_leaves_nothing_for_the_next_one():
    def failing():
        pulumi.CustomResource("test:index:Thing", "same", {})
        pulumi.CustomResource("test:index:Thing", "same", {})
        pulumi.export("pending", pulumi.Output.from_input("x").apply(lambda v: v))

    def broken_apply():
        pulumi.export("broken", pulumi.Output.from_input("x").apply(lambda _: 1 / 0))

    for _ in range(3):
        assert harness.run_program(None, config={"gcp:project": PROJECT}, program=failing).error is not None
        run = harness.run_program(None, config={"gcp:project": PROJECT}, program=broken_apply)
        assert isinstance(run.error, ZeroDivisionError), repr(run.error)


# The Google API behind each module of the provider the program registers resources of.
API_OF_MODULE = {
    "dns": "dns.googleapis.com",
    "cloudrunv2": "run.googleapis.com",
    "compute": "compute.googleapis.com",
    "serviceaccount": "iam.googleapis.com",
    "projects": "cloudresourcemanager.googleapis.com",
}


def test_running_for_real_lists_every_api_the_program_uses_and_what_must_exist(prod_run):
    from docs_support import page

    doc = page("docs/running-for-real.md")
    checklist = doc[doc.index("## What must exist first"):doc.index("## Deploy")]
    modules = {r.type.split(":")[1].split("/")[0] for r in prod_run.resources() if r.custom and r.type.startswith("gcp:")}
    assert modules <= set(API_OF_MODULE), modules - set(API_OF_MODULE)
    for module in modules:
        assert f"`{API_OF_MODULE[module]}`" in checklist, module
    items = [line for line in checklist.splitlines() if line.startswith("- [ ] ")]
    assert [i.split("**")[1] for i in items] == [
        "APIs", "The network", "A subnetwork per region", "The mesh on the cluster", "Cluster credentials", "The principals"]
    assert "`cloudrun-mesh:subnetwork`" in checklist and "`clients[i].subnetwork`" in checklist


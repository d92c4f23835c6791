"""The whole program for each stack file, and the guarantees of the shared harness."""

from __future__ import annotations

import pulumi
import pytest
from testkit import PROJECT, evaluate, shared_evaluation

from cloudrun_mesh.offline import graph, harness
from cloudrun_mesh.offline.harness import UNKNOWN

ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD = "gcp:dns/recordSet:RecordSet"
VS = "kubernetes:networking.istio.io/v1:VirtualService"
K8S_SERVICE = "kubernetes:core/v1:Service"
RUN = "gcp:cloudrunv2/service:Service"
IAM = "gcp:projects/iAMMember:IAMMember"
SA = "gcp:serviceaccount/account:Account"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
CPR = "kubernetes:mesh.cloud.google.com/v1beta1:ControlPlaneRevision"


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


def test_every_child_is_parented_to_a_component_and_named_after_it(prod_run):
    components = {r.urn: r for r in prod_run.resources() if not r.custom}
    for r in prod_run.resources():
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
    run = evaluate("dev", {"cloudrun-mesh:clients": [{"name": "mesh-svc", "invokers": ["user:a@example.com"]}]})
    path = [u.split("::")[-1] for u in graph.critical_path(run.registrations)]
    assert path == ["run-mesh-svc-sa", "run-mesh-svc-trafficdirector", "run-mesh-svc-service",
                    "run-mesh-svc-invoker-user-a-example-com"]


def test_explicit_mesh_name_skips_discovery_and_sets_the_mesh_project():
    name = "projects/other-project/locations/global/meshes/m1"
    run = evaluate("dev", {"cloudrun-mesh:mesh": {"name": name}})
    assert run.resources(CPR) == []
    assert run.one(IAM).inputs["project"] == "other-project"
    assert run.one(RUN).inputs["template"]["serviceMesh"]["mesh"] == name
    assert run.outputs["meshName"] == name


def test_mesh_project_override_wins():
    run = evaluate("dev", {"cloudrun-mesh:mesh": {"project": "mesh-host-project"}})
    assert run.one(IAM).inputs["project"] == "mesh-host-project"
    assert "project" not in run.one(IAM).property_dependencies


def test_preview_leaves_provider_computed_values_unknown():
    run = shared_evaluation("dev", preview=True)
    assert run.outputs["cloudRunUrls"] == {"mesh-svc-dev": UNKNOWN}
    assert run.outputs["fetchUrls"] == {"mesh-svc-dev": {"ads": UNKNOWN}}  # the keys are known, the URLs are not
    assert run.one(RUN).inputs["template"]["serviceAccount"] == UNKNOWN
    # Values known before deploy stay known.
    assert run.outputs["exportedHosts"] == {"ads": "ads.mesh-dev.private"}


def test_evaluations_do_not_leak_state():
    first = evaluate("prod")
    second = evaluate("dev")
    assert {r.urn.split("::")[0] for r in second.registrations} == {"urn:pulumi:dev"}
    assert len(second.registrations) < len(first.registrations)
    assert second.config.get("cloudrun-mesh:protect") == "false"


def test_harness_rejects_duplicate_urns_like_the_real_engine():
    def program():
        pulumi.CustomResource("test:index:Thing", "same", {})
        pulumi.CustomResource("test:index:Thing", "same", {})

    run = harness.run_program("dev", config={"gcp:project": PROJECT}, program=program)
    assert isinstance(run.error, harness.DuplicateUrnError) or "duplicate resource URN" in str(run.error)


def test_harness_surfaces_errors_raised_in_apply():
    def program():
        out = pulumi.Output.from_input("x").apply(lambda _: (_ for _ in ()).throw(ValueError("boom in apply")))
        pulumi.export("broken", out)

    run = harness.run_program("dev", config={"gcp:project": PROJECT}, program=program)
    assert run.error is not None and "boom in apply" in str(run.error)


def test_unknown_stack_is_an_error():
    with pytest.raises(harness.UnknownStackError, match="Pulumi.qa.yaml"):
        harness.run_program("qa")


def test_a_failed_evaluation_leaves_nothing_for_the_next_one():
    def failing():
        pulumi.CustomResource("test:index:Thing", "same", {})
        pulumi.CustomResource("test:index:Thing", "same", {})
        pulumi.export("pending", pulumi.Output.from_input("x").apply(lambda v: v))

    def broken_apply():
        pulumi.export("broken", pulumi.Output.from_input("x").apply(lambda _: 1 / 0))

    for _ in range(3):
        assert harness.run_program("dev", config={"gcp:project": PROJECT}, program=failing).error is not None
        run = harness.run_program("dev", config={"gcp:project": PROJECT}, program=broken_apply)
        assert isinstance(run.error, ZeroDivisionError), repr(run.error)

"""MeshCloudRunService: identity, Traffic Director grant, mesh-joined Cloud Run, invokers."""

from __future__ import annotations

import pytest
from testkit import component_program, evaluate

from components import MeshCloudRunService, MeshCloudRunServiceArgs

MESH = "projects/123456789012/locations/global/meshes/m1"
RUN = "gcp:cloudrunv2/service:Service"
IAM = "gcp:projects/iAMMember:IAMMember"
SA = "gcp:serviceaccount/account:Account"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"


def client_program(**overrides):
    args = dict(
        service_name="mesh-svc", image="fortio/fortio", region="us-central1", project="my-project",
        network="default", mesh=MESH, mesh_project="123456789012",
    )
    args.update(overrides)

    return component_program(
        lambda: MeshCloudRunService("run-mesh-svc", MeshCloudRunServiceArgs(**args)), url="url", email="service_account_email"
    )


def test_dedicated_service_account():
    run = evaluate(program=client_program())
    sa = run.one(SA)
    assert sa.name == "run-mesh-svc-sa"
    assert sa.inputs["accountId"] == "mesh-svc" and sa.inputs["project"] == "my-project"


def test_traffic_director_client_on_the_mesh_project_for_that_account():
    run = evaluate(program=client_program())
    iam, sa = run.one(IAM), run.one(SA)
    assert iam.inputs["role"] == "roles/trafficdirector.client"
    assert iam.inputs["project"] == "123456789012"
    assert iam.inputs["member"] == "serviceAccount:mesh-svc@my-project.iam.gserviceaccount.com"
    assert iam.property_dependencies["member"] == [sa.urn]


def test_cloud_run_joins_mesh_and_vpc_and_waits_for_the_grant():
    run = evaluate(program=client_program(subnetwork="mesh-subnet", deletion_protection=True))
    svc, iam = run.one(RUN), run.one(IAM)
    i = svc.inputs
    assert (i["name"], i["location"], i["project"], i["launchStage"]) == ("mesh-svc", "us-central1", "my-project", "BETA")
    assert i["deletionProtection"] is True
    t = i["template"]
    assert t["serviceAccount"] == "mesh-svc@my-project.iam.gserviceaccount.com"
    assert t["serviceMesh"] == {"mesh": MESH}
    assert t["vpcAccess"] == {"networkInterfaces": [{"network": "default", "subnetwork": "mesh-subnet"}]}
    assert t["containers"] == [{"image": "fortio/fortio"}]
    assert iam.urn in svc.property_dependencies["template"]
    assert iam.urn in svc.dependencies


def test_invokers_only_those_listed_named_after_the_member():
    run = evaluate(program=client_program(invokers=["user:a@example.com", "group:ops@example.com"]))
    svc = run.one(RUN)
    bindings = {r.name: r for r in run.resources(INVOKER)}
    assert sorted(bindings) == ["run-mesh-svc-invoker-group-ops-example-com", "run-mesh-svc-invoker-user-a-example-com"]
    for b in bindings.values():
        assert b.inputs["role"] == "roles/run.invoker"
        assert b.inputs["name"] == "mesh-svc" and b.inputs["location"] == "us-central1"
        assert b.property_dependencies["name"] == [svc.urn]
    assert {b.inputs["member"] for b in bindings.values()} == {"user:a@example.com", "group:ops@example.com"}


def test_no_invokers_means_no_binding_and_never_public():
    run = evaluate(program=client_program())
    assert run.resources(INVOKER) == []
    assert not any("allUsers" in str(r.inputs) for r in run.resources())


def test_outputs():
    run = evaluate(program=client_program())
    assert run.outputs == {
        "url": "https://mesh-svc-123456789012.us-central1.run.app",
        "email": "mesh-svc@my-project.iam.gserviceaccount.com",
    }


def test_launch_stage_is_set_on_create_and_ignored_on_update():
    svc = evaluate(program=client_program()).one(RUN)
    assert svc.inputs["launchStage"] == "BETA"
    # Cloud Run reads back the stage the service uses (GA once mesh graduates): no perpetual diff.
    assert svc.ignore_changes == ["launchStage"]


def test_members_whose_slugs_collide_get_distinct_bindings_and_the_first_keeps_its_name():
    members = ["user:a.b@example.com", "user:a-b@example.com", "group:ops@example.com"]
    run = evaluate(program=client_program(invokers=members))
    bindings = {r.inputs["member"]: r.name for r in run.resources(INVOKER)}
    assert set(bindings) == set(members)
    assert len(set(bindings.values())) == 3
    assert bindings["user:a.b@example.com"] == "run-mesh-svc-invoker-user-a-b-example-com"
    assert bindings["group:ops@example.com"] == "run-mesh-svc-invoker-group-ops-example-com"
    assert bindings["user:a-b@example.com"].startswith("run-mesh-svc-invoker-user-a-b-example-com-")


def test_without_a_subnetwork_cloud_run_picks_the_one_named_like_the_network():
    svc = evaluate(program=client_program()).one(RUN)
    # No subnetwork key at all: Cloud Run then uses the subnetwork named after the network in the
    # service's region (google.cloud.run.v2 VpcAccess.NetworkInterface).
    assert svc.inputs["template"]["vpcAccess"] == {"networkInterfaces": [{"network": "default"}]}


@pytest.mark.parametrize(
    "ingress, api_value",
    [
        (None, "INGRESS_TRAFFIC_ALL"),  # the default: the guide's curl comes from outside the VPC
        ("all", "INGRESS_TRAFFIC_ALL"),
        ("internal", "INGRESS_TRAFFIC_INTERNAL_ONLY"),
        ("internal-and-cloud-load-balancing", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"),
    ],
)
def test_ingress_maps_to_the_cloud_run_api_setting(ingress, api_value):
    run = evaluate(program=client_program(**({} if ingress is None else {"ingress": ingress})))
    assert run.one(RUN).inputs["ingress"] == api_value


@pytest.mark.parametrize("ingress, api_value", [("internal", "INGRESS_TRAFFIC_INTERNAL_ONLY"), (None, "INGRESS_TRAFFIC_ALL")])
def test_client_ingress_from_the_stack_config(ingress, api_value):
    client = {"name": "mesh-svc", **({"ingress": ingress} if ingress else {})}
    run = evaluate("dev", {"cloudrun-mesh:clients": [client, {"name": "other-svc"}]})
    assert run.one(RUN, "run-mesh-svc-service").inputs["ingress"] == api_value
    assert run.one(RUN, "run-other-svc-service").inputs["ingress"] == "INGRESS_TRAFFIC_ALL"

"""The troubleshooting builders in cloudrun_mesh.outputs, and the stack outputs made from them."""

from __future__ import annotations

import shlex
import subprocess
import sys
from types import SimpleNamespace

import pytest
from testkit import PROJECT, ROOT, evaluate, shared_evaluation

from cloudrun_mesh import outputs
from cloudrun_mesh.offline.harness import UNKNOWN

CLUSTER = {"cloudrun-mesh:cluster": {"name": "mesh-cluster", "location": "us-central1-c"}}


def test_logging_filter_names_the_cloud_run_revision_and_the_sidecar_errors():
    f = outputs.logging_filter("mesh-svc", "us-central1", "my-project")
    assert f == (
        'resource.type="cloud_run_revision" AND resource.labels.project_id="my-project" AND '
        'resource.labels.location="us-central1" AND resource.labels.service_name="mesh-svc" AND '
        '(logName:"envoy_sidecar_log" OR "trafficdirector.networks.getConfigs" OR severity>=WARNING)'
    )


def test_logging_filter_for_one_message():
    f = outputs.logging_filter("mesh-svc", "us-central1", "my-project", outputs.GET_CONFIGS_PERMISSION)
    assert f.endswith(' AND resource.labels.service_name="mesh-svc" AND "trafficdirector.networks.getConfigs"')
    assert "envoy_sidecar_log" not in f


def test_logging_filter_labels_read_back_what_was_built():
    f = outputs.logging_filter("checkout-web", "europe-west1", "shop-prod")
    assert outputs.logging_filter_labels(f) == {
        "project_id": "shop-prod", "location": "europe-west1", "service_name": "checkout-web"}
    assert outputs.logging_filter_labels("") == {}


def test_logging_read_command_quotes_the_filter_as_one_argument():
    f = outputs.logging_filter("mesh-svc", "us-central1", "my-project")
    cmd = outputs.logging_read_command(f, "my-project")
    assert shlex.split(cmd) == ["gcloud", "logging", "read", f, "--project=my-project", "--freshness=1h", "--limit=50"]


@pytest.mark.parametrize("location, expected", [
    ("us-central1-c", "us-central1"), ("europe-west4-a", "europe-west4"), ("us-central1", "us-central1"),
    ("northamerica-northeast2-b", "northamerica-northeast2"),
])
def test_membership_location(location, expected):
    assert outputs.membership_location(location) == expected


def test_proxy_status_without_a_cluster_marks_its_placeholders():
    assert outputs.proxy_status_commands("my-project") == [
        "gcloud container fleet memberships list --project=my-project",
        "gcloud alpha container fleet mesh debug proxy-status --membership=MEMBERSHIP_NAME "
        "--location=MEMBERSHIP_LOCATION --project=my-project",
    ]


def test_proxy_status_with_a_cluster_in_another_project():
    cluster = SimpleNamespace(name="mesh-cluster", location="europe-west4-a", project="fleet-host")
    assert outputs.proxy_status_commands("my-project", cluster) == [
        "gcloud container fleet memberships list --project=fleet-host",
        "gcloud alpha container fleet mesh debug proxy-status --membership=mesh-cluster "
        "--location=europe-west4 --project=fleet-host",
    ]


def test_iam_commands():
    sa = outputs.client_service_account("mesh-svc", "my-project")
    assert sa == "mesh-svc@my-project.iam.gserviceaccount.com"
    assert outputs.traffic_director_binding_command("123456789012", sa) == (
        "gcloud projects add-iam-policy-binding 123456789012 "
        "--member=serviceAccount:mesh-svc@my-project.iam.gserviceaccount.com --role=roles/trafficdirector.client")
    assert outputs.invoker_binding_command("mesh-svc", "us-central1", "my-project", "user:alice@example.com") == (
        "gcloud run services add-iam-policy-binding mesh-svc --region=us-central1 --project=my-project "
        "--member=user:alice@example.com --role=roles/run.invoker")


def test_roles_match_the_ones_the_program_grants():
    from components import mesh_cloud_run_service

    assert outputs.TRAFFIC_DIRECTOR_CLIENT_ROLE == mesh_cloud_run_service.TRAFFIC_DIRECTOR_CLIENT
    assert outputs.INVOKER_ROLE == mesh_cloud_run_service.INVOKER


def test_the_builders_do_not_load_the_pulumi_sdk():
    code = "import sys, cloudrun_mesh.outputs; sys.exit('pulumi' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=30).returncode == 0


# --------------------------------------------------------------------------------------------
# The stack outputs, through the mock engine
# --------------------------------------------------------------------------------------------


def test_dev_stack_outputs(dev_run):
    assert dev_run.outputs["loggingFilters"] == {
        "mesh-svc-dev": outputs.logging_filter("mesh-svc-dev", "us-central1", PROJECT)}
    assert dev_run.outputs["proxyStatusCommands"] == outputs.proxy_status_commands(PROJECT)
    assert "MEMBERSHIP_NAME" in dev_run.outputs["proxyStatusCommands"][1]


def test_prod_stack_has_a_filter_per_client_in_its_region(prod_run):
    filters = prod_run.outputs["loggingFilters"]
    assert set(filters) == set(prod_run.outputs["cloudRunUrls"]) == {"mesh-svc", "checkout-web"}
    assert outputs.logging_filter_labels(filters["checkout-web"]) == {
        "project_id": PROJECT, "location": "europe-west1", "service_name": "checkout-web"}
    assert outputs.logging_filter_labels(filters["mesh-svc"])["location"] == "us-central1"


def test_configured_cluster_fills_in_the_membership():
    run = evaluate("dev", CLUSTER)
    assert run.outputs["proxyStatusCommands"][1] == (
        "gcloud alpha container fleet mesh debug proxy-status --membership=mesh-cluster --location=us-central1 "
        "--project=my-project")


def test_troubleshooting_outputs_are_known_at_preview():
    run = shared_evaluation("dev", preview=True)
    assert run.outputs["fetchUrls"] == {"mesh-svc-dev": {"ads": UNKNOWN}}  # needs the deployed URL...
    assert UNKNOWN not in str(run.outputs["loggingFilters"]) + str(run.outputs["proxyStatusCommands"])  # ...these do not

"""Adopting a setup made by hand with the guide (`cloudrun-mesh:adopt`): what is imported, with which
id, what is declared as the guide set it and what is ignored while importing."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from docs_support import page
from testkit import PROJECT, ROOT, evaluate, shared_evaluation

from cloudrun_mesh import adoption
from cloudrun_mesh.offline import harness, plan, plan_report

ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD = "gcp:dns/recordSet:RecordSet"
ADDRESS = "gcp:compute/address:Address"
VS = "kubernetes:networking.istio.io/v1:VirtualService"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
K8S_SERVICE = "kubernetes:core/v1:Service"
RUN = "gcp:cloudrunv2/service:Service"
SA = "gcp:serviceaccount/account:Account"
IAM = "gcp:projects/iAMMember:IAMMember"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
# What the guide's commands create by hand, and so what adoption imports.
ADOPTED = (ZONE, RECORD, ADDRESS, VS, DEPLOYMENT, K8S_SERVICE, RUN)

# A setup made with the guide, written as config: the guide's zone and record (the defaults), the
# sample, a VirtualService named by the reader, a Cloud Run service, and the reserved address the
# guide offers as the alternative to a bare IP.
GUIDE = {
    "cloudrun-mesh:dns": {"zone": "prod", "suffix": "mesh.private", "address": "reserve", "addressName": "mesh-vip"},
    "cloudrun-mesh:services": [
        {"name": "ads", "namespace": "default", "deploySample": True, "virtualServiceName": "ads-vs"},
        {"name": "payments", "namespace": "payments", "port": 8080},
    ],
    "cloudrun-mesh:clients": [{"name": "fortio-client", "invokers": ["user:alice@example.com"]}],
}


@pytest.fixture(scope="module")
def made_by_hand():
    """The same stack twice: created by the program, and adopted from the guide's hand-made objects."""
    return evaluate("dev", GUIDE), evaluate("dev", {**GUIDE, "cloudrun-mesh:adopt": True})


def by_urn(run):
    return {r.urn: r for r in run.resources()}


def test_adoption_registers_the_same_resources(made_by_hand):
    created, adopted = made_by_hand
    assert sorted(by_urn(adopted)) == sorted(by_urn(created))
    assert {r.type for r in adopted.resources() if r.custom and not r.read} >= set(ADOPTED)


def test_only_the_guides_objects_ignore_fields(made_by_hand):
    created, adopted = made_by_hand
    # Without adoption only Cloud Run's launch stage and a named address's description are ignored.
    assert {r.type: r.ignore_changes for r in created.resources() if r.ignore_changes} == {
        RUN: ["launchStage"], ADDRESS: ["description"]}
    ignoring = {r.type for r in adopted.resources() if r.ignore_changes}
    assert ignoring == {VS, DEPLOYMENT, K8S_SERVICE, RUN, ADDRESS}
    # Objects the guide never creates are created as usual, exactly as without adoption.
    for type_ in (SA, IAM, INVOKER):
        for reg in adopted.resources(type_):
            same = by_urn(created)[reg.urn]
            assert (reg.inputs, reg.ignore_changes) == (same.inputs, same.ignore_changes), reg.urn


def test_zone_declares_the_guides_description(made_by_hand):
    created, adopted = made_by_hand
    zone = adopted.one(ZONE)
    # gcloud dns managed-zones create ZONE_NAME --description="zone for service mesh routes" ...
    assert zone.inputs["description"] == "zone for service mesh routes"
    assert created.one(ZONE).inputs["description"] != zone.inputs["description"]
    rest = {k: v for k, v in zone.inputs.items() if k != "description"}
    assert rest == {k: v for k, v in created.one(ZONE).inputs.items() if k != "description"}
    assert rest["name"] == "prod" and rest["dnsName"] == "mesh.private." and rest["visibility"] == "private"
    assert zone.ignore_changes == []


def test_record_and_address_declare_the_config_as_is(made_by_hand):
    created, adopted = made_by_hand
    for type_ in (RECORD, ADDRESS):
        assert adopted.one(type_).inputs == created.one(type_).inputs
    assert adopted.one(RECORD).ignore_changes == []
    # A description given by hand is kept: it is ForceNew, and dropping it would replace the address.
    assert adopted.one(ADDRESS).ignore_changes == ["description"]
    assert adopted.one(RECORD).inputs["name"] == "*.mesh.private."
    assert adopted.one(RECORD).inputs["ttl"] == 3600
    address = adopted.one(ADDRESS).inputs
    # A named address has no description: it is ForceNew, and the hand-made address has none.
    assert address["name"] == "mesh-vip" and "description" not in address
    assert address["addressType"] == "INTERNAL" and address["region"] == "us-central1"


def test_kubernetes_objects_ignore_their_spec_only(made_by_hand):
    created, adopted = made_by_hand
    for type_ in (VS, DEPLOYMENT, K8S_SERVICE):
        for reg in adopted.resources(type_):
            assert reg.ignore_changes == ["spec"], reg.urn
            assert reg.inputs == by_urn(created)[reg.urn].inputs, reg.urn
    names = sorted((r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]) for r in adopted.resources(VS))
    assert names == [("default", "ads-vs"), ("payments", "payments-external")]


def test_cloud_run_ignores_what_gcloud_chose_and_keeps_the_programs_template(made_by_hand):
    created, adopted = made_by_hand
    run = adopted.one(RUN)
    assert run.ignore_changes == ["client", "clientVersion", "deletionProtection", "ingress", "launchStage", "template"]
    # The declared template is still the program's: the update after adoption rolls it out.
    assert run.inputs == created.one(RUN).inputs
    assert run.inputs["name"] == "fortio-client" and run.inputs["location"] == "us-central1"
    assert run.inputs["template"]["serviceAccount"] == "fortio-client@my-project.iam.gserviceaccount.com"


def test_adopting_the_prod_stack_keeps_its_protection():
    services = [{"name": "ads", "namespace": "ads", "deploySample": True},  # its namespace made by hand too
                {"name": "payments", "namespace": "payments", "port": 8080, "gkeClients": True}]
    run = evaluate("prod", {"cloudrun-mesh:adopt": True, "cloudrun-mesh:services": services,
                            "cloudrun-mesh:dns": {"address": "reserve", "addressName": "mesh-vip", "ttl": 300}})
    assert run.resources("kubernetes:core/v1:Namespace") == []
    adopted = [r for r in run.resources() if r.type in ADOPTED]
    assert len(adopted) == 1 + 1 + 1 + 2 + 1 + 1 + 2  # zone, record, address, 2 VS, sample pair, 2 Cloud Run
    assert all(r.protect for r in adopted)


def test_the_import_option_protects_nothing_by_itself(made_by_hand):
    # README, "Adopting a setup made with the guide": protection comes from cloudrun-mesh:protect only
    # (dev's is false), and Cloud Run's deletion_protection keeps what the import recorded.
    _, adopted = made_by_hand
    imported = [r for r in adopted.resources() if r.import_id]
    assert imported and not any(r.protect for r in imported)
    assert "deletionProtection" in adopted.one(RUN).ignore_changes


@pytest.mark.parametrize("stack", harness.stacks())
def test_a_stack_without_adopt_imports_nothing_and_ignores_only_the_launch_stage(stack):
    # The URN and input snapshots (tests/snapshots) pin what each shipped stack registers; these are the
    # options adoption adds, which the snapshots do not hold.
    run = shared_evaluation(stack)
    assert [r.name for r in run.resources() if r.import_id] == []
    ignoring = {(r.type, tuple(r.ignore_changes)) for r in run.resources() if r.ignore_changes}
    assert ignoring == {(RUN, ("launchStage",))}


def test_named_address_without_adoption_is_created_with_that_name():
    run = evaluate("dev", {"cloudrun-mesh:dns": {"address": "reserve", "addressName": "mesh-vip"}})
    address = run.one(ADDRESS)
    assert address.inputs["name"] == "mesh-vip" and "description" not in address.inputs
    assert address.ignore_changes == ["description"]


# -- import ids, in each provider's documented format --------------------------------------------

# The id of every adopted resource of GUIDE, by resource name: one of each adopted type.
EXPECTED_IDS = {
    "dns-zone": "projects/my-project/managedZones/prod",
    "dns-wildcard": "projects/my-project/managedZones/prod/rrsets/*.mesh.private./A",
    "dns-address": "projects/my-project/regions/us-central1/addresses/mesh-vip",
    "svc-ads-virtualservice": "default/ads-vs",
    "svc-ads-deployment": "default/ads",
    "svc-ads-service": "default/ads",
    "svc-payments-virtualservice": "payments/payments-external",
    "run-fortio-client-service": "projects/my-project/locations/us-central1/services/fortio-client",
}


def test_every_adopted_resource_carries_its_import_id(made_by_hand):
    created, adopted = made_by_hand
    ids = {r.name: r.import_id for r in adopted.resources() if r.import_id}
    assert ids == EXPECTED_IDS
    assert {r.type for r in adopted.resources() if r.import_id} == set(ADOPTED)
    # Without adoption nothing is imported: the stack creates, as it always did.
    assert [r.urn for r in created.resources() if r.import_id] == []


@pytest.fixture(scope="module")
def adopting_plan():
    run = harness.run_program("dev", config={"gcp:project": PROJECT, **GUIDE, "cloudrun-mesh:adopt": True}, preview=True)
    return plan.build_plan(run.raise_error())


def test_the_plan_marks_each_adopted_resource_as_import(adopting_plan, tmp_path):
    by_name = {r["name"]: r for r in adopting_plan["resources"]}
    assert {n: r["importId"] for n, r in by_name.items() if r["importId"]} == EXPECTED_IDS
    # plan.json as written
    plan.write_plan(adopting_plan, tmp_path)
    written = {r["name"]: r["importId"] for r in json.loads((tmp_path / "plan.json").read_text())["resources"]}
    assert {n: i for n, i in written.items() if i} == EXPECTED_IDS
    # the printout: each adopted resource's line carries `= import <id>`, no other line does
    lines = plan.format_plan(adopting_plan)
    for name, import_id in EXPECTED_IDS.items():
        [line] = [ln for ln in lines if f" {name} " in f"{ln} " and "─" in ln]
        assert line.lstrip().startswith("=") and f"[id={import_id}]" in line, line
    assert sum("[id=" in ln for ln in lines) == len(EXPECTED_IDS)


def test_the_diff_and_the_markdown_show_imports_not_creations(adopting_plan):
    d = plan.diff_plans({**adopting_plan, "resources": [], "outputs": {}}, adopting_plan)
    imports = {c.urn.split("::")[-1]: c.import_id for c in d.changes if c.action == "import"}
    assert imports == EXPECTED_IDS
    created = {c.urn.split("::")[-1] for c in d.changes if c.action == "create"}
    assert {"run-fortio-client-sa", "run-fortio-client-trafficdirector"} <= created
    assert not created & set(EXPECTED_IDS)
    text = "\n".join(plan.format_diff(d))
    for name, import_id in EXPECTED_IDS.items():
        assert any(name in ln and ln.startswith("=") and ln.endswith(f"[id={import_id}]") for ln in text.splitlines()), name
    report = plan_report.markdown(adopting_plan, d, {"resources": [], "outputs": {}}, "an empty stack",
                                  plan.format_plan(adopting_plan))
    assert f"{len(EXPECTED_IDS)} to import" in report
    for import_id in EXPECTED_IDS.values():
        assert f"[id={import_id}]" in report


def test_import_id_formats():
    assert adoption.zone_id(PROJECT, "prod") == "projects/my-project/managedZones/prod"
    assert adoption.record_set_id(PROJECT, "prod", "*.mesh.private.", "A") == (
        "projects/my-project/managedZones/prod/rrsets/*.mesh.private./A")
    assert adoption.address_id(PROJECT, "us-central1", "mesh-vip") == "projects/my-project/regions/us-central1/addresses/mesh-vip"
    assert adoption.cloud_run_service_id(PROJECT, "europe-west1", "fortio-client") == (
        "projects/my-project/locations/europe-west1/services/fortio-client")
    assert adoption.kubernetes_id("payments", "payments-external") == "payments/payments-external"


def test_record_set_id_needs_the_trailing_dot():
    with pytest.raises(ValueError, match="trailing dot"):
        adoption.record_set_id(PROJECT, "prod", "*.mesh.private", "A")


@pytest.mark.parametrize("part", [None, "", 3])
def test_import_ids_need_plain_strings(part):
    with pytest.raises(TypeError, match="plain, non-empty strings"):
        adoption.zone_id(PROJECT, part)


def test_turning_adoption_off_afterwards_is_updates_only(adopting_plan):
    # README, "After the import succeeded": the plan of the adopting run against the next one.
    run = harness.run_program("dev", config={"gcp:project": PROJECT, **GUIDE}, preview=True)
    d = plan.diff_plans(adopting_plan, plan.build_plan(run.raise_error()))
    assert {c.action for c in d.changes} == {"update"}
    assert d.tripped(["replace", "delete", "create", "import"]) == []
    updated = {c.urn.split("::")[-1]: [f.path for f in c.fields] for c in d.changes}
    assert updated["dns-zone"] == ["description"]
    assert set(updated) == {"dns-zone", "run-fortio-client-service", "svc-ads-deployment", "svc-ads-service",
                            "svc-ads-virtualservice", "svc-payments-virtualservice"}


def test_the_readme_example_adopts_the_guides_objects_under_protection():
    section = page("docs/adoption.md")
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))["config"]
    run = evaluate(None, example)
    ids = sorted(r.import_id for r in run.resources() if r.import_id)
    assert ids == ["default/ads", "default/ads", "default/ads-vs", "projects/my-project/locations/us-central1/services/fortio-client",
                   "projects/my-project/managedZones/prod", "projects/my-project/managedZones/prod/rrsets/*.mesh.private./A"]
    assert all(r.protect for r in run.resources() if r.import_id)

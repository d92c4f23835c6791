"""Adopting a setup made by hand with the guide (`cloudrun-mesh:adopt`): what is imported, with which
id, what is declared as the guide set it and what is ignored while importing."""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import pytest
import yaml
from docs_support import page
from stackkit import PROD_LIKE, evaluate_stack, scratch_project
from testkit import PROJECT, ROOT, evaluate, shared_evaluation

from cloudrun_mesh import adoption
from cloudrun_mesh.offline import harness, plan, plan_report
from cloudrun_mesh.offline import policy as offline

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


def test_adopting_a_protected_stack_keeps_its_protection(tmp_path):
    services = [{"name": "ads", "namespace": "ads", "deploySample": True},  # its namespace made by hand too
                {"name": "payments", "namespace": "payments", "port": 8080, "gkeClients": True}]
    project = scratch_project(tmp_path, {"prod": PROD_LIKE})
    run = evaluate_stack(project, "prod", {
        "cloudrun-mesh:adopt": True, "cloudrun-mesh:services": services,
        "cloudrun-mesh:dns": {"zone": "prod", "suffix": "mesh.private", "address": "reserve", "addressName": "mesh-vip", "ttl": 300}})
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
def test_each_stack_file_imports_exactly_when_it_adopts(stack):
    # The URN and input snapshots (tests/snapshots) pin what each stack file registers; these are the
    # options adoption adds, which the snapshots do not hold.
    run = shared_evaluation(stack)
    if json.loads(run.config.get("cloudrun-mesh:adopt", "false")):
        # Everything the guide makes is imported, with only the documented fields ignored.
        assert {r.type for r in run.resources() if r.import_id} <= set(ADOPTED)
        assert all(r.import_id for r in run.resources() if r.type in ADOPTED and r.custom and not r.read)
        documented = {RUN: list(adoption.CLOUD_RUN_IGNORED), ADDRESS: ["description"],
                      **{t: list(adoption.KUBERNETES_IGNORED) for t in (VS, DEPLOYMENT, K8S_SERVICE)}}
        assert all(r.ignore_changes == documented.get(r.type, []) for r in run.resources()), stack
        return
    assert [r.name for r in run.resources() if r.import_id] == []
    ignoring = {(r.type, tuple(r.ignore_changes)) for r in run.resources() if r.ignore_changes}
    # Cloud Run's launch stage always; a named address's description (ForceNew, set by hand or not).
    assert ignoring <= {(RUN, ("launchStage",)), (ADDRESS, ("description",))} and (RUN, ("launchStage",)) in ignoring


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


def adoption_example() -> str:
    """The stack file the adoption guide tells the reader to write: its first YAML block."""
    return re.search(r"```yaml\n(.*?)```", page("docs/adoption.md"), re.S).group(1)


def test_the_docs_example_pasted_into_a_stack_file_adopts_the_guides_objects_under_protection(tmp_path):
    # Pasted into Pulumi.prod.yaml of a scratch copy, as the guide says: never into the shipped file.
    project = scratch_project(tmp_path)
    (project / "Pulumi.prod.yaml").write_text(adoption_example(), encoding="utf-8")
    run = evaluate_stack(project, "prod")
    assert run.config["gcp:project"] == yaml.safe_load(adoption_example())["config"]["gcp:project"]
    ids = sorted(r.import_id for r in run.resources() if r.import_id)
    assert ids == ["default/ads", "default/ads", "default/ads-vs", "projects/my-project/locations/us-central1/services/fortio-client",
                   "projects/my-project/managedZones/prod", "projects/my-project/managedZones/prod/rrsets/*.mesh.private./A"]
    assert all(r.protect for r in run.resources() if r.import_id)


# -- the adopting run against our own policy pack ------------------------------------------------
#
# While adopting, the engine analyzes each imported resource with its ignored properties taken from
# what the provider read back during the import: pulumi/pulumi pkg/resource/deploy/step_generator.go
# at 1b5949891b3cefcb9974752b24a5ecef0acc86c8 (the `isImport` branch resolves the import step's state,
# whose inputs are the provider's Read result (step.go, ImportStep.Apply), into
# continueStepsFromImport, which runs processIgnoreChanges from it, then analyzeAll). So the policies
# see the guide's objects as they are, not the program's.

MESH = "projects/123456789012/locations/global/meshes/proj-123456789012-mesh"
DEFAULT_COMPUTE = "123456789012-compute@developer.gserviceaccount.com"
# The provider's read-back of what the guide's commands made, for the ignored properties (the rest is
# declared as the guide set it, and so reads back as declared). Values: the guide's commands
# (https://cloud.google.com/service-mesh/docs/route-from-cloud-run): `gcloud beta run deploy SERVICE
# --image=fortio/fortio --network=default --mesh=MESH --no-allow-unauthenticated`, with no
# --service-account, so Cloud Run runs it as the project's default compute account, which the API
# reports in template.serviceAccount; ingress and the client fields as gcloud writes them. The
# sample and VirtualService specs are the guide's manifests.
READ_BACK = {
    "run-fortio-client-service": {
        "client": "gcloud",
        "clientVersion": "<gcloud version>",
        "deletionProtection": True,
        "ingress": "INGRESS_TRAFFIC_ALL",
        "launchStage": "BETA",
        "template": {
            "serviceAccount": DEFAULT_COMPUTE,
            "containers": [{"image": "fortio/fortio", "ports": [{"containerPort": 8080, "name": "http1"}]}],
            "serviceMesh": {"mesh": MESH},
            "vpcAccess": {"networkInterfaces": [{"network": "default", "subnetwork": "default"}], "egress": "PRIVATE_RANGES_ONLY"},
        },
    },
    "svc-ads-virtualservice": {"spec": {"hosts": ["ads.mesh.private"], "gateways": ["external-mesh"],
                                        "http": [{"route": [{"destination": {"host": "ads"}}]}]}},
    "svc-payments-virtualservice": {"spec": {"hosts": ["payments.mesh.private"], "gateways": ["external-mesh"],
                                             "http": [{"route": [{"destination": {"host": "payments"}}]}]}},
    "svc-ads-deployment": {"spec": {"replicas": 1, "selector": {"matchLabels": {"run": "ads"}}, "template": {
        "metadata": {"labels": {"run": "ads"}},
        "spec": {"containers": [{"name": "my-http2-svc", "image": "docker.io/waip/simple-http:v1.0.1",
                                 "ports": [{"containerPort": 8000}]}]}}}},
    "svc-ads-service": {"spec": {"selector": {"run": "ads"}, "ports": [{"name": "http2-ads", "port": 9999, "targetPort": 8000}]}},
}


def as_imported(regs, read_back=READ_BACK):
    """The registrations as the analyzers receive them during the import: each ignored top-level
    property from the provider's read-back (processIgnoreChanges), absent when it read back none."""
    out = []
    for r in regs:
        if r.import_id:
            inputs = copy.deepcopy(r.inputs)
            read = read_back.get(r.name, {})  # the reserved address: made without a description
            for path in r.ignore_changes:
                if path in read:
                    inputs[path] = copy.deepcopy(read[path])
                else:
                    inputs.pop(path, None)
            # import_id cleared: these inputs are the read-back already, which the offline run would
            # otherwise mark unknown (it reads nothing back).
            r = dataclasses.replace(r, inputs=inputs, import_id="")
        out.append(r)
    return out


def pack_results(regs, config=None):
    pack = offline.pack_module()
    return offline.results(offline.analyze(regs, offline.analyzer(pack.POLICIES, config)))


def test_the_adopting_run_passes_every_mandatory_policy_and_advises_the_next_run(made_by_hand):
    _, adopted = made_by_hand
    regs = as_imported(adopted.registrations)
    service = next(r for r in regs if r.type == RUN)
    assert service.inputs["template"]["serviceAccount"] == DEFAULT_COMPUTE  # the read-back reached the analyzers
    found = pack_results(regs, json.loads((ROOT / "policy" / "config" / "default.json").read_text()))
    assert [r for r in found if r.level == "mandatory"] == []
    follow_up = [r.message for r in found if r.policy == "mesh-client-adopted-follow-up"]
    assert follow_up == [
        f"Cloud Run service 'fortio-client' is adopted as made by hand and runs as the default service account "
        f"{DEFAULT_COMPUTE}. This run keeps its revision template as it is (ignored while adopting); the next run, "
        "with `cloudrun-mesh:adopt: false`, rolls out the program's template, a new revision running as the "
        "client's dedicated service account with roles/trafficdirector.client, which this run creates."
    ]
    # The guide's untagged fortio image is reported too, for what it is.
    assert [r.message.split(":")[0] for r in found if r.policy == "container-image-pinned"] == [
        "'fortio-client' runs image 'fortio/fortio', which has no tag, so each pull takes whatever `latest` is then"]


@pytest.mark.parametrize("stage", ["GA", None])
def test_an_adopted_service_whose_stage_reads_back_otherwise_is_advised_not_refused(made_by_hand, stage):
    _, adopted = made_by_hand
    read_back = copy.deepcopy(READ_BACK)
    if stage is None:
        del read_back["run-fortio-client-service"]["launchStage"]
    else:
        read_back["run-fortio-client-service"]["launchStage"] = stage
    found = pack_results(as_imported(adopted.registrations, read_back))
    assert [r for r in found if r.level == "mandatory"] == []
    [advice] = [r.message for r in found if r.policy == "mesh-client-adopted-follow-up" and "launch stage" in r.message]
    shown = "'GA'" if stage else "unset (GA)"
    assert f"its launch stage reads back as {shown}, not 'BETA'" in advice
    assert "the next run, with `cloudrun-mesh:adopt: false`, keeps this one" in advice


def test_the_same_read_back_without_adoption_is_refused(made_by_hand):
    # The guard: the identity check is mandatory for any service whose template this run sets.
    _, adopted = made_by_hand
    regs = [dataclasses.replace(r, ignore_changes=["launchStage"]) if r.type == RUN else r for r in as_imported(adopted.registrations)]
    mandatory = [(r.policy, r.resource) for r in pack_results(regs) if r.level == "mandatory"]
    assert mandatory == [("mesh-client-dedicated-service-account", "gcp:cloudrunv2/service:Service::run-fortio-client-service")]
    assert [r for r in pack_results(regs) if r.policy == "mesh-client-adopted-follow-up"] == []


def test_the_offline_policy_run_of_an_adopting_stack_skips_what_the_import_reads_back(adopting_plan):
    run = harness.run_program("dev", config={"gcp:project": PROJECT, **GUIDE, "cloudrun-mesh:adopt": True}, preview=True)
    found = pack_results(run.raise_error().registrations)
    assert [r for r in found if r.level == "mandatory"] == []
    # The Cloud Run template is read back at import: unknown offline, so its checks are counted as skipped.
    skipped = {(r.policy, r.resource.rsplit("::", 1)[-1]) for r in found if r.level == "skipped"}
    assert ("mesh-client-adopted-follow-up", "run-fortio-client-service") in skipped
    [follow_up] = [r.message for r in found if r.policy == "mesh-client-adopted-follow-up"]
    assert follow_up.startswith("the service account of Cloud Run service 'fortio-client', "
                                "the launch stage of Cloud Run service 'fortio-client' can't be known during preview")
    assert ("container-image-pinned", "run-fortio-client-service") in skipped
    assert ("external-mesh-route-same-namespace", "svc-ads-virtualservice") in skipped

"""The policy pack without the Pulumi CLI.

Each policy is called as the analyzer calls it, with ``ResourceValidationArgs`` or
``StackValidationArgs`` built from the registrations the harness recorded for stacks this module
writes itself (``stackkit``: a prod-like and a dev-like stack in a scratch project): values the engine
would not know during a preview become the analyzer's unknown sentinels, and properties are wrapped
in the analyzer's unknown-checking proxy. Those stacks pass every mandatory policy; a copy of one
registration with one field changed violates with a clear message. The shipped stack files, whatever
a team writes in them, pass every mandatory policy with their checked-in configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import runpy
from typing import Any, Optional

import pulumi_policy
import pytest
import yaml
from docs_support import page
from pulumi.runtime import proto
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy
from stackkit import DEV_LIKE, PROD_LIKE, evaluate_stack, scratch_project
from testkit import ROOT, shared_evaluation

from cloudrun_mesh import config as program_config
from cloudrun_mesh.offline import harness
from cloudrun_mesh.offline import policy as offline
from components import exported_gke_service, mesh_cloud_run_service, private_mesh_zone

POLICY_DIR = ROOT / "policy"
policies = offline.pack_module()

BY_NAME = {p.name: p for p in policies.POLICIES}
MANDATORY = {
    "cloud-run-invoker-not-public",
    "mesh-client-launch-stage-beta",
    "mesh-client-dedicated-service-account",
    "mesh-dns-zone-private",
    "mesh-dns-record-rfc1918",
    "external-mesh-route-same-namespace",
    "external-mesh-route-service-namespace",
    "production-dns-zone-protected",
}
ADVISORY = {
    "cloud-run-deletion-protection",
    "cloud-run-ingress-internal",
    "mesh-dns-record-ttl",
    "container-image-pinned",
    "mesh-client-adopted-follow-up",
    "production-uptime-checks",
}
# Names of registrations in this module's stacks (stackkit.PROD_LIKE and DEV_LIKE).
ZONE, RECORD = "dns-zone", "dns-wildcard"
RUN_SVC = "run-mesh-svc-service"
DEV_RUN_SVC = "run-mesh-svc-dev-service"
INVOKER = "run-mesh-svc-invoker-group-platform-oncall-example-com"
ADS_VS, PAYMENTS_VS = "svc-ads-virtualservice", "svc-payments-virtualservice"


# --------------------------------------------------------------------------------------------
# Building the analyzer's arguments from recorded registrations.
# --------------------------------------------------------------------------------------------


def props_of(inputs: dict) -> Any:
    return unknown_checking_proxy(offline.engine_value(copy.deepcopy(inputs)))


def options_of(reg: harness.Registration) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=reg.protect,
        ignore_changes=list(reg.ignore_changes),
        delete_before_replace=reg.delete_before_replace,
        aliases=list(reg.aliases),
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=reg.parent or None,
    )


def resource_args(reg: harness.Registration, config: Optional[dict] = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(reg.type, props_of(reg.inputs), reg.urn, reg.name, options_of(reg), None, config)


def stack_args(regs: list[harness.Registration], config: Optional[dict] = None) -> StackValidationArgs:
    resources = {
        r.urn: PolicyResource(r.type, props_of(r.inputs), r.urn, r.name, options_of(r), None, None, [], {}) for r in regs
    }
    for r in regs:
        resources[r.urn].parent = resources.get(r.parent)
        resources[r.urn].dependencies = [resources[d] for d in r.dependencies if d in resources]
    return StackValidationArgs(list(resources.values()), config)


def violations(name: str, regs: list[harness.Registration], config: Optional[dict] = None) -> list[tuple[str, str]]:
    """(message, urn) of every violation policy ``name`` reports for these registrations."""
    found: list[tuple[str, str]] = []
    policy = BY_NAME[name]
    if isinstance(policy, StackValidationPolicy):
        policy.validate(stack_args(regs, config), lambda message, urn=None: found.append((message, urn)))
        return found
    for reg in regs:
        policy.validate(resource_args(reg, config), lambda message, urn=None, reg=reg: found.append((message, reg.urn)))
    return found


def only_violation(name: str, regs: list[harness.Registration], of: str, config: Optional[dict] = None) -> str:
    """The message of the one violation policy ``name`` reports, which must be against ``of``."""
    found = violations(name, regs, config)
    assert len(found) == 1, found
    message, urn = found[0]
    assert urn.endswith(f"::{of}"), urn
    return message


def messages(name: str, regs: list[harness.Registration], config: Optional[dict] = None) -> list[str]:
    return [m for m, _ in violations(name, regs, config)]


_DELETE = object()  # as a value: remove the key


def _set(inputs: dict, path: tuple, value: Any) -> None:
    *parents, last = path
    for key in parents:
        inputs = inputs[key]
    if value is _DELETE:
        del inputs[last]
    else:
        inputs[last] = value


def mutate(run: harness.ProgramRun, name: str, path: tuple = (), value: Any = None, /, **fields: Any) -> list[harness.Registration]:
    """The run's registrations with a copy of ``name`` whose input at ``path`` (and fields) changed."""
    regs = []
    hit = 0
    for reg in run.registrations:
        if reg.name == name:
            hit += 1
            inputs = copy.deepcopy(reg.inputs)
            if path:
                _set(inputs, path, value)
            reg = dataclasses.replace(reg, inputs=inputs, **fields)
        regs.append(reg)
    assert hit == 1, f"no single registration named {name}"
    return regs


def outside_component(run: harness.ProgramRun, name: str, /, **inputs: Any) -> list[harness.Registration]:
    """The run's registrations with ``name`` moved to the stack's top level (not created by a component)."""
    reg = next(r for r in run.registrations if r.name == name)
    stack_urn = run.registrations[0].urn
    prefix = stack_urn.split("::")[0] + "::" + stack_urn.split("::")[1]
    urn = f"{prefix}::{reg.type}::{name}"
    new_inputs = {**copy.deepcopy(reg.inputs), **inputs}
    return [dataclasses.replace(r, urn=urn, parent=stack_urn, inputs=new_inputs) if r is reg else r for r in run.registrations]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Any:
    """A scratch project with this module's own prod and dev stacks (the shipped ones are the users')."""
    return scratch_project(tmp_path_factory.mktemp("policy-project"), {"prod": PROD_LIKE, "dev": DEV_LIKE})




@pytest.fixture(scope="module")
def prod_preview(project) -> harness.ProgramRun:
    return evaluate_stack(project, "prod", preview=True)


# --------------------------------------------------------------------------------------------
# The pack itself.
# --------------------------------------------------------------------------------------------


def test_pack_lists_every_policy_once_at_its_level():
    assert len(BY_NAME) == len(policies.POLICIES)
    assert {n for n, p in BY_NAME.items() if p.enforcement_level == EnforcementLevel.MANDATORY} == MANDATORY
    assert {n for n, p in BY_NAME.items() if p.enforcement_level == EnforcementLevel.ADVISORY} == ADVISORY
    for policy in policies.POLICIES:
        assert isinstance(policy, (ResourceValidationPolicy, StackValidationPolicy))
        assert policy.description.endswith(".")


def test_main_builds_the_pack_from_the_policies(monkeypatch):
    built: dict[str, Any] = {}

    def record(**kwargs):
        built.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", record)  # the real one starts a gRPC server and blocks
    runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    assert built["name"] == "cloudrun-mesh"
    assert built["policies"] is policies.POLICIES


def test_pack_project_files():
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    runtime = project["runtime"]
    assert (runtime if isinstance(runtime, str) else runtime["name"]) == "python"
    requirements = (POLICY_DIR / "requirements.txt").read_text().split()
    assert requirements == ["pulumi-policy>=1.13,<2", "pulumi>=3,<4"]


def test_the_docs_list_every_policy_at_its_level():
    doc = page("docs/policies.md")
    for name, _policy in BY_NAME.items():
        level = "mandatory" if name in MANDATORY else "advisory"
        assert re.search(rf"^\| `{re.escape(name)}` \| {level}\b", doc, re.M), name


def test_names_shared_with_the_program_agree():
    assert policies.MESH_ZONE_COMPONENT == private_mesh_zone.TYPE
    assert policies.EXTERNAL_MESH_GATEWAY == exported_gke_service.EXTERNAL_MESH_GATEWAY
    assert policies.MESH_LAUNCH_STAGE == mesh_cloud_run_service.LAUNCH_STAGE
    assert policies.PUBLIC_MEMBERS == program_config.PUBLIC_MEMBERS
    assert policies.RFC1918 == program_config._RFC1918


def test_unknowns_reach_the_policies_as_the_engine_sends_them():
    assert offline.engine_value({"a": [harness.UNKNOWN, "x"], "b": harness.UNKNOWN}) == {
        "a": [UNKNOWN_STRING_VALUE, "x"],
        "b": UNKNOWN_STRING_VALUE,
    }


def test_unknown_values_read_as_unknown_not_as_errors():
    props = props_of({"template": {"serviceAccount": harness.UNKNOWN}, "rrdatas": [harness.UNKNOWN, "10.0.0.1"]})
    assert policies.get(props, "template", "serviceAccount") is policies.UNKNOWN
    assert policies.get(props, "template", "missing") is None
    assert policies.elements(policies.get(props, "rrdatas")) == [policies.UNKNOWN, "10.0.0.1"]


# --------------------------------------------------------------------------------------------
# The stacks as written.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["dev_run", "prod_run"])
def test_the_stacks_pass_every_mandatory_policy(which, request):
    run = request.getfixturevalue(which)
    for name in sorted(MANDATORY):
        assert violations(name, run.registrations) == [], name


def test_a_preview_skips_what_it_cannot_know_and_says_so(prod_preview):
    # The mesh clients' identity and the reserved address are only known once created: the policies
    # that need them skip them, each with one skip the summary counts, and report nothing else.
    service = next(r for r in prod_preview.registrations if r.name == RUN_SVC)
    record = next(r for r in prod_preview.registrations if r.name == RECORD)
    assert service.inputs["template"]["serviceAccount"] == harness.UNKNOWN
    assert record.inputs["rrdatas"] == [harness.UNKNOWN]
    found = offline.results(_analyze(prod_preview.registrations))
    skipped = sorted((r.policy, r.resource.rsplit("::", 1)[1]) for r in found if r.level == "skipped")
    assert skipped == [("mesh-client-dedicated-service-account", "run-checkout-web-service"),
                       ("mesh-client-dedicated-service-account", RUN_SVC),
                       ("mesh-dns-record-rfc1918", RECORD)]
    assert [r.level for r in found if r.level == "mandatory"] == []
    rfc1918 = next(r for r in found if r.policy == "mesh-dns-record-rfc1918")
    assert rfc1918.message == ("an address of A record '*.mesh.private.' can't be known during preview; "
                               "`pulumi up` checks the real value")


@pytest.mark.parametrize(
    "which, expected",
    [
        ("dev_run", {"cloud-run-ingress-internal": 1, "container-image-pinned": 1}),
        ("prod_run", {"cloud-run-ingress-internal": 2, "production-uptime-checks": 1}),
    ],
)
def test_advisories_the_stacks_get_with_the_pack_defaults(which, expected, request):
    # Ingress stays open for the guide's curl everywhere; dev runs the guide's untagged fortio/fortio,
    # prod pins a version and registers no uptime check. The checked-in configuration accepts the
    # first two (below).
    run = request.getfixturevalue(which)
    counts = {name: len(violations(name, run.registrations)) for name in sorted(ADVISORY)}
    assert {k: v for k, v in counts.items() if v} == expected


def _analyze(regs: list[harness.Registration], config: Optional[dict] = None) -> list[Any]:
    # The servicer `pulumi preview --policy-pack` talks to over gRPC, called directly as the offline
    # policy command calls it: it deserializes the engine's structs, applies enforcement levels and
    # catches unknown values.
    return offline.analyze(regs, offline.analyzer(policies.POLICIES, config))


def test_the_pack_through_the_analyzer_during_a_preview(prod_preview):
    diagnostics = _analyze(prod_preview.registrations)
    reported = sorted((d.policyName, d.enforcementLevel) for d in diagnostics if "can't run policy" not in d.message)
    assert reported == [("cloud-run-ingress-internal", proto.ADVISORY)] * 2 + [("production-uptime-checks", proto.ADVISORY)]
    # Each skip is pulumi-policy's own "can't run policy" diagnostic, at advisory level.
    skips = [d for d in diagnostics if "can't run policy" in d.message]
    assert len(skips) == 3 and {d.enforcementLevel for d in skips} == {proto.ADVISORY}


def test_a_mandatory_violation_through_the_analyzer(prod_run):
    regs = mutate(prod_run, INVOKER, ("member",), "allUsers")
    regs = mutate(dataclasses.replace(prod_run, registrations=regs), ZONE, protect=False)
    mandatory = sorted((d.policyName, d.urn.rsplit("::", 1)[1]) for d in _analyze(regs) if d.enforcementLevel == proto.MANDATORY)
    assert mandatory == [("cloud-run-invoker-not-public", INVOKER), ("production-dns-zone-protected", ZONE)]


# --------------------------------------------------------------------------------------------
# Mandatory policies, each broken by one changed field.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["allUsers", "allAuthenticatedUsers"])
def test_public_invoker_member(prod_run, member):
    message = only_violation("cloud-run-invoker-not-public", mutate(prod_run, INVOKER, ("member",), member), INVOKER)
    assert f"{member} is granted roles/run.invoker on Cloud Run service 'mesh-svc'" in message
    assert "never public" in message


def test_public_invoker_binding_and_policy(prod_run):
    reg = next(r for r in prod_run.registrations if r.name == INVOKER)
    base = {k: v for k, v in reg.inputs.items() if k != "member"}
    binding = dataclasses.replace(
        reg,
        type="gcp:cloudrunv2/serviceIamBinding:ServiceIamBinding",
        inputs={**base, "members": ["group:platform-oncall@example.com", "allUsers"]},
    )
    data = {"bindings": [{"role": "roles/run.invoker", "members": ["allAuthenticatedUsers"]}]}
    policy = dataclasses.replace(
        reg,
        type="gcp:cloudrunv2/serviceIamPolicy:ServiceIamPolicy",
        inputs={"name": "mesh-svc", "location": "us-central1", "policyData": json.dumps(data)},
    )
    legacy = dataclasses.replace(reg, type="gcp:cloudrun/iamMember:IamMember", inputs={**reg.inputs, "member": "allUsers"})
    assert len(messages("cloud-run-invoker-not-public", [binding])) == 1
    assert "allAuthenticatedUsers is granted roles/run.invoker" in messages("cloud-run-invoker-not-public", [policy])[0]
    assert len(messages("cloud-run-invoker-not-public", [legacy])) == 1
    private = dataclasses.replace(policy, inputs={**policy.inputs, "policyData": json.dumps({"bindings": []})})
    assert messages("cloud-run-invoker-not-public", [private]) == []


@pytest.mark.parametrize("stage", ["GA", _DELETE])
def test_mesh_client_without_beta_launch_stage(prod_run, stage):
    found = messages("mesh-client-launch-stage-beta", mutate(prod_run, RUN_SVC, ("launchStage",), stage))
    assert len(found) == 1
    assert "'mesh-svc' joins the mesh but its launchStage is" in found[0]
    assert ("'GA'" if stage == "GA" else "unset (GA)") in found[0]
    assert "launch_stage='BETA'" in found[0]


def test_launch_stage_only_matters_for_mesh_clients(prod_run):
    regs = mutate(prod_run, RUN_SVC, ("launchStage",), "GA")
    regs = [
        dataclasses.replace(r, inputs={**r.inputs, "template": {k: v for k, v in r.inputs["template"].items() if k != "serviceMesh"}})
        if r.name == RUN_SVC else r
        for r in regs
    ]
    assert messages("mesh-client-launch-stage-beta", regs) == []


@pytest.mark.parametrize(
    "account, why",
    [
        ("", "has no template.serviceAccount"),
        (_DELETE, "has no template.serviceAccount"),
        ("123456789012-compute@developer.gserviceaccount.com", "runs as the default service account 123456789012-compute@"),
        ("my-project@appspot.gserviceaccount.com", "runs as the default service account my-project@appspot"),
    ],
)
def test_mesh_client_without_dedicated_account(prod_run, account, why):
    found = messages("mesh-client-dedicated-service-account", mutate(prod_run, RUN_SVC, ("template", "serviceAccount"), account))
    assert len(found) == 1
    assert f"'mesh-svc' joins the mesh but {why}" in found[0]
    assert "roles/trafficdirector.client" in found[0]


def test_any_other_account_is_dedicated(prod_run):
    regs = mutate(prod_run, RUN_SVC, ("template", "serviceAccount"), "reporting@my-project.iam.gserviceaccount.com")
    assert messages("mesh-client-dedicated-service-account", regs) == []


@pytest.mark.parametrize("visibility, shown", [("public", "'public'"), (_DELETE, "'public'")])
def test_mesh_zone_not_private(prod_run, visibility, shown):
    message = only_violation("mesh-dns-zone-private", mutate(prod_run, ZONE, ("visibility",), visibility), ZONE)
    assert f"zone 'prod' (mesh.private.) serves mesh hosts but its visibility is {shown}" in message


def test_zone_outside_the_component_is_the_mesh_s_by_suffix(prod_run):
    corp = outside_component(prod_run, ZONE, dnsName="corp.private.", visibility="public")
    assert len(messages("mesh-dns-zone-private", corp)) == 1
    public_site = outside_component(prod_run, ZONE, dnsName="example.com.", visibility="public")
    assert messages("mesh-dns-zone-private", public_site) == []
    internal = outside_component(prod_run, ZONE, dnsName="mesh.internal.", visibility="public")
    assert messages("mesh-dns-zone-private", internal) == []
    assert len(messages("mesh-dns-zone-private", internal, {"meshSuffixes": ["internal"]})) == 1


@pytest.mark.parametrize("address", ["8.8.8.8", "100.64.0.1", "172.32.0.1", "127.0.0.1", "not-an-address"])
def test_mesh_record_outside_rfc1918(dev_run, address):
    regs = mutate(dev_run, RECORD, ("rrdatas",), ["10.0.0.1", address])
    message = only_violation("mesh-dns-record-rfc1918", regs, RECORD)
    assert f"A record '*.mesh-dev.private.' points at {address!r}, which is not an RFC 1918 address" in message


@pytest.mark.parametrize("address", ["10.255.255.254", "172.31.0.1", "192.168.1.1"])
def test_mesh_record_inside_rfc1918(dev_run, address):
    assert messages("mesh-dns-record-rfc1918", mutate(dev_run, RECORD, ("rrdatas",), [address])) == []


def test_records_of_other_zones_are_not_the_mesh_s(dev_run):
    other = outside_component(dev_run, RECORD, name="www.example.com.", rrdatas=["8.8.8.8"])
    assert messages("mesh-dns-record-rfc1918", other) == []
    stray = outside_component(dev_run, RECORD, name="api.mesh.private.", rrdatas=["8.8.8.8"])
    assert len(messages("mesh-dns-record-rfc1918", stray)) == 1


@pytest.mark.parametrize("host", ["payments.payments.svc.cluster.local", "payments.payments", "payments.payments.svc"])
def test_external_mesh_route_to_another_namespace(prod_run, host):
    path = ("spec", "http", 0, "route", 0, "destination", "host")
    message = only_violation("external-mesh-route-same-namespace", mutate(prod_run, ADS_VS, path, host), ADS_VS)
    assert f"VirtualService ads/ads-external on the external-mesh gateway routes to {host!r} in namespace 'payments'" in message
    assert "create the VirtualService in 'payments'" in message


def test_external_mesh_route_fqdn_in_its_own_namespace(prod_run):
    path = ("spec", "http", 0, "route", 0, "destination", "host")
    regs = mutate(prod_run, ADS_VS, path, "ads.ads.svc.cluster.local")
    assert messages("external-mesh-route-same-namespace", regs) == []


def test_routes_on_other_gateways_are_not_checked(prod_run):
    path = ("spec", "http", 0, "route", 0, "destination", "host")
    regs = mutate(prod_run, ADS_VS, path, "payments.payments.svc.cluster.local")
    regs = [
        dataclasses.replace(r, inputs={**r.inputs, "spec": {**r.inputs["spec"], "gateways": ["mesh"]}}) if r.name == ADS_VS else r
        for r in regs
    ]
    assert messages("external-mesh-route-same-namespace", regs) == []


def test_virtual_service_moved_away_from_its_service(prod_run):
    # A short host resolves in the VirtualService's own namespace, so only the stack knows that the
    # Service `ads` this stack creates lives in namespace `ads`.
    regs = mutate(prod_run, ADS_VS, ("metadata", "namespace"), "default")
    assert messages("external-mesh-route-same-namespace", regs) == []
    message = only_violation("external-mesh-route-service-namespace", regs, ADS_VS)
    assert "VirtualService default/ads-external on the external-mesh gateway routes to 'ads' (namespace 'default'), " \
           "but this stack's Service 'ads' is in namespace ads" in message


def test_routes_to_services_the_stack_does_not_create_are_left_to_the_resource_policy(prod_run):
    # payments is an existing Service: nothing in the stack to compare with.
    regs = mutate(prod_run, PAYMENTS_VS, ("metadata", "namespace"), "default")
    assert messages("external-mesh-route-service-namespace", regs) == []


def test_prod_zone_without_protect(prod_run):
    message = only_violation("production-dns-zone-protected", mutate(prod_run, ZONE, protect=False), ZONE)
    assert "Cloud DNS zone 'prod' in stack 'prod' is not protected" in message
    assert "`cloudrun-mesh:protect: true` in Pulumi.prod.yaml" in message


def test_zone_protection_in_other_stacks_follows_the_config(dev_run):
    assert messages("production-dns-zone-protected", dev_run.registrations) == []
    assert len(messages("production-dns-zone-protected", dev_run.registrations, {"allStacks": True})) == 1
    assert len(messages("production-dns-zone-protected", dev_run.registrations, {"stacks": ["dev", "prod"]})) == 1


# --------------------------------------------------------------------------------------------
# Advisory policies.
# --------------------------------------------------------------------------------------------


def test_deletion_protection_off_in_prod(prod_run, dev_run):
    found = messages("cloud-run-deletion-protection", mutate(prod_run, RUN_SVC, ("deletionProtection",), False))
    assert found == ["Cloud Run service 'mesh-svc' in stack 'prod' has deletionProtection false: a mistaken replace "
                     "or destroy deletes it with its URL."]
    assert dev_run.one(policies.CLOUD_RUN_SERVICE).inputs["deletionProtection"] is False
    assert messages("cloud-run-deletion-protection", dev_run.registrations) == []


def test_ingress(dev_run):
    assert "accepts INGRESS_TRAFFIC_ALL" in messages("cloud-run-ingress-internal", dev_run.registrations)[0]
    internal = mutate(dev_run, DEV_RUN_SVC, ("ingress",), "INGRESS_TRAFFIC_INTERNAL_ONLY")
    assert messages("cloud-run-ingress-internal", internal) == []
    accepted = {"allowed": ["INGRESS_TRAFFIC_ALL"]}
    assert messages("cloud-run-ingress-internal", dev_run.registrations, accepted) == []


def test_record_ttl(dev_run, prod_run):
    assert messages("mesh-dns-record-ttl", dev_run.registrations) == []  # 3600 s: at the limit
    found = messages("mesh-dns-record-ttl", mutate(dev_run, RECORD, ("ttl",), 86400))
    assert found == ["Record '*.mesh-dev.private.' has a TTL of 86400 s, over 3600 s: a change of the mesh address "
                     "would take that long to reach every client."]
    assert len(messages("mesh-dns-record-ttl", prod_run.registrations, {"maxTtl": 60})) == 1


NO_TAG = "has no tag, so each pull takes whatever `latest` is then"
MOVING = "uses the tag `latest`, which moves to every new release"


@pytest.mark.parametrize(
    "image, problem",
    [
        ("fortio/fortio:1.63.0", None),
        ("fortio/fortio@sha256:" + "0" * 64, None),
        ("fortio/fortio:latest@sha256:" + "0" * 64, None),  # the digest decides what is pulled
        ("us-docker.pkg.dev/p/r/app:v2", None),
        ("fortio/fortio", NO_TAG),
        ("fortio/fortio:latest", MOVING),
        ("registry.example.com:5000/app", NO_TAG),  # a registry port is not a tag
        ("registry.example.com:5000/app:latest", MOVING),
    ],
)
def test_image_pinned(dev_run, image, problem):
    regs = mutate(dev_run, DEV_RUN_SVC, ("template", "containers", 0, "image"), image)
    found = messages("container-image-pinned", [r for r in regs if r.name == DEV_RUN_SVC])
    assert found == ([] if problem is None else [f"'mesh-svc-dev' runs image {image!r}, which {problem}: every new "
                                                  "revision or pod may pull a different build. Pin a version tag or, better, a digest."])


def test_image_of_kubernetes_workloads(dev_run):
    path = ("spec", "template", "spec", "containers", 0, "image")
    regs = mutate(dev_run, "svc-ads-deployment", path, "docker.io/waip/simple-http")
    assert messages("container-image-pinned", [r for r in regs if r.name == "svc-ads-deployment"]) == [
        f"'ads' runs image 'docker.io/waip/simple-http', which {NO_TAG}: every new revision or pod may pull "
        "a different build. Pin a version tag or, better, a digest."
    ]


def test_an_unknown_image_is_skipped_after_the_known_ones_are_checked(dev_run):
    regs = mutate(dev_run, DEV_RUN_SVC, ("template", "containers"), [{"image": "app:latest"}, {"image": harness.UNKNOWN}])
    found = offline.results(_analyze([r for r in regs if r.name == DEV_RUN_SVC]))
    pinned = [(r.level, r.message.split(",")[0]) for r in found if r.policy == "container-image-pinned"]
    assert pinned == [("advisory", "'mesh-svc-dev' runs image 'app:latest'"),
                      ("skipped", "a container image of 'mesh-svc-dev' can't be known during preview; `pulumi up` checks the real value")]


def test_mesh_client_must_ignore_the_launch_stage_read_back(prod_run):
    assert messages("mesh-client-launch-stage-beta", prod_run.registrations) == []
    regs = [dataclasses.replace(r, ignore_changes=[]) if r.name == RUN_SVC else r for r in prod_run.registrations]
    [found] = messages("mesh-client-launch-stage-beta", regs)
    assert "'mesh-svc' joins the mesh but does not ignore launchStage on update" in found


# --------------------------------------------------------------------------------------------
# The checked-in policy configuration and the offline command (`python -m cloudrun_mesh policy`).
# --------------------------------------------------------------------------------------------

CONFIG_DIR = POLICY_DIR / "config"
PRODUCTION_POLICIES = ("production-dns-zone-protected", "cloud-run-deletion-protection", "production-uptime-checks")


def checked_in_configs() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(CONFIG_DIR.glob("*.json"))}


def test_every_checked_in_configuration_is_one_the_cli_accepts():
    assert set(checked_in_configs()) >= {"default"}
    for path in sorted(CONFIG_DIR.glob("*.json")):
        offline.read_config(path, policies.POLICIES)  # raises on a policy or property the pack lacks


def test_production_stacks_are_listed_alike_for_every_stack():
    lists = {(name, policy): tuple(cfg[policy]["stacks"]) for name, cfg in checked_in_configs().items() for policy in PRODUCTION_POLICIES}
    assert len(set(lists.values())) == 1, lists
    for stack in set(lists.values()).pop():
        assert (ROOT / f"Pulumi.{stack}.yaml").is_file(), f"a production stack without a stack file: {stack}"


def test_each_stack_gets_its_own_file_or_the_default(tmp_path):
    (tmp_path / "default.json").write_text("{}")
    (tmp_path / "dev.json").write_text("{}")
    assert offline.default_config("dev", tmp_path) == tmp_path / "dev.json"
    assert offline.default_config("anything-else", tmp_path) == tmp_path / "default.json"  # a new stack needs no new file
    (tmp_path / "default.json").unlink()
    assert offline.default_config("anything-else", tmp_path) is None  # then the pack's own defaults


@pytest.mark.parametrize(
    "config, problem",
    [
        ({"cloud-run-ingres-internal": "advisory"}, "`cloud-run-ingres-internal` is not a policy of the pack"),
        ({"cloud-run-ingress-internal": {"allowed": "INGRESS_TRAFFIC_ALL"}}, "`cloud-run-ingress-internal.allowed`: 'INGRESS_TRAFFIC_ALL' is not of type 'array'"),
        ({"mesh-dns-record-ttl": {"maxTtl": 0}}, "`mesh-dns-record-ttl.maxTtl`: 0 is less than the minimum of 1"),
        ({"mesh-dns-record-ttl": {"maxTTL": 60}}, "Additional properties are not allowed ('maxTTL' was unexpected)"),
        ({"container-image-pinned": "off"}, "`container-image-pinned` must be one of mandatory, advisory, disabled"),
        ({"container-image-pinned": {"enforcementLevel": "warn"}}, "`container-image-pinned.enforcementLevel` must be one of"),
        (["container-image-pinned"], "must be a JSON object keyed by policy name"),
    ],
)
def test_a_bad_configuration_is_named(tmp_path, config, problem):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(config))
    with pytest.raises(offline.PolicyConfigError) as info:
        offline.read_config(path, policies.POLICIES)
    assert problem in str(info.value) and str(path) in str(info.value)


def test_configuration_levels_and_properties_reach_the_policies(dev_run):
    def levels(config):
        return sorted((r.policy, r.level) for r in offline.results(_analyze(dev_run.registrations, config)))

    assert levels({}) == [("cloud-run-ingress-internal", "advisory"), ("container-image-pinned", "advisory")]
    assert levels(json.loads((CONFIG_DIR / "dev.json").read_text())) == []
    assert levels({"container-image-pinned": "mandatory", "cloud-run-ingress-internal": "disabled"}) == [
        ("container-image-pinned", "mandatory")
    ]
    assert levels({"production-dns-zone-protected": {"stacks": ["dev"]}}) == [
        ("cloud-run-ingress-internal", "advisory"), ("container-image-pinned", "advisory"),
        ("production-dns-zone-protected", "mandatory"),
    ]


def test_a_policy_that_reads_an_unknown_value_is_skipped_as_in_a_preview(prod_preview):
    def strict(args, report_violation):  # reads the service account without checking for unknowns
        if args.resource_type == policies.CLOUD_RUN_SERVICE and not args.props["template"]["serviceAccount"]:
            report_violation("no service account")

    strict_policy = ResourceValidationPolicy(name="strict", description="Strict.", enforcement_level=EnforcementLevel.MANDATORY, validate=strict)
    found = offline.results(offline.analyze(prod_preview.registrations, offline.analyzer([strict_policy])))
    assert [(r.policy, r.level) for r in found] == [("strict", "skipped")] * 2
    # The same one skip per policy and resource as the pack's own policies report (the prefix is the
    # analyzer's, which the summary does not repeat).
    assert found[0].message == "string value at .template.serviceAccount can't be known during preview"


def test_reserved_addresses_unknown_in_a_preview_are_skipped_not_violations(project):
    run = evaluate_stack(project, "dev", {"cloudrun-mesh:dns": {"zone": "mesh-dev", "suffix": "mesh-dev.private", "address": "reserve"}},
                    preview=True)
    assert run.one("gcp:dns/recordSet:RecordSet").inputs["rrdatas"] == [harness.UNKNOWN]
    found = offline.results(_analyze(run.registrations, json.loads((CONFIG_DIR / "dev.json").read_text())))
    assert sorted((r.policy, r.level) for r in found) == [
        ("mesh-client-dedicated-service-account", "skipped"), ("mesh-dns-record-rfc1918", "skipped")]
    # A known address beside the unknown one is still checked.
    regs = mutate(run, RECORD, ("rrdatas",), [harness.UNKNOWN, "8.8.8.8"])
    found = offline.results(_analyze([r for r in regs if r.name == RECORD]))
    assert sorted(r.level for r in found if r.policy == "mesh-dns-record-rfc1918") == ["mandatory", "skipped"]


@pytest.mark.parametrize(
    "policy, name, path",
    [
        ("mesh-dns-zone-private", ZONE, ("visibility",)),
        ("mesh-client-launch-stage-beta", RUN_SVC, ("launchStage",)),
        ("cloud-run-ingress-internal", RUN_SVC, ("ingress",)),
        ("cloud-run-deletion-protection", RUN_SVC, ("deletionProtection",)),
        ("mesh-dns-record-ttl", RECORD, ("ttl",)),
        ("cloud-run-invoker-not-public", INVOKER, ("member",)),
        ("external-mesh-route-same-namespace", ADS_VS, ("metadata", "namespace")),
        ("external-mesh-route-same-namespace", ADS_VS, ("spec", "http", 0, "route", 0, "destination", "host")),
        ("external-mesh-route-service-namespace", ADS_VS, ("metadata", "namespace")),
    ],
)
def test_every_check_of_an_unknown_value_is_a_counted_skip(prod_run, policy, name, path):
    # The same value, known, passes; unknown, the policy says it skipped it, once.
    regs = mutate(prod_run, name, path, harness.UNKNOWN)
    found = [r for r in offline.results(_analyze(regs)) if r.policy == policy and r.resource in ("", f"{regs[0].type}::{name}")
             or r.policy == policy and r.resource.endswith(f"::{name}")]
    assert [r.level for r in found] == ["skipped"], found
    assert found[0].message.endswith("can't be known during preview; `pulumi up` checks the real value")
    assert [r for r in offline.results(_analyze(prod_run.registrations)) if r.policy == policy and r.level != "advisory"] == []


@pytest.fixture
def command(capsys, shared_program_runs):
    """`python -m cloudrun_mesh policy ARGS`: (exit code, stdout, stderr)."""
    from cloudrun_mesh.__main__ import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["policy", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


SUMMARY = re.compile(r"(PASS|FAIL): (\d+) mandatory violation\(s\), (\d+) advisory, (\d+) skipped for unknown values; "
                     r"(\d+) policies on (\d+) resources\.")


@pytest.mark.parametrize("stack", harness.stacks())
def test_the_command_passes_every_stack_file_and_counts_what_it_prints(command, stack):
    # Whatever a team writes in its stack files: no mandatory violation, and a summary that counts
    # exactly the entries printed above it.
    code, out, err = command("--stack", stack)
    assert code == 0, out + err
    assert f"offline plan of stack {stack} (config: {offline.shown(offline.default_config(stack))};" in out
    lines = out.rstrip().splitlines()
    levels = [line.split()[0] for line in lines[2:-2] if not line.startswith(" ")]
    verdict, mandatory, advisory, skipped, npolicies, resources = SUMMARY.fullmatch(lines[-1]).groups()
    assert (verdict, int(mandatory)) == ("PASS", 0) and "MANDATORY" not in levels
    assert (int(advisory), int(skipped)) == (levels.count("ADVISORY"), levels.count("SKIPPED"))
    assert int(npolicies) == len(policies.POLICIES)
    assert int(resources) == len(shared_evaluation(stack, preview=True).resources())
    assert ("No violations." in lines) == (not levels)


@pytest.fixture
def scratch_command(capsys, project):
    """The command on this module's own scratch project (its prod and dev stacks, no policy/config)."""

    def run(*args: str, **kwargs: Any) -> tuple[int, str, str]:
        code = offline.run_policy(*args, project_dir=project, **kwargs)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_the_command_exits_1_on_a_mandatory_violation_and_prints_every_result(scratch_command, tmp_path):
    config = tmp_path / "strict.json"
    config.write_text(json.dumps({"production-dns-zone-protected": {"stacks": ["dev"]}}))
    report = tmp_path / "out" / "policy.md"
    code, out, _ = scratch_command("dev", config, report)
    assert code == 1
    lines = out.splitlines()
    assert lines[2:4] == [
        "MANDATORY  production-dns-zone-protected  gcp:dns/managedZone:ManagedZone::dns-zone",
        "           Cloud DNS zone 'mesh-dev' in stack 'dev' is not protected: deleting it breaks every mesh client at once. "
        "Set `cloudrun-mesh:protect: true` in Pulumi.dev.yaml (or protect=True on the resource).",
    ]
    assert "ADVISORY   cloud-run-ingress-internal  gcp:cloudrunv2/service:Service::run-mesh-svc-dev-service" in lines
    assert "ADVISORY   container-image-pinned  gcp:cloudrunv2/service:Service::run-mesh-svc-dev-service" in lines
    assert "SKIPPED    mesh-client-dedicated-service-account  gcp:cloudrunv2/service:Service::run-mesh-svc-dev-service" in lines
    assert lines[-1].startswith("FAIL: 1 mandatory violation(s), 2 advisory, 1 skipped for unknown values; ")
    md = report.read_text()
    assert md.startswith("### cloudrun-mesh policies: `dev`\n\n**FAIL: 1 mandatory violation(s)")
    assert "| mandatory | `production-dns-zone-protected` | `gcp:dns/managedZone:ManagedZone::dns-zone` | Cloud DNS zone" in md
    assert "| skipped | `mesh-client-dedicated-service-account` |" in md


def test_without_a_configuration_the_pack_defaults_apply(scratch_command, prod_preview):
    code, out, _ = scratch_command("prod")
    assert code == 0 and "(config: the pack defaults;" in out
    assert out.rstrip().endswith("PASS: 0 mandatory violation(s), 3 advisory, 3 skipped for unknown values; "
                                 f"{len(policies.POLICIES)} policies on {len(prod_preview.resources())} resources.")


@pytest.mark.parametrize(
    "args, message",
    [
        (("--stack", "nope"), "unknown stack 'nope'"),
        (("--stack", "dev", "--config", "/nonexistent/policy.json"), "/nonexistent/policy.json: the policy configuration cannot be read"),
    ],
)
def test_the_command_names_user_mistakes_with_exit_2(command, args, message):
    code, out, err = command(*args)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_the_command_line_and_make_target():
    from cloudrun_mesh.__main__ import COMMANDS

    assert "policy" in COMMANDS
    makefile = (ROOT / "Makefile").read_text()
    assert "\tpython -m cloudrun_mesh policy --stack $(STACK) $(ARGS)" in makefile.replace("$(BIN)/", "")
    # The dev lock carries pulumi-policy at a version the pack itself accepts (policy/requirements.txt).
    from packaging.requirements import Requirement

    locked = re.search(r"^pulumi-policy==(\S+)", (ROOT / "requirements-dev.lock").read_text(), re.M)
    pack = next(Requirement(line) for line in (POLICY_DIR / "requirements.txt").read_text().splitlines()
                if line.startswith("pulumi-policy"))
    assert locked and pack.specifier.contains(locked.group(1)), locked


# --------------------------------------------------------------------------------------------
# production-uptime-checks: registrations constructed here (the monitoring resources are the
# program's own business; the policy only looks for an uptime check's type in a production stack).
# --------------------------------------------------------------------------------------------


def uptime_check(run: harness.ProgramRun, name: str = "monitoring-mesh-svc-ads-uptime") -> harness.Registration:
    stack_urn = run.registrations[0].urn
    prefix = "::".join(stack_urn.split("::")[:2])
    return harness.Registration(
        urn=f"{prefix}::{policies.UPTIME_CHECK}::{name}", type=policies.UPTIME_CHECK, name=name, parent=stack_urn,
        custom=True, read=False, id="", inputs={"displayName": name, "period": "60s"}, state={}, dependencies=[],
        property_dependencies={}, protect=True, provider="",
    )


def test_a_production_stack_without_an_uptime_check_is_advised(prod_run):
    [message] = messages("production-uptime-checks", prod_run.registrations)
    assert message == (
        "Production stack 'prod' registers no uptime check (gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig): "
        "when a route breaks after a deploy (a control-plane upgrade, a hand edit, a lost role), a user of the "
        "Cloud Run service notices first. Turn on `cloudrun-mesh:monitoring` in Pulumi.prod.yaml.")
    assert messages("production-uptime-checks", [*prod_run.registrations, uptime_check(prod_run)]) == []


def test_uptime_checks_are_asked_of_the_configured_production_stacks_only(dev_run, prod_run):
    assert messages("production-uptime-checks", dev_run.registrations) == []
    assert len(messages("production-uptime-checks", dev_run.registrations, {"stacks": ["dev"]})) == 1
    assert messages("production-uptime-checks", prod_run.registrations, {"stacks": ["staging"]}) == []
    # A resource of another type is not an uptime check.
    other = dataclasses.replace(uptime_check(prod_run), type="gcp:monitoring/alertPolicy:AlertPolicy")
    assert len(messages("production-uptime-checks", [*prod_run.registrations, other])) == 1


# --------------------------------------------------------------------------------------------
# The docs' example printouts are what the stack files print now.
# --------------------------------------------------------------------------------------------

EXAMPLE = re.compile(r"```console\n\$ \.venv/bin/python -m cloudrun_mesh policy --stack (\S+)\n(.*?)```", re.S)


def test_the_docs_show_what_the_stack_files_print(command, monkeypatch, update_snapshots):
    # Each example block in docs/policies.md is the command's printout for a stack file as it is.
    # `make snapshots` rewrites the blocks after a stack file changed: review the diff.
    monkeypatch.chdir(ROOT)  # the configuration path is shown relative to where the command runs
    path = ROOT / "docs" / "policies.md"
    doc = path.read_text(encoding="utf-8")
    examples = list(EXAMPLE.finditer(doc))
    assert examples, "docs/policies.md shows no example printout"
    for example in reversed(examples):
        stack, shown = example.group(1), example.group(2)
        if stack not in harness.stacks():
            assert update_snapshots, f"docs/policies.md shows the printout of stack {stack}, which has no stack file"
            continue
        code, out, _ = command("--stack", stack)
        if update_snapshots:
            doc = doc[:example.start(2)] + out + doc[example.end(2):]
        else:
            assert shown == out, f"docs/policies.md: the example for stack {stack} is not what it prints now"
    if update_snapshots:
        path.write_text(doc, encoding="utf-8")

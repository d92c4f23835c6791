"""The offline diff: the replacement table, one scenario per replacement-forcing setting, refusals."""

from __future__ import annotations

import copy
import importlib
import json
from functools import cache, lru_cache

import pytest
from stackkit import example_evaluation as shared_evaluation  # dev and prod: the tests' own example stacks
from stackkit import example_value

from cloudrun_mesh.offline import harness, plan, plan_diff, replacements
from cloudrun_mesh.offline.plan_diff import DELETE, REPLACE, UPDATE

PROJECT = {"gcp:project": "my-project"}
CLUSTER = {"cloudrun-mesh:cluster": {"name": "mesh-cluster", "location": "us-central1"}}
# Every shipped stack, and the settings that change which types are registered.
VARIANTS = {
    **{stack: (stack, {}) for stack in harness.stacks()},
    "dev+cluster": ("dev", CLUSTER),
    "prod+cluster": ("prod", CLUSTER),
    "dev+mesh-name": ("dev", {"cloudrun-mesh:mesh": {"name": "projects/my-project/locations/global/meshes/m1"}}),
    "dev+reserve": ("dev", {"cloudrun-mesh:dns": {"zone": "mesh-dev", "address": "reserve"}}),
}


@cache
def _plan(stack: str, config_json: str) -> str:
    run = shared_evaluation(stack, {**PROJECT, **json.loads(config_json)}, preview=True)
    return json.dumps(plan.build_plan(run))


def plan_of(stack: str, config: dict) -> dict:
    return json.loads(_plan(stack, json.dumps(config, sort_keys=True)))


def stack_value(stack: str, key: str):
    return example_value(stack, key)


# -- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_registered_type_has_a_replacement_rule(variant):
    stack, config = VARIANTS[variant]
    types = {r["type"] for r in plan_of(stack, config)["resources"] if r["custom"]}
    missing = sorted(t for t in types if replacements.rule_for(t) is None)
    assert not missing, f"no replacement rule (cloudrun_mesh/offline/replacements.py) for {missing}"


def _input_names(type_: str) -> set[str]:
    """Wire names of a type's inputs, from the SDK's typed Args class."""
    package, module, name = type_.split(":")
    if package == "pulumi":
        import pulumi_kubernetes as sdk

        cls = sdk.ProviderArgs
    elif package == "gcp":
        cls = getattr(importlib.import_module(f"pulumi_gcp.{module.split('/')[0]}"), f"{name}Args")
    else:
        group = module.split("/")[0]
        mod = importlib.import_module(f"pulumi_kubernetes.{group}.{module.split('/')[1]}")
        cls = getattr(mod, f"{name}InitArgs", None) or getattr(mod, f"{name}Args")
    names = set()
    for attr in vars(cls).values():
        getter = getattr(attr, "fget", None)
        if getter is not None:
            names.add(getattr(getter, "_pulumi_name", None) or getter.__name__)
    return names


@pytest.mark.parametrize("type_", sorted(t for t, r in replacements.TABLE.items() if r.forces and "istio" not in t))
def test_forcing_fields_are_real_inputs_of_the_type(type_):
    names = _input_names(type_)
    for path in replacements.TABLE[type_].forces:
        assert path.split(".")[0] in names, f"{type_}: {path} is not an input ({sorted(names)})"


def test_every_rule_cites_its_source():
    for type_, rule in replacements.TABLE.items():
        assert rule.source, type_
        assert bool(rule.forces) or rule.all_but is not None or "read" in rule.source, type_


def test_a_resource_immutable_as_a_whole_replaces_on_anything_but_its_exceptions():
    rule = replacements.rule_for("gcp:compute/address:Address")
    assert rule.forcing(["labels.team", "subnetwork", "description"]) == ["subnetwork", "description"]


# -- one scenario per setting that forces a replacement -----------------------------------------


def diff(stack: str, change: dict, base_config: dict | None = None) -> plan_diff.PlanDiff:
    base_config = base_config or {}
    return plan.diff_plans(plan_of(stack, base_config), plan_of(stack, {**base_config, **change}))


def action(d: plan_diff.PlanDiff, name: str) -> plan_diff.Change:
    [c] = [c for c in d.changes if c.urn.endswith(f"::{name}")]
    return c


def forced(c: plan_diff.Change) -> dict[str, tuple]:
    return {f.path: (f.old, f.new) for f in c.fields if f.forces}


def test_dns_suffix_replaces_the_zone_and_the_record():
    dns = {**stack_value("prod", "cloudrun-mesh:dns"), "suffix": "mesh.example"}
    d = diff("prod", {"cloudrun-mesh:dns": dns})
    zone = action(d, "dns-zone")
    assert zone.action == REPLACE and forced(zone) == {"dnsName": ("mesh.private.", "mesh.example.")}
    assert forced(action(d, "dns-wildcard")) == {"name": ("*.mesh.private.", "*.mesh.example.")}
    vs = action(d, "svc-ads-virtualservice")
    assert vs.action == UPDATE and [(f.path, f.new) for f in vs.fields] == [("spec.hosts[0]", "ads.mesh.example")]
    lines = plan.format_diff(d)
    assert lines[0].startswith("3 to replace")  # zone, record, reserved address (its description)
    assert lines[1].startswith("+-") and "(replace)" in lines[1]  # destruction first


def test_zone_name_replaces_the_zone_and_moves_the_record():
    dns = stack_value("dev", "cloudrun-mesh:dns")
    d = diff("dev", {"cloudrun-mesh:dns": {**dns, "zone": dns["zone"] + "-x"}})
    assert forced(action(d, "dns-zone")) == {"name": (dns["zone"], dns["zone"] + "-x")}
    assert forced(action(d, "dns-wildcard")) == {"managedZone": (dns["zone"], dns["zone"] + "-x")}


def test_client_region_replaces_the_service_and_its_invoker_bindings():
    clients = stack_value("prod", "cloudrun-mesh:clients")
    clients[1]["region"] = "us-east1"
    d = diff("prod", {"cloudrun-mesh:clients": clients})
    service = action(d, "run-checkout-web-service")
    assert service.action == REPLACE and forced(service) == {"location": ("europe-west1", "us-east1")}
    invokers = [c for c in d.changes if "run-checkout-web-invoker" in c.urn]
    assert len(invokers) == 3 and all(c.action == REPLACE for c in invokers)  # on-call, CI, smoke check
    assert not [c for c in d.changes if c.urn.endswith("-sa")]  # the account is not regional


def test_client_name_deletes_the_old_client_and_creates_the_new_one():
    d = diff("dev", {"cloudrun-mesh:clients": [{"name": "mesh-client"}]})
    deleted = {c.urn.split("::")[-1] for c in d.of(DELETE)}
    created = {c.urn.split("::")[-1] for c in d.of("create")}
    assert {"run-mesh-svc-dev-service", "run-mesh-svc-dev-sa", "run-mesh-svc-dev-trafficdirector"} <= deleted
    assert {"run-mesh-client-service", "run-mesh-client-sa"} <= created
    assert not d.of(REPLACE)
    text = plan.format_diff(d)
    assert text.index(next(line for line in text if line.startswith("- ") and "(delete)" in line)) < text.index(
        next(line for line in text if line.startswith("+ ") and "(create)" in line))
    # A deletion says what goes, not what a replacement would bring.
    service = plan_diff.change_lines(action(d, "run-mesh-svc-dev-service"))
    assert any(line.startswith("[note: the service and its URL go: its callers fail") for line in service)
    assert not any("a new service" in line for line in service)


def test_service_namespace_replaces_the_route_and_the_sample():
    d = diff("dev", {"cloudrun-mesh:services": [{"name": "ads", "namespace": "ads", "deploySample": True}]})
    for name in ("svc-ads-virtualservice", "svc-ads-deployment", "svc-ads-service"):
        c = action(d, name)
        assert c.action == REPLACE and forced(c) == {"metadata.namespace": ("default", "ads")}, name


def test_reserved_address_is_replaced_with_its_subnetwork():
    d = diff("prod", {"cloudrun-mesh:subnetwork": "mesh-subnet"})
    address = action(d, "dns-address")
    assert address.action == REPLACE and forced(address) == {"subnetwork": (None, "mesh-subnet")}


def test_reserving_the_address_creates_it_and_updates_the_record_in_place():
    d = diff("dev", {"cloudrun-mesh:dns": {**stack_value("dev", "cloudrun-mesh:dns"), "address": "reserve"}})
    assert action(d, "dns-address").action == "create"
    record = action(d, "dns-wildcard")
    assert record.action == UPDATE and [(f.path, f.old, f.new) for f in record.fields] == [
        ("rrdatas[0]", "10.0.0.1", harness.UNKNOWN)]


def test_ttl_is_an_update_with_old_and_new_values():
    dns = {**stack_value("prod", "cloudrun-mesh:dns"), "ttl": 60}
    d = diff("prod", {"cloudrun-mesh:dns": dns})
    record = action(d, "dns-wildcard")
    assert record.action == UPDATE and not record.refused
    assert "~ ttl: 300 => 60" in plan_diff.change_lines(record)


def test_another_cluster_replaces_the_provider_and_everything_it_manages():
    d = diff("dev", {"cloudrun-mesh:cluster": {"name": "other-cluster", "location": "us-central1"}}, CLUSTER)
    provider = action(d, "gke-provider")
    assert provider.action == REPLACE and "kubeconfig" in forced(provider)
    for name in ("svc-ads-virtualservice", "svc-ads-deployment", "svc-ads-service"):
        c = action(d, name)
        assert c.action == REPLACE and c.reasons == ["its provider gke-provider is replaced (a different cluster)"]


# -- what pulumi up refuses ----------------------------------------------------------------------


def test_protected_deletions_and_replacements_are_marked_refused_with_what_to_do():
    clients = stack_value("prod", "cloudrun-mesh:clients")
    clients[1]["region"] = "us-east1"
    d = diff("prod", {"cloudrun-mesh:clients": clients[:1] + clients[1:]})
    service = action(d, "run-checkout-web-service")
    assert len(service.refused) == 2
    assert "pulumi state unprotect 'urn:pulumi:prod::" in service.refused[0]
    assert "deletion protection" in service.refused[1]
    d = diff("prod", {"cloudrun-mesh:clients": clients[:1]})
    gone = action(d, "run-checkout-web-sa")
    assert gone.action == DELETE and gone.refused and "refused by pulumi up" in gone.refused[0]
    assert "pulumi up will refuse" in plan_diff.summary(d)
    assert d.tripped(["refused", "delete", "update"]) == ["refused", "delete"]


def test_unprotected_stacks_are_not_refused():
    d = diff("dev", {"cloudrun-mesh:clients": [{"name": "mesh-client"}]})
    assert d.of(DELETE) and not d.refused


def test_unprotecting_and_replacing_in_one_update_is_allowed():
    # pulumi/pulumi step_generator.go refuses a replacement only when old and new are protected.
    base = plan_of("prod", {})
    head = copy.deepcopy(base)
    zone = next(r for r in head["resources"] if r["name"] == "dns-zone")
    zone["inputs"]["dnsName"] = "other.private."
    zone["protect"] = False
    c = action(plan.diff_plans(base, head), "dns-zone")
    assert c.action == REPLACE and not c.refused


def test_turning_protection_off_in_the_same_update_does_not_lift_cloud_runs_deletion_protection():
    # The provider reads deletion_protection from the old state when it deletes (magic-modules
    # cloudrunv2_service_deletion_policy.go.tmpl): Pulumi's protect goes with the update, this does not.
    clients = stack_value("prod", "cloudrun-mesh:clients")
    clients[1]["region"] = "us-east1"
    d = diff("prod", {"cloudrun-mesh:clients": clients, "cloudrun-mesh:protect": False})
    service = action(d, "run-checkout-web-service")
    assert service.action == REPLACE and len(service.refused) == 1
    assert service.refused[0].startswith("refused by the Google provider") and "without this change" in service.refused[0]


# -- values --------------------------------------------------------------------------------------


def test_secrets_stay_masked_and_long_values_are_shown_whole():
    assert plan_diff.show(harness.SECRET) == "<secret>"
    assert plan_diff.show(harness.UNKNOWN) == harness.UNKNOWN
    old, new = "x" * 300 + "old-tail", "x" * 300 + "new-tail"
    line = plan_diff.show_change(old, new)
    # Nothing is cut: a reviewer approves the whole value.
    assert line == f'"{old}" => "{new}"'
    # Control characters and escapes cannot reach the terminal raw.
    assert "\x1b" not in plan_diff.show("a\x1b[31mred\u0085") and "\n" not in plan_diff.show("a\nb")


def test_urn_changes_replace_unless_aliased():
    base = plan_of("dev", {})
    head = copy.deepcopy(base)
    moved = next(r for r in head["resources"] if r["name"] == "dns-zone")
    old_urn = moved["urn"]
    moved["urn"] = old_urn.replace("cloudrun-mesh:index:PrivateMeshZone$", "")
    moved["parent"] = ""
    c = action(plan.diff_plans(base, head), "dns-zone")
    assert c.action == REPLACE and c.old_urn == old_urn and "add `aliases`" in c.reasons[0]
    moved["aliases"] = [old_urn]
    c = action(plan.diff_plans(base, head), "dns-zone")
    assert c.action == "move" and not c.reasons


def test_identical_plans_have_no_changes():
    p = plan_of("prod", {})
    d = plan.diff_plans(p, copy.deepcopy(p))
    assert d.empty and plan.format_diff(d) == ["No changes against the base plan."]


def test_a_replacement_reaches_what_takes_its_unknown_outputs():
    # A new service account has a new email: the grant (member forces) and the service follow.
    base = plan_of("prod", {})
    head = copy.deepcopy(base)
    account = next(r for r in head["resources"] if r["name"] == "run-mesh-svc-sa")
    account["inputs"]["project"] = "other-project"
    d = plan.diff_plans(base, head)
    assert action(d, "run-mesh-svc-sa").action == REPLACE
    grant = action(d, "run-mesh-svc-trafficdirector")
    assert grant.action == REPLACE and [(f.path, f.via) for f in grant.fields if f.forces] == [("member", "run-mesh-svc-sa")]
    service = action(d, "run-mesh-svc-service")
    assert service.action == UPDATE and [f.via for f in service.fields] == ["run-mesh-svc-trafficdirector"]
    assert "(a new value from run-mesh-svc-sa, which is replaced) [forces replacement]" in "\n".join(
        plan_diff.change_lines(grant))
    assert not [c for c in d.changes if "checkout" in c.urn]  # the other client is untouched


def test_a_retained_resource_is_forgotten_not_deleted():
    # Pulumi's retainOnDelete option (the owned namespaces use it): dropped from the state, left in place.
    base = plan_of("prod", {})
    namespace = next(r for r in base["resources"] if r["type"] == "kubernetes:core/v1:Namespace")
    assert namespace["retainOnDelete"]
    head = copy.deepcopy(base)
    head["resources"] = [r for r in head["resources"] if r["urn"] != namespace["urn"]]
    c = action(plan.diff_plans(base, head), namespace["name"])
    assert c.action == "forget" and c.reasons == ["retainOnDelete: the object is left in place"]
    assert c.refused and c.refused[0].startswith("refused by pulumi up")  # protected: still refused
    assert not plan.diff_plans(base, head).tripped(["delete", "replace"])
    text = "\n".join(plan_diff.change_lines(c))
    assert "deletes every object in it" not in text

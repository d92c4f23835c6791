"""MeshNamespace: a namespace the stack owns, labelled for sidecar injection, kept on destroy."""

from __future__ import annotations

from testkit import component_program, evaluate

from components import MeshNamespace, MeshNamespaceArgs

NAMESPACE = "kubernetes:core/v1:Namespace"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
VS = "kubernetes:networking.istio.io/v1:VirtualService"


def namespace_program(labels):
    return component_program(
        lambda: MeshNamespace("ns-team", MeshNamespaceArgs(namespace="team", injection_labels=labels)),
        name="namespace_name",
    )


def test_namespace_is_labelled_for_injection_and_retained_on_destroy():
    run = evaluate(program=namespace_program({"istio-injection": "enabled"}))
    ns = run.one(NAMESPACE)
    assert ns.name == "ns-team-namespace"
    assert ns.inputs["metadata"] == {"name": "team", "labels": {"istio-injection": "enabled"}}
    assert ns.retain_on_delete is True
    assert run.outputs == {"name": "team"}


def test_revision_label_when_given():
    run = evaluate(program=namespace_program({"istio.io/rev": "asm-managed-rapid"}))
    assert run.one(NAMESPACE).inputs["metadata"]["labels"] == {"istio.io/rev": "asm-managed-rapid"}


def test_prod_owns_ads_and_everything_in_it_waits_for_it(prod_run):
    [ns] = prod_run.resources(NAMESPACE)
    assert ns.inputs["metadata"] == {"name": "ads", "labels": {"istio-injection": "enabled"}}
    assert ns.protect and ns.retain_on_delete
    in_ads = [r for r in prod_run.resources() if r.type in (DEPLOYMENT, SERVICE, VS)
              and r.inputs["metadata"]["namespace"] == "ads"]
    assert sorted(r.type for r in in_ads) == sorted([DEPLOYMENT, SERVICE, VS])
    for r in in_ads:
        assert ns.urn in r.property_dependencies["metadata"], r.name
    # payments is not owned: it must exist already, with injection on (README).
    payments = prod_run.one(VS, "svc-payments-virtualservice")
    assert ns.urn not in payments.dependencies


def test_a_named_channel_labels_owned_namespaces_with_its_revision():
    run = evaluate("prod", {"cloudrun-mesh:mesh": {"channel": "stable"}})
    assert run.one(NAMESPACE).inputs["metadata"]["labels"] == {"istio.io/rev": "asm-managed-stable"}


def test_one_namespace_for_several_services():
    services = [{"name": n, "namespace": "team", "createNamespace": True} for n in ("a", "b")]
    run = evaluate("dev", {"cloudrun-mesh:services": services})
    [ns] = run.resources(NAMESPACE)
    assert ns.name == "ns-team-namespace"
    assert all(ns.urn in vs.dependencies for vs in run.resources(VS))


def test_namespace_uses_the_explicit_cluster_provider():
    run = evaluate("prod", {"cloudrun-mesh:cluster": {"name": "c1", "location": "us-central1-c"}})
    provider = run.one("pulumi:providers:kubernetes")
    assert run.one(NAMESPACE).provider.startswith(provider.urn)

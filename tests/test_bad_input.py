"""Bad input through the real program: a clear error naming the key, and nothing registered."""

from __future__ import annotations

import pytest
from testkit import evaluate

from cloudrun_mesh.config import ConfigError

CASES = {
    "address outside RFC 1918": ({"cloudrun-mesh:dns": {"address": "100.64.0.1"}}, "cloudrun-mesh:dns.address"),
    "wildcard in suffix": ({"cloudrun-mesh:dns": {"suffix": "*.mesh.private"}}, "cloudrun-mesh:dns.suffix"),
    "numeric TLD": ({"cloudrun-mesh:dns": {"suffix": "mesh.42"}}, "cloudrun-mesh:dns.suffix"),
    "zone name": ({"cloudrun-mesh:dns": {"zone": "My_Zone"}}, "cloudrun-mesh:dns.zone"),
    "ttl": ({"cloudrun-mesh:dns": {"ttl": 0}}, "cloudrun-mesh:dns.ttl"),
    "namespace": ({"cloudrun-mesh:services": [{"name": "ads", "namespace": "Ads"}]}, "cloudrun-mesh:services[0].namespace"),
    "service name": ({"cloudrun-mesh:services": [{"name": "ads_v2"}]}, "cloudrun-mesh:services[0].name"),
    "port": ({"cloudrun-mesh:services": [{"name": "ads"}, {"name": "b", "port": 99999}]}, "cloudrun-mesh:services[1].port"),
    "duplicate service": ({"cloudrun-mesh:services": [{"name": "ads"}, {"name": "ads", "namespace": "x"}]}, "cloudrun-mesh:services[1].name"),
    "duplicate client": ({"cloudrun-mesh:clients": [{"name": "mesh-svc"}, {"name": "mesh-svc"}]}, "cloudrun-mesh:clients[1].name"),
    "client name too short": ({"cloudrun-mesh:clients": [{"name": "svc"}]}, "cloudrun-mesh:clients[0].name"),
    "mesh name shape": ({"cloudrun-mesh:mesh": {"name": "projects/p/meshes/m"}}, "cloudrun-mesh:mesh.name"),
    "public invoker": ({"cloudrun-mesh:clients": [{"name": "mesh-svc", "invokers": ["allUsers"]}]}, "cloudrun-mesh:clients[0].invokers[0]"),
    "typo in object": ({"cloudrun-mesh:dns": {"zone": "prod", "sufix": "x.y"}}, "cloudrun-mesh:dns.sufix"),
    "typo in top-level key": ({"cloudrun-mesh:servics": []}, "cloudrun-mesh:servics"),
    "object given as text": ({"cloudrun-mesh:dns": "prod"}, "cloudrun-mesh:dns"),
    "missing project": ({"gcp:project": None}, "gcp:project"),
    "unknown channel": ({"cloudrun-mesh:mesh": {"channel": "beta"}}, "cloudrun-mesh:mesh.channel"),
    "channel ignored by mesh name": ({"cloudrun-mesh:mesh": {"name": "m1", "channel": "rapid"}}, "cloudrun-mesh:mesh.channel"),
    "mesh project against mesh name": (
        {"cloudrun-mesh:mesh": {"name": "projects/mesh-host/locations/global/meshes/m1", "project": "other-host"}},
        "cloudrun-mesh:mesh.project"),
    "owning a system namespace": (
        {"cloudrun-mesh:services": [{"name": "ads", "namespace": "kube-system", "createNamespace": True}]},
        "cloudrun-mesh:services[0].createNamespace"),
    "conflicting namespace ownership": (
        {"cloudrun-mesh:services": [{"name": "a", "namespace": "t", "createNamespace": True}, {"name": "b", "namespace": "t"}]},
        "cloudrun-mesh:services[1].createNamespace"),
    "subnetwork in another region": (
        {"cloudrun-mesh:clients": [{"name": "mesh-svc", "region": "europe-west1",
                                    "subnetwork": "projects/my-project/regions/us-central1/subnetworks/s"}]},
        "cloudrun-mesh:clients[0].subnetwork"),
    "subnetwork in another project": (
        {"cloudrun-mesh:subnetwork": "projects/elsewhere/regions/us-central1/subnetworks/s"}, "cloudrun-mesh:subnetwork"),
    "client ingress": ({"cloudrun-mesh:clients": [{"name": "mesh-svc", "ingress": "internal-only"}]}, "cloudrun-mesh:clients[0].ingress"),
    "adopt not a boolean": ({"cloudrun-mesh:adopt": "yes"}, "cloudrun-mesh:adopt"),
    "adopting a reserved address without its name": (
        {"cloudrun-mesh:adopt": True, "cloudrun-mesh:dns": {"address": "reserve"}}, "cloudrun-mesh:dns.addressName"),
    "adopting with a namespace to create": (
        {"cloudrun-mesh:adopt": True, "cloudrun-mesh:services": [{"name": "ads", "namespace": "shop", "createNamespace": True}]},
        "cloudrun-mesh:services[0].createNamespace"),
    "address name without reserve": ({"cloudrun-mesh:dns": {"addressName": "mesh-vip"}}, "cloudrun-mesh:dns.addressName"),
    "virtual service name": (
        {"cloudrun-mesh:services": [{"name": "ads", "virtualServiceName": "Ads_VS"}]}, "cloudrun-mesh:services[0].virtualServiceName"),
    "duplicate virtual service": (
        {"cloudrun-mesh:services": [{"name": "ads"}, {"name": "b", "virtualServiceName": "ads-external"}]},
        "cloudrun-mesh:services[1].virtualServiceName"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_before_any_resource(name):
    overrides, key = CASES[name]
    run = evaluate("dev", overrides, expect_error=True)
    assert isinstance(run.error, ConfigError), repr(run.error)
    assert f"`{key}`" in str(run.error)
    assert run.resources() == [], [r.urn for r in run.resources()]


def test_bad_input_in_prod_stack_file_values_is_reported_with_the_key():
    run = evaluate("prod", {"cloudrun-mesh:protect": "sometimes"}, expect_error=True)
    assert "`cloudrun-mesh:protect` must be true or false" in str(run.error)
    assert run.resources() == []

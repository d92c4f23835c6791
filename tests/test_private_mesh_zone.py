"""PrivateMeshZone: the private zone, its wildcard record and the optional reserved address."""

from __future__ import annotations

from testkit import component_program, evaluate

from components import PrivateMeshZone, PrivateMeshZoneArgs

NETWORK = "projects/my-project/global/networks/default"


def zone_program(**overrides):
    args = dict(zone_name="prod", suffix="mesh.private", network=NETWORK, ttl=3600, address="10.0.0.1")
    args.update(overrides)

    return component_program(
        lambda: PrivateMeshZone("dns", PrivateMeshZoneArgs(**args)), suffix="suffix", address="address", zone="zone_name"
    )


def test_zone_is_private_on_the_network():
    run = evaluate(program=zone_program())
    zone = run.one("gcp:dns/managedZone:ManagedZone")
    assert zone.name == "dns-zone"
    assert zone.inputs["name"] == "prod"
    assert zone.inputs["dnsName"] == "mesh.private."
    assert zone.inputs["visibility"] == "private"
    assert zone.inputs["privateVisibilityConfig"] == {"networks": [{"networkUrl": NETWORK}]}


def test_wildcard_record_takes_the_zone_from_its_output():
    run = evaluate(program=zone_program(ttl=120))
    zone, record = run.one("gcp:dns/managedZone:ManagedZone"), run.one("gcp:dns/recordSet:RecordSet")
    assert record.name == "dns-wildcard"
    assert record.inputs == {"managedZone": "prod", "name": "*.mesh.private.", "type": "A", "ttl": 120, "rrdatas": ["10.0.0.1"]}
    assert record.property_dependencies["managedZone"] == [zone.urn]
    assert record.property_dependencies["name"] == [zone.urn]
    assert run.resources("gcp:compute/address:Address") == []


def test_outputs_drop_the_trailing_dot():
    run = evaluate(program=zone_program())
    assert run.outputs == {"suffix": "mesh.private", "address": "10.0.0.1", "zone": "prod"}


def test_reserve_creates_an_internal_address_the_record_points_at():
    run = evaluate(program=zone_program(address=None, region="us-central1", subnetwork="mesh-subnet"))
    address = run.one("gcp:compute/address:Address")
    assert address.name == "dns-address"
    assert address.inputs["addressType"] == "INTERNAL"
    assert address.inputs["region"] == "us-central1"
    assert address.inputs["subnetwork"] == "mesh-subnet"
    record = run.one("gcp:dns/recordSet:RecordSet")
    assert record.property_dependencies["rrdatas"] == [address.urn]
    assert record.inputs["rrdatas"] == ["10.128.0.53"]
    assert run.outputs["address"] == "10.128.0.53"


def test_children_are_parented_and_protect_is_inherited():
    import pulumi

    def program():
        PrivateMeshZone(
            "dns",
            PrivateMeshZoneArgs(zone_name="prod", suffix="mesh.private", network=NETWORK, ttl=60, address="10.0.0.1"),
            opts=pulumi.ResourceOptions(protect=True),
        )

    run = evaluate(program=program)
    component = run.one("cloudrun-mesh:index:PrivateMeshZone")
    for r in run.resources():
        if r.custom:
            assert r.parent == component.urn and r.protect, r.urn

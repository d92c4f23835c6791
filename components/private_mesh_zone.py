"""The private Cloud DNS zone that makes `<service>.<suffix>` resolvable from the VPC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_gcp as gcp

TYPE = "cloudrun-mesh:index:PrivateMeshZone"


@dataclass
class PrivateMeshZoneArgs:
    zone_name: pulumi.Input[str]
    """Cloud DNS managed zone name."""
    suffix: str
    """DNS suffix of the mesh hosts, without the trailing dot (e.g. ``mesh.private``)."""
    network: pulumi.Input[str]
    """Network the zone is visible to, as ``projects/<p>/global/networks/<n>``."""
    ttl: pulumi.Input[int]
    address: Optional[pulumi.Input[str]] = None
    """RFC 1918 address of the wildcard record; ``None`` reserves a static internal address."""
    region: Optional[pulumi.Input[str]] = None
    """Region of the reserved address (only with ``address=None``)."""
    subnetwork: Optional[pulumi.Input[str]] = None
    """Subnetwork of the reserved address; the region's default subnet when unset."""


class PrivateMeshZone(pulumi.ComponentResource):
    zone_name: pulumi.Output[str]
    suffix: pulumi.Output[str]
    address: pulumi.Output[str]

    def __init__(self, name: str, args: PrivateMeshZoneArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.zone = gcp.dns.ManagedZone(
            f"{name}-zone",
            gcp.dns.ManagedZoneArgs(
                name=args.zone_name,
                dns_name=f"{args.suffix}.",
                description=f"Private zone for Cloud Run clients of the mesh: *.{args.suffix} -> mesh egress",
                visibility="private",
                private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                    networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=args.network)],
                ),
            ),
            opts=child,
        )

        if args.address is None:
            # The wildcard only needs an address that nothing in the VPC answers on: the sidecar
            # intercepts the connection. Reserving it guarantees nobody is ever given it.
            self.reserved = gcp.compute.Address(
                f"{name}-address",
                gcp.compute.AddressArgs(
                    address_type="INTERNAL",
                    region=args.region,
                    subnetwork=args.subnetwork,
                    description=f"Unused target of *.{args.suffix}; mesh sidecars intercept it",
                ),
                opts=child,
            )
            address: pulumi.Input[str] = self.reserved.address
        else:
            self.reserved = None
            address = args.address

        self.record = gcp.dns.RecordSet(
            f"{name}-wildcard",
            gcp.dns.RecordSetArgs(
                managed_zone=self.zone.name,
                name=self.zone.dns_name.apply(lambda dns_name: f"*.{dns_name}"),
                type="A",
                ttl=args.ttl,
                rrdatas=[address],
            ),
            opts=child,
        )

        self.zone_name = self.zone.name
        self.suffix = self.zone.dns_name.apply(lambda dns_name: dns_name.rstrip("."))
        self.address = pulumi.Output.from_input(address)
        self.register_outputs({"zone_name": self.zone_name, "suffix": self.suffix, "address": self.address})

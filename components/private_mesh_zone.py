"""The private Cloud DNS zone that makes `<service>.<suffix>` resolvable from the VPC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from cloudrun_mesh import adoption

TYPE = "cloudrun-mesh:index:PrivateMeshZone"
# What a named (user-chosen) address ignores, adopted or not: see the address below.
NAMED_ADDRESS_IGNORED = ("description",)


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
    address_name: Optional[str] = None
    """Name of the reserved address; Pulumi names it when unset."""
    adopt_project: Optional[str] = None
    """Import the zone, the wildcard record and the reserved address made by hand in this project (the
    provider's project, where they are declared) instead of creating them. Needs plain strings for
    ``zone_name`` and, with a reserved address, ``region`` and ``address_name``."""


class PrivateMeshZone(pulumi.ComponentResource):
    zone_name: pulumi.Output[str]
    suffix: pulumi.Output[str]
    address: pulumi.Output[str]
    reserved: Optional[gcp.compute.Address]

    def __init__(self, name: str, args: PrivateMeshZoneArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, None, opts)
        project = args.adopt_project
        record_name = f"*.{args.suffix}."

        self.zone = gcp.dns.ManagedZone(
            f"{name}-zone",
            gcp.dns.ManagedZoneArgs(
                name=args.zone_name,
                dns_name=f"{args.suffix}.",
                # An adopted zone keeps the guide's description until `adopt` is turned off; then the
                # description is an in-place update (it is not ForceNew in the provider:
                # hashicorp/terraform-provider-google google/services/dns/resource_dns_managed_zone.go).
                description=adoption.GUIDE_ZONE_DESCRIPTION if project else
                f"Private zone for Cloud Run clients of the mesh: *.{args.suffix} -> mesh egress",
                visibility="private",
                private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                    networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=args.network)],
                ),
            ),
            # The guide binds the zone with `--networks=default`, which the API stores as the network's
            # full URL; the provider hashes network_url by its relative path (SelfLinkRelativePathHash in
            # resource_dns_managed_zone.go), so `projects/<p>/global/networks/<n>` matches it.
            opts=adoption.child_options(self, adoption.zone_id(project, args.zone_name) if project else None),
        )

        if args.address is None:
            # The wildcard only needs an address that nothing in the VPC answers on: the sidecar
            # intercepts the connection. Reserving it guarantees nobody is ever given it.
            # A named address is one the user chose, perhaps reserved by hand (the guide's alternative to
            # a bare IP), so it carries no description of ours: `description` is ForceNew
            # (hashicorp/terraform-provider-google google/services/compute/resource_compute_address.go),
            # and one the hand-made address lacks would replace it, and move the record, once adopted.
            # For the same reason its description is ignored, always: one given by hand (`gcloud compute
            # addresses create --description`) is kept rather than replacing the address to drop it.
            address_opts = adoption.child_options(
                self, adoption.address_id(project, args.region, args.address_name) if project else None)
            if args.address_name:
                address_opts.ignore_changes = [*(address_opts.ignore_changes or []), *NAMED_ADDRESS_IGNORED]
            self.reserved = gcp.compute.Address(
                f"{name}-address",
                gcp.compute.AddressArgs(
                    address_type="INTERNAL",
                    region=args.region,
                    subnetwork=args.subnetwork,
                    name=args.address_name or None,
                    description=None if args.address_name else
                    f"Unused target of *.{args.suffix}; mesh sidecars intercept it",
                ),
                opts=address_opts,
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
            # The guide: `gcloud dns record-sets create '*.'"DNS_SUFFIX." --type=A --zone="ZONE_NAME"
            # --rrdatas=10.0.0.1 --ttl 3600`, the config's defaults; other values must be in the config.
            opts=adoption.child_options(self, adoption.record_set_id(project, args.zone_name, record_name, "A") if project else None),
        )

        self.zone_name = self.zone.name
        self.suffix = self.zone.dns_name.apply(lambda dns_name: dns_name.rstrip("."))
        self.address = pulumi.Output.from_input(address)
        self.register_outputs({"zone_name": self.zone_name, "suffix": self.suffix, "address": self.address})

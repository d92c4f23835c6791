"""A Cloud Run service that joins the mesh, with its own identity and no public access."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from cloudrun_mesh import adoption
from components.naming import member_names

TYPE = "cloudrun-mesh:index:MeshCloudRunService"
TRAFFIC_DIRECTOR_CLIENT = "roles/trafficdirector.client"
INVOKER = "roles/run.invoker"
# Service mesh on Cloud Run is a preview feature: the Admin API accepts `template.serviceMesh` only
# on a service whose launch stage is BETA (or less mature). What it reads back is the stage the
# service actually uses, which becomes GA once the feature graduates, so comparing our BETA with it
# would show a diff on every preview from then on. The stage is therefore set on create and ignored
# on update (`ignore_changes`); the policy pack checks both.
LAUNCH_STAGE = "BETA"
IGNORED_ON_UPDATE = ["launchStage"]
# `clients[i].ingress` (gcloud's names) -> the Cloud Run v2 API's IngressTraffic enum, as pulumi-gcp's
# cloudrunv2.Service documents it ("Possible values are: INGRESS_TRAFFIC_ALL,
# INGRESS_TRAFFIC_INTERNAL_ONLY, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", pulumi_gcp/cloudrunv2/service.py)
# and https://cloud.google.com/run/docs/securing/ingress describes them (All, Internal, Internal and
# Cloud Load Balancing).
INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
}


@dataclass
class MeshCloudRunServiceArgs:
    service_name: str
    """Cloud Run service name; also the service-account id."""
    image: pulumi.Input[str]
    region: pulumi.Input[str]
    project: pulumi.Input[str]
    network: pulumi.Input[str]
    """VPC for Direct VPC egress: the network the private zone is visible to."""
    mesh: pulumi.Input[str]
    """Full mesh name, `projects/<p>/locations/global/meshes/<id>`."""
    mesh_project: pulumi.Input[str]
    """Project whose Traffic Director config the sidecar reads; receives trafficdirector.client."""
    subnetwork: Optional[pulumi.Input[str]] = None
    invokers: Sequence[str] = field(default_factory=tuple)
    deletion_protection: bool = False
    ingress: str = "all"
    """Who may reach the URL at the network level: a key of ``INGRESS``. IAM applies in every case."""
    adopt: bool = False
    """Import the Cloud Run service deployed by hand with the guide instead of creating it (needs
    ``project`` and ``region`` as plain strings). The service account and the IAM grants are created as
    usual; the revision template and the other fields of ``adoption.CLOUD_RUN_IGNORED`` are left as they
    are until adoption is turned off, when the next update rolls a revision running as the account."""


class MeshCloudRunService(pulumi.ComponentResource):
    url: pulumi.Output[str]
    service_account_email: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: MeshCloudRunServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.account = gcp.serviceaccount.Account(
            f"{name}-sa",
            gcp.serviceaccount.AccountArgs(
                account_id=args.service_name,
                project=args.project,
                display_name=f"Cloud Run mesh client {args.service_name}",
            ),
            opts=child,
        )
        self.traffic_director = gcp.projects.IAMMember(
            f"{name}-trafficdirector",
            gcp.projects.IAMMemberArgs(
                project=args.mesh_project,
                role=TRAFFIC_DIRECTOR_CLIENT,
                member=self.account.email.apply(lambda email: f"serviceAccount:{email}"),
            ),
            opts=child,
        )
        # The revision's sidecar fetches its config at start-up and fails with
        # "Permission 'trafficdirector.networks.getConfigs' denied" without the role. Taking the
        # identity from the IAM member's output makes the service wait until the grant is written;
        # it does not make the grant effective: IAM changes propagate, typically in 2 minutes and
        # sometimes 7 or more (https://cloud.google.com/iam/docs/access-change-propagation), so the
        # first revision's sidecar can still be refused for a while. The smoke check retries for
        # that long.
        identity = self.traffic_director.member.apply(lambda member: member.removeprefix("serviceAccount:"))

        run_opts = adoption.child_options(
            self,
            adoption.cloud_run_service_id(args.project, args.region, args.service_name) if args.adopt else None,
            adoption.CLOUD_RUN_IGNORED,
        )
        # The launch stage is set on create and ignored on update (above), adopted or not.
        run_opts.ignore_changes = list(dict.fromkeys([*(run_opts.ignore_changes or []), *IGNORED_ON_UPDATE]))
        self.service = gcp.cloudrunv2.Service(
            f"{name}-service",
            gcp.cloudrunv2.ServiceArgs(
                name=args.service_name,
                location=args.region,
                project=args.project,
                launch_stage=LAUNCH_STAGE,
                ingress=INGRESS[args.ingress],
                deletion_protection=args.deletion_protection,
                template=gcp.cloudrunv2.ServiceTemplateArgs(
                    service_account=identity,
                    service_mesh=gcp.cloudrunv2.ServiceTemplateServiceMeshArgs(mesh=args.mesh),
                    vpc_access=gcp.cloudrunv2.ServiceTemplateVpcAccessArgs(
                        network_interfaces=[
                            gcp.cloudrunv2.ServiceTemplateVpcAccessNetworkInterfaceArgs(
                                network=args.network, subnetwork=args.subnetwork
                            )
                        ],
                    ),
                    containers=[gcp.cloudrunv2.ServiceTemplateContainerArgs(image=args.image)],
                ),
            ),
            opts=run_opts,
        )

        self.invoker_members = []
        for member, member_name in member_names(args.invokers).items():
            self.invoker_members.append(
                gcp.cloudrunv2.ServiceIamMember(
                    # Named after the member, not its position, so reordering the list replaces nothing.
                    f"{name}-invoker-{member_name}",
                    gcp.cloudrunv2.ServiceIamMemberArgs(
                        name=self.service.name,
                        location=self.service.location,
                        project=self.service.project,
                        role=INVOKER,
                        member=member,
                    ),
                    opts=child,
                )
            )

        self.url = self.service.uri
        self.service_account_email = self.account.email
        self.service_name = self.service.name
        self.register_outputs(
            {"url": self.url, "service_account_email": self.service_account_email, "service_name": self.service_name}
        )

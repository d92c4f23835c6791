"""A GKE Service made reachable from Cloud Run mesh clients as `<name>.<suffix>`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from cloudrun_mesh import adoption, istio

TYPE = "cloudrun-mesh:index:ExportedGkeService"
EXTERNAL_MESH_GATEWAY = "external-mesh"
MESH_GATEWAY = "mesh"
SAMPLE_CONTAINER = "my-http2-svc"
SAMPLE_FS_GROUP = 1337


@dataclass
class ExportedGkeServiceArgs:
    service_name: str
    """Name of the Kubernetes Service (and of the sample Deployment)."""
    namespace: str
    """Namespace of the Service; the VirtualService must live in the same one."""
    port: int
    """Service port the route targets."""
    suffix: pulumi.Input[str]
    """DNS suffix of the private zone (from the zone's output), without the trailing dot."""
    deploy_sample: bool = False
    """Also create the guide's sample Deployment and Service."""
    target_port: int = 8000
    image: str = "docker.io/waip/simple-http:v1.0.1"
    gke_clients: bool = False
    """Also bind the `mesh` gateway, so workloads inside the cluster get the same route."""
    virtual_service_name: Optional[str] = None
    """Name of the VirtualService; ``<service_name>-external`` when unset."""
    adopt: bool = False
    """Import the VirtualService (and the sample's Deployment and Service) made by hand with the guide
    instead of creating them; their ``spec`` is ignored until adoption is turned off."""


def virtual_service_spec(host: Any, destination: Any, port: Optional[int], gke_clients: bool) -> dict:
    """The VirtualService spec; values may be Outputs or plain strings."""
    dest: dict[str, Any] = {"host": destination}
    if port is not None:
        dest["port"] = {"number": port}
    gateways = [EXTERNAL_MESH_GATEWAY] + ([MESH_GATEWAY] if gke_clients else [])
    return {"hosts": [host], "gateways": gateways, "http": [{"route": [{"destination": dest}]}]}


class ExportedGkeService(pulumi.ComponentResource):
    host: pulumi.Output[str]
    """`<name>.<suffix>`: what a Cloud Run client asks for."""
    destination: pulumi.Output[str]
    virtual_service_name: str

    def __init__(self, name: str, args: ExportedGkeServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, None, opts)
        labels = {"run": args.service_name}

        def child(object_name: str) -> pulumi.ResourceOptions:
            import_id = adoption.kubernetes_id(args.namespace, object_name) if args.adopt else None
            return adoption.child_options(self, import_id, adoption.KUBERNETES_IGNORED)

        if args.deploy_sample:
            self.deployment: Optional[k8s.apps.v1.Deployment] = k8s.apps.v1.Deployment(
                f"{name}-deployment",
                k8s.apps.v1.DeploymentInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=args.service_name, namespace=args.namespace),
                    spec=k8s.apps.v1.DeploymentSpecArgs(
                        replicas=1,
                        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                        template=k8s.core.v1.PodTemplateSpecArgs(
                            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                            spec=k8s.core.v1.PodSpecArgs(
                                containers=[
                                    k8s.core.v1.ContainerArgs(
                                        name=SAMPLE_CONTAINER,
                                        image=args.image,
                                        ports=[k8s.core.v1.ContainerPortArgs(container_port=args.target_port, protocol="TCP")],
                                        # Requests only: a limit could throttle or OOM-kill the sample.
                                        resources=k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "50m", "memory": "64Mi"}),
                                        readiness_probe=k8s.core.v1.ProbeArgs(
                                            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=args.target_port),
                                            period_seconds=5,
                                        ),
                                    )
                                ],
                                security_context=k8s.core.v1.PodSecurityContextArgs(fs_group=SAMPLE_FS_GROUP),
                            ),
                        ),
                    ),
                ),
                opts=child(args.service_name),
            )
            self.service: Optional[k8s.core.v1.Service] = k8s.core.v1.Service(
                f"{name}-service",
                k8s.core.v1.ServiceInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=args.service_name, namespace=args.namespace),
                    spec=k8s.core.v1.ServiceSpecArgs(
                        type="ClusterIP",
                        selector=labels,
                        ports=[k8s.core.v1.ServicePortArgs(port=args.port, target_port=args.target_port, protocol="TCP")],
                    ),
                ),
                opts=child(args.service_name),
            )
            # The route waits for the Service it names, through its output.
            destination: pulumi.Input[str] = self.service.metadata.apply(lambda m: m.name)
            # We created this Service with exactly one port, so the guide's port-less route is exact.
            route_port: Optional[int] = None
        else:
            self.deployment = None
            self.service = None
            destination = args.service_name
            # An existing Service may expose several ports; naming the port is always correct.
            route_port = args.port

        # Validated synchronously, with the values the Outputs will carry, so a schema mistake
        # fails the preview at construction rather than being pruned by the API server.
        istio.validate_spec(
            virtual_service_spec(f"{args.service_name}.example", args.service_name, route_port, args.gke_clients)
        )

        host = pulumi.Output.from_input(args.suffix).apply(lambda suffix: f"{args.service_name}.{suffix}")
        self.virtual_service_name = args.virtual_service_name or f"{args.service_name}-external"
        # Its own object, never a patch of an existing VirtualService: deleting the stack removes
        # exactly what it added.
        self.virtual_service = k8s.apiextensions.CustomResource(
            f"{name}-virtualservice",
            api_version=f"{istio.API_GROUP}/{istio.API_VERSION}",
            kind=istio.KIND,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=self.virtual_service_name, namespace=args.namespace),
            spec=virtual_service_spec(host, destination, route_port, args.gke_clients),
            opts=child(self.virtual_service_name),
        )

        self.host = host
        self.destination = pulumi.Output.from_input(destination)
        self.register_outputs({"host": self.host, "destination": self.destination})

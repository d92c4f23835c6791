"""A GKE Service made reachable from Cloud Run mesh clients as `<name>.<suffix>`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, cast

import pulumi
import pulumi_kubernetes as k8s

from cloudrun_mesh import adoption, istio

TYPE = "cloudrun-mesh:index:ExportedGkeService"
EXTERNAL_MESH_GATEWAY = "external-mesh"
MESH_GATEWAY = "mesh"
SAMPLE_CONTAINER = "my-http2-svc"
# The guide's pod-level fsGroup: files of the pod's volumes belong to group 1337, the group the
# injected istio-proxy runs as, so the sidecar can read them whatever UID the app runs as.
SAMPLE_FS_GROUP = 1337
# The sample's own UID/GID: not root, and above the range of users a node image defines (Checkov
# CKV_K8S_40 asks for >= 10000). Set on the container, not the pod, so the containers the mesh
# injects keep the UID 1337 their own security context sets.
SAMPLE_UID = 10001
SAMPLE_TMP = "/tmp"
# The guide's final check fetches `http://<service>.<suffix>/` and expects 200: the sample answers
# GET / on its port, which makes it the probe. With sidecar injection on, Istio can rewrite HTTP
# probes to go through the sidecar's agent (`rewriteAppHTTPProbe`), so the kubelet still reaches the
# app when mutual TLS is strict.
SAMPLE_PROBE_PATH = "/"


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
    namespace_ref: Optional[pulumi.Input[str]] = None
    """The same namespace as the output of the namespace the stack creates, if it owns it: every
    object placed there takes its namespace from it, and so waits for it."""
    adopt: bool = False
    """Import the VirtualService (and the sample's Deployment and Service) made by hand with the guide
    instead of creating them; their ``spec`` is ignored until adoption is turned off."""


def virtual_service_spec(host: Any, destination: Any, port: Optional[int], gke_clients: bool) -> dict[str, Any]:
    """The VirtualService spec; values may be Outputs or plain strings."""
    dest: dict[str, Any] = {"host": destination}
    if port is not None:
        dest["port"] = {"number": port}
    gateways = [EXTERNAL_MESH_GATEWAY] + ([MESH_GATEWAY] if gke_clients else [])
    return {"hosts": [host], "gateways": gateways, "http": [{"route": [{"destination": dest}]}]}


def sample_pod_spec(image: str, port: int) -> k8s.core.v1.PodSpecArgs:
    """The guide's sample pod (container `my-http2-svc`, its port, `fsGroup: 1337`), hardened.

    Every setting below is one the restricted Pod Security Standard or Checkov's Kubernetes checks
    ask for (README, "The sample workload"). They hold with the sidecar a managed Cloud Service
    Mesh control plane injects: it installs the Istio CNI node agent (`istio-cni-node` in
    kube-system), so pods get no `istio-init` container needing NET_ADMIN/NET_RAW, and the injected
    containers carry their own security context
    (https://cloud.google.com/service-mesh/docs/managed/provision-managed-anthos-service-mesh,
    https://istio.io/latest/docs/setup/additional-setup/cni/). Istio's injection template
    (istio/istio manifests/charts/istio-control/istio-discovery/files/injection-template.yaml,
    commit 0134e00294587160bd44f4fe19d7b1413005ce57) gives, with CNI, an `istio-validation` init
    container and the `istio-proxy` container that run as 1337, non-root, with all capabilities
    dropped, and mounts the proxy's token as its own projected `istio-token` volume: the pod needs no
    service-account token of its own.
    """
    http_probe = k8s.core.v1.HTTPGetActionArgs(path=SAMPLE_PROBE_PATH, port=port)
    return k8s.core.v1.PodSpecArgs(
        automount_service_account_token=False,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            fs_group=SAMPLE_FS_GROUP,
            run_as_non_root=True,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        containers=[
            k8s.core.v1.ContainerArgs(
                name=SAMPLE_CONTAINER,
                image=image,
                image_pull_policy="Always",
                ports=[k8s.core.v1.ContainerPortArgs(container_port=port, protocol="TCP")],
                # A memory limit bounds a leak to this pod; no CPU limit, which would throttle the
                # sample under a burst instead of letting it use idle CPU (README lists the check).
                resources=k8s.core.v1.ResourceRequirementsArgs(
                    requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"}
                ),
                readiness_probe=k8s.core.v1.ProbeArgs(http_get=http_probe, period_seconds=5),
                liveness_probe=k8s.core.v1.ProbeArgs(http_get=http_probe, period_seconds=10, failure_threshold=3),
                security_context=k8s.core.v1.SecurityContextArgs(
                    allow_privilege_escalation=False,
                    privileged=False,
                    read_only_root_filesystem=True,
                    run_as_non_root=True,
                    run_as_user=SAMPLE_UID,
                    run_as_group=SAMPLE_UID,
                    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                ),
                # The root filesystem is read-only; a server that writes temporary files gets /tmp.
                volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path=SAMPLE_TMP)],
            )
        ],
        volumes=[k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="16Mi"))],
    )


class ExportedGkeService(pulumi.ComponentResource):
    host: pulumi.Output[str]
    """`<name>.<suffix>`: what a Cloud Run client asks for."""
    destination: pulumi.Output[str]
    virtual_service_name: str

    def __init__(self, name: str, args: ExportedGkeServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, None, opts)
        labels = {"run": args.service_name}
        namespace = args.namespace_ref if args.namespace_ref is not None else args.namespace

        def child(object_name: str) -> pulumi.ResourceOptions:
            import_id = adoption.kubernetes_id(args.namespace, object_name) if args.adopt else None
            return adoption.child_options(self, import_id, adoption.KUBERNETES_IGNORED)

        if args.deploy_sample:
            self.deployment: Optional[k8s.apps.v1.Deployment] = k8s.apps.v1.Deployment(
                f"{name}-deployment",
                k8s.apps.v1.DeploymentInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=args.service_name, namespace=namespace),
                    spec=k8s.apps.v1.DeploymentSpecArgs(
                        replicas=1,
                        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                        template=k8s.core.v1.PodTemplateSpecArgs(
                            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                            spec=sample_pod_spec(args.image, args.target_port),
                        ),
                    ),
                ),
                opts=child(args.service_name),
            )
            self.service: Optional[k8s.core.v1.Service] = k8s.core.v1.Service(
                f"{name}-service",
                k8s.core.v1.ServiceInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=args.service_name, namespace=namespace),
                    spec=k8s.core.v1.ServiceSpecArgs(
                        type="ClusterIP",
                        selector=labels,
                        ports=[k8s.core.v1.ServicePortArgs(port=args.port, target_port=args.target_port, protocol="TCP")],
                    ),
                ),
                opts=child(args.service_name),
            )
            # The route waits for the Service it names, through its output.
            destination: pulumi.Input[str] = self.service.metadata.apply(lambda m: cast(str, m.name))
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
            metadata=k8s.meta.v1.ObjectMetaArgs(name=self.virtual_service_name, namespace=namespace),
            spec=virtual_service_spec(host, destination, route_port, args.gke_clients),
            opts=child(self.virtual_service_name),
        )

        self.host = host
        self.destination = pulumi.Output.from_input(destination)
        self.register_outputs({"host": self.host, "destination": self.destination})

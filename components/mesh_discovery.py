"""Read the Cloud Service Mesh id from the cluster, as the guide does with kubectl."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from cloudrun_mesh import sdk_private
from components.naming import CHANNEL_REVISIONS, expand_mesh_name

TYPE = "cloudrun-mesh:index:MeshDiscovery"
API_VERSION = "mesh.cloud.google.com/v1beta1"
KIND = "ControlPlaneRevision"
NAMESPACE = "istio-system"
ANNOTATION = "mesh.cloud.google.com/external-mesh"


class MeshDiscoveryError(pulumi.RunError):
    """The cluster did not say which mesh Cloud Run should join."""


@dataclass
class MeshDiscoveryArgs:
    control_plane_revision: str
    """Name of the ControlPlaneRevision in istio-system (``asm-managed`` for the regular channel)."""
    default_project: str
    """Project used to expand a bare mesh id into ``projects/<p>/locations/global/meshes/<id>``."""


def mesh_name_from(metadata: Any, revision: str, default_project: str) -> str:
    """The full mesh name from a ControlPlaneRevision's metadata, or a clear error."""
    annotations = (metadata or {}).get("annotations") if isinstance(metadata, dict) else getattr(metadata, "annotations", None)
    value = (annotations or {}).get(ANNOTATION)
    where = f"ControlPlaneRevision {NAMESPACE}/{revision} ({API_VERSION})"
    if not value:
        raise MeshDiscoveryError(
            f"{where} has no `{ANNOTATION}` annotation, so the mesh Cloud Run should join is unknown. "
            "Check that Cloud Service Mesh is provisioned on the cluster (managed control plane) and that "
            f"the stack reads the revision of the cluster's channel ({channel_revisions()}; "
            "`kubectl get controlplanerevision -n istio-system` lists them): set `cloudrun-mesh:mesh.channel` "
            "or `cloudrun-mesh:mesh.controlPlaneRevision`, or set `cloudrun-mesh:mesh.name` "
            "to `projects/<project>/locations/global/meshes/<mesh-id>`."
        )
    full = expand_mesh_name(value, default_project)
    if full is None:
        raise MeshDiscoveryError(
            f"{where} annotation `{ANNOTATION}` is {value!r}, which is neither "
            "`projects/<project>/locations/global/meshes/<mesh-id>` nor a bare mesh id; "
            "set `cloudrun-mesh:mesh.name` explicitly."
        )
    return full


def channel_revisions() -> str:
    """`rapid: asm-managed-rapid, regular: asm-managed, stable: asm-managed-stable`."""
    return ", ".join(f"{channel}: {revision}" for channel, revision in sorted(CHANNEL_REVISIONS.items()))


class _ExistingCustomResource(k8s.apiextensions.CustomResource):
    """``CustomResource.get`` that exposes what it read.

    The Python SDK's ``CustomResource.get`` registers the read without declaring any output
    property, so ``metadata`` would not exist on the result. This declares ``metadata`` and
    ``spec`` as outputs of the same ``ReadResource`` request.
    """

    metadata: pulumi.Output[Any]

    def __init__(self, resource_name: str, api_version: str, kind: str, id: str, opts: pulumi.ResourceOptions):
        props = k8s.apiextensions.CustomResourceArgs.__new__(k8s.apiextensions.CustomResourceArgs)
        props.__dict__.update(api_version=None, kind=None, metadata=None, spec=None)
        sdk_private.init_custom_resource(
            self,
            resource_name,
            props=props,
            api_version=api_version,
            kind=kind,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id)),
        )


class MeshDiscovery(pulumi.ComponentResource):
    mesh_name: pulumi.Output[str]

    def __init__(self, name: str, args: MeshDiscoveryArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, None, opts)
        # A read, not a managed resource: the revision belongs to the mesh installation, and
        # Pulumi must never adopt or delete it.
        self.revision = _ExistingCustomResource(
            f"{name}-revision",
            api_version=API_VERSION,
            kind=KIND,
            id=f"{NAMESPACE}/{args.control_plane_revision}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        revision, project = args.control_plane_revision, args.default_project
        self.mesh_name = self.revision.metadata.apply(lambda m: mesh_name_from(m, revision, project))
        self.register_outputs({"mesh_name": self.mesh_name})

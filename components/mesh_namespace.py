"""A namespace the stack owns, with Cloud Service Mesh sidecar injection turned on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional, cast

import pulumi
import pulumi_kubernetes as k8s

TYPE = "cloudrun-mesh:index:MeshNamespace"


@dataclass
class MeshNamespaceArgs:
    namespace: str
    """Name of the Kubernetes namespace."""
    injection_labels: Mapping[str, str] = field(default_factory=dict)
    """The label that turns on sidecar injection (`istio-injection: enabled` or `istio.io/rev: <revision>`)."""


class MeshNamespace(pulumi.ComponentResource):
    namespace_name: pulumi.Output[str]
    """The namespace's name, from the created object: objects placed in it wait for it."""

    def __init__(self, name: str, args: MeshNamespaceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, None, opts)
        # The API server's NamespaceLifecycle admission rejects objects in a namespace that does not
        # exist, and the injection webhook only acts on pods created after the label is there: the
        # namespace and its label come first, and everything in it depends on them through
        # `namespace_name`.
        #
        # `pulumi destroy` leaves the namespace in place (retain_on_delete): deleting a namespace
        # deletes everything in it, including objects other people or stacks put there. The stack's
        # own objects in it are deleted; the namespace is removed with `kubectl delete namespace`.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            k8s.core.v1.NamespaceInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(name=args.namespace, labels=dict(args.injection_labels)),
            ),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        self.namespace_name = self.namespace.metadata.apply(lambda m: cast(str, m.name))
        self.register_outputs({"namespace_name": self.namespace_name})

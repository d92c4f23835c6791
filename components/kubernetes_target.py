"""An explicit Kubernetes provider for one GKE cluster, so a stack never depends on whichever
kubeconfig context happens to be active on the machine that runs `pulumi up`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, cast

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

TYPE = "cloudrun-mesh:index:KubernetesTarget"
AUTH_PLUGIN = "gke-gcloud-auth-plugin"


@dataclass
class KubernetesTargetArgs:
    cluster_name: pulumi.Input[str]
    location: pulumi.Input[str]
    """Region or zone of the cluster."""
    project: pulumi.Input[str]


def kubeconfig(endpoint: str, ca_certificate: str, context: str) -> str:
    """A kubeconfig that authenticates with the caller's gcloud credentials, never a stored token.

    JSON is valid YAML, so the provider reads it as is.
    """
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": context, "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca_certificate}}
            ],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "users": [
                {
                    "name": context,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": AUTH_PLUGIN,
                            "installHint": "Install gke-gcloud-auth-plugin: "
                            "gcloud components install gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


def _ca_certificate(master_auths: Any) -> str:
    # Invoke results arrive as typed result objects or, when the SDK cannot build the type, as
    # plain dicts keyed by wire names; accept both rather than fail on the SDK's choice.
    auth = master_auths[0]
    value = getattr(auth, "cluster_ca_certificate", None)
    if value is None and isinstance(auth, dict):
        value = auth.get("cluster_ca_certificate") or auth.get("clusterCaCertificate")
    return cast(str, value)


class KubernetesTarget(pulumi.ComponentResource):
    provider: k8s.Provider

    def __init__(self, name: str, args: KubernetesTargetArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, None, opts)
        cluster = gcp.container.get_cluster_output(
            name=args.cluster_name,
            location=args.location,
            project=args.project,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        context = pulumi.Output.concat("gke_", args.project, "_", args.location, "_", args.cluster_name)
        config = pulumi.Output.all(cluster.endpoint, cluster.master_auths, context).apply(
            lambda a: kubeconfig(a[0], _ca_certificate(a[1]), a[2])
        )
        self.provider = k8s.Provider(
            f"{name}-provider",
            k8s.ProviderArgs(kubeconfig=config),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"kubeconfig_context": context})

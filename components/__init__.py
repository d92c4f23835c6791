"""Pulumi components of cloudrun-mesh, one per module; each takes a typed args object and opts."""

from .exported_gke_service import ExportedGkeService, ExportedGkeServiceArgs
from .kubernetes_target import KubernetesTarget, KubernetesTargetArgs
from .mesh_cloud_run_service import MeshCloudRunService, MeshCloudRunServiceArgs
from .mesh_discovery import MeshDiscovery, MeshDiscoveryArgs
from .mesh_namespace import MeshNamespace, MeshNamespaceArgs
from .private_mesh_zone import PrivateMeshZone, PrivateMeshZoneArgs
from .uptime_monitoring import MonitoredClient, UptimeMonitoring, UptimeMonitoringArgs

__all__ = [
    "ExportedGkeService",
    "ExportedGkeServiceArgs",
    "KubernetesTarget",
    "KubernetesTargetArgs",
    "MeshCloudRunService",
    "MeshCloudRunServiceArgs",
    "MeshDiscovery",
    "MeshDiscoveryArgs",
    "MeshNamespace",
    "MeshNamespaceArgs",
    "MonitoredClient",
    "PrivateMeshZone",
    "PrivateMeshZoneArgs",
    "UptimeMonitoring",
    "UptimeMonitoringArgs",
]

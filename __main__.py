"""cloudrun-mesh: route traffic from Cloud Run services to Cloud Service Mesh workloads on GKE."""

from pathlib import Path

import pulumi

from cloudrun_mesh import config as stack_config
from cloudrun_mesh import outputs
from components import (
    ExportedGkeService,
    ExportedGkeServiceArgs,
    KubernetesTarget,
    KubernetesTargetArgs,
    MeshCloudRunService,
    MeshCloudRunServiceArgs,
    MeshDiscovery,
    MeshDiscoveryArgs,
    MeshNamespace,
    MeshNamespaceArgs,
    MonitoredClient,
    PrivateMeshZone,
    PrivateMeshZoneArgs,
    UptimeMonitoring,
    UptimeMonitoringArgs,
    naming,
)

# 0. Read and validate every setting before anything is registered.
cfg = stack_config.load(project_dir=Path(__file__).resolve().parent)
protect = pulumi.ResourceOptions(protect=cfg.protect)

# 1. A private DNS zone with a wildcard A record to an unused RFC 1918 address.
zone = PrivateMeshZone(
    "dns",
    PrivateMeshZoneArgs(
        zone_name=cfg.dns.zone,
        suffix=cfg.dns.suffix,
        network=cfg.network_path,
        ttl=cfg.dns.ttl,
        address=cfg.dns.address,
        region=cfg.region,
        subnetwork=cfg.subnetwork,
        address_name=cfg.dns.address_name,
        adopt_project=cfg.project if cfg.adopt else None,
    ),
    opts=protect,
)

# 2. The cluster the mesh runs in: the ambient kubeconfig, or an explicit GKE cluster.
k8s_opts = pulumi.ResourceOptions()
if cfg.cluster is not None:
    target = KubernetesTarget(
        "gke",
        KubernetesTargetArgs(cluster_name=cfg.cluster.name, location=cfg.cluster.location, project=cfg.cluster.project),
    )
    k8s_opts = pulumi.ResourceOptions(providers=[target.provider])

# 3. The namespaces the stack owns, labelled for sidecar injection; then a VirtualService on the
#    external-mesh gateway for each exported GKE Service (and the sample), in its namespace.
namespaces = {
    ns: MeshNamespace(
        f"ns-{ns}",
        MeshNamespaceArgs(namespace=ns, injection_labels=cfg.mesh.injection_labels),
        opts=pulumi.ResourceOptions.merge(k8s_opts, protect),
    ).namespace_name
    for ns in cfg.owned_namespaces
}
exported = {
    svc.name: ExportedGkeService(
        f"svc-{svc.name}",
        ExportedGkeServiceArgs(
            service_name=svc.name,
            namespace=svc.namespace,
            namespace_ref=namespaces.get(svc.namespace),
            port=svc.port,
            suffix=zone.suffix,
            deploy_sample=svc.deploy_sample,
            target_port=svc.target_port,
            image=svc.image,
            gke_clients=svc.gke_clients,
            virtual_service_name=svc.virtual_service_name,
            adopt=cfg.adopt,
        ),
        opts=pulumi.ResourceOptions.merge(k8s_opts, protect),
    )
    for svc in cfg.services
}

# 4. The mesh id: from config, or from the cluster's ControlPlaneRevision annotation.
if cfg.mesh.name is not None:
    mesh_name = pulumi.Output.from_input(cfg.mesh.name)
else:
    mesh_name = MeshDiscovery(
        "mesh",
        MeshDiscoveryArgs(
            control_plane_revision=cfg.mesh.control_plane_revision,
            default_project=cfg.mesh.project or cfg.project,
        ),
        opts=k8s_opts,
    ).mesh_name
mesh_project = (
    pulumi.Output.from_input(cfg.mesh.project)
    if cfg.mesh.project
    else mesh_name.apply(naming.mesh_project_of)
)

# 5. Cloud Run services deployed into the mesh and the VPC, never public, with trafficdirector.client.
clients = {
    client.name: MeshCloudRunService(
        f"run-{client.name}",
        MeshCloudRunServiceArgs(
            service_name=client.name,
            image=client.image,
            region=client.region,
            project=cfg.project,
            network=cfg.network,
            subnetwork=client.subnetwork,
            mesh=mesh_name,
            mesh_project=mesh_project,
            invokers=client.invokers,
            deletion_protection=cfg.protect,
            ingress=client.ingress,
            adopt=cfg.adopt,
        ),
        opts=protect,
    )
    for client in cfg.clients
}

hosts = {name: svc.host for name, svc in exported.items()}

# 6. The guide's curl on a schedule: an uptime check per client x service, one alert policy (opt-in).
monitoring = cfg.monitoring
uptime = None
executions = 0
if monitoring.enabled:
    executions = outputs.uptime_executions_per_month(
        len(cfg.clients) * len(cfg.services), monitoring.regions, monitoring.period_seconds)
    uptime = UptimeMonitoring(
        "monitoring",
        UptimeMonitoringArgs(
            stack=pulumi.get_stack(),
            project=cfg.project,
            clients=[
                MonitoredClient(c.name, c.region, clients[c.name].url, clients[c.name].service_name,
                                clients[c.name].service.location, clients[c.name].service.project)
                for c in cfg.clients
            ],
            services=hosts,
            period_seconds=monitoring.period_seconds,
            regions=monitoring.regions,
            notification_channels=monitoring.notification_channels,
            alert_after=monitoring.alert_after,
            timeout_seconds=monitoring.timeout_seconds,
            cluster=cfg.cluster,
        ),
        opts=protect,
    )

# 7. What the guide's final curl needs.
urls = {name: run.url for name, run in clients.items()}
pulumi.export("cloudRunUrls", urls)
pulumi.export("meshName", mesh_name)
pulumi.export("exportedHosts", hosts)
pulumi.export("fetchUrls", outputs.fetch_urls(urls, hosts))
pulumi.export("dnsZone", zone.zone_name)
pulumi.export("recordAddress", zone.address)
# 8. What to look at when the check fails: each client's sidecar errors, and the mesh's proxy status.
pulumi.export("loggingFilters", {c.name: outputs.logging_filter(c.name, c.region, cfg.project) for c in cfg.clients})
pulumi.export("proxyStatusCommands", outputs.proxy_status_commands(cfg.project, cfg.cluster))

if uptime is not None:
    pulumi.export("uptimeChecks", uptime.uptime_checks)
    pulumi.export("uptimeCheckExecutionsPerMonth", executions)

"""The validated stack configuration: frozen dataclasses the program and its components read, and
the constants they share. Shapes, values and defaults of the keys are declared in the JSON Schema
(``cloudrun_mesh/schemas/stack-config.schema.json``); the defaults repeated here are checked
against it by tests/test_config_schema.py."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Optional

from components.naming import CHANNEL_REVISIONS as CHANNEL_REVISIONS

NS = "cloudrun-mesh"

# The guide's values. A stack that sets only gcp:project and gcp:region reproduces the guide.
DEFAULT_NETWORK = "default"
DEFAULT_ZONE = "prod"
DEFAULT_SUFFIX = "mesh.private"
DEFAULT_ADDRESS = "10.0.0.1"
DEFAULT_TTL = 3600
# Release channels and their ControlPlaneRevision: components.naming.CHANNEL_REVISIONS.
DEFAULT_CHANNEL = "regular"
DEFAULT_REVISION = CHANNEL_REVISIONS[DEFAULT_CHANNEL]
# Sidecar injection labels for a managed control plane. Google's docs give two: the default
# injection label, which injects the proxy of the cluster's own channel and follows it, and the
# revision label, which pins one channel's revision (`kubectl label namespace NS
# istio-injection=enabled istio.io/rev-` or `istio.io/rev=asm-managed-rapid istio-injection-`):
# https://cloud.google.com/service-mesh/docs/managed/provision-managed-anthos-service-mesh and
# https://cloud.google.com/service-mesh/v1.19/docs/deploy-bookinfo ("Managed" tab). Exactly one of the
# two is set; when both are present Istio's webhooks let `istio-injection` win.
DEFAULT_INJECTION_LABEL = ("istio-injection", "enabled")
REVISION_LABEL = "istio.io/rev"
# Namespaces a stack must never own: deleting them is refused, or takes the cluster or mesh down.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "istio-system", "gke-managed-system")
DEFAULT_SERVICE_PORT = 9999
DEFAULT_TARGET_PORT = 8000
SAMPLE_IMAGE = "docker.io/waip/simple-http:v1.0.1"
CLIENT_IMAGE = "fortio/fortio"
DEFAULT_SERVICES = ({"name": "ads", "namespace": "default", "deploySample": True},)
DEFAULT_CLIENTS = ({"name": "mesh-svc"},)
RESERVE = "reserve"

# Keys Pulumi.yaml declares as scalars (with the same defaults); the objects are in the schema and
# docs/configuration.md.
SCALAR_DEFAULTS: dict[str, object] = {"network": DEFAULT_NETWORK, "subnetwork": "", "protect": False, "adopt": False}
OBJECT_KEYS = ("dns", "mesh", "cluster", "services", "clients", "monitoring")
TOP_LEVEL_KEYS = tuple(SCALAR_DEFAULTS) + OBJECT_KEYS
# The keys each object accepts (the schema's `properties`; a test keeps them equal).
FIELDS = {
    "dns": ("zone", "suffix", "address", "ttl", "addressName"),
    "mesh": ("name", "project", "channel", "controlPlaneRevision"),
    "cluster": ("name", "location", "project"),
    "services": ("name", "namespace", "createNamespace", "port", "targetPort", "deploySample", "image", "gkeClients",
                 "virtualServiceName"),
    "clients": ("name", "image", "region", "subnetwork", "invokers", "ingress"),
    "monitoring": ("enabled", "period", "regions", "notificationChannels", "alertAfter", "timeout"),
}
# clients[i].ingress: gcloud's names for Cloud Run's ingress settings (`gcloud run deploy --ingress`,
# https://cloud.google.com/run/docs/securing/ingress); `all` is what the guide's curl from outside
# the VPC needs. The component maps them to the API's enum.
INGRESS_SETTINGS = ("all", "internal", "internal-and-cloud-load-balancing")
DEFAULT_INGRESS = "all"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

# Monitoring (issue 20). Uptime check periods and checker regions as Cloud Monitoring's API accepts
# them: UptimeCheckConfig.period "Currently, the only supported values are 60s (1 minute), 300s
# (5 minutes), 600s (10 minutes), and 900s (15 minutes)"; selected_regions "enough regions to include a
# minimum of 3 locations must be provided"; timeout "must be between 1 and 60 seconds"
# (https://cloud.google.com/python/docs/reference/monitoring/latest/google.cloud.monitoring_v3.types.UptimeCheckConfig),
# regions from the UptimeCheckRegion enum
# (https://cloud.google.com/python/docs/reference/monitoring/latest/google.cloud.monitoring_v3.types.UptimeCheckRegion).
UPTIME_PERIODS = ("60s", "300s", "600s", "900s")
UPTIME_REGIONS = ("USA", "EUROPE", "SOUTH_AMERICA", "ASIA_PACIFIC", "USA_OREGON", "USA_IOWA", "USA_VIRGINIA")
DEFAULT_UPTIME_PERIOD = "300s"
DEFAULT_UPTIME_REGIONS = ("USA", "EUROPE", "ASIA_PACIFIC")
DEFAULT_ALERT_AFTER = 2
# fortio answers /fortio/fetch/ within its own request timeout, 3 s by default
# (fhttp.HTTPReqTimeOutDefaultValue in github.com/fortio/fortio fhttp/http_client.go): a probe waits longer.
FORTIO_FETCH_TIMEOUT_SECONDS = 3
DEFAULT_UPTIME_TIMEOUT = 10

_NETWORK_PATH = re.compile(r"projects/([^/]+)/global/networks/([^/]+)")


@dataclass(frozen=True)
class DnsConfig:
    zone: str
    suffix: str  # no trailing dot
    address: Optional[str]  # None when a static internal address is reserved
    ttl: int
    address_name: Optional[str] = None  # name of the reserved address; None: Pulumi names it

    @property
    def reserve(self) -> bool:
        return self.address is None


@dataclass(frozen=True)
class MeshConfig:
    name: Optional[str]  # full projects/<p>/locations/global/meshes/<m>, or None to discover
    project: Optional[str]  # project receiving trafficdirector.client; None: from the mesh name
    control_plane_revision: str
    revision_named: bool = False  # the stack chose a channel or revision (else the cluster's default)

    @property
    def injection_labels(self) -> dict[str, str]:
        """The namespace label that turns sidecar injection on for this stack's mesh.

        The default injection label unless the stack names a channel or revision: then the
        revision label, so the workloads get the proxies of the revision the stack reads.
        """
        if self.revision_named and self.name is None:
            return {REVISION_LABEL: self.control_plane_revision}
        return dict([DEFAULT_INJECTION_LABEL])


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    location: str
    project: str


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    namespace: str
    port: int
    target_port: int
    deploy_sample: bool
    image: str
    gke_clients: bool
    virtual_service_name: str = ""  # parse() always sets it: `<name>-external` unless configured
    create_namespace: bool = False


@dataclass(frozen=True)
class ClientConfig:
    name: str
    image: str
    region: str
    invokers: tuple[str, ...]
    ingress: str = DEFAULT_INGRESS
    subnetwork: Optional[str] = None  # Direct VPC egress subnetwork; None: Cloud Run's default


@dataclass(frozen=True)
class MonitoringConfig:
    """`cloudrun-mesh:monitoring`: uptime checks per client x service pair and one alert policy."""

    enabled: bool = False
    period_seconds: int = 300
    regions: tuple[str, ...] = DEFAULT_UPTIME_REGIONS
    notification_channels: tuple[str, ...] = ()
    alert_after: int = DEFAULT_ALERT_AFTER
    timeout_seconds: int = DEFAULT_UPTIME_TIMEOUT


@dataclass(frozen=True)
class Placeholder:
    """An example principal shipped in a stack file: fine to preview, refused by `pulumi up`."""

    key: str  # the config key path to edit, e.g. cloudrun-mesh:clients[0].invokers[1]
    value: str
    reason: str


@dataclass(frozen=True)
class StackConfig:
    project: str
    region: str
    network: str
    subnetwork: Optional[str]
    dns: DnsConfig
    mesh: MeshConfig
    cluster: Optional[ClusterConfig]
    services: tuple[ServiceConfig, ...]
    clients: tuple[ClientConfig, ...]
    protect: bool
    adopt: bool = False  # import the objects of a setup made by hand with the guide
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    # Findings that do not stop a preview: shown by `load` with pulumi.log.warn.
    warnings: tuple[str, ...] = ()
    placeholders: tuple[Placeholder, ...] = ()

    @property
    def network_path(self) -> str:
        """The network as ``projects/<p>/global/networks/<n>``, the form Cloud DNS binds to."""
        return network_path(self.network, self.project)

    @property
    def owned_namespaces(self) -> tuple[str, ...]:
        """Namespaces this stack creates (``services[i].createNamespace``), each once, in order."""
        return tuple(dict.fromkeys(s.namespace for s in self.services if s.create_namespace))


def network_path(network: str, project: str) -> str:
    if _NETWORK_PATH.fullmatch(network):
        return network
    return f"projects/{project}/global/networks/{network}"

"""Stack configuration: the user's contract.

This is the only module that reads ``pulumi.Config``. ``parse`` is a pure function from the raw
values (as Pulumi hands them to the program) to a frozen, fully validated ``StackConfig``; ``load``
feeds it from the engine. Every problem is collected and reported at once, each naming its config
key path and the rule it breaks, before the program registers a single resource.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi

from components.naming import CHANNEL_REVISIONS, expand_mesh_name, mesh_project_of

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

# Keys Pulumi.yaml declares as scalars (with the same defaults); objects are documented in the README.
SCALAR_DEFAULTS = {"network": DEFAULT_NETWORK, "subnetwork": "", "protect": False, "adopt": False}
OBJECT_KEYS = ("dns", "mesh", "cluster", "services", "clients")
TOP_LEVEL_KEYS = tuple(SCALAR_DEFAULTS) + OBJECT_KEYS
# The keys each object accepts; anything else is reported as a typo.
FIELDS = {
    "dns": ("zone", "suffix", "address", "ttl", "addressName"),
    "mesh": ("name", "project", "channel", "controlPlaneRevision"),
    "cluster": ("name", "location", "project"),
    "services": ("name", "namespace", "createNamespace", "port", "targetPort", "deploySample", "image", "gkeClients",
                 "virtualServiceName"),
    "clients": ("name", "image", "region", "subnetwork", "invokers", "ingress"),
}
# clients[i].ingress: gcloud's names for Cloud Run's ingress settings (`gcloud run deploy --ingress`,
# https://cloud.google.com/run/docs/securing/ingress); `all` is what the guide's curl from outside
# the VPC needs. The component maps them to the API's enum.
INGRESS_SETTINGS = ("all", "internal", "internal-and-cloud-load-balancing")
DEFAULT_INGRESS = "all"

_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # RFC 1123 label
_DNS_1035 = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")  # Kubernetes Service names
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_ZONE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_GCE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_PROJECT_NUMBER = re.compile(r"^[0-9]{1,20}$")
_SA_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # 6-30 chars; also a valid Cloud Run name
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
_NETWORK_PATH = re.compile(r"^projects/([^/]+)/global/networks/([^/]+)$")
_SUBNET_PATH = re.compile(r"^projects/([^/]+)/regions/([^/]+)/subnetworks/([^/]+)$")
_MEMBER_KINDS = ("user", "serviceAccount", "group", "domain", "principal", "principalSet")
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")


class ConfigError(pulumi.RunError):
    """Bad stack configuration. A ``RunError`` so the CLI prints the message without a traceback."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            f"Invalid stack configuration ({len(problems)} problem{'s' if len(problems) != 1 else ''}): "
            + " ".join(problems)
            + " See the configuration reference: docs/configuration.md, linked from README.md."
        )


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

    @property
    def network_path(self) -> str:
        """The network as ``projects/<p>/global/networks/<n>``, the form Cloud DNS binds to."""
        return network_path(self.network, self.project)

    @property
    def owned_namespaces(self) -> tuple[str, ...]:
        """Namespaces this stack creates (``services[i].createNamespace``), each once, in order."""
        return tuple(dict.fromkeys(s.namespace for s in self.services if s.create_namespace))


def network_path(network: str, project: str) -> str:
    if _NETWORK_PATH.match(network):
        return network
    return f"projects/{project}/global/networks/{network}"


# --------------------------------------------------------------------------------------------
# Parsing helpers. Each takes the key path for its messages and appends to ``problems``.
# --------------------------------------------------------------------------------------------


@dataclass
class _Checker:
    problems: list[str] = field(default_factory=list)

    def fail(self, key: str, rule: str) -> None:
        self.problems.append(f"`{key}` {rule}.")

    def obj(self, key: str, value: Any, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, Mapping):
            self.fail(key, f"must be an object with keys {', '.join(allowed)}; got {_show(value)}")
            return {}
        for k in value:
            if k not in allowed:
                close = difflib.get_close_matches(str(k), allowed, n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                self.fail(f"{key}.{k}", f"is not a known key{hint}; allowed keys are {', '.join(allowed)}")
        return dict(value)

    def string(self, key: str, value: Any, pattern: Optional[re.Pattern] = None, rule: str = "") -> Optional[str]:
        if not isinstance(value, str) or value == "":
            self.fail(key, f"must be a non-empty string; got {_show(value)}")
            return None
        if pattern is not None and not pattern.match(value):
            self.fail(key, f"{rule}; got {_show(value)}")
            return None
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(key, f"must be true or false; got {_show(value)}")
        return False

    def integer(self, key: str, value: Any, low: int, high: int, rule: str) -> Optional[int]:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer ({rule}); got {_show(value)}")
            return None
        if not low <= value <= high:
            self.fail(key, f"must be {rule}; got {value}")
            return None
        return value

    def lst(self, key: str, value: Any) -> list:
        if not isinstance(value, list):
            self.fail(key, f"must be a list; got {_show(value)}")
            return []
        return value


def _nesting_hint(key: str) -> Optional[str]:
    """For `dns.suffix` written as one top-level key: how to nest it (YAML and `pulumi config set --path`)."""
    m = re.match(r"^([A-Za-z]+)(\[[0-9]+\])?\.(.+)$", key)
    if not m or m.group(1) not in OBJECT_KEYS:
        return None
    obj, index, rest = m.groups()
    item = "- " if obj in ("services", "clients") else ""
    return (f"is a nested key written as one top-level key: in the stack file write `{NS}:{obj}:` with "
            f"`{item}{rest.split('.')[0]}: ...` indented below it, or run "
            f"`pulumi config set --path '{NS}:{key}' <value>`")


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def _parse_choice(c: _Checker, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    c.fail(key, f"must be one of {', '.join(choices)}; got {_show(value)}{hint}")
    return choices[0]


def _project_rule() -> str:
    return "must be a Google Cloud project id (6-30 lowercase letters, digits or hyphens, starting with a letter)"


def _parse_suffix(c: _Checker, key: str, value: Any) -> Optional[str]:
    s = c.string(key, value)
    if s is None:
        return None
    s = s.lower()
    s = s[:-1] if s.endswith(".") else s
    if "*" in s:
        c.fail(key, f"must not contain `*`: the wildcard record is added under the suffix; got {_show(value)}")
        return None
    labels = s.split(".")
    bad = [lab for lab in labels if not _DNS_LABEL.match(lab)]
    if bad:
        c.fail(key, "must be a DNS name whose labels are 1-63 letters, digits or inner hyphens "
               f"(label {_show(bad[0])} is not); got {_show(value)}")
        return None
    if labels[-1].isdigit():
        c.fail(key, f"must not end in an all-numeric top-level label; got {_show(value)}")
        return None
    if len(s) > 253 - 2:  # room for the wildcard label
        c.fail(key, f"must be at most 251 characters; got {len(s)}")
        return None
    return s


def _parse_address(c: _Checker, key: str, value: Any) -> tuple[bool, Optional[str]]:
    s = c.string(key, value)
    if s is None:
        return False, None
    if s == RESERVE:
        return True, None
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        c.fail(key, f'must be an IPv4 address in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, or "reserve"; got {_show(value)}')
        return False, None
    # ipaddress.is_private also accepts 100.64/10, 127/8, 169.254/16 and more: RFC 1918 only here.
    if ip.version != 4 or not any(ip in net for net in _RFC1918):
        c.fail(key, f"must be an RFC 1918 address (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) "
               f"that nothing else uses; got {_show(value)}")
        return False, None
    return True, s


def _parse_mesh_name(c: _Checker, key: str, value: Any, mesh_project: Optional[str]) -> Optional[str]:
    s = c.string(key, value)
    if s is None:
        return None
    full = expand_mesh_name(s, mesh_project)
    if full is None:
        c.fail(key, "must be `projects/<project>/locations/global/meshes/<mesh-id>` or a bare mesh id "
               f"(lowercase letters, digits, `-` or `_`); got {_show(value)}")
    return full


def _parse_member(c: _Checker, key: str, value: Any) -> Optional[str]:
    s = c.string(key, value)
    if s is None:
        return None
    if s in PUBLIC_MEMBERS:
        c.fail(key, f"must not be {s}: mesh clients are never public, list the principals that may invoke them")
        return None
    kind, _, rest = s.partition(":")
    if kind not in _MEMBER_KINDS or not rest:
        c.fail(key, f"must be an IAM member such as `user:alice@example.com` (kinds: {', '.join(_MEMBER_KINDS)}); got {_show(value)}")
        return None
    return s


def _parse_address_name(c: _Checker, key: str, dns: Mapping[str, Any], adopt: bool) -> Optional[str]:
    """The name of the reserved address: optional, except that importing one needs its name."""
    value = dns.get("addressName")
    if value in (None, ""):
        if adopt and dns.get("address") == RESERVE:
            # The guide offers a reserved static internal address as an alternative to a bare IP; an
            # import is by name (projects/<p>/regions/<r>/addresses/<name>), which Pulumi cannot guess.
            c.fail(key, f'is required when `{NS}:adopt` is true and `{NS}:dns.address` is "reserve": it names '
                   "the internal address you reserved by hand (`gcloud compute addresses list`), which is imported; "
                   f"or set `{NS}:dns.address` to that address to leave it unmanaged")
        return None
    if dns.get("address") != RESERVE:
        c.fail(key, f'names the reserved address, so it needs `{NS}:dns.address` to be "reserve"; got {_show(value)}')
        return None
    return c.string(key, value, _GCE_NAME, "must be a Compute Engine address name: 1-63 lowercase letters, digits or "
                    "hyphens, starting with a letter and not ending with a hyphen")


def _parse_virtual_service_name(c: _Checker, key: str, svc: Mapping[str, Any], name: Optional[str],
                                namespace: Optional[str], taken: dict[tuple[str, str], str]) -> str:
    """The VirtualService's name: `<name>-external` unless configured (the guide leaves it to the reader)."""
    if "virtualServiceName" in svc:
        value = c.string(key, svc["virtualServiceName"], _DNS_SUBDOMAIN,
                         "must be a Kubernetes object name: a lowercase DNS subdomain (letters, digits, `-` and `.`)")
        if value is not None and len(value) > 253:
            c.fail(key, f"must be at most 253 characters; got {len(value)}")
            value = None
    else:
        value = f"{name}-external" if name else None
    if value is None or not namespace:
        return value or ""
    if (namespace, value) in taken:
        c.fail(key, f"is {_show(value)} in namespace {_show(namespace)}, the VirtualService of {taken[namespace, value]} "
               "too: each exported service needs its own")
    taken.setdefault((namespace, value), key)
    return value


def _network_project(network: Optional[str], project: Optional[str]) -> Optional[str]:
    """The project that owns the network: from its path, else the stack's project."""
    m = _NETWORK_PATH.match(network or "")
    return m.group(1) if m else project


def _parse_subnetwork(c: _Checker, key: str, value: Any, network_project: Optional[str]) -> Optional[str]:
    """Empty (None), a name, or a path in the network's project (a subnetwork belongs to one network)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not (_GCE_NAME.match(value) or _SUBNET_PATH.match(value)):
        c.fail(key, f"must be empty, a subnetwork name or `projects/<p>/regions/<r>/subnetworks/<s>`; got {_show(value)}")
        return None
    m = _SUBNET_PATH.match(value)
    if m and network_project is not None and m.group(1) != network_project:
        c.fail(key, f"is in project {_show(m.group(1))} but `{NS}:network` is in project {_show(network_project)}: "
               "a subnetwork belongs to its network's project (the host project of a Shared VPC)")
        return None
    return value


def _check_subnetwork_region(c: _Checker, key: str, subnetwork: str, region: str, where: str) -> bool:
    """A subnetwork path must be in the region it is used in: Direct VPC egress and internal
    addresses take IPs from a subnet of their own region."""
    m = _SUBNET_PATH.match(subnetwork)
    if m and m.group(2) != region:
        c.fail(key, f"is in region {_show(m.group(2))} but is used in {_show(region)} ({where}); "
               "give a subnetwork of that region")
        return False
    return True


def _check_namespace_ownership(c: _Checker, i: int, namespace: str, own: bool,
                               ownership: dict[str, tuple[int, bool]]) -> None:
    """One answer per namespace: owned by the stack (created, labelled for injection) or not."""
    key = f"{NS}:services[{i}]"
    if own and namespace in SYSTEM_NAMESPACES:
        c.fail(f"{key}.createNamespace", f"cannot be true for namespace {_show(namespace)}: it belongs to the "
               "cluster (Kubernetes refuses to delete it, or deleting it breaks the cluster or the mesh); "
               "enable sidecar injection on it yourself, or use a namespace of your own")
        return
    if namespace in ownership:
        i, earlier = ownership[namespace]
        if earlier != own:
            c.fail(f"{key}.createNamespace", f"is {str(own).lower()} but `{NS}:services[{i}].createNamespace` is "
                   f"{str(earlier).lower()} for the same namespace {_show(namespace)}: the stack either owns a "
                   "namespace or not; set the same value on every service in it")
        return
    ownership[namespace] = (i, own)


# --------------------------------------------------------------------------------------------


def parse(raw: Mapping[str, Any], gcp_project: Optional[str], gcp_region: Optional[str]) -> StackConfig:
    """Validate raw configuration (keys without the ``cloudrun-mesh:`` prefix, objects already decoded)."""
    c = _Checker()

    for k in raw:
        if k not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(k, TOP_LEVEL_KEYS, n=1)
            hint = f" (did you mean `{NS}:{close[0]}`?)" if close else ""
            nested = _nesting_hint(k)
            c.fail(f"{NS}:{k}", nested or (f"is not a known key{hint}; known keys are "
                   + ", ".join(f"{NS}:{t}" for t in TOP_LEVEL_KEYS)))

    project = c.string("gcp:project", gcp_project, _PROJECT_ID, _project_rule())
    region = c.string("gcp:region", gcp_region, _REGION, "must be a Google Cloud region such as us-central1")

    network = c.string(f"{NS}:network", raw.get("network", DEFAULT_NETWORK))
    if network is not None and not (_GCE_NAME.match(network) or _NETWORK_PATH.match(network)):
        c.fail(f"{NS}:network", f"must be a VPC network name or `projects/<p>/global/networks/<n>`; got {_show(network)}")
    network_project = _network_project(network, project)
    subnetwork = _parse_subnetwork(c, f"{NS}:subnetwork", raw.get("subnetwork", ""), network_project)
    protect = c.boolean(f"{NS}:protect", raw.get("protect", False))
    adopt = c.boolean(f"{NS}:adopt", raw.get("adopt", False))

    # dns
    key = f"{NS}:dns"
    d = c.obj(key, raw.get("dns", {}), FIELDS["dns"])
    zone = c.string(f"{key}.zone", d.get("zone", DEFAULT_ZONE), _ZONE_NAME,
                    "must be a Cloud DNS zone name: 1-63 lowercase letters, digits or hyphens, "
                    "starting with a letter and not ending with a hyphen")
    suffix = _parse_suffix(c, f"{key}.suffix", d.get("suffix", DEFAULT_SUFFIX))
    _, address = _parse_address(c, f"{key}.address", d.get("address", DEFAULT_ADDRESS))
    ttl = c.integer(f"{key}.ttl", d.get("ttl", DEFAULT_TTL), 1, 2**31 - 1, "a positive number of seconds")
    address_name = _parse_address_name(c, f"{key}.addressName", d, adopt)
    dns = DnsConfig(zone=zone or "", suffix=suffix or "", address=address, ttl=ttl or DEFAULT_TTL,
                    address_name=address_name)
    if d.get("address") == RESERVE and subnetwork is None and network not in (None, DEFAULT_NETWORK):
        # An internal address without a subnetwork is reserved in the *default* network's subnet.
        c.fail(f"{key}.address", f'"reserve" needs `{NS}:subnetwork` when `{NS}:network` is not "default": '
               "the address must come from a subnet of the network the zone serves")
    if d.get("address") == RESERVE and subnetwork is not None and region is not None:
        # The address is reserved in gcp:region, from this subnetwork.
        _check_subnetwork_region(c, f"{NS}:subnetwork", subnetwork, region, "`gcp:region`, where the wildcard's address is reserved")

    # mesh
    key = f"{NS}:mesh"
    m = c.obj(key, raw.get("mesh", {}), FIELDS["mesh"])
    mesh_project = m.get("project") or None
    if mesh_project is not None and not (
        isinstance(mesh_project, str) and (_PROJECT_ID.match(mesh_project) or _PROJECT_NUMBER.match(mesh_project))
    ):
        c.fail(f"{key}.project", f"must be empty, a project id or a project number; got {_show(mesh_project)}")
        mesh_project = None
    mesh_name = None
    if m.get("name"):
        mesh_name = _parse_mesh_name(c, f"{key}.name", m["name"], mesh_project or project)
    if mesh_name is not None and mesh_project is not None:
        named = mesh_project_of(mesh_name)
        same_kind = _PROJECT_NUMBER.match(named) is not None and _PROJECT_NUMBER.match(mesh_project) is not None or (
            _PROJECT_ID.match(named) is not None and _PROJECT_ID.match(mesh_project) is not None)
        # An id and a number may name the same project; that cannot be checked offline.
        if same_kind and named != mesh_project:
            c.fail(f"{key}.project", f"is {_show(mesh_project)} but `{key}.name` names project {_show(named)}: "
                   "the grant would go to a project other than the mesh's; drop one or make them agree")
    channel = m.get("channel")
    if channel is not None:
        channel = _parse_choice(c, f"{key}.channel", channel, tuple(CHANNEL_REVISIONS))
    revision = c.string(f"{key}.controlPlaneRevision",
                        m.get("controlPlaneRevision", CHANNEL_REVISIONS.get(channel or DEFAULT_CHANNEL, DEFAULT_REVISION)),
                        _DNS_SUBDOMAIN, "must be a Kubernetes object name (lowercase DNS subdomain)")
    if mesh_name is not None:
        for ignored in ("channel", "controlPlaneRevision"):
            if m.get(ignored) is not None:
                c.fail(f"{key}.{ignored}", f"is ignored when `{key}.name` is set (the revision is read only to "
                       "discover the mesh name); remove one of them")
    named_revision = m.get("channel") is not None or m.get("controlPlaneRevision") is not None
    mesh = MeshConfig(name=mesh_name, project=mesh_project, control_plane_revision=revision or "",
                      revision_named=named_revision)

    # cluster
    cluster = None
    if raw.get("cluster"):
        key = f"{NS}:cluster"
        cl = c.obj(key, raw["cluster"], FIELDS["cluster"])
        if cl or isinstance(raw["cluster"], Mapping):
            cname = c.string(f"{key}.name", cl.get("name"), _GCE_NAME, "must be a GKE cluster name")
            cloc = c.string(f"{key}.location", cl.get("location"), re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+(-[a-z])?$"),
                            "must be a region or zone such as us-central1 or us-central1-c")
            cproj = c.string(f"{key}.project", cl.get("project") or project, _PROJECT_ID, _project_rule())
            cluster = ClusterConfig(name=cname or "", location=cloc or "", project=cproj or "")

    # services
    key = f"{NS}:services"
    services: list[ServiceConfig] = []
    seen: dict[str, int] = {}
    vs_names: dict[tuple[str, str], str] = {}  # (namespace, VirtualService name) -> key that claimed it
    ownership: dict[str, tuple[int, bool]] = {}  # namespace -> (first service naming it, createNamespace)
    for i, s in enumerate(c.lst(key, raw.get("services", list(DEFAULT_SERVICES)))):
        k = f"{key}[{i}]"
        s = c.obj(k, s, FIELDS["services"])
        name = c.string(f"{k}.name", s.get("name"), _DNS_1035,
                        "must be a Kubernetes Service name: a DNS-1035 label (1-63 lowercase letters, digits or "
                        "hyphens, starting with a letter)")
        if name is not None:
            if name in seen:
                c.fail(f"{k}.name", f"duplicates {key}[{seen[name]}].name {_show(name)}: each service gets the host "
                       "`<name>.<suffix>`, so names must be unique across namespaces")
            seen.setdefault(name, i)
        namespace = c.string(f"{k}.namespace", s.get("namespace", "default"), _DNS_LABEL,
                             "must be a Kubernetes namespace: a DNS label (1-63 lowercase letters, digits or hyphens)")
        port = c.integer(f"{k}.port", s.get("port", DEFAULT_SERVICE_PORT), 1, 65535, "a port between 1 and 65535")
        tport = c.integer(f"{k}.targetPort", s.get("targetPort", DEFAULT_TARGET_PORT), 1, 65535,
                          "a port between 1 and 65535")
        sample = c.boolean(f"{k}.deploySample", s.get("deploySample", False))
        image = c.string(f"{k}.image", s.get("image", SAMPLE_IMAGE))
        gke = c.boolean(f"{k}.gkeClients", s.get("gkeClients", False))
        vs_name = _parse_virtual_service_name(c, f"{k}.virtualServiceName", s, name, namespace, vs_names)
        own = c.boolean(f"{k}.createNamespace", s.get("createNamespace", False))
        if own and adopt:
            # Adoption imports what the guide made; the guide makes no namespace, and the hand-made
            # objects already live in theirs, so it cannot be created again (AlreadyExists).
            c.fail(f"{k}.createNamespace", f"cannot be true while `{NS}:adopt` is: the namespace of a setup made "
                   "by hand exists already (its objects live in it) and cannot be created; leave it false, and the "
                   "namespace and its injection label stay as you made them")
        if namespace is not None:
            _check_namespace_ownership(c, i, namespace, own, ownership)
        services.append(ServiceConfig(name or "", namespace or "", port or 0, tport or 0, sample, image or "", gke,
                                      virtual_service_name=vs_name, create_namespace=own))

    # clients
    key = f"{NS}:clients"
    clients: list[ClientConfig] = []
    seen = {}
    for i, cl in enumerate(c.lst(key, raw.get("clients", list(DEFAULT_CLIENTS)))):
        k = f"{key}[{i}]"
        cl = c.obj(k, cl, FIELDS["clients"])
        name = c.string(f"{k}.name", cl.get("name"), _SA_ID,
                        "must yield a service-account id and a Cloud Run service name: 6-30 lowercase letters, "
                        "digits or hyphens, starting with a letter and not ending with a hyphen")
        if name is not None:
            if name in seen:
                c.fail(f"{k}.name", f"duplicates {key}[{seen[name]}].name {_show(name)}")
            seen.setdefault(name, i)
        image = c.string(f"{k}.image", cl.get("image", CLIENT_IMAGE))
        cregion = cl.get("region") or region
        if cl.get("region"):
            cregion = c.string(f"{k}.region", cl["region"], _REGION, "must be a Google Cloud region such as us-central1")
        csubnet = subnetwork
        if cl.get("subnetwork") is not None:
            csubnet = _parse_subnetwork(c, f"{k}.subnetwork", cl["subnetwork"], network_project)
        if csubnet is not None and cregion is not None:
            origin = "" if cl.get("subnetwork") is not None else f" (inherited from `{NS}:subnetwork`)"
            _check_subnetwork_region(c, f"{k}.subnetwork", csubnet, cregion, f"the region of {k}{origin}")
        first: dict[str, int] = {}  # member -> index of its first occurrence
        for j, member in enumerate(c.lst(f"{k}.invokers", cl.get("invokers", []))):
            mk = f"{k}.invokers[{j}]"
            parsed = _parse_member(c, mk, member)
            if parsed is None:
                continue
            if parsed in first:
                c.fail(mk, f"duplicates {k}.invokers[{first[parsed]}] {_show(parsed)}")
                continue
            first[parsed] = j
        invokers = list(first)
        ingress = _parse_choice(c, f"{k}.ingress", cl.get("ingress", DEFAULT_INGRESS), INGRESS_SETTINGS)
        clients.append(ClientConfig(name or "", image or "", cregion or "", tuple(invokers), ingress, csubnet))

    if c.problems:
        raise ConfigError(c.problems)
    assert project and region and network  # guaranteed when no problem was recorded
    return StackConfig(
        project=project, region=region, network=network, subnetwork=subnetwork, dns=dns, mesh=mesh,
        cluster=cluster, services=tuple(services), clients=tuple(clients), protect=protect, adopt=adopt,
    )


def _decode(key: str, value: str, problems: list[str]) -> Any:
    """Pulumi hands object and list values to the program as JSON text."""
    if key in OBJECT_KEYS:
        try:
            return json.loads(value)
        except ValueError as e:
            problems.append(f"`{NS}:{key}` must be a YAML object or list in the stack file (not text); "
                            f"it could not be decoded: {e}.")
            return None
    return value


def load(env_get: Callable[[str], Optional[str]] = os.environ.get) -> StackConfig:
    """Read the stack's configuration from the engine and validate it."""
    # The language host installs config into the runtime's map; older hosts use the environment.
    # Both are read so that a typo in any key under cloudrun-mesh: is reported, not ignored.
    config_env = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    raw: dict[str, Any] = {}
    problems: list[str] = []
    prefix = f"{NS}:"
    for full_key, value in sorted(config_env.items()):
        if full_key.startswith(prefix):
            key = full_key[len(prefix):]
            decoded = _decode(key, value, problems)
            if decoded is not None:
                raw[key] = decoded
    if problems:
        raise ConfigError(problems)
    gcp = pulumi.Config("gcp")
    project = gcp.get("project") or env_get("GOOGLE_PROJECT") or env_get("GOOGLE_CLOUD_PROJECT")
    region = gcp.get("region") or env_get("GOOGLE_REGION") or env_get("CLOUDSDK_COMPUTE_REGION")
    return parse(raw, project, region)

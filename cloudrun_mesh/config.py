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
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import pulumi

NS = "cloudrun-mesh"

# The guide's values. A stack that sets only gcp:project and gcp:region reproduces the guide.
DEFAULT_NETWORK = "default"
DEFAULT_ZONE = "prod"
DEFAULT_SUFFIX = "mesh.private"
DEFAULT_ADDRESS = "10.0.0.1"
DEFAULT_TTL = 3600
DEFAULT_REVISION = "asm-managed"
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
    "mesh": ("name", "project", "controlPlaneRevision"),
    "cluster": ("name", "location", "project"),
    "services": ("name", "namespace", "port", "targetPort", "deploySample", "image", "gkeClients", "virtualServiceName"),
    "clients": ("name", "image", "region", "invokers", "ingress"),
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
_MESH_ID = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$")
_MESH_NAME = re.compile(r"^projects/([^/]+)/locations/global/meshes/([^/]+)$")
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
            + " See the configuration reference in README.md."
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


@dataclass(frozen=True)
class ClientConfig:
    name: str
    image: str
    region: str
    invokers: tuple[str, ...]
    ingress: str = DEFAULT_INGRESS


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
        if _NETWORK_PATH.match(self.network):
            return self.network
        return f"projects/{self.project}/global/networks/{self.network}"


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


def expand_mesh_name(value: str, default_project: Optional[str]) -> Optional[str]:
    """A full mesh name from a full name or a bare id, or None when the shape is wrong.

    Shared by config parsing and by discovery, which reads the same shapes from the cluster.
    """
    m = _MESH_NAME.match(value)
    if m:
        project, mesh = m.groups()
        if not (_PROJECT_ID.match(project) or _PROJECT_NUMBER.match(project)) or not _MESH_ID.match(mesh):
            return None
        return value
    if _MESH_ID.match(value) and default_project:
        return f"projects/{default_project}/locations/global/meshes/{value}"
    return None


def mesh_project_of(mesh_name: str) -> str:
    m = _MESH_NAME.match(mesh_name)
    if not m:
        raise ValueError(f"not a full mesh name: {mesh_name!r}")
    return m.group(1)


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


def member_slug(member: str) -> str:
    """A readable, URN-safe form of an IAM member, used in resource names."""
    return re.sub(r"[^a-z0-9]+", "-", member.lower()).strip("-")


# --------------------------------------------------------------------------------------------


def parse(raw: Mapping[str, Any], gcp_project: Optional[str], gcp_region: Optional[str]) -> StackConfig:
    """Validate raw configuration (keys without the ``cloudrun-mesh:`` prefix, objects already decoded)."""
    c = _Checker()

    for k in raw:
        if k not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(k, TOP_LEVEL_KEYS, n=1)
            hint = f" (did you mean `{NS}:{close[0]}`?)" if close else ""
            c.fail(f"{NS}:{k}", f"is not a known key{hint}; known keys are "
                   + ", ".join(f"{NS}:{t}" for t in TOP_LEVEL_KEYS))

    project = c.string("gcp:project", gcp_project, _PROJECT_ID, _project_rule())
    region = c.string("gcp:region", gcp_region, _REGION, "must be a Google Cloud region such as us-central1")

    network = c.string(f"{NS}:network", raw.get("network", DEFAULT_NETWORK))
    if network is not None and not (_GCE_NAME.match(network) or _NETWORK_PATH.match(network)):
        c.fail(f"{NS}:network", f"must be a VPC network name or `projects/<p>/global/networks/<n>`; got {_show(network)}")
    subnetwork = raw.get("subnetwork", "") or None
    if subnetwork is not None:
        if not isinstance(subnetwork, str) or not (_GCE_NAME.match(subnetwork) or _SUBNET_PATH.match(subnetwork)):
            c.fail(f"{NS}:subnetwork", "must be empty, a subnetwork name or "
                   f"`projects/<p>/regions/<r>/subnetworks/<s>`; got {_show(subnetwork)}")
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
    revision = c.string(f"{key}.controlPlaneRevision", m.get("controlPlaneRevision", DEFAULT_REVISION),
                        _DNS_SUBDOMAIN, "must be a Kubernetes object name (lowercase DNS subdomain)")
    mesh = MeshConfig(name=mesh_name, project=mesh_project, control_plane_revision=revision or "")

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
        services.append(ServiceConfig(name or "", namespace or "", port or 0, tport or 0, sample, image or "", gke,
                                      virtual_service_name=vs_name))

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
        invokers: list[str] = []
        slugs: dict[str, str] = {}
        for j, member in enumerate(c.lst(f"{k}.invokers", cl.get("invokers", []))):
            mk = f"{k}.invokers[{j}]"
            parsed = _parse_member(c, mk, member)
            if parsed is None:
                continue
            slug = member_slug(parsed)
            if slug in slugs:
                c.fail(mk, f"duplicates {_show(slugs[slug])}")
                continue
            slugs[slug] = parsed
            invokers.append(parsed)
        ingress = _parse_choice(c, f"{k}.ingress", cl.get("ingress", DEFAULT_INGRESS), INGRESS_SETTINGS)
        clients.append(ClientConfig(name or "", image or "", cregion or "", tuple(invokers), ingress))

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

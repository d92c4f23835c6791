"""``parse``: raw values -> a validated ``StackConfig``.

Shapes and values are the schema's (``schema.validate``); what is here are the rules that relate
keys to each other and the normalisation the components rely on, one small function per section.
Every problem is collected and reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from cloudrun_mesh.config import keys, regions, schema
from cloudrun_mesh.config.model import (
    CHANNEL_REVISIONS,
    DEFAULT_CHANNEL,
    DEFAULT_NETWORK,
    FIELDS,
    NS,
    RESERVE,
    SYSTEM_NAMESPACES,
    ClientConfig,
    ClusterConfig,
    DnsConfig,
    MeshConfig,
    MonitoringConfig,
    Placeholder,
    ServiceConfig,
    StackConfig,
)
from cloudrun_mesh.config.placeholders import placeholder_reason
from cloudrun_mesh.config.problems import ConfigError, Problem, show
from components.naming import PROJECT_ID, PROJECT_NUMBER, expand_mesh_name, mesh_project_of

_NETWORK_PATH = re.compile(r"projects/([^/]+)/global/networks/([^/]+)")
_SUBNET_PATH = re.compile(r"projects/([^/]+)/regions/([^/]+)/subnetworks/([^/]+)")
# Direct VPC egress with a network and no subnetwork uses "the subnetwork with the same name as the
# network" in the service's region (Cloud Run Admin API v2, VpcAccess.NetworkInterface.subnetwork:
# https://cloud.google.com/python/docs/reference/run/latest/google.cloud.run_v2.types.VpcAccess.NetworkInterface;
# https://cloud.google.com/run/docs/configuring/vpc-direct-vpc), which only an auto-mode VPC has; an
# INTERNAL address reserved without a subnetwork comes from the default subnetwork of the region
# ("No default subnetwork was found for an address with type INTERNAL" otherwise).
DIRECT_VPC_DOCS = "https://cloud.google.com/run/docs/configuring/vpc-direct-vpc"


@dataclass
class _Run:
    """What one parse collects."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    placeholders: list[Placeholder] = field(default_factory=list)
    bad: set[str] = field(default_factory=set)  # key paths the schema refused: no cross-field rule on them

    def fail(self, key: str, rule: str) -> None:
        self.problems.append(Problem(key, rule))

    def ok(self, key: str) -> bool:
        """True when neither the key, nor a key inside it, nor the key holding it was refused."""
        return not any(b == key or b.startswith(key + ".") or b.startswith(key + "[") or key.startswith(b + ".")
                       or key.startswith(b + "[") for b in self.bad)


def parse(raw: Mapping[str, Any], gcp_project: Optional[str], gcp_region: Optional[str]) -> StackConfig:
    """Validate raw configuration (keys without the ``cloudrun-mesh:`` prefix, objects already decoded)."""
    run = _Run()
    run.problems.extend(keys.check_keys(f"{NS}:{k}" for k in raw))
    raw = {k: _scalar(k, v) for k, v in raw.items()}
    instance: dict[str, Any] = {f"{NS}:{k}": v for k, v in raw.items() if k in FIELDS or k in _SCALARS}
    for key, value in (("gcp:project", gcp_project), ("gcp:region", gcp_region)):
        if value is None or value == "":
            run.fail(key, f"is required: set it with `pulumi config set {key} <value>`")
        else:
            instance[key] = value
    schema_problems = schema.validate(instance)
    run.problems.extend(schema_problems)
    run.bad = {p.key for p in schema_problems}

    def get(name: str) -> Any:
        return raw.get(name, schema.default(f"{NS}:{name}"))

    project = gcp_project if run.ok("gcp:project") else None
    region = gcp_region if run.ok("gcp:region") else None
    if region:
        _check_region(run, "gcp:region", region)
    # A value the schema refused takes no part in the rules below (its problem is reported already).
    network = str(get("network")) if run.ok(f"{NS}:network") else DEFAULT_NETWORK
    network_project = _network_project(network, project)
    subnetwork = (get("subnetwork") or None) if run.ok(f"{NS}:subnetwork") else None
    if subnetwork is not None:
        _check_subnet_project(run, f"{NS}:subnetwork", subnetwork, network_project)
    adopt = get("adopt") is True
    dns = _dns(run, _obj(raw, "dns"), network, subnetwork, region, adopt)
    mesh = _mesh(run, _obj(raw, "mesh"), project)
    cluster = _cluster(run, raw.get("cluster"), project)
    services = _services(run, get("services"), adopt)
    clients = _clients(run, get("clients"), region, subnetwork, network, network_project)
    monitoring = _monitoring(run, _obj(raw, "monitoring"), clients, services, project)
    if run.problems:
        raise ConfigError(run.problems)
    assert project and region  # guaranteed when no problem was recorded
    return StackConfig(
        project=project, region=region, network=network, subnetwork=subnetwork, dns=dns, mesh=mesh,
        cluster=cluster, services=services, clients=clients, protect=get("protect") is True, adopt=adopt,
        monitoring=monitoring, warnings=tuple(run.warnings), placeholders=tuple(run.placeholders),
    )


_SCALARS = ("network", "subnetwork", "protect", "adopt")


def _scalar(key: str, value: Any) -> Any:
    """The engine hands booleans as the text `true`/`false` (as `pulumi config set` stores them)."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        if schema.config_schema()["properties"].get(f"{NS}:{key}", {}).get("type") == "boolean":
            return value.lower() == "true"
    return value


def _obj(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def _check_region(run: _Run, key: str, value: str) -> None:
    error, warning = regions.check_region(value)
    if error:
        run.fail(key, f"{error}; got {show(value)}")
    if warning:
        run.warnings.append(f"`{key}`: {warning}.")


def _network_project(network: Optional[str], project: Optional[str]) -> Optional[str]:
    """The project that owns the network: from its path, else the stack's project."""
    m = _NETWORK_PATH.fullmatch(network or "")
    return m.group(1) if m else project


def _check_subnet_project(run: _Run, key: str, value: str, network_project: Optional[str]) -> None:
    m = _SUBNET_PATH.fullmatch(value)
    if m and network_project is not None and m.group(1) != network_project:
        run.fail(key, f"is in project {show(m.group(1))} but `{NS}:network` is in project {show(network_project)}: "
                 "a subnetwork belongs to its network's project (the host project of a Shared VPC)")


def _check_subnet_region(run: _Run, key: str, subnetwork: str, region: str, where: str) -> None:
    """A subnetwork path must be in the region it is used in: Direct VPC egress and internal
    addresses take IPs from a subnet of their own region."""
    m = _SUBNET_PATH.fullmatch(subnetwork)
    if m and m.group(2) != region:
        run.fail(key, f"is in region {show(m.group(2))} but is used in {show(region)} ({where}); "
                 "give a subnetwork of that region")


def _dns(run: _Run, d: dict[str, Any], network: str, subnetwork: Optional[str], region: Optional[str],
         adopt: bool) -> DnsConfig:
    key = f"{NS}:dns"
    if not run.ok(key):
        return DnsConfig(zone="", suffix="", address=None, ttl=0)
    suffix = str(d.get("suffix", schema.default(key, "suffix"))).lower().rstrip(".")
    reserve = d.get("address") == RESERVE
    address_name = d.get("addressName") or None
    if address_name is None and adopt and reserve:
        # The guide offers a reserved static internal address as an alternative to a bare IP; an
        # import is by name (projects/<p>/regions/<r>/addresses/<name>), which Pulumi cannot guess.
        run.fail(f"{key}.addressName", f'is required when `{NS}:adopt` is true and `{NS}:dns.address` is "reserve": it '
                 "names the internal address you reserved by hand (`gcloud compute addresses list`), which is imported; "
                 f"or set `{NS}:dns.address` to that address to leave it unmanaged")
    if address_name is not None and not reserve:
        run.fail(f"{key}.addressName", f'names the reserved address, so it needs `{NS}:dns.address` to be "reserve"; '
                 f"got {show(address_name)}")
        address_name = None
    if reserve and subnetwork is None and network != DEFAULT_NETWORK:
        # An internal address without a subnetwork is reserved in the *default* network's subnet.
        run.fail(f"{key}.address", f'"reserve" needs `{NS}:subnetwork` when `{NS}:network` is not "default": '
                 "the address must come from a subnet of the network the zone serves")
    elif reserve and subnetwork is None:
        run.warnings.append(
            f'`{key}.address` is "reserve" without `{NS}:subnetwork`: the internal address is taken from the subnetwork '
            f"named like the network ({network!r}) in `gcp:region`, which only an auto-mode VPC has; on a custom-mode "
            f"VPC set `{NS}:subnetwork` to a subnetwork of that region ({DIRECT_VPC_DOCS}).")
    if reserve and subnetwork is not None and region is not None:
        _check_subnet_region(run, f"{NS}:subnetwork", subnetwork, region,
                             "`gcp:region`, where the wildcard's address is reserved")
    address = None if reserve else str(d.get("address", schema.default(key, "address")))
    return DnsConfig(zone=str(d.get("zone", schema.default(key, "zone"))), suffix=suffix, address=address,
                     ttl=int(d.get("ttl", schema.default(key, "ttl"))), address_name=address_name)


def _mesh(run: _Run, m: dict[str, Any], project: Optional[str]) -> MeshConfig:
    key = f"{NS}:mesh"
    if not run.ok(key):
        return MeshConfig(name=None, project=None, control_plane_revision="")
    mesh_project = m.get("project") or None
    name = None
    if m.get("name"):
        name = expand_mesh_name(str(m["name"]), mesh_project or project)
    if name is not None and mesh_project is not None:
        named = mesh_project_of(name)
        same_kind = all(PROJECT_NUMBER.fullmatch(p) for p in (named, mesh_project)) or all(
            PROJECT_ID.fullmatch(p) for p in (named, mesh_project))
        # An id and a number may name the same project; that cannot be checked offline.
        if same_kind and named != mesh_project:
            run.fail(f"{key}.project", f"is {show(mesh_project)} but `{key}.name` names project {show(named)}: "
                     "the grant would go to a project other than the mesh's; drop one or make them agree")
    if m.get("name"):
        for ignored in ("channel", "controlPlaneRevision"):
            if m.get(ignored) is not None:
                run.fail(f"{key}.{ignored}", f"is ignored when `{key}.name` is set (the revision is read only to "
                         "discover the mesh name); remove one of them")
    channel = m.get("channel")
    revision = m.get("controlPlaneRevision") or CHANNEL_REVISIONS.get(channel or DEFAULT_CHANNEL, "")
    named_revision = m.get("channel") is not None or m.get("controlPlaneRevision") is not None
    return MeshConfig(name=name, project=mesh_project, control_plane_revision=str(revision), revision_named=named_revision)


def _cluster(run: _Run, value: Any, project: Optional[str]) -> Optional[ClusterConfig]:
    if not value or not isinstance(value, Mapping) or not run.ok(f"{NS}:cluster"):
        return None
    return ClusterConfig(name=str(value["name"]), location=str(value["location"]),
                         project=str(value.get("project") or project or ""))


def _services(run: _Run, items: Any, adopt: bool) -> tuple[ServiceConfig, ...]:
    key = f"{NS}:services"
    if not isinstance(items, list) or not run.ok(key):
        return ()
    seen: dict[str, int] = {}
    vs_names: dict[tuple[str, str], str] = {}  # (namespace, VirtualService name) -> key that claimed it
    ownership: dict[str, tuple[int, bool]] = {}  # namespace -> (first service naming it, createNamespace)
    services = []
    for i, s in enumerate(items):
        k = f"{key}[{i}]"
        name, namespace = str(s["name"]), str(s.get("namespace", "default"))
        if name in seen:
            run.fail(f"{k}.name", f"duplicates {key}[{seen[name]}].name {show(name)}: each service gets the host "
                     "`<name>.<suffix>`, so names must be unique across namespaces")
        seen.setdefault(name, i)
        vs_name = str(s.get("virtualServiceName") or f"{name}-external")
        if len(vs_name) > 253:
            run.fail(f"{k}.name", f"makes the VirtualService name {show(vs_name)} longer than 253 characters")
        if (namespace, vs_name) in vs_names:
            run.fail(f"{k}.virtualServiceName", f"is {show(vs_name)} in namespace {show(namespace)}, the VirtualService "
                     f"of {vs_names[namespace, vs_name]} too: each exported service needs its own")
        vs_names.setdefault((namespace, vs_name), f"{k}.virtualServiceName")
        own = s.get("createNamespace", False) is True
        if own and adopt:
            # Adoption imports what the guide made; the guide makes no namespace, and the hand-made
            # objects already live in theirs, so it cannot be created again (AlreadyExists).
            run.fail(f"{k}.createNamespace", f"cannot be true while `{NS}:adopt` is: the namespace of a setup made "
                     "by hand exists already (its objects live in it) and cannot be created; leave it false, and the "
                     "namespace and its injection label stay as you made them")
        _check_namespace_ownership(run, i, namespace, own, ownership)
        services.append(ServiceConfig(
            name=name, namespace=namespace, port=int(s.get("port", schema.default(key, "port"))),
            target_port=int(s.get("targetPort", schema.default(key, "targetPort"))),
            deploy_sample=s.get("deploySample", False) is True, image=str(s.get("image", schema.default(key, "image"))),
            gke_clients=s.get("gkeClients", False) is True, virtual_service_name=vs_name, create_namespace=own))
    return tuple(services)


def _check_namespace_ownership(run: _Run, i: int, namespace: str, own: bool,
                               ownership: dict[str, tuple[int, bool]]) -> None:
    """One answer per namespace: owned by the stack (created, labelled for injection) or not."""
    key = f"{NS}:services[{i}]"
    if own and namespace in SYSTEM_NAMESPACES:
        run.fail(f"{key}.createNamespace", f"cannot be true for namespace {show(namespace)}: it belongs to the "
                 "cluster (Kubernetes refuses to delete it, or deleting it breaks the cluster or the mesh); "
                 "enable sidecar injection on it yourself, or use a namespace of your own")
        return
    if namespace in ownership:
        first, earlier = ownership[namespace]
        if earlier != own:
            run.fail(f"{key}.createNamespace", f"is {str(own).lower()} but `{NS}:services[{first}].createNamespace` is "
                     f"{str(earlier).lower()} for the same namespace {show(namespace)}: the stack either owns a "
                     "namespace or not; set the same value on every service in it")
        return
    ownership[namespace] = (i, own)


def _clients(run: _Run, items: Any, region: Optional[str], subnetwork: Optional[str], network: str,
             network_project: Optional[str]) -> tuple[ClientConfig, ...]:
    key = f"{NS}:clients"
    if not isinstance(items, list) or not run.ok(key):
        return ()
    seen: dict[str, int] = {}
    clients = []
    defaulted: list[str] = []  # clients egressing without a subnetwork
    for i, c in enumerate(items):
        k = f"{key}[{i}]"
        name = str(c["name"])
        if name in seen:
            run.fail(f"{k}.name", f"duplicates {key}[{seen[name]}].name {show(name)}")
        seen.setdefault(name, i)
        cregion = c.get("region") or region or ""
        if c.get("region"):
            _check_region(run, f"{k}.region", str(c["region"]))
        csubnet = subnetwork
        if c.get("subnetwork") is not None:
            csubnet = c["subnetwork"] or None
            if csubnet is not None:
                _check_subnet_project(run, f"{k}.subnetwork", csubnet, network_project)
        if csubnet is not None and cregion:
            origin = "" if c.get("subnetwork") is not None else f" (inherited from `{NS}:subnetwork`)"
            _check_subnet_region(run, f"{k}.subnetwork", csubnet, cregion, f"the region of {k}{origin}")
        if csubnet is None:
            defaulted.append(f"{name} in {cregion}")
        first: dict[str, int] = {}  # member -> index of its first occurrence
        for j, member in enumerate(c.get("invokers", [])):
            mk = f"{k}.invokers[{j}]"
            if member in first:
                run.fail(mk, f"duplicates {k}.invokers[{first[member]}] {show(member)}")
                continue
            first[member] = j
            reason = placeholder_reason(member)
            if reason is not None:
                run.placeholders.append(Placeholder(mk, member, reason))
        clients.append(ClientConfig(name=name, image=str(c.get("image", schema.default(key, "image"))), region=cregion,
                                    invokers=tuple(first), ingress=str(c.get("ingress", "all")), subnetwork=csubnet))
    if defaulted:
        run.warnings.append(
            f"Cloud Run egresses into network {network!r} without a subnetwork ({', '.join(defaulted)}): Cloud Run then "
            f"uses the subnetwork named like the network in each region, which only an auto-mode VPC has; on a "
            f"custom-mode VPC set `{NS}:subnetwork` or `{NS}:clients[i].subnetwork` ({DIRECT_VPC_DOCS}).")
    return tuple(clients)


def _monitoring(run: _Run, m: dict[str, Any], clients: tuple[ClientConfig, ...], services: tuple[Any, ...],
                project: Optional[str]) -> MonitoringConfig:
    key = f"{NS}:monitoring"
    if not run.ok(key):
        return MonitoringConfig()
    enabled = m.get("enabled", False) is True
    channels = tuple(str(c) for c in m.get("notificationChannels", []))
    if enabled and not channels:
        run.fail(f"{key}.notificationChannels", "must name at least one notification channel when monitoring is "
                 "enabled: an alert nobody receives pages no one")
    if enabled:
        for i, c in enumerate(clients):
            if c.ingress != "all":
                # Uptime checkers probe from the internet; a client reachable only from inside the VPC
                # cannot be probed by them.
                run.fail(f"{NS}:clients[{i}].ingress", f"is {show(c.ingress)} while `{key}.enabled` is true: uptime "
                         "checks probe the client's URL from outside the VPC, which needs ingress \"all\"; set it to "
                         "\"all\" or turn monitoring off")
    if enabled and clients and not services:
        run.fail(f"{key}.enabled", f"is true but `{NS}:services` is empty: there is no route to check")
    if enabled and clients and project:
        # The alert filter names every client's host and Cloud Monitoring caps it: refused here, before
        # anything registers, rather than by the component halfway through a deploy.
        from components.uptime_monitoring import FILTER_LIMIT, condition_filter, max_host_length

        bound = len(condition_filter(project, ["x" * max_host_length(c.name, c.region) for c in clients]))
        if bound > FILTER_LIMIT:
            run.fail(f"{key}.enabled", f"is true for {len(clients)} clients, whose alert filter can reach {bound} "
                     f"characters; Cloud Monitoring accepts {FILTER_LIMIT} (AlertPolicy conditionThreshold.filter): "
                     "monitor fewer clients in one stack")
    period = str(m.get("period", schema.default(key, "period")))
    return MonitoringConfig(
        enabled=enabled, period_seconds=int(period.rstrip("s")),
        regions=tuple(str(r) for r in m.get("regions", schema.default(key, "regions"))),
        notification_channels=channels, alert_after=int(m.get("alertAfter", schema.default(key, "alertAfter"))),
        timeout_seconds=int(m.get("timeout", schema.default(key, "timeout"))))

"""The invariants of cloudrun-mesh as Pulumi policies.

Every validation is a plain function ``(args, report_violation)``: ``__main__.py`` only builds the
``PolicyPack`` from ``POLICIES``, so the functions can be called with ``ResourceValidationArgs`` or
``StackValidationArgs`` directly, without the Pulumi CLI.

The pack is self-contained (it runs in its own virtualenv with only ``pulumi`` and
``pulumi-policy``), so the few names it shares with the program are repeated here; the test suite
checks that both sides agree.

Which DNS resources belong to the mesh
    A managed zone or record set is the mesh's when the ``PrivateMeshZone`` component created it
    (its URN's type chain contains ``cloudrun-mesh:index:PrivateMeshZone``), or when its DNS name
    lies under one of the mesh suffixes, by default any name under ``.private.``. The suffixes are
    the policy config ``meshSuffixes`` of each policy that uses them, so a zone created outside the
    component (by hand, or by another stack) is held to the same rules.

Values unknown during a preview
    During ``pulumi preview`` an input computed from another resource (a reserved address, the
    service account of a new client) is not known yet. A check that needs such a value skips it; the
    same policy runs again with the real value during ``pulumi up``, before the resource is created.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

# Names shared with the program (components/ and cloudrun_mesh/config.py).
MESH_ZONE_COMPONENT = "cloudrun-mesh:index:PrivateMeshZone"
EXTERNAL_MESH_GATEWAY = "external-mesh"
MESH_LAUNCH_STAGE = "BETA"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")

CLOUD_RUN_SERVICE = "gcp:cloudrunv2/service:Service"
MANAGED_ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD_SET = "gcp:dns/recordSet:RecordSet"
K8S_SERVICE = "kubernetes:core/v1:Service"
K8S_WORKLOADS = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
)
IAM_MEMBER_TYPES = ("gcp:cloudrunv2/serviceIamMember:ServiceIamMember", "gcp:cloudrun/iamMember:IamMember")
IAM_BINDING_TYPES = ("gcp:cloudrunv2/serviceIamBinding:ServiceIamBinding", "gcp:cloudrun/iamBinding:IamBinding")
IAM_POLICY_TYPES = ("gcp:cloudrunv2/serviceIamPolicy:ServiceIamPolicy", "gcp:cloudrun/iamPolicy:IamPolicy")

DEFAULT_MESH_SUFFIXES = ("private",)
DEFAULT_PROTECTED_STACKS = ("prod",)
DEFAULT_ALLOWED_INGRESS = ("INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER")
DEFAULT_MAX_TTL = 3600

# RFC 1918 only: ipaddress's is_private also accepts 100.64/10, 127/8, 169.254/16 and more.
RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
# Google-managed default identities: a mesh client must never run as one of these.
_DEFAULT_ACCOUNTS = (
    re.compile(r"^[0-9]+-compute@developer\.gserviceaccount\.com$"),
    re.compile(r"^[a-z][a-z0-9-]*@appspot\.gserviceaccount\.com$"),
)


# --------------------------------------------------------------------------------------------
# Reading properties: absent values are None, values a preview cannot know yet are UNKNOWN.
# --------------------------------------------------------------------------------------------


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN: Any = _Unknown()


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def get(value: Any, *path: Any) -> Any:
    """Follow ``path`` (keys and list indices) through resource properties."""
    for key in path:
        if value is None or value is UNKNOWN:
            return value
        try:
            if isinstance(key, int):
                if not _is_list(value) or not -len(value) <= key < len(value):
                    return None
            elif not isinstance(value, Mapping):
                return None
            value = value[key]
        except KeyError:
            return None
        except UnknownValueError:
            return UNKNOWN
    return value


def elements(value: Any) -> list:
    """The items of a list property (UNKNOWN for an item a preview cannot know); [] otherwise."""
    if not _is_list(value):
        return []
    return [get(value, i) for i in range(len(value))]


def _config_list(args: Any, key: str, default: Iterable[str]) -> tuple[str, ...]:
    value = args.get_config().get(key)
    return tuple(str(v) for v in value) if _is_list(value) else tuple(default)


def stack_of(urn: str) -> str:
    """The stack of a URN: ``urn:pulumi:<stack>::<project>::<type chain>::<name>``."""
    head = urn.split("::", 1)[0]
    parts = head.split(":", 2)
    return parts[2] if len(parts) == 3 else ""


def created_by(urn: str, component_type: str) -> bool:
    """Whether a component of ``component_type`` is an ancestor of the resource named by ``urn``."""
    parts = urn.split("::")
    if len(parts) < 4:
        return False
    return component_type in parts[2].split("$")[:-1]


def under_suffix(dns_name: Any, suffixes: Iterable[str]) -> bool:
    if not isinstance(dns_name, str) or not dns_name:
        return False
    name = dns_name.lower().rstrip(".")
    for suffix in suffixes:
        s = suffix.lower().strip(".")
        if s and (name == s or name.endswith("." + s)):
            return True
    return False


def is_rfc1918(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return ip.version == 4 and any(ip in net for net in RFC1918)


def _name(args: Any) -> str:
    props = args.props
    return str(get(props, "name") or get(props, "metadata", "name") or args.name)


# --------------------------------------------------------------------------------------------
# Mandatory: what must never happen.
# --------------------------------------------------------------------------------------------


def _iam_grants(resource_type: str, props: Any) -> Iterator[tuple[Any, Any]]:
    """(role, member) pairs a Cloud Run IAM resource grants."""
    if resource_type in IAM_MEMBER_TYPES:
        yield get(props, "role"), get(props, "member")
    elif resource_type in IAM_BINDING_TYPES:
        for member in elements(get(props, "members")):
            yield get(props, "role"), member
    elif resource_type in IAM_POLICY_TYPES:
        data = get(props, "policyData")
        if not isinstance(data, str):
            return
        try:
            policy = json.loads(data)
        except ValueError:
            return  # the provider rejects it before anything is granted
        for binding in elements(get(policy, "bindings")):
            for member in elements(get(binding, "members")):
                yield get(binding, "role"), member


def _is_public(member: Any) -> bool:
    return isinstance(member, str) and member.strip().casefold() in {m.casefold() for m in PUBLIC_MEMBERS}


def cloud_run_not_public(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    service = get(args.props, "name") or get(args.props, "service") or args.name
    for role, member in _iam_grants(args.resource_type, args.props):
        if _is_public(member):
            report_violation(
                f"{member.strip()} is granted {role if isinstance(role, str) else 'a role'} on Cloud Run "
                f"service {service!r}: mesh clients are never public. Grant roles/run.invoker to the "
                "principals that call the service instead (cloudrun-mesh:clients[].invokers)."
            )


def _mesh_of(props: Any) -> Any:
    """The mesh a Cloud Run v2 service joins: a name, UNKNOWN, or None when it joins none."""
    mesh = get(props, "template", "serviceMesh")
    if mesh is UNKNOWN:
        return UNKNOWN
    name = get(mesh, "mesh")
    return name if name is UNKNOWN or (isinstance(name, str) and name) else None


def mesh_launch_stage(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CLOUD_RUN_SERVICE:
        return
    mesh = _mesh_of(args.props)
    stage = get(args.props, "launchStage")
    if mesh is None or stage is UNKNOWN:
        return
    if stage != MESH_LAUNCH_STAGE:
        shown = repr(stage) if stage else "unset (GA)"
        report_violation(
            f"Cloud Run service {_name(args)!r} joins the mesh but its launchStage is {shown}: service "
            f"mesh on Cloud Run is a preview feature and needs launch_stage={MESH_LAUNCH_STAGE!r}."
        )
    ignored = getattr(getattr(args, "opts", None), "ignore_changes", None) or []
    if not any(p in ("launchStage", "launch_stage") for p in ignored):
        report_violation(
            f"Cloud Run service {_name(args)!r} joins the mesh but does not ignore launchStage on update: "
            "Cloud Run reads back the stage the service uses, which becomes GA when mesh graduates, so every "
            "preview would show a diff. Set it on create only (ignore_changes=[\"launchStage\"])."
        )


def mesh_dedicated_service_account(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CLOUD_RUN_SERVICE or _mesh_of(args.props) is None:
        return
    account = get(args.props, "template", "serviceAccount")
    if account is UNKNOWN:
        return  # computed from another resource (our own account); checked again by `pulumi up`
    email = account.removeprefix("serviceAccount:").strip() if isinstance(account, str) else ""
    why = ""
    if not email:
        why = "has no template.serviceAccount, so it runs as the project's default compute service account"
    elif any(p.match(email) for p in _DEFAULT_ACCOUNTS):
        why = f"runs as the default service account {email}"
    if why:
        report_violation(
            f"Cloud Run service {_name(args)!r} joins the mesh but {why}: give each mesh client a "
            "dedicated service account holding roles/trafficdirector.client, and nothing it does not need."
        )


def _is_mesh_dns(args: ResourceValidationArgs, resource_type: str, name_key: str) -> bool:
    """Whether the resource is a zone or record of the mesh (see the module's docstring)."""
    if args.resource_type != resource_type:
        return False
    suffixes = _config_list(args, "meshSuffixes", DEFAULT_MESH_SUFFIXES)
    return created_by(args.urn, MESH_ZONE_COMPONENT) or under_suffix(get(args.props, name_key), suffixes)


def mesh_zone_private(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not _is_mesh_dns(args, MANAGED_ZONE, "dnsName"):
        return
    dns_name = get(args.props, "dnsName")
    visibility = get(args.props, "visibility")
    if visibility is UNKNOWN:
        return
    shown = visibility if isinstance(visibility, str) and visibility else "public"  # the API's default
    if shown.lower() != "private":
        report_violation(
            f"Cloud DNS zone {_name(args)!r} ({dns_name if isinstance(dns_name, str) else '?'}) serves mesh "
            f"hosts but its visibility is {shown!r}: the mesh zone must be private, visible only to the "
            "VPC that Cloud Run egresses into."
        )


def mesh_record_rfc1918(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not _is_mesh_dns(args, RECORD_SET, "name") or get(args.props, "type") != "A":
        return
    name = get(args.props, "name")
    for rrdata in elements(get(args.props, "rrdatas")):
        if rrdata is UNKNOWN:
            continue  # a reserved internal address, known after it is created
        if not (isinstance(rrdata, str) and is_rfc1918(rrdata)):
            report_violation(
                f"A record {name if isinstance(name, str) else _name(args)!r} points at {rrdata!r}, which is "
                "not an RFC 1918 address (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16): mesh hosts must "
                "resolve to an unused private address that the sidecar intercepts."
            )


# -- VirtualServices on the external-mesh gateway ---------------------------------------------


def is_virtual_service(resource_type: str) -> bool:
    return resource_type.startswith("kubernetes:networking.istio.io/") and resource_type.endswith(":VirtualService")


def destination_hosts(spec: Any) -> list:
    """Every destination host of a VirtualService spec (http, tcp and tls routes, http mirrors)."""
    hosts = []
    for section in ("http", "tcp", "tls"):
        for rule in elements(get(spec, section)):
            for route in elements(get(rule, "route")):
                hosts.append(get(route, "destination", "host"))
            if section == "http":
                hosts.append(get(rule, "mirror", "host"))
                for mirror in elements(get(rule, "mirrors")):
                    hosts.append(get(mirror, "destination", "host"))
    return [h for h in hosts if h is not None]


def service_of_host(host: str, own_namespace: str) -> Optional[tuple[str, str]]:
    """(service, namespace) a destination host names, or None when it is not a Kubernetes Service.

    ``svc`` is short for the VirtualService's own namespace; ``svc.ns``, ``svc.ns.svc`` and
    ``svc.ns.svc.<cluster domain>`` name namespace ``ns``.
    """
    labels = host.lower().rstrip(".").split(".")
    if len(labels) == 1:
        return labels[0], own_namespace
    if len(labels) == 2 or labels[2] == "svc":
        return labels[0], labels[1]
    return None


def _external_mesh_routes(props: Any) -> Iterator[tuple[str, str, str]]:
    """(namespace, host, destination namespace) of each known route of an external-mesh VirtualService."""
    if EXTERNAL_MESH_GATEWAY not in elements(get(props, "spec", "gateways")):
        return
    namespace = get(props, "metadata", "namespace")
    if namespace is UNKNOWN:
        return
    namespace = namespace or "default"
    for host in destination_hosts(get(props, "spec")):
        target = service_of_host(host, namespace) if isinstance(host, str) and host else None
        if target is not None:
            yield namespace, host, target[1]


def external_mesh_same_namespace(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not is_virtual_service(args.resource_type):
        return
    for namespace, host, target in _external_mesh_routes(args.props):
        if target != namespace:
            report_violation(
                f"VirtualService {namespace}/{_name(args)} on the {EXTERNAL_MESH_GATEWAY} gateway routes to "
                f"{host!r} in namespace {target!r}: Cloud Service Mesh applies an {EXTERNAL_MESH_GATEWAY} route "
                f"only in its destination Service's namespace; create the VirtualService in {target!r}."
            )


def external_mesh_service_namespace(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The stack-wide half: a short host resolves in the VirtualService's namespace, so compare it
    with the namespaces of the Services this stack registers under that name."""
    services: dict[str, set[str]] = {}
    for r in args.resources:
        if r.resource_type == K8S_SERVICE:
            name, namespace = get(r.props, "metadata", "name"), get(r.props, "metadata", "namespace")
            if isinstance(name, str) and namespace is not UNKNOWN:
                services.setdefault(name, set()).add(namespace or "default")
    for r in args.resources:
        if not is_virtual_service(r.resource_type):
            continue
        for namespace, host, target in _external_mesh_routes(r.props):
            service = host.lower().split(".", 1)[0]
            found = services.get(service)
            if found and target not in found:
                report_violation(
                    f"VirtualService {namespace}/{get(r.props, 'metadata', 'name') or r.name} on the "
                    f"{EXTERNAL_MESH_GATEWAY} gateway routes to {host!r} (namespace {target!r}), but this stack's "
                    f"Service {service!r} is in namespace {', '.join(sorted(found))}: create the VirtualService "
                    "in the Service's namespace.",
                    r.urn,
                )


def protected_zones(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = args.get_config()
    stacks = _config_list(args, "stacks", DEFAULT_PROTECTED_STACKS)
    everywhere = config.get("allStacks") is True
    for r in args.resources:
        if r.resource_type != MANAGED_ZONE:
            continue
        stack = stack_of(r.urn)
        if (everywhere or stack in stacks) and not r.opts.protect:
            report_violation(
                f"Cloud DNS zone {get(r.props, 'name') or r.name!r} in stack {stack!r} is not protected: "
                "deleting it breaks every mesh client at once. Set `cloudrun-mesh:protect: true` in "
                f"Pulumi.{stack}.yaml (or protect=True on the resource).",
                r.urn,
            )


# --------------------------------------------------------------------------------------------
# Advisory: good defaults a team may decide against.
# --------------------------------------------------------------------------------------------


def cloud_run_deletion_protection(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CLOUD_RUN_SERVICE:
        return
    stack = stack_of(args.urn)
    if stack in _config_list(args, "stacks", DEFAULT_PROTECTED_STACKS) and get(args.props, "deletionProtection") is False:
        report_violation(
            f"Cloud Run service {_name(args)!r} in stack {stack!r} has deletionProtection false: a mistaken "
            "replace or destroy deletes it with its URL."
        )


def cloud_run_ingress(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CLOUD_RUN_SERVICE:
        return
    ingress = get(args.props, "ingress")
    if ingress is UNKNOWN:
        return
    ingress = ingress or "INGRESS_TRAFFIC_ALL"  # the API's default
    allowed = _config_list(args, "allowed", DEFAULT_ALLOWED_INGRESS)
    if ingress not in allowed:
        report_violation(
            f"Cloud Run service {_name(args)!r} accepts {ingress}: its URL is reachable from the internet "
            "(IAM still applies). When every caller is inside the VPC, INGRESS_TRAFFIC_INTERNAL_ONLY is tighter; "
            "add the value to this policy's `allowed` config to accept it."
        )


def mesh_record_ttl(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not _is_mesh_dns(args, RECORD_SET, "name"):
        return
    name = get(args.props, "name")
    ttl = get(args.props, "ttl")
    limit = args.get_config().get("maxTtl", DEFAULT_MAX_TTL)
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl > limit:
        report_violation(
            f"Record {name!r} has a TTL of {int(ttl)} s, over {limit} s: a change of the mesh address "
            "would take that long to reach every client."
        )


def image_pinned(image: str) -> bool:
    """A digest, or a tag other than ``latest`` (a registry port is not a tag)."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def _container_images(resource_type: str, props: Any) -> list:
    if resource_type == CLOUD_RUN_SERVICE:
        containers = elements(get(props, "template", "containers"))
    elif resource_type in K8S_WORKLOADS:
        pod = get(props, "spec", "template", "spec")
        containers = elements(get(pod, "containers")) + elements(get(pod, "initContainers"))
    else:
        return []
    return [get(c, "image") for c in containers]


def container_image_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for image in _container_images(args.resource_type, args.props):
        if isinstance(image, str) and image and not image_pinned(image):
            report_violation(
                f"{_name(args)!r} runs image {image!r} without a tag or digest: every new revision or pod "
                "may pull a different build. Pin a version tag or, better, a digest."
            )


# --------------------------------------------------------------------------------------------


def _strings(description: str, default: Iterable[str]) -> dict:
    return {"type": "array", "items": {"type": "string"}, "default": list(default), "description": description}


_SUFFIXES = PolicyConfigSchema(
    properties={"meshSuffixes": _strings("DNS suffixes whose zones and records belong to the mesh", DEFAULT_MESH_SUFFIXES)}
)
_STACKS = _strings("stacks held to production rules", DEFAULT_PROTECTED_STACKS)

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

POLICIES = [
    ResourceValidationPolicy(
        name="cloud-run-invoker-not-public",
        description="No Cloud Run service is invocable by allUsers or allAuthenticatedUsers.",
        enforcement_level=MANDATORY,
        validate=cloud_run_not_public,
    ),
    ResourceValidationPolicy(
        name="mesh-client-launch-stage-beta",
        description=f"A Cloud Run service that joins the mesh is created with launch stage {MESH_LAUNCH_STAGE} and ignores the stage Cloud Run reads back.",
        enforcement_level=MANDATORY,
        validate=mesh_launch_stage,
    ),
    ResourceValidationPolicy(
        name="mesh-client-dedicated-service-account",
        description="A Cloud Run service that joins the mesh runs as its own service account, never a default one.",
        enforcement_level=MANDATORY,
        validate=mesh_dedicated_service_account,
    ),
    ResourceValidationPolicy(
        name="mesh-dns-zone-private",
        description="The Cloud DNS zone of the mesh suffix is private.",
        enforcement_level=MANDATORY,
        validate=mesh_zone_private,
        config_schema=_SUFFIXES,
    ),
    ResourceValidationPolicy(
        name="mesh-dns-record-rfc1918",
        description="A records of the mesh zone point at RFC 1918 addresses only.",
        enforcement_level=MANDATORY,
        validate=mesh_record_rfc1918,
        config_schema=_SUFFIXES,
    ),
    ResourceValidationPolicy(
        name="external-mesh-route-same-namespace",
        description=f"An {EXTERNAL_MESH_GATEWAY} VirtualService names a destination in its own namespace.",
        enforcement_level=MANDATORY,
        validate=external_mesh_same_namespace,
    ),
    StackValidationPolicy(
        name="external-mesh-route-service-namespace",
        description=f"An {EXTERNAL_MESH_GATEWAY} VirtualService lives in the namespace of the Service it routes to.",
        enforcement_level=MANDATORY,
        validate=external_mesh_service_namespace,
    ),
    StackValidationPolicy(
        name="production-dns-zone-protected",
        description="Every Cloud DNS zone of a production stack is protected from deletion.",
        enforcement_level=MANDATORY,
        validate=protected_zones,
        config_schema=PolicyConfigSchema(
            properties={
                "stacks": _STACKS,
                "allStacks": {"type": "boolean", "default": False, "description": "require protection in every stack"},
            }
        ),
    ),
    ResourceValidationPolicy(
        name="cloud-run-deletion-protection",
        description="Cloud Run services of production stacks keep deletion protection on.",
        enforcement_level=ADVISORY,
        validate=cloud_run_deletion_protection,
        config_schema=PolicyConfigSchema(properties={"stacks": _STACKS}),
    ),
    ResourceValidationPolicy(
        name="cloud-run-ingress-internal",
        description="Cloud Run services accept internal traffic only.",
        enforcement_level=ADVISORY,
        validate=cloud_run_ingress,
        config_schema=PolicyConfigSchema(
            properties={"allowed": _strings("accepted ingress settings", DEFAULT_ALLOWED_INGRESS)}
        ),
    ),
    ResourceValidationPolicy(
        name="mesh-dns-record-ttl",
        description=f"Records of the mesh zone have a TTL of at most {DEFAULT_MAX_TTL} s.",
        enforcement_level=ADVISORY,
        validate=mesh_record_ttl,
        config_schema=PolicyConfigSchema(
            properties={
                "maxTtl": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_TTL, "description": "seconds"},
                **_SUFFIXES.properties,
            }
        ),
    ),
    ResourceValidationPolicy(
        name="container-image-pinned",
        description="Container images carry a version tag or a digest.",
        enforcement_level=ADVISORY,
        validate=container_image_pinned,
    ),
]

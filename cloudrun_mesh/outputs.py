"""Stack outputs derived from several components, and the troubleshooting commands built from them.

Everything here except ``fetch_urls`` is a pure function of plain strings, shared by the program's
outputs and by ``python -m cloudrun_mesh verify``; the Pulumi SDK is imported only where an
``Output`` is combined, so the smoke check does not load it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import pulumi

FETCH_PATH = "/fortio/fetch/"


def fetch_path(host: str) -> str:
    """The path of the guide's check: fortio relays the mesh destination `host`'s answer."""
    return f"{FETCH_PATH}{host}"


def fetch_url(url: str, host: str) -> str:
    """The guide's check: fortio in the Cloud Run client fetches `host` through the mesh."""
    return f"{url.rstrip('/')}{fetch_path(host)}"


def fetch_urls(
    urls: Mapping[str, pulumi.Input[str]], hosts: Mapping[str, pulumi.Input[str]]
) -> pulumi.Output[dict[str, dict[str, str]]] | dict[str, dict[str, pulumi.Output[str]]]:
    """client -> service -> `<url>/fortio/fetch/<host>`.

    In a preview the URL of a new Cloud Run service is unknown, and an unknown Output hides the
    whole map: one Output per pair keeps the client and service keys visible then. A deploy knows
    every URL, so it builds the same map as one Output (10,000 pairs of Outputs would cost seconds).
    """
    import pulumi

    all_hosts = pulumi.Output.all(**hosts) if hosts else pulumi.Output.from_input({})
    if not pulumi.runtime.is_dry_run():
        return pulumi.Output.all(dict(urls), all_hosts).apply(
            lambda a: {client: {svc: fetch_url(url, host) for svc, host in a[1].items()} for client, url in a[0].items()}
        )
    out: dict[str, dict[str, pulumi.Output[str]]] = {}
    for client, url in urls.items():
        pair = pulumi.Output.all(url, all_hosts)  # one per client; one cheap apply per service
        out[client] = {svc: _fetch_url_of(pair, svc) for svc in hosts}
    return out


def _fetch_url_of(pair: pulumi.Output[list[Any]], svc: str) -> pulumi.Output[str]:
    """`<url>/fortio/fetch/<host>` of service `svc`, from one client's ``Output.all(url, hosts)``."""
    return pair.apply(lambda a: fetch_url(a[0], a[1][svc]))


# --------------------------------------------------------------------------------------------
# Troubleshooting: the guide's Cloud Logging and CSDS steps, filled in with a stack's values.
# --------------------------------------------------------------------------------------------

INVOKER_ROLE = "roles/run.invoker"
TRAFFIC_DIRECTOR_CLIENT_ROLE = "roles/trafficdirector.client"
GET_CONFIGS_PERMISSION = "trafficdirector.networks.getConfigs"
CLOUD_RUN_RESOURCE = "cloud_run_revision"
# Cloud Run writes the mesh sidecar's own log as run.googleapis.com%2Fvar%2Flog%2Fenvoy_sidecar_log.
SIDECAR_LOG = "envoy_sidecar_log"
# Placeholders where the stack does not know the value (no `cloudrun-mesh:cluster`).
MEMBERSHIP_PLACEHOLDER = "MEMBERSHIP_NAME"
LOCATION_PLACEHOLDER = "MEMBERSHIP_LOCATION"

_FILTER_LABEL = re.compile(r'resource\.labels\.([a-z_]+)="([^"]*)"')
_ZONE = re.compile(r"^([a-z]+(?:-[a-z]+)+[0-9]+)-[a-z]$")


def logging_filter(service: str, region: str, project: str, text: Optional[str] = None) -> str:
    """A Cloud Logging filter for one Cloud Run service's sidecar and start-up errors.

    Without ``text`` it matches the Envoy sidecar's log, the Traffic Director permission error
    wherever it is written, and anything at WARNING or above; with ``text``, only entries containing
    it. Parentheses are explicit: in the Logging query language OR binds tighter than AND.
    """
    match = f'"{text}"' if text else f'(logName:"{SIDECAR_LOG}" OR "{GET_CONFIGS_PERMISSION}" OR severity>=WARNING)'
    return " AND ".join(
        (
            f'resource.type="{CLOUD_RUN_RESOURCE}"',
            f'resource.labels.project_id="{project}"',
            f'resource.labels.location="{region}"',
            f'resource.labels.service_name="{service}"',
            match,
        )
    )


def logging_filter_labels(filter_: str) -> dict[str, str]:
    """The resource labels a ``logging_filter`` was built with: project_id, location, service_name."""
    return dict(_FILTER_LABEL.findall(filter_))


def logging_read_command(filter_: str, project: str, freshness: str = "1h", limit: int = 50) -> str:
    return f"gcloud logging read {shlex.quote(filter_)} --project={project} --freshness={freshness} --limit={limit}"


def membership_location(cluster_location: str) -> str:
    """A fleet membership lives in the cluster's region: a zonal cluster's zone loses its suffix."""
    m = _ZONE.match(cluster_location)
    return m.group(1) if m else cluster_location


def proxy_status_commands(project: str, cluster: Optional[Any] = None) -> list[str]:
    """How to see whether the mesh's proxies are in sync (CSDS), membership and location filled in.

    ``cluster`` is anything with ``name``, ``location`` and ``project`` (the stack's
    ``cloudrun-mesh:cluster``) or None, which leaves the membership and its location as placeholders.
    The first command lists the fleet's memberships with their locations either way: a cluster
    registered before regional memberships existed is in ``global``.
    """
    fleet_project = (getattr(cluster, "project", None) if cluster is not None else None) or project
    if cluster is not None:
        membership, location = cluster.name, membership_location(cluster.location)
    else:
        membership, location = MEMBERSHIP_PLACEHOLDER, LOCATION_PLACEHOLDER
    return [
        f"gcloud container fleet memberships list --project={fleet_project}",
        "gcloud alpha container fleet mesh debug proxy-status "
        f"--membership={membership} --location={location} --project={fleet_project}",
    ]


def client_service_account(client: str, project: str) -> str:
    """The dedicated identity of a mesh client: its account id is the client's name."""
    return f"{client}@{project}.iam.gserviceaccount.com"


def invoker_binding_command(service: str, region: str, project: str, member: str) -> str:
    return (
        f"gcloud run services add-iam-policy-binding {service} --region={region} --project={project} "
        f"--member={member} --role={INVOKER_ROLE}"
    )


def traffic_director_binding_command(mesh_project: str, service_account: str) -> str:
    return (
        f"gcloud projects add-iam-policy-binding {mesh_project} "
        f"--member=serviceAccount:{service_account} --role={TRAFFIC_DIRECTOR_CLIENT_ROLE}"
    )


# --------------------------------------------------------------------------------------------
# Uptime monitoring (docs/monitoring.md): the guide's curl run by Cloud Monitoring on a schedule.
# --------------------------------------------------------------------------------------------

# What Cloud Run's API returns as a service's `uri`: https and a DNS name, nothing else
# (`https://<service>-<project number>.<region>.run.app` or the older `https://<service>-<hash>-<code>.a.run.app`).
_SERVICE_URI = re.compile(r"https://((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})/?")
# Checker locations per uptime-check region: "The uptime-check region USA includes the USA_OREGON,
# USA_IOWA, and USA_VIRGINIA regions. Each of the USA_* regions has one checker, and USA includes all
# three. The other uptime-check regions, EUROPE, SOUTH_AMERICA, and ASIA_PACIFIC, each have one checker"
# (https://cloud.google.com/monitoring/uptime-checks/introduction). Each location runs every check.
CHECKER_LOCATIONS: dict[str, tuple[str, ...]] = {
    "USA": ("USA_OREGON", "USA_IOWA", "USA_VIRGINIA"),
    "USA_OREGON": ("USA_OREGON",),
    "USA_IOWA": ("USA_IOWA",),
    "USA_VIRGINIA": ("USA_VIRGINIA",),
    "EUROPE": ("EUROPE",),
    "SOUTH_AMERICA": ("SOUTH_AMERICA",),
    "ASIA_PACIFIC": ("ASIA_PACIFIC",),
}
# Cloud Monitoring's pricing examples count a month as 30 days.
SECONDS_PER_MONTH = 30 * 24 * 3600


def url_host(url: str) -> str:
    """The host of a Cloud Run service's `uri`: what an `uptime_url` check's `host` label takes."""
    m = _SERVICE_URI.fullmatch(url) if len(url) <= 300 else None
    if not m:
        raise ValueError(f"not a Cloud Run service URL (https://<host>): {url[:200]!r}")
    return m.group(1)


def checker_locations(regions: Sequence[str]) -> tuple[str, ...]:
    """The distinct checker locations that the selected uptime-check regions run from."""
    out: dict[str, None] = {}
    for region in regions:
        if region not in CHECKER_LOCATIONS:
            raise ValueError(f"unknown uptime-check region {region!r}")
        out.update(dict.fromkeys(CHECKER_LOCATIONS[region]))
    return tuple(out)


def uptime_executions_per_month(pairs: int, regions: Sequence[str], period_seconds: int) -> int:
    """Check executions a 30-day month: every pair's check, from every checker location, every period."""
    if period_seconds <= 0:
        raise ValueError("the period must be positive")
    return pairs * len(checker_locations(regions)) * (SECONDS_PER_MONTH // period_seconds)


def verify_command(stack: str) -> str:
    """The guide's curl for every pair of a deployed stack (`python -m cloudrun_mesh verify`)."""
    return f"make verify STACK={shlex.quote(stack)}"

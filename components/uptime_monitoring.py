"""The guide's curl on a schedule: an uptime check per Cloud Run client x exported service, one alert policy.

Each check asks the client's fortio for `/fortio/fetch/<service>.<suffix>` over https, signed with an
OIDC token of the project's Monitoring service agent, so it passes exactly when the route through the
mesh answers 2xx. The agent gets `roles/run.invoker` on each client (the clients refuse unauthenticated
calls). One alert policy per stack pages the stack's notification channels when a check fails from more
than one checker location for `alert_after` consecutive rounds; its documentation tells the on-call
engineer what to run. docs/monitoring.md has the reasoning and the cost.

Argument names are pulumi-gcp 10.2.0's (pulumi_gcp/monitoring/uptime_check_config.py, alert_policy.py
and _inputs.py); the fields they set are the Cloud Monitoring API's
(https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.uptimeCheckConfigs and
.../projects.alertPolicies): displayName, period, timeout, selectedRegions, monitoredResource,
httpCheck.{path, port, useSsl, validateSsl, serviceAgentAuthentication.type, acceptedResponseStatusCodes}.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_gcp as gcp

from cloudrun_mesh import outputs, text
from components.naming import PROJECT_NUMBER, member_slug

TYPE = "cloudrun-mesh:index:UptimeMonitoring"
INVOKER = outputs.INVOKER_ROLE
# The uptime-check status metric, written per check and checker location after each probe
# ("chart, by location, the number of passed checks": https://cloud.google.com/monitoring/charts/uptime-charts).
CHECK_PASSED = "monitoring.googleapis.com/uptime_check/check_passed"
# `uptime_url` is the monitored resource of a check on a URL, with the labels `host` and `project_id`
# (`gcloud monitoring uptime create NAME --resource-type=uptime-url --resource-labels=host=...,project_id=...`,
# https://cloud.google.com/sdk/gcloud/reference/monitoring/uptime/create; pulumi-gcp's UptimeCheckConfig
# example sets the same two). The probe's URL is https://<host>:<port><path>.
MONITORED_RESOURCE = "uptime_url"
HTTPS_PORT = 443
# UptimeCheckConfigHttpCheckServiceAgentAuthenticationArgs.type: "Possible values are:
# SERVICE_AGENT_AUTHENTICATION_TYPE_UNSPECIFIED, OIDC_TOKEN" (pulumi_gcp/monitoring/_inputs.py); the API:
# "The token will be generated for the Monitoring service agent service account"
# (HttpCheck.ServiceAgentAuthentication, projects.uptimeCheckConfigs reference above).
SERVICE_AGENT_AUTHENTICATION = "OIDC_TOKEN"
STATUS_2XX = "STATUS_CLASS_2XX"
# The identity that signs the probes: the project's Monitoring service agent,
# service-<project number>@gcp-sa-monitoring-notification.iam.gserviceaccount.com; a probe sent with
# service agent authentication carries it as the token's `email` (a published capture:
# https://seankhliao.com/blog/12024-07-20-gcp-uptime-service-agent-auth). Cloud Run admits a caller with
# `run.routes.invoke` on the service, "usually through the Cloud Run Invoker role (roles/run.invoker)"
# (https://cloud.google.com/functions/docs/securing/authenticating, which applies Cloud Run's rule).
SERVICE_AGENT_DOMAIN = "gcp-sa-monitoring-notification.iam.gserviceaccount.com"
# AlertPolicy.conditions[].conditionThreshold.filter "may not exceed 2048 Unicode characters" and
# documentation.content "may not exceed 8,192 Unicode characters and ... 10,240 bytes" (magic-modules
# mmv1/products/monitoring/AlertPolicy.yaml; pulumi_gcp/monitoring/_inputs.py AlertPolicyDocumentationArgs).
FILTER_LIMIT = 2048
CONTENT_CHARS = 8192
CONTENT_BYTES = 10240
# A Cloud Run host is at most this long for a client of a given name and region: Cloud Run gives every
# service a hash-based URL and, when the name is short enough, a deterministic one, which the API returns
# first (https://cloud.google.com/run/docs/triggering/https-request, "Service URL"):
# `<name>-<project number, at most 20 digits>.<region>.run.app`, or `<name>-<hash>-<region code>.a.run.app`.
_HOST_OVERHEAD = 1 + 20 + 1 + len(".run.app")
# Monitoring label values: "Labels and values can contain only lowercase letters, numerals, underscores,
# and dashes", up to 63 characters (UptimeCheckConfigArgs.user_labels).
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
# Monitoring replaces variables, `${...}`, in documentation.content when it notifies
# (https://cloud.google.com/monitoring/alerts/doc-variables): a value of ours must never form one.
_VARIABLE = re.compile(r"\$\{")


@dataclass(frozen=True)
class MonitoredClient:
    """A Cloud Run client of the mesh, as the uptime checks and the invoker grant need it."""

    name: str
    """The Cloud Run service's name (plain: named in titles, labels, resource names and commands)."""
    region: str
    url: pulumi.Input[str]
    """The service's `uri` (an Output of the service): the checks' host is taken from it."""
    service_name: pulumi.Input[str]
    """The service's `name` output, so that the grant waits for the service."""
    location: pulumi.Input[str]
    project: pulumi.Input[str]


@dataclass
class UptimeMonitoringArgs:
    stack: str
    """The stack's name: in every display name, so that dev, staging and prod coexist in one project."""
    project: str
    """The project of the clients, the checks and the alert policy (the stack's project)."""
    clients: Sequence[MonitoredClient]
    services: Mapping[str, pulumi.Input[str]]
    """Exported service -> its mesh host `<service>.<suffix>`, as `fetchUrls` takes it."""
    period_seconds: int
    regions: Sequence[str]
    notification_channels: Sequence[str]
    """Full channel names, `projects/<p>/notificationChannels/<id>`."""
    alert_after: int
    """Consecutive failed rounds before the policy opens an incident."""
    timeout_seconds: int
    cluster: Optional[Any] = None
    """The stack's `cloudrun-mesh:cluster` (name, location, project) for the proxy-status commands."""


def monitoring_service_agent(project_number: str) -> str:
    """The IAM member of the project's Monitoring service agent, from the project number."""
    if not PROJECT_NUMBER.fullmatch(project_number):
        raise ValueError(f"not a project number: {project_number[:40]!r}")
    return f"serviceAccount:service-{project_number}@{SERVICE_AGENT_DOMAIN}"


def check_display_name(stack: str, client: str, service: str) -> str:
    return f"cloudrun-mesh {stack}: {client} -> {service}"


def policy_display_name(stack: str) -> str:
    return f"cloudrun-mesh {stack}: mesh route failing"


def alert_duration_seconds(alert_after: int, period_seconds: int) -> int:
    """How long the failing state must last for `alert_after` consecutive failed rounds.

    The condition aligns each checker location's series on the check period with ALIGN_NEXT_OLDER, so
    each aligned point is that location's latest probe; n consecutive failed rounds are n consecutive
    failing points, which span (n - 1) periods. One failed round alerts at once (a duration of 0s).
    """
    if alert_after < 1:
        raise ValueError("alert_after must be at least 1")
    return (alert_after - 1) * period_seconds


def max_host_length(client: str, region: str) -> int:
    return len(client) + max(_HOST_OVERHEAD + len(region), 1 + 10 + 1 + 4 + len(".a.run.app"))


def condition_filter(project: str, hosts: Sequence[str]) -> str:
    """The stack's checks' results: the check_passed metric of `uptime_url` checks on the clients' hosts.

    Filtered by host rather than by check id: the ids are assigned by Cloud Monitoring, so the length of a
    filter naming them is unknown until the checks exist; a host's is bounded (``max_host_length``).
    """
    quoted = ", ".join(f'"{h}"' for h in hosts)
    return (
        f'metric.type="{CHECK_PASSED}" AND resource.type="{MONITORED_RESOURCE}" '
        f'AND resource.label.project_id="{project}" AND resource.label.host=one_of({quoted})'
    )


def runbook(
    stack: str,
    project: str,
    pairs: Sequence[tuple[str, str]],
    clients: Mapping[str, str],
    cluster: Optional[Any] = None,
) -> str:
    """documentation.content: what the on-call engineer runs, in Markdown, within Cloud Monitoring's limits.

    `pairs` are (client, service); `clients` maps each client to its region. Every value is escaped for
    Markdown (cloudrun_mesh/text.py); commands are code spans. The checks, logging filters and
    proxy-status commands are the same functions' as the stack's outputs (cloudrun_mesh/outputs.py). When
    the list would not fit, the last entries give way to a pointer at the stack outputs that hold them all.
    """
    for part in (stack, project, *clients, *(s for _, s in pairs)):
        if _VARIABLE.search(part):
            raise ValueError(f"{part[:60]!r} would be read as a Cloud Monitoring variable")
    head = [
        f"## {text.markdown(policy_display_name(stack))}",
        "",
        "An uptime check of this stack failed from more than one checker location: the check "
        "`${metric.label.check_id}` on `${resource.label.host}`. The check runs the guide's curl "
        "(fortio's /fortio/fetch/ on the Cloud Run client), so the route from the client through the mesh "
        "to the service is broken.",
        "",
        f"1. Repeat the check for every pair and read its diagnosis: {text.code_span(outputs.verify_command(stack))}",
        "2. Read the failing client's sidecar and start-up errors (below).",
        "3. See whether the mesh's proxies are in sync:",
        *(f"   - {text.code_span(c)}" for c in outputs.proxy_status_commands(project, cluster)),
        "",
        "### Checks (client -> service)",
    ]
    body: list[str] = [
        f"- {text.markdown(check_display_name(stack, client, service))}" for client, service in pairs
    ]
    body += ["", "### Client logs"]
    body += [
        f"- {text.markdown(client)}: "
        f"{text.code_span(outputs.logging_read_command(outputs.logging_filter(client, region, project), project))}"
        for client, region in clients.items()
    ]
    tail_cut = (
        "\n\n(More entries than fit here: `pulumi stack output uptimeChecks` and "
        "`pulumi stack output loggingFilters` list them all.)"
    )
    content = "\n".join([*head, *body])
    while not _fits(content) and body:
        body.pop()
        content = "\n".join([*head, *body]) + tail_cut
    return content


def _fits(content: str) -> bool:
    return len(content) <= CONTENT_CHARS and len(content.encode()) <= CONTENT_BYTES


def _label_value(value: str) -> str:
    return value if _LABEL_VALUE.fullmatch(value) else member_slug(value)[:63]


class UptimeMonitoring(pulumi.ComponentResource):
    uptime_checks: dict[str, dict[str, pulumi.Output[str]]]
    """client -> service -> the check's resource name `projects/<p>/uptimeCheckConfigs/<id>`."""
    alert_policy_name: pulumi.Output[str]

    def __init__(self, name: str, args: UptimeMonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        # Everything that can be refused is refused before anything registers.
        if not args.clients or not args.services:
            raise ValueError("uptime monitoring needs at least one client and one exported service")
        if not args.notification_channels:
            raise ValueError("uptime monitoring needs at least one notification channel")
        duration = alert_duration_seconds(args.alert_after, args.period_seconds)
        bound = len(condition_filter(args.project, ["x" * max_host_length(c.name, c.region) for c in args.clients]))
        if bound > FILTER_LIMIT:
            raise ValueError(
                f"{len(args.clients)} clients make an alert filter of up to {bound} characters; Cloud Monitoring "
                f"accepts {FILTER_LIMIT}: monitor fewer clients in one stack"
            )
        pairs = [(c.name, s) for c in args.clients for s in args.services]
        content = runbook(args.stack, args.project, pairs, {c.name: c.region for c in args.clients}, args.cluster)

        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # The project number, for the service agent's address: from Resource Manager, never typed in.
        number = gcp.organizations.get_project_output(
            project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
        ).number
        agent = number.apply(monitoring_service_agent)

        labels = {"managed-by": "cloudrun-mesh", "stack": _label_value(args.stack)}
        self.invokers: list[gcp.cloudrunv2.ServiceIamMember] = []
        self.checks: list[gcp.monitoring.UptimeCheckConfig] = []
        self.uptime_checks = {}
        hosts: list[pulumi.Output[str]] = []
        for client in args.clients:
            host = pulumi.Output.from_input(client.url).apply(outputs.url_host)
            hosts.append(host)
            grant = gcp.cloudrunv2.ServiceIamMember(
                f"{name}-invoker-{client.name}",
                gcp.cloudrunv2.ServiceIamMemberArgs(
                    name=client.service_name,
                    location=client.location,
                    project=client.project,
                    role=INVOKER,
                    member=agent,
                ),
                opts=child,
            )
            self.invokers.append(grant)
            self.uptime_checks[client.name] = {}
            for service, service_host in args.services.items():
                check = gcp.monitoring.UptimeCheckConfig(
                    # `.` appears in neither a client's nor a service's name: one name per pair.
                    f"{name}-check-{client.name}.{service}",
                    gcp.monitoring.UptimeCheckConfigArgs(
                        display_name=check_display_name(args.stack, client.name, service),
                        project=args.project,
                        period=f"{args.period_seconds}s",
                        timeout=f"{args.timeout_seconds}s",
                        selected_regions=list(args.regions),
                        monitored_resource=gcp.monitoring.UptimeCheckConfigMonitoredResourceArgs(
                            type=MONITORED_RESOURCE,
                            labels={"project_id": args.project, "host": host},
                        ),
                        http_check=gcp.monitoring.UptimeCheckConfigHttpCheckArgs(
                            path=pulumi.Output.from_input(service_host).apply(outputs.fetch_path),
                            port=HTTPS_PORT,
                            use_ssl=True,
                            validate_ssl=True,
                            request_method="GET",
                            service_agent_authentication=gcp.monitoring.UptimeCheckConfigHttpCheckServiceAgentAuthenticationArgs(
                                type=SERVICE_AGENT_AUTHENTICATION
                            ),
                            accepted_response_status_codes=[
                                gcp.monitoring.UptimeCheckConfigHttpCheckAcceptedResponseStatusCodeArgs(
                                    status_class=STATUS_2XX
                                )
                            ],
                        ),
                        user_labels={
                            **labels,
                            "client": _label_value(client.name),
                            "service": _label_value(service),
                        },
                    ),
                    # A probe before the grant is written would fail with 403 and count as a failure.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[grant]),
                )
                self.checks.append(check)
                self.uptime_checks[client.name][service] = check.name

        self.policy = gcp.monitoring.AlertPolicy(
            f"{name}-alert",
            gcp.monitoring.AlertPolicyArgs(
                display_name=policy_display_name(args.stack),
                project=args.project,
                combiner="OR",
                conditions=[
                    gcp.monitoring.AlertPolicyConditionArgs(
                        display_name=f"cloudrun-mesh {args.stack}: uptime check failing",
                        condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                            filter=pulumi.Output.all(*hosts).apply(
                                lambda hs: condition_filter(args.project, sorted(set(hs)))
                            ),
                            # Per check: how many checker locations' latest probe failed. More than one
                            # for `duration` is a broken route, not one location's network trouble.
                            aggregations=[
                                gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                                    alignment_period=f"{args.period_seconds}s",
                                    per_series_aligner="ALIGN_NEXT_OLDER",
                                    cross_series_reducer="REDUCE_COUNT_FALSE",
                                    group_by_fields=["metric.label.check_id", "resource.label.host"],
                                )
                            ],
                            comparison="COMPARISON_GT",
                            threshold_value=1,
                            duration=f"{duration}s",
                            trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1),
                        ),
                    )
                ],
                notification_channels=list(args.notification_channels),
                documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                    content=content,
                    mime_type="text/markdown",
                    subject=policy_display_name(args.stack),
                ),
                user_labels=labels,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.checks),
        )
        self.alert_policy_name = self.policy.name
        self.register_outputs({"uptime_checks": self.uptime_checks, "alert_policy_name": self.alert_policy_name})

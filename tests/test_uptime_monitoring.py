"""UptimeMonitoring: an uptime check per client x service, the service agent's invoker grant, one alert policy.

Inputs are checked against pulumi-gcp 10.2.0's typed Args classes (every wire name an input of the SDK
type, nested types followed) and against the Cloud Monitoring API's field names
(https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.uptimeCheckConfigs and
.../projects.alertPolicies).
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Optional

import pulumi_gcp as gcp
import pytest
from testkit import component_program, evaluate, shared_evaluation

from cloudrun_mesh import outputs, text
from cloudrun_mesh.offline import fakes, harness
from components import (
    MeshCloudRunService,
    MeshCloudRunServiceArgs,
    MonitoredClient,
    UptimeMonitoring,
    UptimeMonitoringArgs,
)
from components import uptime_monitoring as um

CHECK = "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
RUN = "gcp:cloudrunv2/service:Service"
MESH = "projects/123456789012/locations/global/meshes/m1"
CHANNEL = "projects/my-project/notificationChannels/1234"
CLIENTS = (("mesh-svc", "us-central1"), ("checkout-web", "europe-west1"))
SERVICES = ("ads", "payments")
SUFFIX = "mesh.private"

# The Cloud Monitoring API's UptimeCheckConfig and AlertPolicy fields (REST reference above), as the
# program may set them; `project` is the request's parent, not a body field.
API_FIELDS = {
    CHECK: {
        "displayName", "period", "timeout", "selectedRegions", "userLabels", "monitoredResource",
        "monitoredResource.type", "monitoredResource.labels", "httpCheck", "httpCheck.path", "httpCheck.port",
        "httpCheck.useSsl", "httpCheck.validateSsl", "httpCheck.requestMethod",
        "httpCheck.serviceAgentAuthentication", "httpCheck.serviceAgentAuthentication.type",
        "httpCheck.acceptedResponseStatusCodes", "httpCheck.acceptedResponseStatusCodes.statusClass",
    },
    POLICY: {
        "displayName", "combiner", "conditions", "conditions.displayName", "conditions.conditionThreshold",
        "conditions.conditionThreshold.filter", "conditions.conditionThreshold.aggregations",
        "conditions.conditionThreshold.aggregations.alignmentPeriod",
        "conditions.conditionThreshold.aggregations.perSeriesAligner",
        "conditions.conditionThreshold.aggregations.crossSeriesReducer",
        "conditions.conditionThreshold.aggregations.groupByFields", "conditions.conditionThreshold.comparison",
        "conditions.conditionThreshold.thresholdValue", "conditions.conditionThreshold.duration",
        "conditions.conditionThreshold.trigger", "conditions.conditionThreshold.trigger.count",
        "notificationChannels", "documentation", "documentation.content", "documentation.mimeType",
        "documentation.subject", "userLabels",
    },
}


def monitoring_program(
    stack: str = "dev",
    clients: tuple[tuple[str, str], ...] = CLIENTS,
    services: tuple[str, ...] = SERVICES,
    protect: bool = False,
    **overrides: Any,
):
    """Cloud Run clients (so that each URL is a real Output of a service) and the monitoring over them."""

    def build():
        import pulumi

        opts = pulumi.ResourceOptions(protect=protect)
        runs = {
            name: MeshCloudRunService(
                f"run-{name}",
                MeshCloudRunServiceArgs(
                    service_name=name, image="fortio/fortio", region=region, project="my-project",
                    network="default", mesh=MESH, mesh_project="123456789012",
                ),
            )
            for name, region in clients
        }
        args = dict(
            stack=stack,
            project="my-project",
            clients=[
                MonitoredClient(name, region, runs[name].url, runs[name].service_name, runs[name].service.location,
                                runs[name].service.project)
                for name, region in clients
            ],
            services={s: pulumi.Output.from_input(f"{s}.{SUFFIX}") for s in services},
            period_seconds=300,
            regions=("USA", "EUROPE", "ASIA_PACIFIC"),
            notification_channels=(CHANNEL,),
            alert_after=2,
            timeout_seconds=10,
        )
        args.update(overrides)
        return UptimeMonitoring("monitoring", UptimeMonitoringArgs(**args), opts=opts)

    return component_program(build, uptimeChecks="uptime_checks", alertPolicy="alert_policy_name")


@pytest.fixture(scope="module")
def run() -> harness.ProgramRun:
    return evaluate(program=monitoring_program())


# -- inputs against the SDK's argument types and the API's field names ---------------------------------


def _fields(cls: type) -> dict[str, Optional[type]]:
    """Wire name -> the nested input type (or None) of each input of a pulumi-gcp Args class."""
    out: dict[str, Optional[type]] = {}
    for attr in vars(cls).values():
        getter = getattr(attr, "fget", None)
        if getter is None:
            continue
        wire = getattr(getter, "_pulumi_name", None) or getter.__name__
        hint = str(getter.__annotations__.get("return", ""))
        nested = re.search(r"'(\w+Args)'", hint)
        module = importlib.import_module(cls.__module__)
        out[wire] = getattr(module, nested.group(1)) if nested else None
    return out


def _paths(value: Any, cls: Optional[type], prefix: str = "") -> list[str]:
    """Every input path of `value`, each checked to be an input of `cls` (followed into nested types)."""
    if cls is None or not isinstance(value, (dict, list)):
        return []
    if isinstance(value, list):
        return [p for item in value for p in _paths(item, cls, prefix)]
    fields = _fields(cls)
    paths = []
    for key, item in value.items():
        assert key in fields, f"{cls.__name__} has no input {key!r} ({sorted(fields)})"
        path = f"{prefix}{key}"
        paths.append(path)
        paths += _paths(item, fields[key], f"{path}.")
    return paths


@pytest.mark.parametrize(
    "type_, args_class",
    [(CHECK, gcp.monitoring.UptimeCheckConfigArgs), (POLICY, gcp.monitoring.AlertPolicyArgs)],
)
def test_inputs_are_the_sdk_arguments_and_the_api_fields(run, type_, args_class):
    regs = run.resources(type_)
    assert regs
    for reg in regs:
        paths = set(_paths(reg.inputs, args_class)) - {"project"}
        assert paths <= API_FIELDS[type_], sorted(paths - API_FIELDS[type_])
        required = {"displayName", "timeout"} if type_ == CHECK else {"displayName", "combiner", "conditions"}
        assert required <= paths


def test_the_sdk_accepts_the_inputs_as_typed_arguments(run):
    # Constructing the SDK's own Args classes from the registered values: a wrong name or a missing
    # required argument is a TypeError here, as it would be in a program.
    check = run.resources(CHECK)[0].inputs
    http = check["httpCheck"]
    gcp.monitoring.UptimeCheckConfigArgs(
        display_name=check["displayName"], timeout=check["timeout"], period=check["period"],
        selected_regions=check["selectedRegions"],
        monitored_resource=gcp.monitoring.UptimeCheckConfigMonitoredResourceArgs(**check["monitoredResource"]),
        http_check=gcp.monitoring.UptimeCheckConfigHttpCheckArgs(
            path=http["path"], port=http["port"], use_ssl=http["useSsl"], validate_ssl=http["validateSsl"],
            service_agent_authentication=gcp.monitoring.UptimeCheckConfigHttpCheckServiceAgentAuthenticationArgs(
                **http["serviceAgentAuthentication"]),
            accepted_response_status_codes=[
                gcp.monitoring.UptimeCheckConfigHttpCheckAcceptedResponseStatusCodeArgs(status_class=c["statusClass"])
                for c in http["acceptedResponseStatusCodes"]
            ],
        ),
    )


# -- the checks ---------------------------------------------------------------------------------------


def test_one_check_per_client_and_service_on_the_guide_path(run):
    checks = {r.name: r for r in run.resources(CHECK)}
    assert set(checks) == {f"monitoring-check-{c}.{s}" for c, _ in CLIENTS for s in SERVICES}
    urls = {r.inputs["name"]: r.state["uri"] for r in run.resources(RUN)}
    for client, _ in CLIENTS:
        for service in SERVICES:
            i = checks[f"monitoring-check-{client}.{service}"].inputs
            assert i["httpCheck"]["path"] == f"/fortio/fetch/{service}.{SUFFIX}"
            # The host is the client's URL without its scheme, as Cloud Run answered it.
            assert i["monitoredResource"] == {
                "type": "uptime_url", "labels": {"project_id": "my-project", "host": outputs.url_host(urls[client])}
            }
            assert i["displayName"] == f"cloudrun-mesh dev: {client} -> {service}"


def test_https_oidc_signed_2xx_with_the_configured_schedule(run):
    for reg in run.resources(CHECK):
        i = reg.inputs
        assert (i["httpCheck"]["useSsl"], i["httpCheck"]["port"], i["httpCheck"]["validateSsl"]) == (True, 443, True)
        assert i["httpCheck"]["serviceAgentAuthentication"] == {"type": "OIDC_TOKEN"}
        assert i["httpCheck"]["acceptedResponseStatusCodes"] == [{"statusClass": "STATUS_CLASS_2XX"}]
        assert (i["period"], i["timeout"]) == ("300s", "10s")
        assert i["selectedRegions"] == ["USA", "EUROPE", "ASIA_PACIFIC"]
        assert i["userLabels"]["stack"] == "dev"


def test_the_host_is_wired_from_the_client_url_output(run):
    runs = {r.inputs["name"]: r.urn for r in run.resources(RUN)}
    for reg in run.resources(CHECK):
        client = reg.name.removeprefix("monitoring-check-").split(".")[0]
        assert runs[client] in reg.property_dependencies["monitoredResource"]


def test_a_preview_shows_the_unknown_host_as_unknown():
    preview = evaluate(program=monitoring_program(), preview=True)
    for reg in preview.resources(CHECK):
        assert reg.inputs["monitoredResource"]["labels"]["host"] == harness.UNKNOWN


def test_stacks_in_one_project_have_distinct_display_names():
    names = {
        stack: {r.inputs["displayName"] for r in evaluate(program=monitoring_program(stack)).resources()
                if r.type in (CHECK, POLICY)}
        for stack in ("dev", "prod")
    }
    assert names["dev"] and not names["dev"] & names["prod"]


# -- the identity that signs the probes -----------------------------------------------------------------


def test_the_monitoring_service_agent_may_invoke_each_client(run):
    grants = {r.name: r for r in run.resources(INVOKER) if r.name.startswith("monitoring-")}
    runs = {r.inputs["name"]: r.urn for r in run.resources(RUN)}
    assert set(grants) == {f"monitoring-invoker-{c}" for c, _ in CLIENTS}
    for client, region in CLIENTS:
        g = grants[f"monitoring-invoker-{client}"]
        assert g.inputs["role"] == "roles/run.invoker"
        assert (g.inputs["name"], g.inputs["location"], g.inputs["project"]) == (client, region, "my-project")
        assert g.property_dependencies["name"] == [runs[client]]
        assert g.inputs["member"] == (
            f"serviceAccount:service-{fakes.FAKE_STACK_PROJECT_NUMBER}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
        )
    for check in run.resources(CHECK):
        assert any(g.urn in check.dependencies for g in grants.values())


def test_the_project_number_comes_from_resource_manager_not_from_the_program(monkeypatch):
    # Answer getProject with another number: the member follows. A number typed into the program would not.
    real = fakes.invoke

    def other_number(token, args, config):
        answer = real(token, args, config)
        if token == "gcp:organizations/getProject:getProject":
            assert args["projectId"] == "my-project"
            answer = {**answer, "number": "555000111222"}
        return answer

    monkeypatch.setattr(fakes, "invoke", other_number)
    members = {r.inputs["member"] for r in evaluate(program=monitoring_program()).resources(INVOKER)
               if r.name.startswith("monitoring-")}
    assert members == {"serviceAccount:service-555000111222@gcp-sa-monitoring-notification.iam.gserviceaccount.com"}


def test_the_offline_plan_shows_the_project_number_as_a_marker():
    preview = evaluate(program=monitoring_program(), preview=True)
    members = {r.inputs["member"] for r in preview.resources(INVOKER) if r.name.startswith("monitoring-")}
    assert members == {f"serviceAccount:service-{fakes.READ_FROM_RESOURCE_MANAGER}@{um.SERVICE_AGENT_DOMAIN}"}


@pytest.mark.parametrize("number", ["", "12a", "1" * 21, "123\n", "-1"])
def test_a_project_number_that_is_not_one_is_refused(number):
    with pytest.raises(ValueError):
        um.monitoring_service_agent(number)


# -- the alert policy ---------------------------------------------------------------------------------


def test_one_policy_on_the_stacks_checks_grouped_by_check(run):
    policy = run.one(POLICY)
    assert policy.name == "monitoring-alert"
    i = policy.inputs
    assert i["displayName"] == "cloudrun-mesh dev: mesh route failing"
    assert i["notificationChannels"] == [CHANNEL]
    (condition,) = i["conditions"]
    t = condition["conditionThreshold"]
    hosts = sorted({c.inputs["monitoredResource"]["labels"]["host"] for c in run.resources(CHECK)})
    assert t["filter"] == (
        'metric.type="monitoring.googleapis.com/uptime_check/check_passed" AND resource.type="uptime_url" '
        'AND resource.label.project_id="my-project" AND resource.label.host=one_of('
        + ", ".join(f'"{h}"' for h in hosts) + ")"
    )
    assert t["aggregations"] == [{
        "alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_NEXT_OLDER", "crossSeriesReducer": "REDUCE_COUNT_FALSE",
        "groupByFields": ["metric.label.check_id", "resource.label.host"],
    }]
    assert (t["comparison"], t["thresholdValue"], t["duration"], t["trigger"]) == ("COMPARISON_GT", 1, "300s", {"count": 1})


@pytest.mark.parametrize("alert_after, duration", [(1, "0s"), (2, "300s"), (4, "900s")])
def test_alert_after_n_failed_rounds(alert_after, duration):
    policy = evaluate(program=monitoring_program(alert_after=alert_after)).one(POLICY)
    assert policy.inputs["conditions"][0]["conditionThreshold"]["duration"] == duration


def test_the_documentation_says_what_to_run(run):
    doc = run.one(POLICY).inputs["documentation"]
    assert doc["mimeType"] == "text/markdown"
    content = doc["content"]
    assert "`make verify STACK=dev`" in content
    for client, region in CLIENTS:
        command = outputs.logging_read_command(outputs.logging_filter(client, region, "my-project"), "my-project")
        assert f"`{command}`" in content
        for service in SERVICES:
            assert text.markdown(um.check_display_name("dev", client, service)) in content
    for command in outputs.proxy_status_commands("my-project"):
        assert f"`{command}`" in content


def test_the_documentation_escapes_what_it_quotes():
    content = um.runbook("st*ck_<b>", "my-project", [("a", "b")], {"a": "us-central1"})
    assert "st\\*ck\\_&lt;b&gt;" in content
    # Outside code spans (where CommonMark shows text verbatim, never as HTML) nothing is raw.
    assert "<" not in re.sub(r"`[^`]*`", "", content)
    assert "`make verify STACK='st*ck_<b>'`" in content


def test_the_documentation_stays_within_cloud_monitorings_limit():
    clients = {f"client-{i:03d}": "northamerica-northeast1" for i in range(60)}
    pairs = [(c, f"service-{j:02d}") for c in clients for j in range(20)]
    content = um.runbook("prod", "my-project", pairs, clients)
    assert len(content) <= um.CONTENT_CHARS and len(content.encode()) <= um.CONTENT_BYTES
    assert content.endswith("list them all.)")
    assert "`make verify STACK=prod`" in content


def test_a_monitoring_variable_in_a_name_is_refused():
    with pytest.raises(ValueError, match="variable"):
        um.runbook("${project}", "my-project", [("a", "b")], {"a": "us-central1"})


# -- refusals, protection and the stacks without monitoring --------------------------------------------


def test_no_channel_is_refused_before_anything_registers():
    failed = evaluate(program=monitoring_program(notification_channels=()), expect_error=True)
    assert "notification channel" in str(failed.error)
    assert not [r for r in failed.resources() if r.type in (CHECK, POLICY) or r.name.startswith("monitoring")]


def test_a_filter_over_cloud_monitorings_limit_is_refused_before_anything_registers():
    many = tuple((f"client-with-a-long-name-{i:03d}", "northamerica-northeast1") for i in range(40))
    failed = evaluate(program=monitoring_program(clients=many), expect_error=True)
    assert "2048" in str(failed.error)
    assert not [r for r in failed.resources() if r.name.startswith("monitoring")]


def test_the_largest_accepted_filter_fits():
    clients = [("c" * 49, "northamerica-northeast1")] * 12
    hosts = ["x" * um.max_host_length(c, r) for c, r in clients]
    assert len(um.condition_filter("a" * 30, hosts)) <= um.FILTER_LIMIT


def test_protected_like_the_rest_when_the_caller_protects():
    protected = evaluate(program=monitoring_program(protect=True))
    mine = [r for r in protected.resources() if r.name.startswith("monitoring")]
    assert {r.type for r in mine} == {CHECK, POLICY, INVOKER, um.TYPE}
    assert all(r.protect for r in mine)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stacks_without_monitoring_register_none_of_it(stack):
    deployed = shared_evaluation(stack)
    assert not [r for r in deployed.resources() if r.type in (CHECK, POLICY, um.TYPE)]
    assert "uptimeChecks" not in deployed.outputs and "uptimeCheckExecutionsPerMonth" not in deployed.outputs


def test_the_component_exports_each_check_name_keyed_like_fetch_urls(run):
    checks = run.outputs["uptimeChecks"]
    assert set(checks) == {c for c, _ in CLIENTS}
    for client in checks:
        assert set(checks[client]) == set(SERVICES)
        assert set(checks[client].values()) == {f"projects/my-project/uptimeCheckConfigs/{fakes.ASSIGNED_BY_MONITORING}"}


# -- cost and hosts (cloudrun_mesh/outputs.py) ---------------------------------------------------------


@pytest.mark.parametrize(
    "pairs, regions, period, expected",
    [
        (1, ("USA", "EUROPE", "ASIA_PACIFIC"), 300, 5 * 8_640),  # USA is three checker locations
        (4, ("USA", "USA_IOWA", "EUROPE"), 60, 4 * 4 * 43_200),  # USA_IOWA is already in USA
        (2, ("EUROPE", "SOUTH_AMERICA", "ASIA_PACIFIC"), 900, 2 * 3 * 2_880),
    ],
)
def test_executions_per_month(pairs, regions, period, expected):
    assert outputs.uptime_executions_per_month(pairs, regions, period) == expected


@pytest.mark.parametrize(
    "url",
    ["http://a.run.app", "https://a.run.app/x", "https://A.run.app", "https://a.run.app\n", "https://a..run.app",
     "https://" + "a" * 400 + ".run.app", "ftp://a.run.app", " https://a.run.app"],
)
def test_a_url_that_is_not_a_cloud_run_url_is_refused(url):
    with pytest.raises(ValueError):
        outputs.url_host(url)


# -- the program: monitoring wired into a shipped stack -------------------------------------------------


MONITORING = "cloudrun-mesh:monitoring"
MONITORING_ON = {
    "enabled": True, "period": "60s", "regions": ["USA", "EUROPE", "SOUTH_AMERICA"],
    "notificationChannels": ["projects/my-project/notificationChannels/42"], "alertAfter": 3, "timeout": 10,
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_stack_with_monitoring_keeps_every_urn_and_adds_the_checks(stack):
    off = {r.urn for r in shared_evaluation(stack).resources()}
    on_run = evaluate(stack, {MONITORING: MONITORING_ON})
    on = {r.urn: r for r in on_run.resources()}
    assert off <= set(on), sorted(off - set(on))
    added = [on[u] for u in set(on) - off]
    assert added and all(r.type in (CHECK, POLICY, INVOKER, um.TYPE) for r in added)
    assert all("UptimeMonitoring" in r.urn for r in added)
    assert {k: set(v) for k, v in on_run.outputs["uptimeChecks"].items()} == {
        k: set(v) for k, v in on_run.outputs["fetchUrls"].items()
    }
    pairs = sum(len(v) for v in on_run.outputs["fetchUrls"].values())
    assert on_run.outputs["uptimeCheckExecutionsPerMonth"] == pairs * 5 * 43_200  # USA is three locations
    assert len(on_run.resources(CHECK)) == pairs
    # prod protects its resources: the monitoring's too.
    assert all(r.protect == (stack == "prod") for r in added)


# -- what the offline plan says of them ------------------------------------------------------------------


def test_every_type_the_monitoring_registers_has_a_replacement_rule(run):
    from cloudrun_mesh.offline import replacements

    types = {r.type for r in run.resources() if r.custom}
    assert {CHECK, POLICY, INVOKER} <= types
    assert not [t for t in types if replacements.rule_for(t) is None]


def test_a_new_period_or_client_url_replaces_the_check_and_the_rest_updates_in_place():
    from cloudrun_mesh.offline import replacements

    check = replacements.rule_for(CHECK)
    assert check is not None
    assert check.forcing(["period", "monitoredResource.labels.host", "timeout", "httpCheck.path", "displayName",
                          "selectedRegions[0]"]) == ["period", "monitoredResource.labels.host"]
    policy = replacements.rule_for(POLICY)
    assert policy is not None
    assert policy.forcing(["conditions[0].conditionThreshold.filter", "documentation.content", "displayName"]) == []


def test_the_policy_pack_finds_nothing_new_in_a_production_stack_with_monitoring():
    from cloudrun_mesh.offline import policy

    policies = policy._pack()
    path = policy.default_config("prod")
    settings = policy.read_config(path, policies) if path else {}

    def found(run: harness.ProgramRun) -> set[tuple[str, str]]:
        results = policy.results(policy.analyze(run.registrations, policy.analyzer(policies, settings)))
        return {(r.policy, r.level) for r in results if r.level != "skipped"}

    off = found(shared_evaluation("prod", preview=True))
    on_run = evaluate("prod", {MONITORING: MONITORING_ON}, preview=True)
    assert on_run.resources(CHECK)
    assert found(on_run) <= off


@pytest.mark.parametrize(
    "change, key",
    [
        ({"period": "120s"}, "monitoring.period"),
        ({"regions": ["USA", "EUROPE", "MARS"]}, "monitoring.regions"),
        ({"notificationChannels": ["oncall@example.com"]}, "monitoring.notificationChannels"),
        ({"notificationChannels": []}, "monitoring.notificationChannels"),
        ({"timeout": 2}, "monitoring.timeout"),
    ],
)
def test_bad_monitoring_settings_are_refused_before_anything_registers(change, key):
    failed = evaluate("dev", {MONITORING: {**MONITORING_ON, **change}}, expect_error=True)
    assert key in str(failed.error)
    assert not failed.resources()


def test_monitoring_a_client_without_all_ingress_is_refused_before_anything_registers():
    clients = [{"name": "mesh-svc-dev", "ingress": "internal",
                "invokers": ["serviceAccount:verify-dev@example-ci.iam.gserviceaccount.com"]}]
    failed = evaluate("dev", {MONITORING: MONITORING_ON, "cloudrun-mesh:clients": clients}, expect_error=True)
    assert "clients[0].ingress" in str(failed.error)
    assert not failed.resources()
    evaluate("dev", {"cloudrun-mesh:clients": clients})  # the same client without monitoring is fine

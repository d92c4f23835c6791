"""``config.load`` under the mock engine: keys as the engine hands them, problems located in the stack
file, example principals (warned in a preview, refused by `up`), regions, subnetworks and monitoring."""

from __future__ import annotations

import shutil

import pytest
from stackkit import examples_project
from testkit import ROOT

from cloudrun_mesh.config import ConfigError, engine, parse
from cloudrun_mesh.offline import harness

BASE = {"gcp:project": "my-project"}


def run(stack="dev", config=None, *, preview=True, project_dir=None):
    # The example stacks the tests write (tests/stackkit.py), not the shipped ones, which are the
    # users' to edit: the counts below are those of the examples.
    project_dir = examples_project() if project_dir is None else project_dir
    return harness.run_program(stack, config={**BASE, **(config or {})}, preview=preview, project_dir=project_dir)


def problems_of(result) -> list[str]:
    assert isinstance(result.error, ConfigError), result.error
    assert result.resources() == [] or all(r.type == "pulumi:pulumi:Stack" for r in result.resources())
    return result.error.problems


def problems(raw, project="my-project", region="us-central1") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(raw, project, region)
    return info.value.problems


# --- namespaces (pulumi/pulumi sdk/go/common/resource/config/key.go) --------------------------


@pytest.mark.parametrize("namespace", ["cloudrun_mesh", "cloudrunmesh", "cloud-run-mesh", "Cloudrun-Mesh"])
def test_a_near_miss_of_our_namespace_is_an_error_naming_the_key_meant(namespace):
    [problem] = problems_of(run(config={f"{namespace}:dns": {"zone": "mesh-x"}}))
    assert problem.startswith(f"`{namespace}:dns` has the namespace `{namespace}`")
    assert "did you mean `cloudrun-mesh:dns`?" in problem


def test_near_misses_of_the_other_known_namespaces_and_gcp_keys():
    found = problems_of(run(config={"gpc:region": "us-central1", "kuberentes:context": "x", "gcp:regoin": "x"}))
    assert any("`gpc:region`" in p and "did you mean `gcp:region`?" in p for p in found)
    assert any("`kuberentes:context`" in p and "did you mean `kubernetes:context`?" in p for p in found)
    assert any(p.startswith("`gcp:regoin` is not one of the Google Cloud provider's settings") and "did you mean `gcp:region`?" in p
               for p in found)


def test_a_bare_key_names_the_namespace_to_write():
    [problem] = problems_of(run(config={"dns": {"zone": "x"}}))
    assert problem.startswith("`dns` has no namespace: write `cloudrun-mesh:dns`")


def test_other_namespaces_and_real_gcp_settings_are_left_alone():
    assert run(config={"aws:region": "eu-west-1", "team:launch-date": "2025-01-01", "gcp:zone": "us-central1-a",
                       "gcp:userProjectOverride": "true", "kubernetes:context": "c"}).error is None


def test_the_old_config_spelling_of_a_key_is_read_as_the_cli_reads_it():
    result = run(config={"cloudrun-mesh:config:protect": "true"})
    assert result.error is None


# --- file, line and column -------------------------------------------------------------------


def _project(tmp_path, text: str):
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "Pulumi.qa.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_each_problem_names_file_line_and_column_one_per_line(tmp_path):
    project = _project(tmp_path, "config:\n  gcp:region: us-centrl1\n  cloudrun-mesh:dns:\n    zone: Prod\n"
                                 "  cloudrun-mesh:services:\n    - name: ads\n      port: 0\n")
    result = run("qa", project_dir=project)
    assert isinstance(result.error, ConfigError)
    head, *lines = str(result.error).split("\n")
    assert head.startswith("Invalid stack configuration (3 problems")
    assert [line.strip().split(" ", 1)[0] for line in lines] == [
        "Pulumi.qa.yaml:2:3:", "Pulumi.qa.yaml:4:5:", "Pulumi.qa.yaml:7:7:"]
    assert "did you mean 'us-central1'?" in lines[0] and "`cloudrun-mesh:dns.zone`" in lines[1]


def test_a_missing_key_points_at_the_object_that_lacks_it(tmp_path):
    project = _project(tmp_path, "config:\n  gcp:region: us-central1\n  cloudrun-mesh:services:\n    - port: 80\n")
    result = run("qa", project_dir=project)
    [line] = str(result.error).split("\n")[1:]
    assert line.strip().startswith("Pulumi.qa.yaml:4:7: `cloudrun-mesh:services[0].name` is required")


# --- example principals ------------------------------------------------------------------------


def test_a_preview_warns_about_each_example_principal_and_goes_on():
    result = run("prod")
    assert result.error is None
    warned = [m for level, m in result.logs if level == "WARNING" and "example principal" in m]
    assert len(warned) == 5
    assert any(m.startswith("Pulumi.prod.yaml:") and "`cloudrun-mesh:clients[1].invokers[1]`" in m
               and "checkout-ci@example-ci.iam.gserviceaccount.com" in m for m in warned)


@pytest.mark.parametrize("stack, count", [("dev", 1), ("prod", 5)])
def test_up_refuses_the_example_principals_before_registering_anything(monkeypatch, stack, count):
    monkeypatch.setattr(engine, "REFUSE_EXAMPLES_AT_UP", True)
    result = run(stack, preview=False)
    found = problems_of(result)
    assert len(found) == count
    assert all("is the example principal" in p and "before `pulumi up`" in p for p in found)
    assert f"Pulumi.{stack}.yaml:" in str(result.error)


@pytest.mark.parametrize("stack", harness.stacks())
def test_up_refuses_each_stack_file_exactly_for_the_principals_its_preview_warns_about(monkeypatch, stack):
    # Whatever a stack file holds: `up` refuses it when, and only when, its preview warns about an
    # example principal, with one problem for each.
    warned = [m for level, m in run(stack, project_dir=harness.PROJECT_DIR).logs
              if level == "WARNING" and "example principal" in m]
    monkeypatch.setattr(engine, "REFUSE_EXAMPLES_AT_UP", True)
    result = run(stack, preview=False, project_dir=harness.PROJECT_DIR)
    if not warned:
        assert result.error is None
    else:
        assert len(problems_of(result)) == len(warned)


def test_up_goes_on_with_real_principals(monkeypatch):
    monkeypatch.setattr(engine, "REFUSE_EXAMPLES_AT_UP", True)
    clients = [{"name": "mesh-svc-dev", "invokers": ["serviceAccount:verify-dev@acme-ci.iam.gserviceaccount.com"]}]
    assert run("dev", {"cloudrun-mesh:clients": clients}, preview=False).error is None


@pytest.mark.parametrize("member, example", [
    ("user:a@example.com", True), ("group:g@sub.example.org", True), ("user:a@corp.test", True),
    ("domain:example.net", True), ("user:a@x.invalid", True), ("serviceAccount:s@example.iam.gserviceaccount.com", True),
    ("serviceAccount:s@example-prod.iam.gserviceaccount.com", True), ("user:a@examples.com", False),
    ("serviceAccount:s@exampleco.iam.gserviceaccount.com", False), ("user:a@corp.com", False),
])
def test_example_principals_are_recognised(member, example):
    cfg = parse({"clients": [{"name": "mesh-svc", "invokers": [member]}]}, "my-project", "us-central1")
    assert bool(cfg.placeholders) is example
    if example:
        assert cfg.placeholders[0].key == "cloudrun-mesh:clients[0].invokers[0]"


# --- regions and subnetworks -----------------------------------------------------------------


def test_regions_near_misses_are_errors_unknown_ones_warnings():
    [p] = problems({"clients": [{"name": "mesh-svc", "region": "europe-wset1"}]})
    assert p.startswith("`cloudrun-mesh:clients[0].region` is not a region Cloud Run serves (did you mean 'europe-west1'?)")
    cfg = parse({}, "my-project", "europe-north2")
    assert any("`gcp:region`: 'europe-north2' is not in the list of Cloud Run regions" in w for w in cfg.warnings)
    assert not any("gcp:region" in w for w in parse({}, "my-project", "us-central1").warnings)


def test_a_reserved_address_or_egress_without_subnetwork_warns_about_auto_mode():
    cfg = parse({"dns": {"address": "reserve"}}, "my-project", "us-central1")
    assert any(w.startswith('`cloudrun-mesh:dns.address` is "reserve" without `cloudrun-mesh:subnetwork`') for w in cfg.warnings)
    assert any("without a subnetwork (mesh-svc in us-central1)" in w and "auto-mode" in w for w in cfg.warnings)
    cfg = parse({"dns": {"address": "reserve"}, "subnetwork": "mesh-us"}, "my-project", "us-central1")
    assert not any("auto-mode" in w for w in cfg.warnings)


def test_warnings_reach_the_preview_log():
    result = run("prod", {"cloudrun-mesh:subnetwork": None})  # a reserved address and egress, no subnetwork
    assert any(level == "WARNING" and "auto-mode" in m for level, m in result.logs)


# --- empty lists -------------------------------------------------------------------------------


def test_an_empty_services_value_is_an_error_and_an_empty_list_means_none():
    [p] = problems({"services": None})
    assert p.startswith("`cloudrun-mesh:services` must be a list of services (write [] for none); it is empty (null)")
    assert parse({"services": []}, "my-project", "us-central1").services == ()


# --- monitoring (issue 20) -------------------------------------------------------------------

CHANNEL = "projects/my-project/notificationChannels/123"


def test_monitoring_is_off_by_default_and_parsed_when_on():
    off = parse({}, "my-project", "us-central1").monitoring
    assert off.enabled is False and off.period_seconds == 300 and off.alert_after == 2 and off.timeout_seconds == 10
    on = parse({"monitoring": {"enabled": True, "period": "60s", "regions": ["USA", "EUROPE", "SOUTH_AMERICA"],
                               "notificationChannels": [CHANNEL], "alertAfter": 3, "timeout": 20}},
               "my-project", "us-central1").monitoring
    assert (on.enabled, on.period_seconds, on.regions, on.notification_channels, on.alert_after, on.timeout_seconds) == (
        True, 60, ("USA", "EUROPE", "SOUTH_AMERICA"), (CHANNEL,), 3, 20)


@pytest.mark.parametrize("monitoring, key, rule", [
    ({"period": "120s"}, "cloudrun-mesh:monitoring.period", "must be one of 60s, 300s, 600s, 900s"),
    ({"regions": ["USA", "EUROPE", "MARS"]}, "cloudrun-mesh:monitoring.regions[2]", "must be one of USA"),
    ({"regions": ["USA", "EUROPE"]}, "cloudrun-mesh:monitoring.regions", "at least 3"),
    ({"notificationChannels": ["123"]}, "cloudrun-mesh:monitoring.notificationChannels[0]", "full notification channel name"),
    ({"notificationChannels": [CHANNEL + "\n"]}, "cloudrun-mesh:monitoring.notificationChannels[0]", "full notification"),
    ({"enabled": True}, "cloudrun-mesh:monitoring.notificationChannels", "at least one notification channel"),
    ({"alertAfter": 0}, "cloudrun-mesh:monitoring.alertAfter", "from 1 to 10"),
    ({"timeout": 3}, "cloudrun-mesh:monitoring.timeout", "above fortio's own"),
    ({"timeout": 61}, "cloudrun-mesh:monitoring.timeout", "60"),
    ({"enabeld": True}, "cloudrun-mesh:monitoring.enabeld", "did you mean `enabled`?"),
])
def test_monitoring_refusals_name_the_key_and_the_rule(monitoring, key, rule):
    found = problems({"monitoring": monitoring})
    assert any(p.startswith(f"`{key}`") and rule in p for p in found), found


def test_monitoring_refuses_a_client_without_all_ingress_naming_it():
    [p] = problems({"monitoring": {"enabled": True, "notificationChannels": [CHANNEL]},
                    "clients": [{"name": "mesh-svc"}, {"name": "internal-one", "ingress": "internal"}]})
    assert p.startswith("`cloudrun-mesh:clients[1].ingress` is 'internal' while `cloudrun-mesh:monitoring.enabled` is true")


@pytest.mark.parametrize("word, meant", [("yes", "true"), ("off", "false"), ("On", "true")])
def test_yaml_1_1_booleans_are_refused_with_what_to_write(word, meant):
    result = run("dev", {"cloudrun-mesh:protect": word})
    assert result.error is not None
    assert f"got {word!r} (YAML 1.1 reads {word!r} as a boolean" in str(result.error)
    assert f"write {meant})" in str(result.error)


def test_an_empty_services_key_says_how_to_mean_none():
    result = run("dev", {"cloudrun-mesh:services": ""})
    assert "write `[]` for none" in str(result.error)


MONITORING_ON = {"enabled": True, "notificationChannels": ["projects/my-project/notificationChannels/1"]}


def test_monitoring_too_many_clients_for_one_alert_filter_is_refused_before_anything_registers():
    clients = [{"name": f"client-with-a-long-name-{i:03d}", "region": "northamerica-northeast1"} for i in range(40)]
    result = run("dev", {"cloudrun-mesh:monitoring": MONITORING_ON, "cloudrun-mesh:clients": clients})
    assert "`cloudrun-mesh:monitoring.enabled` is true for 40 clients" in str(result.error)
    assert "accepts 2048" in str(result.error)
    assert [r.type for r in result.registrations] == ["pulumi:pulumi:Stack"]
    assert run("dev", {"cloudrun-mesh:monitoring": MONITORING_ON, "cloudrun-mesh:clients": clients[:5]}).error is None


def test_monitoring_with_no_service_to_check_is_refused():
    result = run("dev", {"cloudrun-mesh:monitoring": MONITORING_ON, "cloudrun-mesh:services": []})
    assert "there is no route to check" in str(result.error)

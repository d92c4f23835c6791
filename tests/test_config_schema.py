"""The schema is the contract: valid, whole-value patterns, defaults the code uses, the generated page,
Pulumi.yaml's declarations and the editors' modeline all follow it."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from jsonschema import Draft202012Validator
from testkit import ROOT

from cloudrun_mesh import config
from cloudrun_mesh.config import docs, schema
from cloudrun_mesh.config.model import DEFAULT_CLIENTS, DEFAULT_SERVICES

PROPS = schema.config_schema()["properties"]
NS = config.NS


def test_the_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(schema.schema())
    assert schema.schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _leaves():
    for key, prop in PROPS.items():
        yield key, prop
        inner = prop.get("items", prop)
        for field, sub in inner.get("properties", {}).items():
            yield f"{key}.{field}", sub


@pytest.mark.parametrize("key, prop", list(_leaves()), ids=[k for k, _ in _leaves()])
def test_every_key_has_type_description_and_rule(key, prop):
    assert prop.get("type") and prop.get("description") and prop.get("x-rule"), key
    if prop["type"] in ("string", "integer") and "enum" not in prop:
        assert "pattern" in prop or "minimum" in prop or key.startswith("gcp:") is False or "pattern" in prop, key


def test_every_pattern_is_anchored_and_matches_whole_values():
    patterns = re.findall(r'"pattern": "((?:[^"\\]|\\.)*)"', json.dumps(schema.schema()))
    assert len(patterns) > 20
    for p in patterns:
        p = json.loads(f'"{p}"')
        assert p.startswith("^") and p.endswith("$"), p
    # The validator matches whole values: `$` before a final newline is not enough.
    assert schema.validate({"gcp:project": "my-project", "gcp:region": "us-central1"}) == []
    [problem] = schema.validate({"gcp:project": "my-project\n", "gcp:region": "us-central1"})
    assert problem.key == "gcp:project"


def test_objects_and_field_lists_match_the_schema():
    assert set(config.TOP_LEVEL_KEYS) == {k.split(":", 1)[1] for k in PROPS if k.startswith(NS + ":")}
    for obj, fields in config.FIELDS.items():
        inner = PROPS[f"{NS}:{obj}"].get("items", PROPS[f"{NS}:{obj}"])
        assert tuple(inner["properties"]) == fields, obj


def test_the_codes_defaults_are_the_schemas():
    assert schema.default(f"{NS}:network") == config.DEFAULT_NETWORK
    assert schema.default(f"{NS}:dns", "zone") == config.DEFAULT_ZONE
    assert schema.default(f"{NS}:dns", "suffix") == config.DEFAULT_SUFFIX
    assert schema.default(f"{NS}:dns", "address") == config.DEFAULT_ADDRESS
    assert schema.default(f"{NS}:dns", "ttl") == config.DEFAULT_TTL
    assert schema.default(f"{NS}:services", "port") == config.DEFAULT_SERVICE_PORT
    assert schema.default(f"{NS}:services", "targetPort") == config.DEFAULT_TARGET_PORT
    assert schema.default(f"{NS}:services", "image") == config.SAMPLE_IMAGE
    assert schema.default(f"{NS}:clients", "image") == config.CLIENT_IMAGE
    assert schema.default(f"{NS}:services") == list(DEFAULT_SERVICES)
    assert schema.default(f"{NS}:clients") == list(DEFAULT_CLIENTS)
    assert tuple(PROPS[f"{NS}:clients"]["items"]["properties"]["ingress"]["enum"]) == config.INGRESS_SETTINGS
    assert tuple(PROPS[f"{NS}:monitoring"]["properties"]["period"]["enum"]) == config.UPTIME_PERIODS
    assert tuple(PROPS[f"{NS}:monitoring"]["properties"]["regions"]["items"]["enum"]) == config.UPTIME_REGIONS
    for key, default in config.SCALAR_DEFAULTS.items():
        assert schema.default(f"{NS}:{key}") == default


def test_pulumi_yaml_declares_the_scalars_as_the_schema_does():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    scalars = {k.split(":", 1)[1]: p for k, p in PROPS.items() if k.startswith(NS + ":") and p["type"] in ("string", "boolean", "integer")}
    assert set(declared) == set(scalars)
    for key, prop in scalars.items():
        assert declared[key] == {"type": prop["type"], "description": prop["description"], "default": prop["default"]}, key


def test_the_reference_page_is_generated_from_the_schema():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == docs.render(), "docs/configuration.md is stale: python -m cloudrun_mesh.config.docs > docs/configuration.md"
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    for key, prop in _leaves():
        obj = key.split(".")[0].split(":", 1)[-1]
        field = key.split(".", 1)[1] if "." in key else None
        if field is None:
            name = key
        elif obj in ("services", "clients"):
            name = f"{obj}[i].{field}"
        elif obj == "cluster":
            name = "cloudrun-mesh:cluster.name` / `.location` / `.project"
        else:
            name = key
        if prop["type"] == "object" and field is None:
            continue  # an object's fields have the rows
        [row] = [r for r in rows if r.startswith(f"| `{name}` |")]
        assert prop["x-rule"][1:] in row or obj == "cluster", key


def test_every_stack_file_carries_the_modeline_and_validates():
    stacks = sorted(ROOT.glob("Pulumi.*.yaml"))
    assert stacks
    for path in stacks:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=./cloudrun_mesh/schemas/stack-config.schema.json", path.name
        assert (path.parent / first.split("=", 1)[1]).resolve().is_file()
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert list(Draft202012Validator(schema.schema()).iter_errors(document)) == [], path.name


@pytest.mark.parametrize("image, valid", [
    ("fortio/fortio", True), ("fortio/fortio:1.75.2", True), ("docker.io/waip/simple-http:v1.0.1", True),
    ("us-docker.pkg.dev/p/repo/img@sha256:" + "a" * 64, True), ("localhost:5000/a/b:tag", True),
    ("fortio/Fortio", False), ("fortio/fortio\n", False), ("$(curl x)", False), ("a b", False), ("", False),
    ("img:" + "t" * 129, False), ("img@sha256:xyz", False),
])
def test_images_follow_the_oci_reference_grammar(image, valid):
    found = schema.validate({"gcp:project": "my-project", "gcp:region": "us-central1",
                             f"{NS}:clients": [{"name": "mesh-svc", "image": image}]})
    assert (found == []) is valid, found


@pytest.mark.parametrize("member, valid", [
    ("user:alice@corp.com", True), ("group:oncall@corp.com", True), ("domain:corp.com", True),
    ("serviceAccount:ci@p-123.iam.gserviceaccount.com", True),
    ("principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/subject/s", True),
    ("principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*", False),
    ("allUsers", False), ("allAuthenticatedUsers", False), ("user:alice@corp.com\n", False),
    ("user:[x](http://e.vil)", False), ("user:$(id)@corp.com", False), ("robot:x@corp.com", False),
])
def test_members_follow_iams_principal_forms(member, valid):
    found = schema.validate({"gcp:project": "my-project", "gcp:region": "us-central1",
                             f"{NS}:clients": [{"name": "mesh-svc", "invokers": [member]}]})
    assert (found == []) is valid, found


@pytest.mark.parametrize("key, value", [
    (f"{NS}:network", "projects/p-1234/global/networks/n\n"), (f"{NS}:network", "projects/My/global/networks/n"),
    (f"{NS}:subnetwork", "projects/p-1234/regions/us-central1/subnetworks/s/x"), ("gcp:region", "us-central1\n"),
])
def test_self_links_and_regions_are_checked_whole(key, value):
    base = {"gcp:project": "my-project", "gcp:region": "us-central1"}
    [problem] = schema.validate({**base, key: value})
    assert problem.key == key


# --- the quick verdict equals jsonschema's ------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["", "ads", "us-central1", "10.0.0.1", "reserve", "60s", "USA", "all", "fortio/fortio", "a\n",
                     "user:a@corp.com", "allUsers", "projects/my-project/notificationChannels/1", "Bad Name", "x" * 300]),
    st.text(max_size=8),
)


def _stack_configs():
    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        values = yaml.safe_load(path.read_text(encoding="utf-8"))["config"]
        yield {"gcp:project": "my-project", **values}
    yield {"gcp:project": "my-project", "gcp:region": "us-central1",
           f"{NS}:monitoring": {"enabled": True, "regions": ["USA", "EUROPE", "ASIA_PACIFIC"], "timeout": 20,
                                "notificationChannels": ["projects/my-project/notificationChannels/1"]},
           f"{NS}:cluster": {"name": "c1", "location": "us-central1-c"}, f"{NS}:mesh": {"channel": "rapid"}}
    yield {"gcp:project": "my-project", "gcp:region": "us-central1", f"{NS}:network": "vpc", f"{NS}:subnetwork": "mesh-us",
           f"{NS}:adopt": True, f"{NS}:dns": {"address": "reserve", "addressName": "vip"},
           f"{NS}:mesh": {"name": "projects/p-123456/locations/global/meshes/m", "project": "p-123456"},
           f"{NS}:clients": [{"name": "mesh-svc", "region": "europe-west1", "subnetwork": "mesh-eu", "ingress": "internal"}]}


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _replace(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


@st.composite
def _mutated(draw):
    base = draw(st.sampled_from(list(_stack_configs())))
    for _ in range(draw(st.integers(0, 3))):
        paths = [p for p in _paths(base) if p]
        path = draw(st.sampled_from(paths))
        new = draw(st.one_of(_LEAVES, st.lists(_LEAVES, max_size=4), st.dictionaries(st.sampled_from(["name", "zone", "x"]), _LEAVES, max_size=2)))
        base = _replace(base, path, new)
    return base


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_the_quick_verdict_is_jsonschemas(instance):
    errors = [e for e in schema._validator().iter_errors(instance) if e.validator != "propertyNames"]
    assert schema.accepts(schema.config_schema(), instance) is (errors == [])


def test_the_pages_error_example_is_what_a_run_prints(tmp_path):
    from stackkit import PROD_LIKE, scratch_project

    from cloudrun_mesh.offline import harness

    # The tests' prod-like stack file with one port out of range: the line and column are those of
    # the file written here, whatever the shipped Pulumi.prod.yaml holds.
    services = [dict(s) for s in PROD_LIKE[f"{NS}:services"]]
    services[1]["port"] = 70000
    project = scratch_project(tmp_path, {"prod": {**PROD_LIKE, f"{NS}:services": services}})
    run = harness.run_program("prod", config={"gcp:project": "my-project"}, preview=True, project_dir=project)
    [line] = str(run.error).split("\n")[1:]
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert f"``{line.strip()}``" in page


def test_the_pages_editor_settings_point_at_the_schema_for_every_stack_file():
    import fnmatch

    [(path, glob)] = docs.VSCODE_SETTINGS["yaml.schemas"].items()
    assert (ROOT / path).resolve() == schema.SCHEMA_PATH
    assert all(fnmatch.fnmatch(p.name, glob) for p in ROOT.glob("Pulumi.*.yaml"))
    assert not fnmatch.fnmatch("Pulumi.yaml", glob)
    assert json.dumps(docs.VSCODE_SETTINGS) in (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_any_configuration_is_a_stack_config_or_a_config_error(instance):
    raw = {k.split(":", 1)[1]: v for k, v in instance.items() if k.startswith(NS + ":")}
    try:
        config.parse(raw, instance.get("gcp:project"), instance.get("gcp:region"))
    except config.ConfigError as exc:
        assert exc.problems and all(p.startswith("`") for p in exc.problems)


@pytest.mark.parametrize("raw", [
    {"subnetwork": 5, "dns": {"address": "reserve"}}, {"subnetwork": ["x"], "clients": [{"name": "mesh-svc"}]},
    {"network": 5, "dns": {"address": "reserve"}}, {"adopt": "yes", "dns": {"address": "reserve"}},
    {"mesh": {"name": 5, "project": "p-12345"}}, {"mesh": {"name": "m", "channel": "x"}},
    {"services": [{"name": "a1", "namespace": 5}]}, {"monitoring": {"enabled": True, "regions": "USA"}},
])
def test_a_refused_value_takes_no_part_in_the_cross_field_rules(raw):
    with pytest.raises(config.ConfigError) as info:
        config.parse(raw, "my-project", "us-central1")
    assert info.value.problems

"""Config parsing: defaults reproduce the guide; every rule names its key and is enforced."""

from __future__ import annotations

import hashlib
import re

import pytest
import yaml
from docs_support import page
from testkit import ROOT

from cloudrun_mesh import config
from cloudrun_mesh.config import ConfigError, parse
from components import naming


def ok(raw=None, project="my-project", region="us-central1"):
    return parse(raw or {}, project, region)


def problems(raw, project="my-project", region="us-central1") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(raw, project, region)
    return info.value.problems


def test_defaults_reproduce_the_guide():
    cfg = ok()
    assert cfg.network == "default" and cfg.subnetwork is None and cfg.protect is False
    assert (cfg.dns.zone, cfg.dns.suffix, cfg.dns.address, cfg.dns.ttl) == ("prod", "mesh.private", "10.0.0.1", 3600)
    assert cfg.mesh.name is None and cfg.mesh.control_plane_revision == "asm-managed"
    assert cfg.cluster is None
    [svc] = cfg.services
    assert (svc.name, svc.namespace, svc.port, svc.target_port, svc.deploy_sample, svc.gke_clients) == (
        "ads", "default", 9999, 8000, True, False)
    assert svc.image == "docker.io/waip/simple-http:v1.0.1"
    [client] = cfg.clients
    assert (client.name, client.image, client.region, client.invokers) == ("mesh-svc", "fortio/fortio", "us-central1", ())
    assert cfg.network_path == "projects/my-project/global/networks/default"


def test_pulumi_yaml_declares_the_scalar_keys_with_the_same_defaults():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == set(config.SCALAR_DEFAULTS)
    for key, default in config.SCALAR_DEFAULTS.items():
        assert declared[key]["default"] == default, key
        assert declared[key]["description"].strip(), key


def test_suffix_trailing_dot_is_optional_and_case_is_folded():
    assert ok({"dns": {"suffix": "Mesh.Private."}}).dns.suffix == "mesh.private"


def test_user_services_default_to_existing_services():
    [svc] = ok({"services": [{"name": "payments"}]}).services
    assert svc.deploy_sample is False and svc.port == 9999 and svc.namespace == "default"


def test_reserve_address():
    assert ok({"dns": {"address": "reserve"}}).dns.reserve
    assert ok({"network": "mesh-vpc", "subnetwork": "mesh-subnet", "dns": {"address": "reserve"}}).dns.reserve


def test_bare_mesh_id_expands_with_mesh_project_or_stack_project():
    assert ok({"mesh": {"name": "m1"}}).mesh.name == "projects/my-project/locations/global/meshes/m1"
    assert ok({"mesh": {"name": "m1", "project": "123"}}).mesh.name == "projects/123/locations/global/meshes/m1"
    assert naming.mesh_project_of("projects/42/locations/global/meshes/m") == "42"


def test_client_region_defaults_to_stack_region_and_can_differ():
    cfg = ok({"clients": [{"name": "client-a"}, {"name": "client-b", "region": "europe-west1"}]})
    assert [c.region for c in cfg.clients] == ["us-central1", "europe-west1"]


def test_client_ingress_defaults_to_all_and_takes_each_setting():
    cfg = ok({"clients": [{"name": "client-a"}] + [{"name": f"client-{i}", "ingress": s} for i, s in enumerate(config.INGRESS_SETTINGS)]})
    assert [c.ingress for c in cfg.clients] == ["all", "all", "internal", "internal-and-cloud-load-balancing"]


def test_cluster_project_defaults_to_stack_project():
    cfg = ok({"cluster": {"name": "c1", "location": "us-central1-c"}})
    assert cfg.cluster == config.ClusterConfig("c1", "us-central1-c", "my-project")


def test_all_problems_are_reported_at_once():
    found = problems({"dns": {"ttl": 0, "address": "8.8.8.8"}, "services": [{"name": "Bad_Name", "port": 0}]})
    assert len(found) == 4


@pytest.mark.parametrize(
    "raw, key, rule",
    [
        ({"dns": {"address": "8.8.8.8"}}, "cloudrun-mesh:dns.address", "RFC 1918"),
        # ipaddress.is_private accepts these; RFC 1918 does not.
        ({"dns": {"address": "100.64.0.1"}}, "cloudrun-mesh:dns.address", "RFC 1918"),
        ({"dns": {"address": "127.0.0.1"}}, "cloudrun-mesh:dns.address", "RFC 1918"),
        ({"dns": {"address": "169.254.1.1"}}, "cloudrun-mesh:dns.address", "RFC 1918"),
        ({"dns": {"address": "172.32.0.1"}}, "cloudrun-mesh:dns.address", "RFC 1918"),
        ({"dns": {"address": "fd00::1"}}, "cloudrun-mesh:dns.address", "RFC 1918"),
        ({"dns": {"address": "ten.0.0.1"}}, "cloudrun-mesh:dns.address", "IPv4"),
        ({"dns": {"suffix": "*.mesh.private"}}, "cloudrun-mesh:dns.suffix", "`*`"),
        ({"dns": {"suffix": "mesh..private"}}, "cloudrun-mesh:dns.suffix", "labels"),
        ({"dns": {"suffix": "-mesh.private"}}, "cloudrun-mesh:dns.suffix", "labels"),
        ({"dns": {"suffix": "mesh_x.private"}}, "cloudrun-mesh:dns.suffix", "labels"),
        ({"dns": {"suffix": "mesh.123"}}, "cloudrun-mesh:dns.suffix", "last label is not all digits"),
        ({"dns": {"suffix": ("a" * 60 + ".") * 5 + "x"}}, "cloudrun-mesh:dns.suffix", "251"),
        ({"dns": {"zone": "Prod"}}, "cloudrun-mesh:dns.zone", "Cloud DNS zone name"),
        ({"dns": {"zone": "1prod"}}, "cloudrun-mesh:dns.zone", "Cloud DNS zone name"),
        ({"dns": {"zone": "prod-"}}, "cloudrun-mesh:dns.zone", "Cloud DNS zone name"),
        ({"dns": {"zone": "p" * 64}}, "cloudrun-mesh:dns.zone", "Cloud DNS zone name"),
        ({"dns": {"ttl": 0}}, "cloudrun-mesh:dns.ttl", "positive"),
        ({"dns": {"ttl": -5}}, "cloudrun-mesh:dns.ttl", "positive"),
        ({"dns": {"ttl": "soon"}}, "cloudrun-mesh:dns.ttl", "positive number of seconds"),
        ({"dns": {"ttl": True}}, "cloudrun-mesh:dns.ttl", "positive number of seconds"),
        ({"dns": {"tll": 60}}, "cloudrun-mesh:dns.tll", "did you mean `ttl`"),
        ({"dns": "prod"}, "cloudrun-mesh:dns", "must be an object"),
        ({"services": [{"name": "ads", "namespace": "Default"}]}, "cloudrun-mesh:services[0].namespace", "RFC 1123 label"),
        ({"services": [{"name": "ads", "namespace": "a" * 64}]}, "cloudrun-mesh:services[0].namespace", "RFC 1123 label"),
        ({"services": [{"name": "1ads"}]}, "cloudrun-mesh:services[0].name", "DNS-1035"),
        ({"services": [{"name": "ads.v2"}]}, "cloudrun-mesh:services[0].name", "DNS-1035"),
        ({"services": [{}]}, "cloudrun-mesh:services[0].name", "is required"),
        ({"services": [{"name": "ads", "port": 0}]}, "cloudrun-mesh:services[0].port", "between 1 and 65535"),
        ({"services": [{"name": "ads", "port": 65536}]}, "cloudrun-mesh:services[0].port", "between 1 and 65535"),
        ({"services": [{"name": "ads", "targetPort": 70000}]}, "cloudrun-mesh:services[0].targetPort", "between 1 and 65535"),
        ({"services": [{"name": "a", "namespace": "x"}, {"name": "a", "namespace": "y"}]}, "cloudrun-mesh:services[1].name", "duplicates"),
        ({"services": [{"name": "ads", "deploySmaple": True}]}, "cloudrun-mesh:services[0].deploySmaple", "did you mean `deploySample`"),
        ({"services": [{"name": "ads", "deploySample": "yes"}]}, "cloudrun-mesh:services[0].deploySample", "true or false"),
        ({"services": {"name": "ads"}}, "cloudrun-mesh:services", "must be a list"),
        ({"clients": [{"name": "svc"}]}, "cloudrun-mesh:clients[0].name", "6-30"),
        ({"clients": [{"name": "c" * 31}]}, "cloudrun-mesh:clients[0].name", "6-30"),
        ({"clients": [{"name": "Mesh-Svc"}]}, "cloudrun-mesh:clients[0].name", "service-account id"),
        ({"clients": [{"name": "mesh-svc-"}]}, "cloudrun-mesh:clients[0].name", "service-account id"),
        ({"clients": [{"name": "mesh-svc"}, {"name": "mesh-svc"}]}, "cloudrun-mesh:clients[1].name", "duplicates"),
        ({"clients": [{"name": "mesh-svc", "invokers": ["allUsers"]}]}, "cloudrun-mesh:clients[0].invokers[0]", "never public"),
        ({"clients": [{"name": "mesh-svc", "invokers": ["allAuthenticatedUsers"]}]}, "cloudrun-mesh:clients[0].invokers[0]", "never public"),
        ({"clients": [{"name": "mesh-svc", "invokers": ["someone@example.com"]}]}, "cloudrun-mesh:clients[0].invokers[0]", "IAM principal"),
        ({"clients": [{"name": "mesh-svc", "invokers": ["user:a@x.io", "user:a@x.io"]}]}, "cloudrun-mesh:clients[0].invokers[1]", "duplicates cloudrun-mesh:clients[0].invokers[0]"),
        ({"clients": [{"name": "mesh-svc", "region": "Central"}]}, "cloudrun-mesh:clients[0].region", "region"),
        ({"clients": [{"name": "mesh-svc", "imgae": "x"}]}, "cloudrun-mesh:clients[0].imgae", "did you mean `image`"),
        ({"clients": [{"name": "mesh-svc", "ingress": "internal-only"}]}, "cloudrun-mesh:clients[0].ingress", "did you mean 'internal'"),
        ({"clients": [{"name": "mesh-svc", "ingress": "INGRESS_TRAFFIC_ALL"}]}, "cloudrun-mesh:clients[0].ingress", "one of all, internal, internal-and-cloud-load-balancing"),
        ({"clients": [{"name": "mesh-svc", "ingress": True}]}, "cloudrun-mesh:clients[0].ingress", "got true"),
        ({"mesh": {"name": "projects/p/locations/us-central1/meshes/m"}}, "cloudrun-mesh:mesh.name", "projects/<project>/locations/global/meshes"),
        ({"mesh": {"name": "projects/my-project/locations/global/meshes/M!"}}, "cloudrun-mesh:mesh.name", "projects/<project>/locations/global/meshes"),
        ({"mesh": {"name": "meshes/m"}}, "cloudrun-mesh:mesh.name", "bare mesh id"),
        ({"mesh": {"project": "Not A Project"}}, "cloudrun-mesh:mesh.project", "project id"),
        ({"mesh": {"controlPlaneRevision": "ASM_managed"}}, "cloudrun-mesh:mesh.controlPlaneRevision", "Kubernetes object name"),
        ({"cluster": {"name": "c1"}}, "cloudrun-mesh:cluster.location", "is required"),
        ({"cluster": {"name": "c1", "location": "us-central1", "zone": "a"}}, "cloudrun-mesh:cluster.zone", "not a known key"),
        ({"network": "projects/p/networks/default"}, "cloudrun-mesh:network", "VPC network"),
        ({"subnetwork": "Sub Net"}, "cloudrun-mesh:subnetwork", "subnetwork"),
        ({"protect": "maybe"}, "cloudrun-mesh:protect", "true or false"),
        ({"network": "mesh-vpc", "dns": {"address": "reserve"}}, "cloudrun-mesh:dns.address", "needs `cloudrun-mesh:subnetwork`"),
        ({"netwrok": "default"}, "cloudrun-mesh:netwrok", "did you mean `cloudrun-mesh:network`"),
        # adoption, and typos in the newer keys
        ({"adopt": "yes"}, "cloudrun-mesh:adopt", "true or false"),
        ({"adpot": True}, "cloudrun-mesh:adpot", "did you mean `cloudrun-mesh:adopt`"),
        ({"dns": {"address": "reserve", "adressName": "vip"}}, "cloudrun-mesh:dns.adressName", "did you mean `addressName`"),
        ({"services": [{"name": "ads", "virtualServiceNmae": "vs"}]}, "cloudrun-mesh:services[0].virtualServiceNmae",
         "did you mean `virtualServiceName`"),
        ({"mesh": {"controlPlaneRevison": "asm-managed"}}, "cloudrun-mesh:mesh.controlPlaneRevison",
         "did you mean `controlPlaneRevision`"),
        # mesh channels
        ({"mesh": {"channel": "fast"}}, "cloudrun-mesh:mesh.channel", "one of regular, rapid, stable"),
        ({"mesh": {"channel": "Rapid"}}, "cloudrun-mesh:mesh.channel", "did you mean 'rapid'"),
        ({"mesh": {"chanel": "rapid"}}, "cloudrun-mesh:mesh.chanel", "did you mean `channel`"),
        ({"mesh": {"name": "m1", "channel": "rapid"}}, "cloudrun-mesh:mesh.channel", "ignored when `cloudrun-mesh:mesh.name`"),
        ({"mesh": {"name": "m1", "controlPlaneRevision": "asm-managed"}}, "cloudrun-mesh:mesh.controlPlaneRevision", "ignored"),
        ({"mesh": {"name": "projects/mesh-host/locations/global/meshes/m1", "project": "other-host"}},
         "cloudrun-mesh:mesh.project", "names project 'mesh-host'"),
        ({"mesh": {"name": "projects/123/locations/global/meshes/m1", "project": "456"}},
         "cloudrun-mesh:mesh.project", "names project '123'"),
        # namespaces
        ({"services": [{"name": "ads", "createNamespace": "yes"}]}, "cloudrun-mesh:services[0].createNamespace", "true or false"),
        ({"services": [{"name": "ads", "createNamespce": True}]}, "cloudrun-mesh:services[0].createNamespce", "did you mean `createNamespace`"),
        ({"services": [{"name": "ads", "createNamespace": True}]}, "cloudrun-mesh:services[0].createNamespace", "belongs to the cluster"),
        ({"services": [{"name": "ads", "namespace": "istio-system", "createNamespace": True}]},
         "cloudrun-mesh:services[0].createNamespace", "belongs to the cluster"),
        ({"services": [{"name": "ads", "namespace": "team", "createNamespace": True}, {"name": "b", "namespace": "team"}]},
         "cloudrun-mesh:services[1].createNamespace", "`cloudrun-mesh:services[0].createNamespace` is true"),
        # subnetworks per client
        ({"clients": [{"name": "mesh-svc", "subnetwork": "Bad Subnet"}]}, "cloudrun-mesh:clients[0].subnetwork", "subnetwork name"),
        ({"clients": [{"name": "mesh-svc", "subnetwrok": "s"}]}, "cloudrun-mesh:clients[0].subnetwrok", "did you mean `subnetwork`"),
        ({"clients": [{"name": "mesh-svc", "region": "europe-west1",
                       "subnetwork": "projects/my-project/regions/us-central1/subnetworks/s"}]},
         "cloudrun-mesh:clients[0].subnetwork", "is in region 'us-central1' but is used in 'europe-west1'"),
        ({"subnetwork": "projects/my-project/regions/us-central1/subnetworks/s",
          "clients": [{"name": "mesh-svc", "region": "europe-west1"}]},
         "cloudrun-mesh:clients[0].subnetwork", "inherited from `cloudrun-mesh:subnetwork`"),
        ({"clients": [{"name": "mesh-svc", "subnetwork": "projects/other-project/regions/us-central1/subnetworks/s"}]},
         "cloudrun-mesh:clients[0].subnetwork", "is in project 'other-project' but `cloudrun-mesh:network` is in project 'my-project'"),
        ({"network": "projects/host-project/global/networks/shared",
          "subnetwork": "projects/my-project/regions/us-central1/subnetworks/s"},
         "cloudrun-mesh:subnetwork", "host project of a Shared VPC"),
        ({"subnetwork": "projects/my-project/regions/europe-west1/subnetworks/s", "dns": {"address": "reserve"},
          "clients": [{"name": "mesh-svc", "region": "europe-west1"}]},
         "cloudrun-mesh:subnetwork", "where the wildcard's address is reserved"),
    ],
)
def test_rule(raw, key, rule):
    found = problems(raw)
    assert any(p.startswith(f"`{key}`") and rule in p for p in found), found


def test_missing_or_bad_project_and_region():
    assert any(p.startswith("`gcp:project`") for p in problems({}, project=None))
    assert any(p.startswith("`gcp:project`") and "project id" in p for p in problems({}, project="My Project"))
    assert any(p.startswith("`gcp:region`") for p in problems({}, region=None))


def test_error_is_a_run_error_with_one_problem_per_line():
    import pulumi

    with pytest.raises(ConfigError) as info:
        parse({"dns": {"ttl": 0, "zone": "Zone\n"}}, "my-project", "us-central1")
    assert isinstance(info.value, pulumi.RunError)
    head, *lines = str(info.value).split("\n")
    assert head == "Invalid stack configuration (2 problems; see docs/configuration.md):"
    assert [line.split("`")[1] for line in lines] == ["cloudrun-mesh:dns.zone", "cloudrun-mesh:dns.ttl"]


def test_member_slug_is_urn_safe_and_readable():
    assert naming.member_slug("serviceAccount:ci@p.iam.gserviceaccount.com") == "serviceaccount-ci-p-iam-gserviceaccount-com"


# -- mesh channels, namespaces, subnetworks, invokers --------------------------------------------


@pytest.mark.parametrize("channel, revision", [("regular", "asm-managed"), ("rapid", "asm-managed-rapid"),
                                               ("stable", "asm-managed-stable")])
def test_channel_selects_the_revision_and_the_revision_label(channel, revision):
    mesh = ok({"mesh": {"channel": channel}}).mesh
    assert mesh.control_plane_revision == revision
    assert mesh.injection_labels == {"istio.io/rev": revision}


def test_control_plane_revision_overrides_the_channel():
    mesh = ok({"mesh": {"channel": "rapid", "controlPlaneRevision": "asm-1-20"}}).mesh
    assert mesh.control_plane_revision == "asm-1-20" and mesh.injection_labels == {"istio.io/rev": "asm-1-20"}


def test_without_a_named_revision_namespaces_get_the_default_injection_label():
    assert ok().mesh.injection_labels == {"istio-injection": "enabled"}
    assert ok({"mesh": {"name": "m1"}}).mesh.injection_labels == {"istio-injection": "enabled"}


def test_mesh_project_may_restate_the_project_of_the_mesh_name_or_use_the_other_form():
    assert ok({"mesh": {"name": "projects/mesh-host/locations/global/meshes/m1", "project": "mesh-host"}}).mesh.project == "mesh-host"
    # A number and an id may be the same project: not decidable offline, so accepted.
    assert ok({"mesh": {"name": "projects/123/locations/global/meshes/m1", "project": "mesh-host"}}).mesh.project == "mesh-host"


def test_owned_namespaces_are_listed_once_in_order():
    cfg = ok({"services": [
        {"name": "a", "namespace": "team-b", "createNamespace": True},
        {"name": "b", "namespace": "team-a", "createNamespace": True},
        {"name": "c", "namespace": "team-b", "createNamespace": True},
        {"name": "d", "namespace": "shared"},
    ]})
    assert cfg.owned_namespaces == ("team-b", "team-a")


def test_each_client_takes_its_own_subnetwork_or_the_stacks():
    cfg = ok({
        "network": "projects/host-project/global/networks/shared",
        "subnetwork": "projects/host-project/regions/us-central1/subnetworks/run-us",
        "clients": [
            {"name": "client-us"},
            {"name": "client-eu", "region": "europe-west1",
             "subnetwork": "projects/host-project/regions/europe-west1/subnetworks/run-eu"},
            {"name": "client-named", "region": "europe-west1", "subnetwork": "run-eu"},
        ],
    })
    assert [c.subnetwork for c in cfg.clients] == [
        "projects/host-project/regions/us-central1/subnetworks/run-us",
        "projects/host-project/regions/europe-west1/subnetworks/run-eu",
        "run-eu",
    ]
    assert ok().clients[0].subnetwork is None


def test_distinct_members_get_distinct_names_and_the_first_keeps_its_slug():
    names = naming.member_names(["user:a.b@example.com", "group:ops@example.com", "user:a-b@example.com"])
    assert names["user:a.b@example.com"] == "user-a-b-example-com"
    assert names["group:ops@example.com"] == "group-ops-example-com"
    assert names["user:a-b@example.com"].startswith("user-a-b-example-com-")
    assert len(set(names.values())) == 3
    # Appending a member never renames an earlier one.
    assert naming.member_names(["user:a.b@example.com"])["user:a.b@example.com"] == names["user:a.b@example.com"]
    cfg = ok({"clients": [{"name": "mesh-svc", "invokers": ["user:a.b@example.com", "user:a-b@example.com"]}]})
    assert cfg.clients[0].invokers == ("user:a.b@example.com", "user:a-b@example.com")


def test_a_suffixed_name_that_is_another_members_slug_is_not_reused():
    digest = hashlib.sha256(b"user:a-b@example.com").hexdigest()
    # This member's plain slug is exactly the name `user:a-b@example.com` would get after `user:a.b@…`.
    crafted = f"user:a-b@example.com.{digest[:8]}"
    members = [crafted, "user:a.b@example.com", "user:a-b@example.com", f"user:a-b@example.com.{digest[:16]}"]
    names = naming.member_names(members)
    assert len(set(names.values())) == len(members)
    assert names[crafted] == f"user-a-b-example-com-{digest[:8]}"  # the first holder keeps its slug
    assert names["user:a-b@example.com"] == f"user-a-b-example-com-{digest[:16]}"
    assert all(re.fullmatch(r"[a-z0-9-]+", n) for n in names.values())


def test_adoption_settings():
    cfg = ok()
    assert cfg.adopt is False and cfg.dns.address_name is None
    assert [s.virtual_service_name for s in cfg.services] == ["ads-external"]
    cfg = ok({"adopt": "true", "dns": {"address": "reserve", "addressName": "mesh-vip"},
              "services": [{"name": "ads", "virtualServiceName": "ads.vs"}, {"name": "b", "namespace": "x",
                                                                            "virtualServiceName": "ads.vs"}]})
    assert cfg.adopt is True and cfg.dns.address_name == "mesh-vip"
    assert [s.virtual_service_name for s in cfg.services] == ["ads.vs", "ads.vs"]  # other namespace: no clash


def test_adoption_rules_name_their_keys():
    [p] = problems({"adopt": True, "dns": {"address": "reserve"}})
    assert p.startswith("`cloudrun-mesh:dns.addressName` is required when `cloudrun-mesh:adopt` is true")
    [p] = problems({"dns": {"address": "10.0.0.2", "addressName": "mesh-vip"}})
    assert p.startswith("`cloudrun-mesh:dns.addressName` names the reserved address")
    [p] = problems({"services": [{"name": "ads", "virtualServiceName": "x" * 254}]})
    assert "at most 253 characters" in p
    [p] = problems({"services": [{"name": "ads", "virtualServiceName": ""}]})
    assert p.startswith("`cloudrun-mesh:services[0].virtualServiceName` must be a Kubernetes object name")


@pytest.mark.parametrize(
    "key, nested, path",
    [("dns.suffix", "`cloudrun-mesh:dns:` with `suffix: ...`", "'cloudrun-mesh:dns.suffix'"),
     ("services[0].port", "`cloudrun-mesh:services:` with `- port: ...`", "'cloudrun-mesh:services[0].port'")],
)
def test_a_nested_key_written_as_one_key_gets_a_hint_to_nest_it(key, nested, path):
    [problem] = problems({key: "x"})
    assert problem.startswith(f"`cloudrun-mesh:{key}` is a nested key written as one top-level key")
    assert nested in problem and f"pulumi config set --path {path} <value>" in problem
    # The README shows both ways of writing nested keys.
    readme = page("docs/configuration.md")
    assert "pulumi config set --path 'cloudrun-mesh:dns.suffix'" in readme and "  cloudrun-mesh:dns:\n    suffix:" in readme


def test_an_unknown_dotted_key_is_still_a_typo():
    [problem] = problems({"dnss.suffix": "x"})
    assert "is not a known key" in problem

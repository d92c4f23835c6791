"""ExportedGkeService: the guide's sample workload and a distinct, strictly valid VirtualService."""

from __future__ import annotations

import copy

import pytest
from testkit import ROOT, component_program, evaluate

from cloudrun_mesh import istio
from components import ExportedGkeService, ExportedGkeServiceArgs
from components.exported_gke_service import virtual_service_spec

VS = "kubernetes:networking.istio.io/v1:VirtualService"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"


def service_program(suffix="mesh.private", **overrides):
    args = dict(service_name="ads", namespace="team-a", port=9999, suffix=suffix)
    args.update(overrides)

    return component_program(
        lambda: ExportedGkeService("svc-ads", ExportedGkeServiceArgs(**args)), host="host", destination="destination"
    )


def test_sample_is_the_guides_deployment_and_service():
    run = evaluate(program=service_program(deploy_sample=True, target_port=8000))
    dep = run.one(DEPLOYMENT).inputs
    assert dep["metadata"] == {"name": "ads", "namespace": "team-a"}
    assert dep["spec"]["selector"] == {"matchLabels": {"run": "ads"}}
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"] == {"run": "ads"}
    assert pod["spec"]["securityContext"]["fsGroup"] == 1337
    [container] = pod["spec"]["containers"]
    assert container["name"] == "my-http2-svc"
    assert container["image"] == "docker.io/waip/simple-http:v1.0.1"
    assert container["ports"] == [{"containerPort": 8000, "protocol": "TCP"}]
    # The guide's container as is: no command or arguments of ours.
    assert "command" not in container and "args" not in container
    svc = run.one(SERVICE).inputs
    assert svc["metadata"] == {"name": "ads", "namespace": "team-a"}
    assert svc["spec"]["selector"] == {"run": "ads"}
    assert svc["spec"]["ports"] == [{"port": 9999, "targetPort": 8000, "protocol": "TCP"}]


def test_virtual_service_is_distinct_in_the_services_namespace_on_external_mesh():
    run = evaluate(program=service_program(deploy_sample=True))
    vs = run.one(VS)
    assert vs.name == "svc-ads-virtualservice"
    assert vs.inputs["apiVersion"] == "networking.istio.io/v1" and vs.inputs["kind"] == "VirtualService"
    assert vs.inputs["metadata"] == {"name": "ads-external", "namespace": "team-a"}
    assert vs.inputs["spec"] == {
        "hosts": ["ads.mesh.private"],
        "gateways": ["external-mesh"],
        "http": [{"route": [{"destination": {"host": "ads"}}]}],
    }
    assert vs.property_dependencies["spec"] == [run.one(SERVICE).urn]
    assert run.outputs == {"host": "ads.mesh.private", "destination": "ads"}


def test_existing_service_gets_an_explicit_port_and_no_workload():
    run = evaluate(program=service_program(port=8080))
    assert run.resources(DEPLOYMENT) == [] and run.resources(SERVICE) == []
    route = run.one(VS).inputs["spec"]["http"][0]["route"][0]
    assert route == {"destination": {"host": "ads", "port": {"number": 8080}}}


def test_gke_clients_also_bind_the_mesh_gateway():
    run = evaluate(program=service_program(gke_clients=True))
    assert run.one(VS).inputs["spec"]["gateways"] == ["external-mesh", "mesh"]


def test_host_is_built_from_the_zone_output():
    def program():
        from components import PrivateMeshZone, PrivateMeshZoneArgs

        zone = PrivateMeshZone("dns", PrivateMeshZoneArgs(zone_name="z", suffix="corp.internal", network="n", ttl=60, address="10.1.1.1"))
        ExportedGkeService("svc-ads", ExportedGkeServiceArgs(service_name="ads", namespace="default", port=80, suffix=zone.suffix))

    run = evaluate(program=program)
    vs = run.one(VS)
    assert vs.inputs["spec"]["hosts"] == ["ads.corp.internal"]
    assert vs.property_dependencies["spec"] == [run.one("gcp:dns/managedZone:ManagedZone").urn]


# -- strict schema ------------------------------------------------------------------------


def test_vendored_crd_has_its_provenance_line():
    first_lines = istio.CRD_PATH.read_text(encoding="utf-8").splitlines()[:3]
    assert any("istio/api" in line and "commit" in line for line in first_lines)
    assert istio.CRD_PATH.is_relative_to(ROOT)


def test_our_specs_are_valid():
    for port in (None, 9999):
        for gke in (False, True):
            istio.validate_spec(virtual_service_spec("ads.mesh.private", "ads", port, gke))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.update(gateway=["external-mesh"]), "gateway"),  # misspelt key: pruned by the API server, an error here
        (lambda s: s["http"][0]["route"][0]["destination"].update(hostname="ads"), "hostname"),
        (lambda s: s["http"][0]["route"][0]["destination"].pop("host"), "host"),
        (lambda s: s["http"][0]["route"][0]["destination"].update(port={"number": "9999"}), "9999"),
        (lambda s: s.update(hosts="ads.mesh.private"), "hosts"),
        (lambda s: s["http"][0].update(timeout=5), "timeout"),
    ],
)
def test_strict_validation_rejects_what_kubectl_strict_would(mutate, message):
    spec = copy.deepcopy(virtual_service_spec("ads.mesh.private", "ads", 9999, False))
    mutate(spec)
    with pytest.raises(istio.VirtualServiceSpecError, match=message):
        istio.validate_spec(spec)


def test_invalid_spec_fails_at_construction_before_registration(monkeypatch):
    import components.exported_gke_service as module

    monkeypatch.setattr(module, "EXTERNAL_MESH_GATEWAY", 42)  # a wrong type in the spec
    run = evaluate(program=service_program(), expect_error=True)
    assert isinstance(run.error, istio.VirtualServiceSpecError)
    assert run.resources(VS) == []


# -- the hardened sample: each property Checkov's Kubernetes checks look for ------------------


@pytest.fixture(scope="module")
def sample_pod():
    run = evaluate(program=service_program(deploy_sample=True, target_port=8000))
    return run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]


def test_sample_runs_as_a_high_non_root_uid_without_privileges(sample_pod):
    [c] = sample_pod["containers"]
    ctx = c["securityContext"]
    assert ctx["runAsNonRoot"] is True and sample_pod["securityContext"]["runAsNonRoot"] is True
    assert ctx["runAsUser"] >= 10000 and ctx["runAsGroup"] >= 10000  # CKV_K8S_40
    assert ctx["allowPrivilegeEscalation"] is False and ctx["privileged"] is False  # CKV_K8S_20, CKV_K8S_16
    assert ctx["capabilities"] == {"drop": ["ALL"]}  # CKV_K8S_28, CKV_K8S_37
    assert ctx["readOnlyRootFilesystem"] is True  # CKV_K8S_22
    # The UID is the container's, not the pod's: injected containers keep their own (istio-proxy: 1337).
    assert "runAsUser" not in sample_pod["securityContext"]


def test_sample_uses_the_runtime_default_seccomp_profile_and_no_token(sample_pod):
    assert sample_pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}  # CKV_K8S_31
    assert sample_pod["automountServiceAccountToken"] is False  # CKV_K8S_38


def test_sample_has_probes_on_the_guides_path_and_a_memory_limit(sample_pod):
    [c] = sample_pod["containers"]
    for probe in ("readinessProbe", "livenessProbe"):  # CKV_K8S_9, CKV_K8S_8
        assert c[probe]["httpGet"] == {"path": "/", "port": 8000}, probe
    assert c["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}  # CKV_K8S_10, CKV_K8S_12
    assert c["resources"]["limits"] == {"memory": "128Mi"}  # CKV_K8S_13; no CPU limit (README)
    assert c["imagePullPolicy"] == "Always"  # CKV_K8S_15


def test_sample_gets_a_writable_tmp_on_its_read_only_root(sample_pod):
    [c] = sample_pod["containers"]
    [mount] = c["volumeMounts"]
    [volume] = sample_pod["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/tmp"}
    assert "emptyDir" in volume

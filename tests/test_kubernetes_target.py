"""KubernetesTarget: an explicit provider for the configured GKE cluster, used everywhere."""

from __future__ import annotations

import json

from testkit import shared_evaluation

from components.kubernetes_target import AUTH_PLUGIN

PROVIDER = "pulumi:providers:kubernetes"
CLUSTER = {"cloudrun-mesh:cluster": {"name": "mesh-cluster", "location": "us-central1-c", "project": "gke-project"}}


def test_ambient_kubeconfig_by_default(dev_run):
    assert dev_run.resources(PROVIDER) == []
    assert all(r.provider == "" for r in dev_run.resources() if r.type.startswith("kubernetes:"))


def test_explicit_cluster_provider_uses_gke_auth_plugin():
    run = shared_evaluation("dev", CLUSTER)
    provider = run.one(PROVIDER)
    assert provider.name == "gke-provider"
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["current-context"] == "gke_gke-project_us-central1-c_mesh-cluster"
    [user] = kubeconfig["users"]
    assert user["user"]["exec"]["command"] == AUTH_PLUGIN
    assert "token" not in json.dumps(kubeconfig)
    [cluster] = kubeconfig["clusters"]
    assert cluster["cluster"]["server"].startswith("https://")


def test_every_kubernetes_resource_and_the_read_use_it():
    run = shared_evaluation("dev", CLUSTER)
    provider = run.one(PROVIDER)
    kube = [r for r in run.resources() if r.type.startswith("kubernetes:") and r.custom]
    assert {r.type.split(":")[-1] for r in kube} == {"Deployment", "Service", "VirtualService", "ControlPlaneRevision"}
    for r in kube:
        assert r.provider.startswith(provider.urn + "::"), r.urn

"""MeshDiscovery: the mesh id from the ControlPlaneRevision annotation."""

from __future__ import annotations

import pytest
from testkit import component_program, evaluate

from cloudrun_mesh.offline import fakes
from components import MeshDiscovery, MeshDiscoveryArgs
from components.mesh_discovery import ANNOTATION, MeshDiscoveryError, mesh_name_from

CPR = "kubernetes:mesh.cloud.google.com/v1beta1:ControlPlaneRevision"


def discovery_program(revision="asm-managed"):
    return component_program(
        lambda: MeshDiscovery("mesh", MeshDiscoveryArgs(control_plane_revision=revision, default_project="my-project")),
        mesh="mesh_name",
    )


def test_reads_the_revision_in_istio_system():
    run = evaluate(program=discovery_program("asm-managed-rapid"))
    read = run.one(CPR)
    assert read.read and read.id == "istio-system/asm-managed-rapid" and read.name == "mesh-revision"
    assert run.outputs["mesh"] == f"projects/{fakes.FAKE_PROJECT_NUMBER}/locations/global/meshes/{fakes.FAKE_MESH_ID}"


def test_reads_happen_in_preview_too():
    # A real preview reads the revision; offline, what it would return is shown as a marker.
    run = evaluate(program=discovery_program(), preview=True)
    assert run.one(CPR).read
    assert run.outputs["mesh"] == fakes.READ_FROM_CLUSTER


@pytest.mark.parametrize(
    "value, expected",
    [
        ("projects/42/locations/global/meshes/m1", "projects/42/locations/global/meshes/m1"),
        ("m1", "projects/my-project/locations/global/meshes/m1"),
    ],
)
def test_full_name_or_bare_id(value, expected):
    assert mesh_name_from({"annotations": {ANNOTATION: value}}, "asm-managed", "my-project") == expected


@pytest.mark.parametrize("metadata", [{}, {"annotations": {}}, {"annotations": {ANNOTATION: ""}}, None])
def test_missing_annotation_is_a_clear_error(metadata):
    with pytest.raises(MeshDiscoveryError, match="cloudrun-mesh:mesh.name") as info:
        mesh_name_from(metadata, "asm-managed", "my-project")
    assert "istio-system/asm-managed" in str(info.value)


def test_malformed_annotation_is_a_clear_error():
    with pytest.raises(MeshDiscoveryError, match="neither"):
        mesh_name_from({"annotations": {ANNOTATION: "projects/p/meshes/x"}}, "asm-managed", "my-project")


def test_missing_annotation_fails_the_program(monkeypatch):
    monkeypatch.setitem(fakes.COMPUTED, CPR, lambda name, inputs, config: {"metadata": {"name": "asm-managed"}})
    run = evaluate("dev", expect_error=True)
    assert isinstance(run.error, MeshDiscoveryError)
    # Nothing that needs the mesh was created with a wrong value.
    assert all("serviceMesh" not in str(r.inputs) for r in run.resources("gcp:cloudrunv2/service:Service"))


def test_missing_annotation_error_names_the_revision_of_every_channel():
    with pytest.raises(MeshDiscoveryError) as info:
        mesh_name_from({}, "asm-managed", "my-project")
    text = str(info.value)
    for channel, revision in (("rapid", "asm-managed-rapid"), ("regular", "asm-managed"), ("stable", "asm-managed-stable")):
        assert f"{channel}: {revision}" in text
    assert "cloudrun-mesh:mesh.channel" in text


@pytest.mark.parametrize("channel, revision", [("rapid", "asm-managed-rapid"), ("stable", "asm-managed-stable")])
def test_the_channel_selects_the_revision_the_program_reads(channel, revision):
    run = evaluate("dev", {"cloudrun-mesh:mesh": {"channel": channel}})
    assert run.one(CPR).id == f"istio-system/{revision}"

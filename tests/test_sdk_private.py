"""Each private SDK name the offline engine uses, checked against the installed SDKs."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import pytest

from cloudrun_mesh import sdk_private


def test_a_serialised_secret_is_recognised_and_a_plain_mapping_is_not():
    # The wire protocol's signature key and secret signature (pulumi/pulumi
    # sdk/go/common/resource/sig/sig.go: `Key`, `Secret`), which the Python SDK mirrors privately.
    wire = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "s3cret"}
    assert sdk_private.is_secret_envelope(wire)
    assert not sdk_private.is_secret_envelope({"value": "s3cret"})


def test_runtime_settings_are_replaced_by_fresh_objects():
    from pulumi.runtime.settings import SETTINGS

    for name in ("outputs", "lock", "package_refs", "base_providers_by_ref"):
        assert hasattr(SETTINGS, name), name
    SETTINGS.outputs.add("left over")
    before = (SETTINGS.outputs, SETTINGS.lock)
    sdk_private.reset_runtime_settings()
    assert SETTINGS.outputs == set() and SETTINGS.outputs is not before[0]
    assert SETTINGS.lock is not before[1]


def test_sync_await_runs_a_coroutine_to_its_result():
    async def answer():
        await asyncio.sleep(0)
        return 42

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        assert sdk_private.sync_await(answer()) == 42
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_the_policy_analyzer_servicer_is_built_and_maps_levels():
    from pulumi.runtime.proto import analyzer_pb2 as proto
    from pulumi_policy import EnforcementLevel

    from cloudrun_mesh.offline import policy

    servicer = sdk_private.policy_analyzer("pack", policy.pack_module().POLICIES, EnforcementLevel.ADVISORY)
    for method in ("Analyze", "AnalyzeStack", "Configure", "GetAnalyzerInfo"):
        assert callable(getattr(servicer, method)), method
    assert sdk_private.enforcement_level_wire(servicer, EnforcementLevel.MANDATORY) == proto.MANDATORY
    assert sdk_private.enforcement_level_wire(servicer, EnforcementLevel.ADVISORY) == proto.ADVISORY


def test_a_custom_resource_can_be_initialised_with_its_own_props():
    import pulumi_kubernetes as k8s

    assert callable(k8s.apiextensions.CustomResource._internal_init)
    # The read itself is exercised by tests/test_mesh_discovery.py, which evaluates the component.

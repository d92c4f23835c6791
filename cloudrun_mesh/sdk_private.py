"""Every use of a private name of the Pulumi SDKs, in one place.

The offline engine needs a few things the SDKs do not publish: how a secret travels on the wire, the
runtime's per-evaluation settings, the synchronous await the SDK uses for its own mocks, pulumi-policy's
analyzer servicer, and a CustomResource read that declares its outputs. Each is wrapped here, and
tests/test_sdk_private.py checks each one against the installed SDKs, so an upgrade that renames or
reshapes one fails there, loudly and by name, instead of somewhere in a plan.
Versions these were checked against: see ``CHECKED_AGAINST``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

CHECKED_AGAINST = {"pulumi": "3.272.0", "pulumi-policy": "1.21.0", "pulumi-kubernetes": "4.34.2"}


def is_secret_envelope(value: Mapping[str, Any]) -> bool:
    """A deserialised property that is a secret: `{sig_key: secret_sig, "value": ...}`
    (pulumi/runtime/rpc.py `_special_sig_key`, `_special_secret_sig`)."""
    from pulumi.runtime import rpc

    return bool(value.get(rpc._special_sig_key) == rpc._special_secret_sig)


def reset_runtime_settings() -> None:
    """Give an evaluation its own pending-output set, lock and provider maps: Pulumi keeps them in
    context properties whose default object is shared by every thread that never set them
    (pulumi/runtime/settings.py `SETTINGS`)."""
    from pulumi.runtime.settings import SETTINGS

    SETTINGS.outputs = set()
    SETTINGS.lock = threading.Lock()
    SETTINGS.package_refs = {}
    SETTINGS.base_providers_by_ref = {}


def sync_await(awaitable: Awaitable[T]) -> T:
    """Run an awaitable to completion on the current event loop, as the SDK's mocks do
    (pulumi/runtime/sync_await.py `_sync_await`)."""
    from pulumi.runtime.sync_await import _sync_await

    return _sync_await(awaitable)


def policy_analyzer(pack_name: str, policies: Sequence[Any], default_level: Any) -> Any:
    """pulumi-policy's analyzer servicer, what `pulumi preview --policy-pack` talks to over gRPC
    (pulumi_policy/policy.py `_PolicyAnalyzerServicer`)."""
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    return _PolicyAnalyzerServicer(pack_name, "1.0.0", list(policies), default_level)


def enforcement_level_wire(servicer: Any, level: Any) -> Any:
    """The servicer's own mapping of an enforcement level to its protobuf value."""
    return servicer._map_enforcement_level(level)


def init_custom_resource(resource: Any, resource_name: str, *, props: Any, **kwargs: Any) -> None:
    """``CustomResource._internal_init`` with prepared props: the SDK's ``get`` declares no output
    properties, so a read that must expose ``metadata`` declares them itself
    (pulumi_kubernetes/apiextensions/CustomResource.py)."""
    resource._internal_init(resource_name, __props__=props, **kwargs)

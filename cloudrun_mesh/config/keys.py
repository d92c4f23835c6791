"""Checks on the configuration *keys* the engine hands over, before any value is read.

How the Pulumi CLI reads a stack file's keys (pulumi/pulumi at 1b5949891b3c, 2026-08-21):
``sdk/go/common/resource/config/key.go`` ``ParseKey`` splits `<namespace>:<name>` at its single colon,
with any text on either side (`cloudrun_mesh:dns` is namespace `cloudrun_mesh`: another program's
setting, silently unused by ours), accepts `<namespace>:config:<name>` as the old spelling of
`<namespace>:<name>`, and refuses any other key with two or more colons ("could not parse ... as a
configuration key"). A key without a colon is rewritten to the project's namespace before parsing
(``sdk/go/common/workspace/loaders.go`` ``stackConfigNamespacedWithProject``): `dns:` in the stack file
is `cloudrun-mesh:dns` to the CLI. So the engine never hands our program a bare key, and a typo in
the namespace is a setting nobody reads: that typo is what this module reports. A bare key can still
reach us from a tool that reads stack files itself (the offline plan): it is reported with the
namespace to write, so that every tool reads the file alike.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from cloudrun_mesh.config.model import NS, OBJECT_KEYS, TOP_LEVEL_KEYS
from cloudrun_mesh.config.problems import Problem, did_you_mean

KNOWN_NAMESPACES = (NS, "gcp", "kubernetes", "pulumi")
# gcp: keys every stack uses; the full list is read from pulumi_gcp only when another key appears.
_COMMON_GCP_KEYS = frozenset({"project", "region", "zone"})


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def close_namespace(namespace: str) -> Optional[str]:
    """The known namespace a namespace is a near miss of (`cloudrun_mesh`, `cloud-run-mesh`, `gpc`)."""
    if namespace in KNOWN_NAMESPACES:
        return None
    for known in KNOWN_NAMESPACES:
        # Same letters, or the same letters in another order (`cloudrun_mesh`, `gpc`).
        if _squash(namespace) == _squash(known) or sorted(_squash(namespace)) == sorted(_squash(known)):
            return known
    hint = did_you_mean(namespace, KNOWN_NAMESPACES, "{}", cutoff=0.75)
    return hint[len(" (did you mean "):-2] if hint else None


def _nesting_hint(key: str) -> Optional[str]:
    """For `dns.suffix` written as one top-level key: how to nest it (YAML and `pulumi config set --path`)."""
    m = re.fullmatch(r"([A-Za-z]+)(\[[0-9]+\])?\.(.+)", key)
    if not m or m.group(1) not in OBJECT_KEYS:
        return None
    obj, _index, rest = m.groups()
    item = "- " if obj in ("services", "clients") else ""
    return (f"is a nested key written as one top-level key: in the stack file write `{NS}:{obj}:` with "
            f"`{item}{rest.split('.')[0]}: ...` indented below it, or run "
            f"`pulumi config set --path '{NS}:{key}' <value>`")


def normalise(full_key: str) -> str:
    """`<ns>:config:<name>`, the CLI's old spelling, as `<ns>:<name>` (key.go accepts both)."""
    parts = full_key.split(":")
    if len(parts) == 3 and parts[1] == "config":
        return f"{parts[0]}:{parts[2]}"
    return full_key


def check_keys(keys: Iterable[str]) -> list[Problem]:
    """Problems with the keys themselves: namespace typos, bare keys, unknown keys of ours and of gcp."""
    problems: list[Problem] = []
    for full in keys:
        if ":" not in full:
            target = f"{NS}:{full}"
            problems.append(Problem(full, f"has no namespace: write `{target}` (the Pulumi CLI reads a bare key as "
                                    f"`{target}`; other tools do not)"))
            continue
        if full.count(":") > 1:
            problems.append(Problem(full, "is not a configuration key the Pulumi CLI accepts: a key is "
                                    "`<namespace>:<name>` with one colon"))
            continue
        namespace, name = full.split(":", 1)
        if namespace == NS:
            if name not in TOP_LEVEL_KEYS:
                nested = _nesting_hint(name)
                problems.append(Problem(full, nested or (
                    f"is not a known key{did_you_mean(name, TOP_LEVEL_KEYS, '`' + NS + ':{}`')}; known keys are "
                    + ", ".join(f"{NS}:{t}" for t in TOP_LEVEL_KEYS))))
            continue
        if namespace == "gcp":
            if name not in _COMMON_GCP_KEYS and name not in gcp_keys():
                problems.append(Problem(full, "is not one of the Google Cloud provider's settings (pulumi_gcp/config/vars.py)"
                                        + did_you_mean(name, gcp_keys(), "`gcp:{}`")))
            continue
        known = close_namespace(namespace)
        if known is not None:
            problems.append(Problem(full, f"has the namespace `{namespace}`, which nothing here reads (did you mean "
                                    f"`{known}:{name}`?): the Pulumi CLI keeps it as a setting of a program or provider "
                                    f"named `{namespace}`, and the value would silently not apply"))
    return problems


@functools.cache
def gcp_keys() -> frozenset[str]:
    """The provider's config keys, as pulumi_gcp declares them (`pulumi_gcp/config/vars.py`: one
    `__config__.get...('<key>')` per setting); read from the installed SDK's source, not imported."""
    import importlib.util

    spec = importlib.util.find_spec("pulumi_gcp")
    if spec is None or not spec.submodule_search_locations:
        return _COMMON_GCP_KEYS
    path = Path(list(spec.submodule_search_locations)[0]) / "config" / "vars.py"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return _COMMON_GCP_KEYS
    return frozenset(re.findall(r"__config__\.get(?:_bool|_int|_float|_object)?\('([A-Za-z0-9]+)'", text)) | _COMMON_GCP_KEYS

"""Names the components derive from configuration: URN-safe IAM member names and mesh names.

They sit beside the components that use them; the config module imports them to validate the same
shapes it hands over, so a value the config accepts is one the components can name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Optional

# The ControlPlaneRevision that managed Cloud Service Mesh creates in istio-system for each release
# channel (the cluster's GKE channel when the mesh was provisioned; no channel means regular):
# https://cloud.google.com/service-mesh/docs/managed/select-a-release-channel
CHANNEL_REVISIONS = {"regular": "asm-managed", "rapid": "asm-managed-rapid", "stable": "asm-managed-stable"}

PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
PROJECT_NUMBER = re.compile(r"[0-9]{1,20}")
MESH_ID = re.compile(r"[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?")
MESH_NAME = re.compile(r"projects/([^/]+)/locations/global/meshes/([^/]+)")


def expand_mesh_name(value: str, default_project: Optional[str]) -> Optional[str]:
    """A full mesh name from a full name or a bare id, or None when the shape is wrong.

    Shared by config parsing and by discovery, which reads the same shapes from the cluster.
    """
    m = MESH_NAME.fullmatch(value)
    if m:
        project, mesh = m.groups()
        if not (PROJECT_ID.fullmatch(project) or PROJECT_NUMBER.fullmatch(project)) or not MESH_ID.fullmatch(mesh):
            return None
        return value
    if MESH_ID.fullmatch(value) and default_project:
        return f"projects/{default_project}/locations/global/meshes/{value}"
    return None


def mesh_project_of(mesh_name: str) -> str:
    m = MESH_NAME.fullmatch(mesh_name)
    if not m:
        raise ValueError(f"not a full mesh name: {mesh_name!r}")
    return m.group(1)


def member_slug(member: str) -> str:
    """A readable, URN-safe form of an IAM member, used in resource names."""
    return re.sub(r"[^a-z0-9]+", "-", member.lower()).strip("-")


def member_names(members: Sequence[str]) -> dict[str, str]:
    """A distinct, URN-safe name for each distinct member.

    The slug is readable but not one-to-one (``user:a.b@x.com`` and ``user:a-b@x.com`` share one),
    so a member whose slug an earlier member of the list already has gets a short digest of its
    exact text appended. The first holder keeps the plain slug: appending a member never renames
    an existing binding (a new name is a new URN, and deleting the old binding would revoke the
    member's access), and stacks whose members never collided keep every URN.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for member in members:
        if member in names:
            continue
        slug = member_slug(member)
        digest = hashlib.sha256(member.encode()).hexdigest()
        # A suffixed name can itself be an earlier member's slug (`user:a-b@x.com.<digest>`): a longer
        # digest then, and a counter past the full one, so two distinct members never share a name.
        candidates = [slug] + [f"{slug}-{digest[:n]}" for n in (8, 16, 64)]
        name = next((c for c in candidates if c not in taken), None)
        counter = 2
        while name is None or name in taken:
            name, counter = f"{slug}-{digest}-{counter}", counter + 1
        taken.add(name)
        names[member] = name
    return names

"""What `pulumi up` would do to a stack deployed from a base plan, computed offline from two plans.

Each resource is matched by URN (or by an alias, or by type and name when its URN changed), its
inputs compared field by field, and the provider's own replacement rules
(``cloudrun_mesh.offline.replacements``) decide between an in-place update and a replacement. Deletions and
replacements come first, and those `pulumi up` will refuse (protected resources, Cloud Run deletion
protection) say so, with what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

from cloudrun_mesh.offline import harness, replacements
from cloudrun_mesh.offline.display import scalar
from cloudrun_mesh.text import terminal

DELETE, REPLACE, CREATE, IMPORT, UPDATE, MOVE, READ, FORGET = (
    "delete", "replace", "create", "import", "update", "move", "read", "forget",
)
# Display order: destruction first.
ORDER = (DELETE, REPLACE, IMPORT, CREATE, UPDATE, MOVE, READ, FORGET)
SYMBOL = {DELETE: "-", REPLACE: "+-", CREATE: "+", IMPORT: "=", UPDATE: "~", MOVE: "~>", READ: ">", FORGET: "<"}
DESTRUCTIVE = (DELETE, REPLACE)
FAIL_ON_CHOICES = (DELETE, REPLACE, UPDATE, CREATE, IMPORT, "refused")
RUN_SERVICE = "gcp:cloudrunv2/service:Service"
# Options of a registration that change what the engine stores, compared besides the inputs.
_OPTIONS = ("protect", "deleteBeforeReplace", "retainOnDelete", "replaceOnChanges", "ignoreChanges")
# The value an adopted (or otherwise ignored) field has in the cloud is not in any plan: what the
# reviewer approves is the program's value that replaces it.
LIVE_VALUE = "<the live value, kept until now by ignoreChanges>"


def short(urn: str) -> str:
    """`<type>::<name>` without the stack, project and parent types, for humans."""
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]}::{parts[3]}" if len(parts) >= 4 else urn


def name_of(urn: str) -> str:
    return urn.split("::")[-1]


def provider_urn(reference: str) -> str:
    """Provider references are `<urn>::<id>`."""
    return reference.rsplit("::", 1)[0] if reference else ""


@dataclass
class FieldChange:
    path: str
    old: Any
    new: Any
    forces: bool = False
    via: str = ""
    """A value unknown offline that changes because this resource it comes from is replaced."""
    note: str = ""
    """What else a reviewer must know of this change (printed in parentheses after it)."""


@dataclass
class Change:
    action: str
    urn: str
    type: str
    old_urn: Optional[str] = None
    fields: list[FieldChange] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    """Why the resource is replaced, besides its fields (URN changed, provider replaced)."""
    refused: list[str] = field(default_factory=list)
    """Why `pulumi up` will refuse this change, each with what to do."""
    import_id: Optional[str] = None

    @property
    def destructive(self) -> bool:
        return self.action in DESTRUCTIVE


@dataclass
class PlanDiff:
    changes: list[Change]
    outputs: list[FieldChange]
    warnings: list[str]
    _index: Optional[dict[str, Change]] = field(default=None, repr=False, compare=False)
    _indexed: int = field(default=-1, repr=False, compare=False)

    def of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    @property
    def refused(self) -> list[Change]:
        return [c for c in self.changes if c.refused]

    @property
    def empty(self) -> bool:
        return not any(c.action not in (READ,) for c in self.changes) and not self.outputs

    def state_of(self, urn: str) -> Optional[str]:
        """The action on a resource by its new or old URN; one lookup (an index built once), so that
        pictures and tables of a large base stay linear."""
        if self._index is None or self._indexed != len(self.changes):
            index: dict[str, Change] = {}
            for c in self.changes:
                index.setdefault(c.urn, c)
                if c.old_urn:
                    index.setdefault(c.old_urn, c)
            self._index, self._indexed = index, len(self.changes)
        found = self._index.get(urn)
        return found.action if found is not None else None

    def change_of(self, urn: str) -> Optional[Change]:
        self.state_of(urn)
        return (self._index or {}).get(urn)

    def tripped(self, fail_on: Iterable[str]) -> list[str]:
        """The --fail-on categories present in this diff."""
        found = []
        for category in fail_on:
            present = bool(self.refused) if category == "refused" else bool(self.of(category))
            if present:
                found.append(category)
        return found


# --------------------------------------------------------------------------------------------
# Field-level comparison
# --------------------------------------------------------------------------------------------


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """`a.b[0].c` -> value for every scalar (and empty container) in ``value``."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            out.update(leaves(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


_ABSENT = object()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def field_changes(old: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = ()) -> list[FieldChange]:
    o, n = leaves(old or {}), leaves(new or {})
    ignored = [p for p in ignore if p]
    out = []
    for path in sorted(set(o) | set(n)):
        a, b = o.get(path, _ABSENT), n.get(path, _ABSENT)
        if a == b or any(replacements._within(path, p) for p in ignored):
            continue
        out.append(FieldChange(path, None if a is _ABSENT else a, None if b is _ABSENT else b))
    return out


def show(value: Any) -> str:
    """A value for a diff line, whole (never cut: a reviewer approves what is shown): markers bare,
    absent as `<null>` as the CLI writes it, everything else as JSON, control characters visible."""
    return LIVE_VALUE if value == LIVE_VALUE else scalar(value)


def show_change(old: Any, new: Any) -> str:
    """`old => new` in the CLI's notation (object_diff.go printPropertyValueDiff), both whole."""
    return f"{show(old)} => {show(new)}"


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------


def _refusals(action: str, old: dict[str, Any], new: Optional[dict[str, Any]]) -> list[str]:
    urn = old["urn"]
    out = []
    # pulumi/pulumi pkg/resource/deploy/step.go (DeleteStep.Apply): a resource protected in the
    # state is never deleted; step_generator.go: a replacement is refused while the old state and
    # the new goal are both protected (unprotecting and replacing in one update is allowed).
    if action == DELETE and old.get("protect"):
        out.append(f"refused by pulumi up: the resource is protected. If intended: `pulumi state unprotect '{urn}'`, "
                   "then `pulumi up`.")
    if action == REPLACE and old.get("protect") and (new or {}).get("protect"):
        out.append(f"refused by pulumi up: replacing deletes a protected resource. If intended: `pulumi state unprotect "
                   f"'{urn}'` (or one `pulumi up` with `cloudrun-mesh:protect: false`), then `pulumi up`.")
    # magic-modules templates/terraform/pre_delete/cloudrunv2_service_deletion_policy.go.tmpl: the
    # provider refuses to delete a service whose state has deletion_protection=true.
    # The old state's flag is what counts, so turning it off in the same update as the change does
    # not help: it takes an update of its own first.
    if action in DESTRUCTIVE and old["type"] == RUN_SERVICE and (old.get("inputs") or {}).get("deletionProtection"):
        out.append("refused by the Google provider: the Cloud Run service has deletion protection. If intended: first "
                   "one `pulumi up` without this change but with `cloudrun-mesh:protect: false` (deletionProtection "
                   "off in the state), then this change.")
    return out


# --------------------------------------------------------------------------------------------
# The diff
# --------------------------------------------------------------------------------------------


def _warnings(base: dict[str, Any], head: dict[str, Any]) -> list[str]:
    out = []
    for key, what in (("stack", "stack"), ("project", "Pulumi project"), ("gcpProject", "Google Cloud project")):
        b, h = base.get(key), head.get(key)
        if b is not None and h is not None and b != h:
            out.append(
                f"The base plan is of {what} {b!r}, this one of {h!r}: every difference between the two shows as a "
                f"change. Compare plans of the same {what} to review a change."
            )
    if base.get("format") != head.get("format"):
        out.append(f"The base plan was written in plan format {base.get('format')!r}, this one in {head.get('format')!r}: "
                   "fields one of them lacks show as changes.")
    return out


def _pair(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[FieldChange], list[str]]:
    """Field changes of a resource present in both plans, and the fields that force its replacement."""
    ignore = new.get("ignoreChanges") or []
    changes = field_changes(old.get("inputs") or {}, new.get("inputs") or {}, ignore)
    rule = replacements.rule_for(new["type"])
    forcing = set(rule.forcing([c.path for c in changes])) if rule else set()
    # The replaceOnChanges option forces a replacement on its paths too (Pulumi resource option).
    forcing |= set(replacements.Rule(forces=tuple(new.get("replaceOnChanges") or ())).forcing([c.path for c in changes]))
    for c in changes:
        c.forces = c.path in forcing
    # ignoreChanges lifted (adopt turned off, an option removed): `pulumi up` now applies the
    # program's value of every field under the lifted paths, whatever the live object holds. Those
    # fields are what a reviewer approves, not the option itself.
    lifted = [p for p in (old.get("ignoreChanges") or []) if p and not any(replacements._within(p, q) for q in ignore if q)]
    applied = False
    if lifted:
        seen = {c.path for c in changes}
        for path, value in sorted(leaves(new.get("inputs") or {}).items()):
            if path not in seen and any(replacements._within(path, p) for p in lifted):
                # The live value is not known: a field the provider cannot change in place replaces the
                # object only if the live value differs, which only `pulumi preview` can tell.
                forcing_field = bool(rule and rule.forcing([path]))
                changes.append(FieldChange(path, LIVE_VALUE, value, note=(
                    "replaces the object if the live value differs" if forcing_field else "")))
                applied = True
    for key in _OPTIONS:
        if key == "ignoreChanges" and applied:
            continue
        if old.get(key) != new.get(key):
            changes.append(FieldChange(f"({key})", old.get(key), new.get(key)))
    old_provider, new_provider = provider_urn(old.get("provider", "")), provider_urn(new.get("provider", ""))
    if old_provider != new_provider:
        changes.append(FieldChange("(provider)", name_of(old_provider) or "default", name_of(new_provider) or "default"))
    return changes, sorted(forcing)


def _cascade(changes: list[Change], by_new: dict[str, Change], old: dict[str, Any], new: dict[str, Any]) -> None:
    """Inputs unknown offline that come from a replaced resource change with it.

    A new service account has a new email, a new reservation a new address: where an input is
    `<known after deploy>` on both sides and flows from a resource being replaced, the equal markers
    hide a change, as ``pulumi preview`` would show it. Repeated until nothing more is replaced.
    """
    while True:
        replaced = {c.urn for c in changes if c.action == REPLACE}
        grew = False
        for urn, n in sorted(new.items()):
            c = by_new.get(urn)
            o = old.get(c.old_urn or urn) if c is not None else old.get(urn)
            if o is None or n.get("read"):
                continue
            rule = replacements.rule_for(n["type"])
            for prop, sources in sorted((n.get("propertyDependencies") or {}).items()):
                value = (n.get("inputs") or {}).get(prop)
                hit = sorted(set(sources) & replaced)
                if not hit or harness.UNKNOWN not in json.dumps(value) or (c and any(f.path == prop for f in c.fields)):
                    continue
                if c is None:
                    c = by_new[urn] = Change(UPDATE, urn, n["type"])
                    changes.append(c)
                forces = bool(rule and rule.forcing([prop]))
                via = ", ".join(name_of(h) for h in hit)
                c.fields.append(FieldChange(prop, (o.get("inputs") or {}).get(prop), value, forces, via))
                if forces and c.action != REPLACE:
                    c.action = REPLACE
                    grew = True
        if not grew:
            return


def diff_plans(base: dict[str, Any], head: dict[str, Any]) -> PlanDiff:
    old = {r["urn"]: r for r in base.get("resources", [])}
    new = {r["urn"]: r for r in head.get("resources", [])}
    removed = [u for u in sorted(old) if u not in new]
    added = [u for u in sorted(new) if u not in old]

    # Resources whose URN changed: by alias (moved, no replacement), else same type and same name
    # or same inputs (a rename without an alias: the engine sees a delete and a create).
    moved: dict[str, tuple[str, bool]] = {}  # new URN -> (old URN, aliased)
    # Indexes of what was removed, so that matching stays linear in both plans (a base of tens of
    # thousands of resources is compared in one pass).
    removed_set = set(removed)
    by_type_name: dict[tuple[str, str], list[str]] = {}
    by_type_inputs: dict[tuple[str, str], list[str]] = {}
    for o in removed:
        by_type_name.setdefault((old[o]["type"], name_of(o)), []).append(o)
        by_type_inputs.setdefault((old[o]["type"], _canonical(old[o].get("inputs"))), []).append(o)

    def first_left(candidates: list[str]) -> Optional[str]:
        return next((o for o in candidates if o in removed_set), None)

    for urn in list(added):
        n = new[urn]
        aliased = next((o for o in (n.get("aliases") or []) if o in removed_set), None)
        # Equal inputs identify a resource only when they are all known.
        known = bool(n.get("inputs")) and not any(harness.is_marker(v) for v in leaves(n["inputs"]).values())
        match = aliased or first_left(by_type_name.get((n["type"], name_of(urn)), [])) or (
            first_left(by_type_inputs.get((n["type"], _canonical(n.get("inputs"))), [])) if known else None)
        if match is not None:
            removed_set.discard(match)
            moved[urn] = (match, aliased is not None)
    removed = [u for u in removed if u in removed_set]
    added = [u for u in added if u not in moved]

    pairs = [(u, u, False) for u in sorted(set(old) & set(new))] + [(o, u, a) for u, (o, a) in moved.items()]
    changes: list[Change] = []
    by_new: dict[str, Change] = {}
    for old_urn, urn, aliased in pairs:
        o, n = old[old_urn], new[urn]
        if n.get("read"):
            continue  # a read is looked up at every deploy, whatever changed
        fields, forcing = _pair(o, n)
        reasons = []
        if old_urn != urn and not aliased:
            reasons.append("its URN changes and no alias names the old one (add `aliases` to keep it)")
        if forcing or reasons:
            action = REPLACE
        elif old_urn != urn:
            action = MOVE
        elif fields:
            action = UPDATE
        else:
            continue
        c = Change(action, urn, n["type"], old_urn if old_urn != urn else None, fields, reasons)
        changes.append(c)
        by_new[urn] = c

    # A replaced provider replaces everything it manages (a different cluster).
    replaced_providers = {c.urn for c in changes if c.action == REPLACE and c.type.startswith("pulumi:providers:")}
    for urn, n in sorted(new.items()):
        p = provider_urn(n.get("provider", ""))
        if p in replaced_providers and not n.get("read") and urn not in added:
            managed = by_new.get(urn)
            if managed is None:
                managed = Change(REPLACE, urn, n["type"])
                changes.append(managed)
                by_new[urn] = managed
            managed.action = REPLACE
            managed.reasons.append(f"its provider {name_of(p)} is replaced (a different cluster)")

    _cascade(changes, by_new, old, new)

    for urn in removed:
        o = old[urn]
        if o.get("read"):
            changes.append(Change(FORGET, urn, o["type"], reasons=["a read: nothing is deleted"]))
        elif o.get("retainOnDelete"):
            # The retainOnDelete option: the engine drops it from the state and leaves the object.
            changes.append(Change(FORGET, urn, o["type"], reasons=["retainOnDelete: the object is left in place"]))
        else:
            changes.append(Change(DELETE, urn, o["type"]))
    for urn in added:
        n = new[urn]
        action = READ if n.get("read") else IMPORT if n.get("importId") else CREATE
        changes.append(Change(action, urn, n["type"], import_id=n.get("importId")))

    for c in changes:
        o = old.get(c.old_urn or c.urn)
        if o is None or o.get("read"):
            continue
        if c.action == REPLACE and o.get("retainOnDelete"):
            c.reasons.append("retainOnDelete: the old object is left in place, not deleted")
        if c.action in DESTRUCTIVE or c.action == FORGET:
            c.refused = _refusals(DELETE if c.action == FORGET else c.action, o, new.get(c.urn))
            if o.get("retainOnDelete"):
                # The engine still refuses a protected resource; the provider is never asked to delete.
                c.refused = [r for r in c.refused if r.startswith("refused by pulumi up")]

    rank = {a: i for i, a in enumerate(ORDER)}
    changes.sort(key=lambda c: (rank[c.action], c.urn))
    bo, ho = base.get("outputs") or {}, head.get("outputs") or {}
    outputs = [FieldChange(k, bo.get(k), ho.get(k)) for k in sorted(set(bo) | set(ho)) if bo.get(k) != ho.get(k)]
    return PlanDiff(changes, outputs, _warnings(base, head))


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def summary(d: PlanDiff) -> str:
    """One line for messages (--fail-on): the counts of each kind of change."""
    counts = [f"{len(d.of(a))} to {a}" for a in (DELETE, REPLACE, IMPORT, CREATE, UPDATE) if d.of(a)]
    refused = f"; pulumi up will refuse {len(d.refused)} of them" if d.refused else ""
    return (", ".join(counts) or "no changes") + refused


def field_line(f: FieldChange) -> str:
    """One property change in the CLI's notation: `+ path: new`, `- path: old`, `~ path: old => new`;
    values whole. A field that forces a replacement says so, as the provider's ForceNew does."""
    if f.old is None and f.new is not None:
        line = f"+ {terminal(f.path)}: {show(f.new)}"
    elif f.new is None and f.old is not None:
        line = f"- {terminal(f.path)}: {show(f.old)}"
    else:
        line = f"~ {terminal(f.path)}: {show_change(f.old, f.new)}"
    if f.via:
        line += f" (a new value from {terminal(f.via)}, which is replaced)"
    if f.note:
        line += f" ({f.note})"
    if f.forces:
        line += " [forces replacement]"
    return line


def notes(c: Change) -> list[str]:
    """Why a resource is replaced besides its fields, the provider's note, and why `pulumi up` refuses,
    as bracketed pseudo-properties like the CLI's `[id=...]`."""
    lines = []
    for reason in c.reasons:
        lead = "replaced because " if c.action == REPLACE and not reason.startswith(("retain", "a read")) else ""
        lines.append(f"[{lead}{terminal(reason)}]")
    rule = replacements.rule_for(c.type)
    retained = any(r.startswith("retainOnDelete") for r in c.reasons)
    note = rule.note_for(c.action == REPLACE) if c.destructive and not retained and rule is not None else ""
    if note:
        lines.append(f"[note: {note}]")
    lines += [f"[{terminal(r)}]" for r in c.refused]
    return lines


def change_lines(c: Change) -> list[str]:
    """A change's property lines and notes, plain (the printout indents and colours them)."""
    return [field_line(f) for f in c.fields] + notes(c)

"""The Markdown report of an offline plan: summary, what is destroyed, the diff, a Mermaid picture.

GitHub renders ```` ```mermaid ```` blocks in job summaries, pull-request comments and files. Its
renderer refuses diagrams past a text size and edge count (mermaid's ``maxTextSize`` 50,000 and
``maxEdges`` 500 defaults), and hundreds of boxes are unreadable anyway, so the picture keeps every
changed resource and folds what did not change: a component whose resources all share one state
becomes one node, and past ``MAX_NODES`` the remaining nodes are left out with a note saying how
many.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, Optional

from cloudrun_mesh import text
from cloudrun_mesh.offline import display, fakes, graph, harness
from cloudrun_mesh.offline.plan_diff import (
    CREATE,
    DELETE,
    FORGET,
    IMPORT,
    MOVE,
    READ,
    REPLACE,
    SYMBOL,
    UPDATE,
    PlanDiff,
    field_line,
    name_of,
    notes,
    show_change,
)

UNCHANGED = "unchanged"
MAX_NODES = 120
MAX_EDGES = 400
DEFAULT_BASE_LABEL = "the base plan"
STYLE = {
    CREATE: "fill:#dafbe1,stroke:#1a7f37,color:#0d1117",
    IMPORT: "fill:#ddf4ff,stroke:#0969da,color:#0d1117",
    UPDATE: "fill:#fff8c5,stroke:#9a6700,color:#0d1117",
    REPLACE: "fill:#ffebe9,stroke:#cf222e,stroke-width:3px,color:#0d1117",
    DELETE: "fill:#ffebe9,stroke:#cf222e,stroke-dasharray:5 5,color:#0d1117",
    MOVE: "fill:#fff8c5,stroke:#9a6700,color:#0d1117",
    READ: "fill:#f6f8fa,stroke:#8c959f,stroke-dasharray:2 2,color:#0d1117",
    UNCHANGED: "fill:#f6f8fa,stroke:#d0d7de,color:#57606a",
}


def _label(value: str) -> str:
    """A quoted Mermaid label: every character outside a small safe set as Mermaid's entity code."""
    return text.mermaid_label(value)


# The first character of a line in a ```diff block decides its colour on GitHub, which highlights
# them with the TextMate diff grammar (textmate/diff.tmbundle Syntaxes/Diff.plist at 64a104e3:
# `+` and `>` markup.inserted, green; `-` and `<` markup.deleted, red; `!` markup.changed, orange;
# `---`, `+++`, `***` and `@@` headers). A replacement destroys the old resource: red like a delete,
# never green. An update is orange. Every other line starts with a space: no colour, and a value can
# never choose its own.
MARK = {CREATE: "+", IMPORT: "+", UPDATE: "!", MOVE: " ", REPLACE: "-", DELETE: "-", READ: " ", FORGET: " "}
SUMMARY_MARK = {display.CREATE: "+", display.IMPORT: "+", display.UPDATE: "!", display.REPLACE: "-",
                display.DELETE: "-"}


def fence(lines: Sequence[str], info: str = "") -> list[str]:
    """A fenced code block that nothing inside can close: the fence is longer than any run of
    backticks in the content (CommonMark 4.5, https://spec.commonmark.org/0.31.2/#fenced-code-blocks)."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    mark = "`" * max(3, longest + 1)
    return [f"{mark}{info}", *lines, mark]


def _state(urn: str, resource: dict[str, Any], diff: Optional[PlanDiff]) -> str:
    if resource.get("read"):
        return READ
    if diff is None:
        return IMPORT if resource.get("importId") else CREATE
    state = diff.state_of(urn)
    if state == FORGET:
        return READ
    return state or UNCHANGED


def mermaid(plan: dict[str, Any], diff: Optional[PlanDiff] = None, base: Optional[dict[str, Any]] = None) -> tuple[list[str], list[str]]:
    """The flowchart lines, and notes about what was folded or left out."""
    resources = {r["urn"]: r for r in plan["resources"]}
    # Deleted resources are drawn from the base plan, in their old component (and the components
    # that held them, so that they are drawn inside them).
    if diff is not None and base is not None:
        old = {r["urn"]: r for r in base.get("resources", [])}
        for c in diff.of(DELETE):
            resources.setdefault(c.urn, old[c.urn])
            parent = old[c.urn].get("parent", "")
            if parent in old and not old[parent].get("custom", True):
                resources.setdefault(parent, old[parent])
    components = {u: r for u, r in resources.items() if not r["custom"]}
    nodes = {u: r for u, r in resources.items() if r["custom"]}
    state = {u: _state(u, r, diff) for u, r in nodes.items()}

    def group(urn: str) -> str:
        parent = resources[urn].get("parent", "")
        return parent if parent in components else ""

    members: dict[str, list[str]] = {}
    for u in sorted(nodes):
        members.setdefault(group(u), []).append(u)

    # Fold: one node for a component whose resources share a state, until the picture fits.
    folded: dict[str, str] = {}  # resource URN -> the URN of the component node standing for it
    notes: list[str] = []
    if len(nodes) > MAX_NODES:
        # With a base, only what does not change is folded: every change stays its own node.
        foldable = {UNCHANGED, READ} if diff is not None else set(STYLE)
        for comp, urns in sorted(members.items(), key=lambda kv: -len(kv[1])):
            if comp and len({state[u] for u in urns}) == 1 and len(urns) > 1 and state[urns[0]] in foldable:
                for u in urns:
                    folded[u] = comp
        if folded:
            notes.append(f"{len(folded)} resources of components whose resources all share one state"
                         f"{' (unchanged)' if diff is not None else ''} are drawn as one node per component.")
    # Units to draw: a resource, or a folded component. Changes first when not all fit.
    units: list[tuple[str, tuple[str, ...]]] = []  # (group, member URNs)
    for comp, urns in members.items():
        if urns and urns[0] in folded:
            units.append((comp, tuple(urns)))
        else:
            units += [(comp, (u,)) for u in urns]
    quiet = (UNCHANGED, READ)
    units.sort(key=lambda unit: (state[unit[1][0]] in quiet, unit[0], unit[1][0]))
    drawn, skipped = units[:MAX_NODES], units[MAX_NODES:]
    if skipped:
        count = sum(len(urns) for _, urns in skipped)
        notes.append(f"{count} resources are not drawn (the picture is capped at {MAX_NODES} nodes, unchanged "
                     "ones left out first); the list of changes is complete.")

    shown_ids: dict[str, str] = {}
    by_group: dict[str, list[str]] = {}
    for count, (comp, unit_urns) in enumerate(sorted(drawn, key=lambda unit: (unit[0] != "", unit[0], unit[1][0]))):
        nid = f"n{count}"
        s = state[unit_urns[0]]
        if len(unit_urns) > 1:
            label = _label(f"{len(unit_urns)} resources, {s}")
        else:
            kind = nodes[unit_urns[0]]["type"].split(":")[-1]
            label = f'{_label(f"{SYMBOL.get(s, chr(32))} {kind}".strip())}<br/>{_label(name_of(unit_urns[0]))}'
        by_group.setdefault(comp, []).append(f'{nid}["{label}"]:::{s}')
        for u in unit_urns:
            shown_ids[u] = nid
    lines = ["flowchart LR"]
    lines += [f"  classDef {s} {style}" for s, style in STYLE.items()]
    for i, (comp, body) in enumerate(sorted(by_group.items(), key=lambda kv: (kv[0] != "", kv[0]))):
        if comp:
            c = components[comp]
            lines.append(f'  subgraph c{i}["{_label(c["type"].split(":")[-1] + " " + c["name"])}"]')
            lines += [f"    {node}" for node in body]
            lines.append("  end")
        else:
            lines += [f"  {node}" for node in body]

    edges: set[tuple[str, str]] = set()
    regs = [
        SimpleNamespace(urn=r["urn"], type=r["type"], parent=r.get("parent", ""), custom=r["custom"],
                        dependencies=r.get("dependencies") or [], property_dependencies=r.get("propertyDependencies") or {},
                        provider=r.get("provider", ""))
        for r in resources.values()
    ]
    for urn, deps in graph.dependency_graph(regs).items():
        for dep in deps:
            a, b = shown_ids.get(dep), shown_ids.get(urn)
            if a and b and a != b:
                edges.add((a, b))
    ordered = sorted(edges, key=lambda e: (int(e[0][1:]), int(e[1][1:])))
    if len(ordered) > MAX_EDGES:
        notes.append(f"{len(ordered) - MAX_EDGES} dependency edges are not drawn (capped at {MAX_EDGES}).")
        ordered = ordered[:MAX_EDGES]
    lines += [f"  {a} --> {b}" for a, b in ordered]
    return lines, notes


def summary_block(plan: dict[str, Any], diff: Optional[PlanDiff], base: Optional[dict[str, Any]]) -> list[str]:
    """The `Resources:` summary as `pulumi preview` ends with it, its lines coloured by GitHub's diff
    highlighting (MARK)."""
    from cloudrun_mesh.offline.plan import build_rows

    _root, rows = build_rows(plan, diff, base)
    counts = display.counts_of(rows)
    lines = ["Resources:"]
    kinds = total = 0
    for op in display.STEP_OPS:
        if op in display.NOT_CHANGES or not counts.get(op) or op not in SUMMARY_MARK:
            continue
        kinds += 1
        total += counts[op]
        lines.append(f"{SUMMARY_MARK[op]} {counts[op]} to {op}")
    pieces = ([f"{total} {'change' if total == 1 else 'changes'}"] if kinds >= 2 else []) + (
        [f"{counts[display.SAME]} unchanged"] if counts.get(display.SAME) else [])
    if pieces:
        lines.append("  " + ". ".join(pieces))
    return fence(lines, "diff")


def change_block(diff: PlanDiff) -> list[str]:
    """Every change: a header line marked by its operation, its field changes and notes as context."""
    out: list[str] = []
    for c in diff.changes:
        if c.action == READ:
            continue
        head = f"{MARK[c.action]} {text.terminal(c.type)}: ({c.action}) {text.terminal(name_of(c.urn))}"
        if c.old_urn:
            head += f" [was {text.terminal(name_of(c.old_urn))}]"
        if c.import_id:
            head += f" [id={text.terminal(c.import_id)}]"
        out.append(head)
        out += [f"      {field_line(f)}" for f in c.fields]
        out += [f"      {n}" for n in notes(c)]
    for f in diff.outputs:
        out.append(f"! output {text.terminal(f.path)}: {show_change(f.old, f.new)}")
    return fence(out, "diff")


def markdown(plan: dict[str, Any], diff: Optional[PlanDiff] = None, base: Optional[dict[str, Any]] = None,
             base_label: str = DEFAULT_BASE_LABEL, plan_lines: Optional[list[str]] = None) -> str:
    """The report. Every value from a stack file or a base plan is escaped for GitHub-flavoured Markdown
    (text.markdown, text.code_span) or sits in a fenced block it cannot close."""
    out = [f"### cloudrun-mesh offline plan: {text.code_span(plan['stack'])}", ""]
    if diff is not None:
        out[0] += f", compared with {text.markdown(base_label)}"
    out += summary_block(plan, diff, base) + [""]
    if diff is not None:
        out += [f"> [!WARNING]\n> {text.markdown(w)}\n" for w in diff.warnings]
        destroyed = [c for c in diff.changes if c.destructive]
        if destroyed:
            out += ["#### Deleted or replaced", ""]
            for c in destroyed:
                out.append(f"- **{c.action}** {text.code_span(name_of(c.urn))} ({text.markdown(c.type)})"
                           + "".join(f"\n  - forced by {text.code_span(f.path)}: {text.code_span(show_change(f.old, f.new))}"
                                     + (f" (a new value from {text.code_span(f.via)}, which is replaced)" if f.via else "")
                                     for f in c.fields if f.forces)
                           + "".join(f"\n  - {text.markdown(r)}" for r in c.reasons)
                           + "".join(f"\n  - :no_entry: {text.markdown(r)}" for r in c.refused))
            out.append("")
        if not diff.empty:
            out += ["<details open><summary>Every change</summary>", "", *change_block(diff), "", "</details>", ""]
    unknown = ", ".join(text.code_span(m) for m in (harness.UNKNOWN, "<read from … at deploy>", fakes.PROJECT_AT_DEPLOY))
    out += [f"{plan['summary']['resources']} resources, critical path {plan['summary']['criticalPath']}. "
            f"Values shown as {unknown} are not known offline.", ""]
    chart, chart_notes = mermaid(plan, diff, base)
    legend = "create, import, update, replace (thick red), delete (dashed red), read (dotted), unchanged (grey)"
    if diff is None:
        legend = "no base plan to compare with, so every resource is drawn as created (or imported, or read)"
    out += ["#### Picture of the change" if diff is not None else "#### Resources", "",
            f"Components are boxes; arrows run from a resource to what waits for it. States: {legend}.", ""]
    out += [f"_{n}_" for n in chart_notes] + ([""] if chart_notes else [])
    out += ["```mermaid", *chart, "```", ""]
    if plan_lines is not None:
        plain = [display.strip(line) for line in plan_lines]
        out += ["<details><summary>Full plan</summary>", "", *fence(plain), "", "</details>", ""]
    return "\n".join(out)

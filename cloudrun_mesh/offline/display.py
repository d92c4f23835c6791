"""The offline plan printed the way `pulumi preview` prints: the same table, prefixes, colours and summary.

Layout and vocabulary follow the Pulumi CLI's display code (pulumi/pulumi at commit
1b5949891b3cefcb9974752b24a5ecef0acc86c8):

- pkg/backend/apply.go ``ActionLabel``: the header "Previewing update (<stack>)".
- pkg/backend/display/rows.go ``headerRowData.ColorizedColumns``: the columns "", Type, Name, Plan, Info;
  ``resourceRowData.ColorizedColumns``: the type as ``tokens.Type.DisplayName`` (sdk/go/common/tokens/tokens.go:
  ``gcp:dns/managedZone:ManagedZone`` shows as ``gcp:dns:ManagedZone`` when the module's last segment is the
  camel-cased type name); ``getDiffInfo``/``writeShortDiff``: the Info column's ``[diff: ~a,b]``.
- pkg/backend/display/progress.go ``addIndentations``: the tree glyphs ``├─ ``, ``└─ ``, ``│  ``;
  ``getPreviewDoneText``: the Plan column's words; ``printOutputs``: "Outputs:".
- pkg/backend/display/tableutil.go ``renderRow``/``messagePadding``: one leading space, columns padded to
  their widest cell plus two spaces; ``columnHeader``: headers underlined, bright blue.
- pkg/backend/display/diff.go ``renderSummaryEvent``: "Resources:", one line per operation in
  ``deploy.StepOps`` order (``+ 14 to create``), reads and sames not counted as changes, then
  "N changes. M unchanged" when more than one kind of change.
- pkg/backend/display/object_diff.go ``getResourcePropertiesSummary``/``printObject``/``printPropertyValueDiff``:
  the ``--diff`` details (``+ type: (create)``, ``[urn=...]``, keys padded to the longest, ``old => new``).
- pkg/resource/deploy/step.go ``RawPrefix``/``Color``/``Suffix``: each operation's two-character prefix and
  colour; sdk/go/common/diag/colors/colors.go: the escape codes (``ESC[38;5;<n>m``).

Every value that came from a stack file or a base plan goes through ``text.terminal``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from cloudrun_mesh import text
from cloudrun_mesh.offline import harness

SAME, CREATE, UPDATE, DELETE, REPLACE = "same", "create", "update", "delete", "replace"
CREATE_REPLACEMENT, DELETE_REPLACED, READ, DISCARD, IMPORT = (
    "create-replacement", "delete-replaced", "read", "discard", "import")
# deploy.StepOps order (step.go), the order of the summary's lines.
STEP_OPS = (SAME, CREATE, UPDATE, DELETE, REPLACE, CREATE_REPLACEMENT, DELETE_REPLACED, READ, DISCARD, IMPORT)
RAW_PREFIX = {SAME: "  ", CREATE: "+ ", DELETE: "- ", UPDATE: "~ ", REPLACE: "+-", CREATE_REPLACEMENT: "++",
              DELETE_REPLACED: "--", READ: "> ", DISCARD: "< ", IMPORT: "= "}
# progress.go getPreviewDoneText
PLAN_TEXT = {SAME: "", CREATE: "create", UPDATE: "update", DELETE: "delete", REPLACE: "replace",
             CREATE_REPLACEMENT: "replace", DELETE_REPLACED: "replace", READ: "read", DISCARD: "discard",
             IMPORT: "import"}
# Operations the summary does not count as changes (diff.go renderSummaryEvent).
NOT_CHANGES = (SAME, READ, DISCARD)

RESET, BOLD, UNDERLINE = "\x1b[0m", "\x1b[1m", "\x1b[4m"


def _fg(n: int) -> str:
    return f"\x1b[38;5;{n}m"


RED, GREEN, YELLOW, BRIGHT_RED, BRIGHT_GREEN, BRIGHT_BLUE, BRIGHT_MAGENTA, BRIGHT_CYAN = (
    _fg(1), _fg(2), _fg(3), _fg(9), _fg(10), _fg(12), _fg(13), _fg(14))
# step.go Color; colors.go SpecCreate/SpecUpdate/SpecReplace/... (SpecUnimportant is a reset).
OP_COLOR = {SAME: "", CREATE: GREEN, IMPORT: GREEN, DELETE: RED, UPDATE: YELLOW, REPLACE: BRIGHT_MAGENTA,
            CREATE_REPLACEMENT: BRIGHT_GREEN, DELETE_REPLACED: BRIGHT_RED, READ: BRIGHT_CYAN, DISCARD: RED}
HEADLINE = BRIGHT_MAGENTA + BOLD  # colors.SpecHeadline
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
COLOR_CHOICES = ("always", "never", "auto")


def use_color(choice: str, stream: TextIO, env: Optional[Mapping[str, str]] = None) -> bool:
    """`--color always|never|auto` as the CLI reads it; auto: a terminal, unless NO_COLOR is set
    (https://no-color.org: any non-empty value) or TERM is `dumb`."""
    env = os.environ if env is None else env
    if choice == "always":
        return True
    if choice == "never" or env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Painter:
    """Adds escape codes when colour is on; the same text without them when off."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, color: str, value: str) -> str:
        return f"{color}{value}{RESET}" if self.on and color and value else value

    def op(self, op: str, value: str) -> str:
        return self(OP_COLOR.get(op, ""), value)


def display_type(type_: str) -> str:
    """tokens.Type.DisplayName: `pkg:a/b:C` as `pkg:a:C` when `b` is `C` camel-cased, else unchanged."""
    parts = type_.split(":")
    if len(parts) != 3 or not parts[2] or "/" not in parts[1]:
        return type_
    module, file = parts[1].rsplit("/", 1)
    if file != parts[2][:1].lower() + parts[2][1:]:
        return type_
    return f"{parts[0]}:{module}:{parts[2]}"


def stack_urn(plan: Mapping[str, Any]) -> str:
    return f"urn:pulumi:{plan['stack']}::{plan['project']}::{harness.STACK_TYPE}::{plan['project']}-{plan['stack']}"


# --------------------------------------------------------------------------------------------
# Values, as the CLI's property printer writes them
# --------------------------------------------------------------------------------------------


def scalar(value: Any) -> str:
    """A leaf value on one line: markers bare (the CLI's `[unknown]`/`[secret]`), null `<null>`, strings
    quoted, never cut; control characters visible."""
    if value is None:
        return "<null>"
    if harness.is_marker(value) or value == harness.SECRET:
        return str(value)
    if isinstance(value, str):
        return text.terminal(json.dumps(value, ensure_ascii=False))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, (dict, list)) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    return text.terminal(json.dumps(value, sort_keys=True, ensure_ascii=False))


def value_lines(value: Any, indent: str) -> list[str]:
    """A value in the CLI's object notation: the first line continues the key's line, nested objects
    and arrays open on it and close on a line of their own, indented four spaces a level. Iterative:
    the nesting of a base plan is capped when it is read, and is never this function's stack."""
    if not isinstance(value, (dict, list)) or not value:
        return [scalar(value)]
    out: list[str] = []
    # Work items: (kind, payload, indent). "open" emits a container, "line" a finished line.
    first = True
    stack: list[tuple[str, Any, str, str]] = [("value", value, indent, "")]
    while stack:
        kind, item, ind, title = stack.pop()
        if kind == "close":
            out.append(f"{ind}{item}")
            continue
        prefix = "" if first else f"{ind}{title}"
        first = False
        if isinstance(item, dict) and item:
            keys = sorted(item, key=str)
            width = max(len(text.terminal(k)) for k in keys)
            out.append(f"{prefix}{{")
            stack.append(("close", "}", ind, ""))
            for k in reversed(keys):
                stack.append(("value", item[k], ind + "    ", f"{text.terminal(k):<{width}}: "))
        elif isinstance(item, list) and item:
            out.append(f"{prefix}[")
            stack.append(("close", "]", ind, ""))
            for i in reversed(range(len(item))):
                stack.append(("value", item[i], ind + "    ", f"[{i}]: "))
        else:
            out.append(f"{prefix}{scalar(item)}")
    return out


def object_lines(obj: Mapping[str, Any], indent: str, prefix: str = "") -> list[str]:
    """`key: value` lines of an object, keys padded to the longest (printObject)."""
    keys = sorted(obj, key=str)
    if not keys:
        return []
    width = max(len(text.terminal(k)) for k in keys)
    lead = indent[:-2] + prefix if prefix else indent
    out = []
    for k in keys:
        rendered = value_lines(obj[k], indent)
        out.append(f"{lead}{text.terminal(k):<{width}}: {rendered[0]}")
        out += rendered[1:]
    return out


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    urn: str
    type: str
    name: str
    parent: str
    op: str
    info: list[str] = field(default_factory=list)
    custom: bool = True
    details: list[tuple[str, str]] = field(default_factory=list)
    """(op for the colour, text) lines of the `--diff` details, indented by the renderer."""
    header_suffix: str = ""
    steps: list[str] = field(default_factory=list)
    """With --show-replacement-steps: the steps of a replacement, each a header of its own."""


def tree_order(rows: Sequence[Row], root: str) -> list[tuple[Row, str]]:
    """Rows depth-first under their parents (a parent unknown here stands for the stack), siblings by
    type and name, each with its tree prefix. Iterative; each row is visited once."""
    urns = {r.urn for r in rows}
    children: dict[str, list[Row]] = {}
    for r in rows:
        if r.urn == root:
            continue
        parent = r.parent if r.parent in urns and r.parent != r.urn else root
        children.setdefault(parent, []).append(r)
    for kids in children.values():
        kids.sort(key=lambda r: (r.type, r.name, r.urn))
    by_urn = {r.urn: r for r in rows}
    out: list[tuple[Row, str]] = []
    stack: list[tuple[str, str, str]] = [(root, "", "")]  # (urn, glyph prefix, indentation for children)
    seen: set[str] = set()
    while stack:
        urn, prefix, indentation = stack.pop()
        if urn in seen:
            continue
        seen.add(urn)
        if urn in by_urn:
            out.append((by_urn[urn], prefix))
        kids = children.get(urn, [])
        for i in reversed(range(len(kids))):
            last = i == len(kids) - 1
            glyph = "└─ " if last else "├─ "
            nested = indentation + ("   " if last else "│  ")
            stack.append((kids[i].urn, indentation + glyph, nested))
    return out


def visible(rows: Sequence[Row], root: str, show_sames: bool) -> list[Row]:
    """Rows shown: every change, and the parents of a shown row (rows.go hideRowIfUnnecessary); sames
    only with --show-sames. The stack row always."""
    by_urn = {r.urn: r for r in rows}
    keep = {root}
    for r in rows:
        if r.op != SAME or show_sames or any(i.startswith("[was ") for i in r.info):
            cursor: Optional[str] = r.urn
            hops = 0
            while cursor is not None and cursor not in keep and hops <= len(by_urn):
                keep.add(cursor)
                parent = by_urn[cursor].parent if cursor in by_urn else ""
                cursor = parent if parent in by_urn else None
                hops += 1
    return [r for r in rows if r.urn in keep]


def table(rows: Sequence[Row], root: str, paint: Painter) -> list[str]:
    ordered = tree_order(rows, root)
    header = ["", "Type", "Name", "Plan", "Info"]
    cells = [header] + [
        [RAW_PREFIX[r.op], prefix + display_type(text.terminal(r.type)), text.terminal(r.name), PLAN_TEXT[r.op],
         " ".join(r.info)]
        for r, prefix in ordered
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = []
    for n, c in enumerate(cells):
        op = ordered[n - 1][0].op if n else ""
        parts = []
        for i, cell in enumerate(c):
            pad = " " if i == 0 else " " * (widths[i - 1] - len(c[i - 1]) + 2)
            if n == 0:
                shown = paint(UNDERLINE + BRIGHT_BLUE, cell)
            elif i in (0, 3):
                shown = paint.op(op, cell)
            else:
                shown = cell
            parts.append(pad + shown)
        lines.append("".join(parts).rstrip())
    return lines


def summary_lines(counts: Mapping[str, int], paint: Painter) -> list[str]:
    """diff.go renderSummaryEvent, for a preview."""
    lines = [paint(HEADLINE, "Resources:")]
    kinds = total = 0
    for op in STEP_OPS:
        if op in NOT_CHANGES or op in (CREATE_REPLACEMENT, DELETE_REPLACED) or not counts.get(op):
            continue
        kinds += 1
        total += counts[op]
        lines.append("    " + paint.op(op, f"{RAW_PREFIX[op]}{counts[op]} to {op}"))
    pieces = []
    if kinds >= 2:
        pieces.append(paint(BOLD, f"{total} {'change' if total == 1 else 'changes'}"))
    if counts.get(SAME):
        pieces.append(f"{counts[SAME]} unchanged")
    if pieces:
        lines.append("    " + ". ".join(pieces))
    return lines


def counts_of(rows: Iterable[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.op] = counts.get(r.op, 0) + 1
    return counts


def details(rows: Sequence[Row], root: str, show_sames: bool, paint: Painter) -> list[str]:
    """The `--diff` view (object_diff.go): per resource a header at its tree depth, its URN, then what it
    sends or what changes."""
    out: list[str] = []
    depth: dict[str, int] = {root: 0}
    for r, _prefix in tree_order(rows, root):
        d = 0 if r.urn == root else depth.get(r.parent, 0) + 1
        depth[r.urn] = d
        if r.op == SAME and not show_sames and r.urn != root and not r.details:
            continue
        indent = "    " * d
        out.append(paint.op(r.op, f"{indent}{RAW_PREFIX[r.op]}{text.terminal(r.type)}: ({r.op}){r.header_suffix}"))
        if r.op == SAME and not show_sames:
            continue  # shown only as the parent of a change
        inner = "    " * (d + 1)
        for op, line in r.details:
            if line[:2] in _FIELD_PREFIXES:
                # A changed property's prefix takes the last two characters of the indentation
                # (object_diff.go getIndentationString).
                out.append(paint.op(op, f"{inner[:-2]}{line}"))
            else:
                out.append(paint.op(op, f"{inner}{line}"))
        for op in r.steps:
            out.append(paint.op(op, f"{indent}{RAW_PREFIX[op]}{text.terminal(r.type)}: ({op})"))
    return out


_FIELD_PREFIXES = ("+ ", "- ", "~ ")


def strip(line: str) -> str:
    return ESCAPE.sub("", line)

"""Offline plan: what `pulumi up` would register, with no cloud, cluster, credentials or CLI.

The program is evaluated in preview mode under the same mock engine the tests use
(``cloudrun_mesh.offline.harness``); values that only a provider or a deploy can give are shown as markers.
``--diff`` compares with an earlier plan (``cloudrun_mesh.offline.plan_diff``), ``--markdown`` writes the
report with its picture (``cloudrun_mesh.offline.plan_report``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO

from cloudrun_mesh import exit_codes, text
from cloudrun_mesh.offline import display, fakes, graph, harness, plan_diff, plan_report
from cloudrun_mesh.offline.plan_diff import PlanDiff, diff_plans, short  # noqa: F401 - the plan's API
from cloudrun_mesh.text import terminal

# With no gcp:project from the stack file, --project or the environment, the program is evaluated
# with this placeholder (a valid project id no real name is likely to contain) and the plan shows
# fakes.PROJECT_AT_DEPLOY wherever it appears: a deploy takes the project from its own environment,
# which the offline plan cannot know.
PLACEHOLDER_PROJECT = "offline-unset-project"
# 0 done; 1 the program failed; 2 a user mistake (configuration, stack file, flags, files);
# 4 --fail-on found what it was asked to stop.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAIL_ON = exit_codes.OK, exit_codes.FAILED, exit_codes.USAGE, exit_codes.FAIL_ON
PLAN_FORMAT = 2
# Where the Google provider looks for a project when gcp:project is unset, in its order
# (pulumi_gcp/config/vars.py, `project`).
PROJECT_ENV = ("GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT")


def _name(urn: str) -> str:
    return urn.split("::")[-1]


class UsageError(Exception):
    """A user mistake: printed as one paragraph, exit 2."""


# --------------------------------------------------------------------------------------------
# The plan document
# --------------------------------------------------------------------------------------------


def build_plan(run: harness.ProgramRun) -> dict[str, Any]:
    regs = sorted(run.resources(), key=lambda r: r.urn)
    path = graph.critical_path(regs)
    plan = {
        "format": PLAN_FORMAT,
        "project": run.project,
        "stack": run.stack,
        "gcpProject": run.config.get("gcp:project"),
        "preview": run.preview,
        "markers": sorted(harness.MARKERS),
        "resources": [r.as_json() for r in regs],
        "outputs": run.outputs,
        "criticalPath": path,
        "summary": {"resources": len(regs), "criticalPath": len(path)},
    }
    if run.config.get("gcp:project") == PLACEHOLDER_PROJECT:
        # The placeholder is plain text in ids, emails and outputs (projects/<p>/..., <sa>@<p>.iam...,
        # --project=<p>); JSON escapes nothing in either string, so one replacement marks them all.
        plan = json.loads(json.dumps(plan).replace(PLACEHOLDER_PROJECT, fakes.PROJECT_AT_DEPLOY))
    return plan


# Conventional order of a manifest's keys, the same whatever protobuf hands over: apiVersion, kind,
# metadata, spec first, and `name` (then `namespace`) first in any object that has one, so that
# containers, ports and metadata read as kubectl shows them. Other keys follow alphabetically.
_FIRST = ("apiVersion", "kind", "metadata", "spec", "name", "namespace")


def conventional_order(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (_FIRST.index(k) if k in _FIRST else len(_FIRST), k))
        return {k: conventional_order(value[k]) for k in keys}
    if isinstance(value, list):
        return [conventional_order(v) for v in value]
    return value


def kubernetes_objects(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply-ready manifests of the Kubernetes objects the program manages (reads excluded)."""
    objects = []
    for r in plan["resources"]:
        if not r["type"].startswith("kubernetes:") or r["read"]:
            continue
        objects.append(conventional_order(r["inputs"]))
    return objects


def manifest_filename(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    # A Namespace lives in no namespace (cluster-scoped); any other object without one is in `default`.
    scope = meta.get("namespace") or ("cluster" if obj.get("kind") == "Namespace" else "default")
    return f"{scope}-{str(obj.get('kind', 'object')).lower()}-{meta.get('name', 'unnamed')}.yaml"


# The list of files a run wrote under its --out folder, kept there: the next run replaces or removes
# only the files it names, never a file someone else put there.
WRITTEN_LIST = ".cloudrun-mesh-plan-files.json"
_OUR_FILE = re.compile(r"plan\.json|k8s/[a-z0-9][a-z0-9.-]{0,250}\.yaml")


def _atomic_write(path: Path, content: str) -> None:
    """Write through a new file renamed over the old name: a hard link or symlink at `path` is replaced,
    never written through, so no other name for the same file changes."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _previous_files(out_dir: Path) -> set[str]:
    """Relative paths this folder's previous run wrote (only names of the forms it writes)."""
    listing = out_dir / WRITTEN_LIST
    if not listing.is_file():
        return set()
    try:
        names = text.load_json(listing, limit=4 << 20, max_depth=4, what="list of written files")
    except text.InputFileError:
        return set()
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and _OUR_FILE.fullmatch(n)}


def planned_files(plan: dict[str, Any]) -> dict[str, str]:
    """Relative path -> content of every file the plan writes under its folder."""
    import yaml

    files = {"plan.json": json.dumps(plan, indent=2, sort_keys=True) + "\n"}
    for obj in kubernetes_objects(plan):
        name = f"k8s/{manifest_filename(obj)}"
        if not _OUR_FILE.fullmatch(name):
            raise UsageError(f"--out: a manifest would be named {text.terminal(name)!r}, which is not a file name "
                             "this plan writes (lowercase letters, digits, `.` and `-`).")
        files[name] = yaml.safe_dump(obj, sort_keys=False)
    return files


def write_plan(plan: dict[str, Any], out_dir: Path, keep: Sequence[Path] = ()) -> list[Path]:
    """Write plan.json and the manifests. Only files this plan wrote before (listed in WRITTEN_LIST)
    are replaced or removed; an existing file it did not write is refused and left as it was. Paths in
    `keep` (the base plan, the Markdown target) are never replaced or removed, whatever their name."""
    files = planned_files(plan)
    previous = _previous_files(out_dir)
    kept = [k for k in keep if k.exists()]

    def is_kept(path: Path) -> bool:
        return any(_same_file(path, k) for k in kept)

    for name in files:
        path = out_dir / name
        if path.is_symlink() or path.exists():
            if name not in previous and not (name == "plan.json" and _looks_like_our_plan(path)):
                raise UsageError(f"--out: {text.terminal(path)} exists and was not written by an earlier plan into "
                                 "this folder; it is left as it is. Move it, or choose another --out.")
            if is_kept(path):
                raise UsageError(f"--out: {text.terminal(path)} is the same file as the base plan or the Markdown "
                                 "report (a hard link); it would be overwritten. Choose another --out.")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "k8s").mkdir(exist_ok=True)
    # The list first: a run interrupted half-way still names every file it may have written.
    _atomic_write(out_dir / WRITTEN_LIST, json.dumps(sorted(previous | set(files)), indent=1) + "\n")
    written = []
    for name, content in files.items():
        _atomic_write(out_dir / name, content)
        written.append(out_dir / name)
    for stale in sorted(previous - set(files)):
        path = out_dir / stale
        if path.is_file() and not path.is_symlink() and not is_kept(path):
            path.unlink()
    _atomic_write(out_dir / WRITTEN_LIST, json.dumps(sorted(files), indent=1) + "\n")
    return written


def _looks_like_our_plan(path: Path) -> bool:
    """A plan.json written before folders carried their list of files: JSON with our plan's keys."""
    try:
        data = text.load_json(path, limit=BASE_LIMIT, max_depth=BASE_DEPTH, what="plan")
    except text.InputFileError:
        return False
    return isinstance(data, dict) and "criticalPath" in data and "format" in data and "resources" in data


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Human output: the preview table, the --diff details, the summary
# --------------------------------------------------------------------------------------------

_ACTION_OP = {
    plan_diff.CREATE: display.CREATE, plan_diff.UPDATE: display.UPDATE, plan_diff.DELETE: display.DELETE,
    plan_diff.REPLACE: display.REPLACE, plan_diff.IMPORT: display.IMPORT, plan_diff.READ: display.READ,
    plan_diff.MOVE: display.SAME,
}


def _short_diff(fields: Sequence[plan_diff.FieldChange]) -> str:
    """rows.go writeShortDiff: the top-level keys that change, `~` updated, `+` added, `-` removed."""
    keys: dict[str, str] = {}
    for f in fields:
        top = re.split(r"[.\[]", f.path, maxsplit=1)[0] or f.path
        mark = "+" if f.old is None else "-" if f.new is None else "~"
        keys.setdefault(top, mark)
    return "[diff: " + ", ".join(f"{m}{text.terminal(k)}" for k, m in keys.items()) + "]" if keys else ""


def build_rows(plan: dict[str, Any], diff: Optional[PlanDiff] = None, base: Optional[dict[str, Any]] = None,
               details: bool = False, replacement_steps: bool = False) -> tuple[str, list[display.Row]]:
    """The stack row and a row per resource (and per deleted resource of the base), with the operation
    `pulumi preview` would show and, when asked, the `--diff` details."""
    root = display.stack_urn(plan)
    stack_op = display.CREATE if diff is None or not (base or {}).get("resources") else display.SAME
    rows = [display.Row(root, harness.STACK_TYPE, f"{plan['project']}-{plan['stack']}", "", stack_op, custom=False,
                        details=[(display.SAME, f"[urn={text.terminal(root)}]")] if details else [])]
    old = {r["urn"]: r for r in (base or {}).get("resources", [])}
    for r in plan["resources"]:
        c = diff.change_of(r["urn"]) if diff is not None else None
        if diff is None:
            op = display.READ if r["read"] else display.IMPORT if r.get("importId") else display.CREATE
        elif c is None:
            op = display.READ if r["read"] else display.SAME
        else:
            op = _ACTION_OP[c.action]
        row = display.Row(r["urn"], r["type"], r["name"], r["parent"], op, custom=r["custom"])
        if r.get("importId"):
            row.info.append(f"[id={text.terminal(r['importId'])}]")
        if c is not None and c.fields:
            row.info.insert(0, _short_diff(c.fields))
        if c is not None and c.old_urn:
            row.info.append(f"[was {text.terminal(plan_diff.short(c.old_urn))}]")
        if details:
            _details(row, r, old.get(c.old_urn or c.urn) if c else old.get(r["urn"]), c, replacement_steps)
        rows.append(row)
    if diff is not None:
        for c in diff.changes:
            if c.action in (plan_diff.DELETE, plan_diff.FORGET):
                o = old.get(c.urn, {})
                retained = c.action == plan_diff.FORGET and not o.get("read")
                op = display.DISCARD if c.action == plan_diff.FORGET and o.get("read") else display.DELETE
                row = display.Row(c.urn, c.type, plan_diff.name_of(c.urn), o.get("parent", ""), op,
                                  custom=bool(o.get("custom", True)))
                if retained:
                    row.info.append("[retain]")  # object_diff.go addRetainStatusFlag
                if details:
                    _details(row, None, o, c, replacement_steps)
                rows.append(row)
    return root, rows


def _lock(old: Optional[dict[str, Any]], new: Optional[dict[str, Any]]) -> str:
    # object_diff.go printStepHeader: unlocked when protection is lifted, locked while it holds.
    if new is not None and not new.get("protect") and old is not None and old.get("protect"):
        return " \N{OPEN LOCK}"
    if (new or {}).get("protect") or (old or {}).get("protect"):
        return " \N{LOCK}"
    return ""


def _details(row: display.Row, new: Optional[dict[str, Any]], old: Optional[dict[str, Any]],
             c: Optional[plan_diff.Change], replacement_steps: bool) -> None:
    row.header_suffix = ("[retain]" if "[retain]" in row.info else "") + _lock(old, new)
    lines: list[tuple[str, str]] = []
    if row.op == display.IMPORT and new is not None:
        lines.append((display.SAME, f"[id={text.terminal(new['importId'])}]"))
    elif row.op == display.READ and new is not None and new.get("id"):
        lines.append((display.SAME, f"[id={text.terminal(new['id'])}]"))
    lines.append((display.SAME, f"[urn={text.terminal(row.urn)}]"))
    if c is not None and c.old_urn:
        lines.append((display.SAME, f"[was urn={text.terminal(c.old_urn)}]"))
    if row.op in (display.CREATE, display.IMPORT) and new is not None:
        # The inputs the engine sends, as the CLI prints a create (printObject).
        lines += [(row.op, line) for line in display.object_lines(new.get("inputs") or {}, "")]
    elif c is not None:
        for f in c.fields:
            op = display.CREATE if f.old is None else display.DELETE if f.new is None else display.UPDATE
            lines.append((op, plan_diff.field_line(f)))
        lines += [(row.op if line.startswith("[refused") else display.SAME, line) for line in plan_diff.notes(c)]
    row.details = lines
    if replacement_steps and row.op == display.REPLACE:
        # The two steps of a replacement, in the order the engine runs them (deleteBeforeReplace
        # deletes the old one first).
        first_delete = bool((new or {}).get("deleteBeforeReplace"))
        row.steps = [display.DELETE_REPLACED, display.CREATE_REPLACEMENT] if first_delete else [
            display.CREATE_REPLACEMENT, display.DELETE_REPLACED]


SHOW_FLAGS = ("sames", "reads", "replacement-steps")


@dataclass
class View:
    """How the printout looks: the CLI's display flags."""

    color: bool = False
    show_sames: bool = False
    show_reads: bool = True
    show_replacement_steps: bool = False


def format_plan(plan: dict[str, Any], diff: Optional[PlanDiff] = None, base: Optional[dict[str, Any]] = None,
                view: Optional[View] = None, base_label: Optional[str] = None) -> list[str]:
    """The printout: header, (with a base: the summary first,) the table, the `--diff` details, the
    outputs, the summary, then the plan's own short additions."""
    view = view or View()
    paint = display.Painter(view.color)
    root, rows = build_rows(plan, diff, base, details=diff is not None, replacement_steps=view.show_replacement_steps)
    if not view.show_reads:
        rows = [r for r in rows if r.op != display.READ]
    summary = display.summary_lines(display.counts_of(rows), paint)
    stack = text.terminal(plan["stack"])
    label = f", compared with {text.terminal(base_label)}" if diff is not None and base_label else ""
    lines = [f"Previewing update ({stack}) offline{label}: nothing is contacted", ""]
    if diff is not None:
        lines += [paint(display.YELLOW, f"warning: {text.terminal(w)}") for w in diff.warnings]
        lines += summary + [""]
    shown = display.visible(rows, root, view.show_sames or diff is None)
    lines += display.table(shown, root, paint)
    if diff is not None and any(r.op != display.SAME for r in rows[1:]):
        lines += ["", *display.details(shown, root, view.show_sames, paint)]
    lines += [""] + _outputs(plan, diff, view, paint)
    if diff is None:
        lines += summary + [""]
    if diff is not None and diff.refused:
        lines.append(f"pulumi up will refuse {len(diff.refused)} of these changes: see each `[refused ...]` above.")
    lines += _additions(plan)
    return lines


def _outputs(plan: dict[str, Any], diff: Optional[PlanDiff], view: View, paint: display.Painter) -> list[str]:
    outputs = plan.get("outputs") or {}
    if diff is None:
        body = display.object_lines(outputs, "    ")
    else:
        changed = {f.path for f in diff.outputs}
        width = max((len(text.terminal(f.path)) for f in diff.outputs), default=0)
        body = []
        for f in diff.outputs:
            key = f"{text.terminal(f.path):<{width}}"
            if f.old is None:
                body.append(paint.op(display.CREATE, f"  + {key}: {plan_diff.show(f.new)}"))
            elif f.new is None:
                body.append(paint.op(display.DELETE, f"  - {key}: {plan_diff.show(f.old)}"))
            else:
                body.append(paint.op(display.UPDATE, f"  ~ {key}: {plan_diff.show_change(f.old, f.new)}"))
        if view.show_sames:
            body += display.object_lines({k: v for k, v in outputs.items() if k not in changed}, "    ")
    return [paint(display.HEADLINE, "Outputs:"), *body, ""] if body else []



# The markers a plan may show, for the legend under the summary (only those the plan holds).
MARKERS_SHOWN = (harness.UNKNOWN, *fakes.MARKERS, harness.SECRET)
UPTIME_OUTPUT = "uptimeCheckExecutionsPerMonth"


def _additions(plan: dict[str, Any]) -> list[str]:
    """What `pulumi preview` does not print: short, after its summary."""
    path = plan["criticalPath"]
    lines = [f"Critical path ({len(path)}): " + " -> ".join(text.terminal(_name(u)) for u in path)]
    dumped = json.dumps({k: v for k, v in plan.items() if k != "markers"})  # the legend lists every marker
    present = [m for m in MARKERS_SHOWN if json.dumps(m)[1:-1] in dumped]
    if present:
        lines.append("Markers (values only a deploy knows): " + ", ".join(present))
    count = (plan.get("outputs") or {}).get(UPTIME_OUTPUT)
    if isinstance(count, int) and not isinstance(count, bool):
        lines.append(f"Uptime check executions per month: {count:,}")
    return lines


def format_diff(d: PlanDiff) -> list[str]:
    """The change list alone (plain): a summary line, then per change its header and details."""
    lines = [f"warning: {text.terminal(w)}" for w in d.warnings]
    if d.empty:
        return lines + ["No changes against the base plan."]
    lines.append(plan_diff.summary(d))
    for c in d.changes:
        if c.action == plan_diff.READ:
            continue
        op = _ACTION_OP.get(c.action, display.DELETE)
        head = f"{display.RAW_PREFIX[op]}{text.terminal(c.type)}: ({c.action}) {text.terminal(plan_diff.name_of(c.urn))}"
        if c.import_id:
            head += f" [id={text.terminal(c.import_id)}]"
        lines.append(head)
        lines += ["    " + plan_diff.field_line(f) for f in c.fields]
        lines += ["    " + n for n in plan_diff.notes(c)]
    for f in d.outputs:
        lines.append(f"~ output {text.terminal(f.path)}: {plan_diff.show_change(f.old, f.new)}")
    return lines


def written_summary(written: Sequence[Path], out_dir: Path, markdown_file: Optional[Path]) -> str:
    """"Wrote ...": the files by name, or the folder and the count by kind when there are many."""
    manifests = [p for p in written if p.parent == out_dir / "k8s"]
    parts = [str(p) for p in written if p not in manifests and p != markdown_file]
    if manifests:
        if len(manifests) <= 6:
            parts += [str(p) for p in manifests]
        else:
            parts.append(f"{len(manifests)} Kubernetes manifests in {out_dir / 'k8s'}")
    if markdown_file is not None and markdown_file in written:
        parts.append(f"the Markdown report {markdown_file}")
    return "Wrote " + ", ".join(text.terminal(p) for p in parts)


# --------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------


def resolve_project(values: Mapping[str, Any], project: Optional[str],
                    env: Optional[Mapping[str, str]] = None) -> tuple[Optional[str], str]:
    """The gcp:project to plan with when the stack file has none, and a note naming its source.

    The stack file wins; then --project, then the environment variables the provider reads, then
    a placeholder. Returns (None, note) when the stack file sets it.
    """
    env = os.environ if env is None else env
    if "gcp:project" in values:
        extra = f"; --project {project!r} is ignored" if project and project != values["gcp:project"] else ""
        return None, f"note: gcp:project {values['gcp:project']!r} from the stack file{extra}"
    if project:
        return project, f"note: gcp:project is not set by the stack file; planning with {project!r} from --project"
    for var in PROJECT_ENV:
        if env.get(var):
            return env[var], f"note: gcp:project is not set by the stack file; planning with {env[var]!r} from ${var}"
    return PLACEHOLDER_PROJECT, (
        f"note: gcp:project is not set by the stack file, --project or ${' / $'.join(PROJECT_ENV)}; planning with "
        f"a placeholder, shown as {fakes.PROJECT_AT_DEPLOY} (set yours with `pulumi config set gcp:project <id>` "
        "or pass --project)"
    )


def evaluate_offline(
    stack: str,
    values: dict[str, Any],
    project: Optional[str],
    stderr: TextIO,
    env: Optional[dict[str, Any]] = None,
    project_dir: Path = harness.PROJECT_DIR,
) -> harness.ProgramRun | int:
    """A preview-mode evaluation of the stack with its project filled as documented, or the exit code
    after reporting why it failed (a configuration error is the user's: EXIT_USAGE). Shared by the
    plan and the offline policy run, so both read a stack exactly alike."""
    filled, note = resolve_project(values, project, env)
    overrides: dict[str, Any] = {"gcp:project": filled} if filled else {}
    run = harness.run_program(stack, config=overrides, preview=True, project_dir=project_dir)
    if run.error is None:
        # The program's warnings (example principals, subnetworks), then where gcp:project came from.
        for level, message in run.logs:
            if level == "WARNING":
                print(f"warning: {terminal(message)}", file=stderr)
        print(note, file=stderr)
        return run
    from cloudrun_mesh.config import ConfigError

    if isinstance(run.error, ConfigError):
        print(f"error: configuration error for stack {stack}: {run.error}", file=stderr)
        return EXIT_USAGE
    print(f"error: the program failed for stack {stack}: {run.error}", file=stderr)
    return EXIT_ERROR


# The base plan of --diff is read whole into memory: bounded before parsing. A plan of 1,000
# services is about 10 MB; its nesting (plan, resource, a Deployment's inputs) about 15 levels.
BASE_LIMIT = 64 << 20
BASE_DEPTH = 64
_STR_LISTS = ("dependencies", "replaceOnChanges", "ignoreChanges", "aliases")
_BOOLS = ("custom", "read", "protect", "deleteBeforeReplace", "retainOnDelete")
_STRINGS = ("name", "parent", "provider", "id")


def validate_base(base: Any, path: Path) -> dict[str, Any]:
    """The base plan with every field the diff reads checked for its type (a one-paragraph error naming
    the JSON path otherwise), defaults filled in, and its parent links checked for cycles."""

    def bad(where: str, rule: str, value: Any) -> UsageError:
        return UsageError(f"--diff {text.terminal(path)}: {where} must be {rule}, not {text.kind_of(value)}. The base must be a "
                          "plan.json written by `python -m cloudrun_mesh plan`.")

    if not isinstance(base, dict):
        raise bad("the document", "an object", base)
    if not isinstance(base.get("stack"), str):
        raise bad("`stack`", "a string", base.get("stack"))
    resources = base.get("resources")
    if not isinstance(resources, list):
        raise bad("`resources`", "a list", resources)
    outputs = base.get("outputs", {})
    if not isinstance(outputs, dict):
        raise bad("`outputs`", "an object", outputs)
    for key in ("project", "gcpProject"):
        if base.get(key) is not None and not isinstance(base[key], str):
            raise bad(f"`{key}`", "a string", base[key])
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, r in enumerate(resources):
        where = f"resources[{i}]"
        if not isinstance(r, dict):
            raise bad(where, "an object", r)
        for key in ("urn", "type"):
            if not isinstance(r.get(key), str) or not r[key]:
                raise bad(f"{where}.{key}", "a non-empty string", r.get(key))
        if r["urn"] in seen:
            raise UsageError(f"--diff {text.terminal(path)}: {where}.urn {text.terminal(r['urn'])!r} appears twice; a plan "
                             "has one resource per URN.")
        seen.add(r["urn"])
        item: dict[str, Any] = dict(r)
        for key in _STRINGS:
            value = r.get(key, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise bad(f"{where}.{key}", "a string", value)
            item[key] = value
        item["name"] = item["name"] or plan_diff.name_of(r["urn"])
        for key in _BOOLS:
            value = r.get(key, key == "custom")
            if not isinstance(value, bool):
                raise bad(f"{where}.{key}", "true or false", value)
            item[key] = value
        for key in _STR_LISTS:
            value = r.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad(f"{where}.{key}", "a list of strings", value)
            item[key] = value
        inputs = r.get("inputs", {})
        if not isinstance(inputs, dict):
            raise bad(f"{where}.inputs", "an object", inputs)
        item["inputs"] = inputs
        deps = r.get("propertyDependencies") or {}
        if not isinstance(deps, dict) or not all(
                isinstance(v, list) and all(isinstance(u, str) for u in v) for v in deps.values()):
            raise bad(f"{where}.propertyDependencies", "an object of lists of URNs", deps)
        item["propertyDependencies"] = deps
        import_id = r.get("importId")
        if import_id is not None and not isinstance(import_id, str):
            raise bad(f"{where}.importId", "a string or null", import_id)
        clean.append(item)
    # A parent chain that comes back on itself has no root: the tree, the picture and the dependency
    # graph would never end. One walk per resource, each resource settled once.
    parent = {r["urn"]: r["parent"] for r in clean}
    settled: set[str] = set()
    for start in parent:
        trail: list[str] = []
        on_trail: set[str] = set()
        cursor = start
        while cursor in parent and cursor not in settled:
            if cursor in on_trail:
                loop = trail[trail.index(cursor):] + [cursor]
                raise UsageError(f"--diff {text.terminal(path)}: the resources' parents form a cycle ("
                                 + " -> ".join(text.terminal(plan_diff.short(u)) for u in loop)
                                 + "); a parent chain must end at the stack.")
            trail.append(cursor)
            on_trail.add(cursor)
            cursor = parent[cursor]
        settled.update(trail)
    return {**base, "resources": clean, "outputs": outputs}


def read_base(path: Path) -> dict[str, Any]:
    try:
        data = text.load_json(path, limit=BASE_LIMIT, max_depth=BASE_DEPTH, what="base plan")
    except text.InputFileError as exc:
        raise UsageError(f"--diff {exc}") from None
    return validate_base(data, path)


def _check_paths(out_dir: Path, diff: Optional[Path], markdown_file: Optional[Path]) -> None:
    """Refuse, before anything runs, a run that would overwrite its own base, write its report over its
    plan, or cannot write. A hard link is the same file under another name: compared by inode."""
    plan_file = out_dir / "plan.json"

    def same(a: Optional[Path], b: Optional[Path]) -> bool:
        if a is None or b is None:
            return False
        return a.resolve() == b.resolve() or _same_file(a, b)

    if diff is not None:
        for target, what in ((plan_file, "plan"), (markdown_file, "Markdown report")):
            if same(diff, target):
                raise UsageError(
                    f"--diff {text.terminal(diff)} is where this run writes its {what} (or a hard link to it): it would "
                    "be overwritten. Copy the base plan elsewhere (or plan into another --out) and pass that copy.")
        if diff.resolve().is_relative_to((out_dir / "k8s").resolve()):
            raise UsageError(f"--diff {text.terminal(diff)} is inside {text.terminal(out_dir / 'k8s')}, which this run "
                             "rewrites. Keep the base plan elsewhere.")
    if markdown_file is not None:
        resolved = markdown_file.resolve()
        if same(markdown_file, plan_file) or resolved.parent == (out_dir / "k8s").resolve() or resolved == (
                out_dir / WRITTEN_LIST).resolve():
            raise UsageError(f"--markdown {text.terminal(markdown_file)} is a file this run writes under --out (or a hard "
                             "link to one): the report would replace it. Write the report elsewhere.")
    for target, flag in ((out_dir, "--out"), (markdown_file.parent if markdown_file else None, "--markdown")):
        if target is None:
            continue
        try:
            target.mkdir(parents=True, exist_ok=True)
            probe = target / f".cloudrun-mesh-write-test-{os.getpid()}"
            probe.write_text("", encoding="utf-8")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"{flag}: cannot write to {text.terminal(target)} ({exc.strerror or exc}); choose a "
                             "writable folder.") from None


def parse_fail_on(value: str) -> list[str]:
    items = [t.strip() for t in value.split(",") if t.strip()]
    bad = [t for t in items if t not in plan_diff.FAIL_ON_CHOICES]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"{text.terminal(', '.join(bad) or repr(value))}: expected a comma-separated list of "
            f"{', '.join(plan_diff.FAIL_ON_CHOICES)}"
        )
    return items


def run_plan(
    stack: str,
    out: Path,
    diff: Optional[Path] = None,
    markdown_file: Optional[Path] = None,
    project: Optional[str] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
    base_label: Optional[str] = None,
    fail_on: Sequence[str] = (),
    env: Optional[dict[str, str]] = None,
    project_dir: Path = harness.PROJECT_DIR,
    color: str = "auto",
    show: Sequence[str] = (),
) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        return _run_plan(stack, out, diff, markdown_file, project, stdout, stderr, base_label, fail_on, env,
                         project_dir, color, show)
    except (UsageError, harness.UnknownStackError, harness.StackFileError) as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_USAGE


def _run_plan(stack: str, out: Path, diff: Optional[Path], markdown_file: Optional[Path], project: Optional[str],
              stdout: TextIO, stderr: TextIO, base_label: Optional[str], fail_on: Sequence[str],
              env: Optional[dict[str, str]], project_dir: Path, color: str, show: Sequence[str]) -> int:
    # Usage first: nothing is read, evaluated or written for a command line that cannot run.
    if fail_on and diff is None:
        raise UsageError("--fail-on needs --diff: without a base plan there is nothing to compare.")
    if color not in display.COLOR_CHOICES:
        raise UsageError(f"--color {text.terminal(color)!r}: expected one of {', '.join(display.COLOR_CHOICES)}.")
    unknown = [s for s in show if s not in SHOW_FLAGS]
    if unknown:
        raise UsageError(f"--show-{text.terminal(unknown[0])}: unknown flag; the plan has "
                         f"{', '.join('--show-' + s for s in SHOW_FLAGS)}.")
    view = View(color=display.use_color(color, stdout, env), show_sames="sames" in show,
                show_reads=True, show_replacement_steps="replacement-steps" in show)
    values = harness.stack_config(stack, project_dir=project_dir)
    # Read the base first: nothing this run writes can change what it is compared with.
    base = read_base(diff) if diff is not None else None
    _check_paths(out / stack, diff, markdown_file)
    run = evaluate_offline(stack, values, project, stderr, env, project_dir)
    if isinstance(run, int):
        return run

    plan = build_plan(run)
    keep = [p for p in (diff, markdown_file) if p is not None]
    try:
        written = write_plan(plan, out / stack, keep)
    except OSError as exc:
        raise UsageError(f"--out: cannot write the plan under {text.terminal(out / stack)} ({exc.strerror or exc}).") from None
    d: Optional[PlanDiff] = None
    if base is not None:
        d = diff_plans(base, plan)
        for warning in d.warnings:
            print(f"warning: {text.terminal(warning)}", file=stderr)
    label = base_label or (str(diff) if diff is not None else None)
    lines = format_plan(plan, d, base, view, label)
    if markdown_file is not None:
        report = plan_report.markdown(plan, d, base, base_label or plan_report.DEFAULT_BASE_LABEL,
                                      format_plan(plan, d, base, View(show_sames=view.show_sames), label))
        try:
            _atomic_write(markdown_file, report)
        except OSError as exc:
            raise UsageError(f"--markdown: cannot write {text.terminal(markdown_file)} ({exc.strerror or exc}).") from None
        written.append(markdown_file)
    lines.append(written_summary(written, out / stack, markdown_file))
    print("\n".join(lines), file=stdout)
    if fail_on and d is not None:
        tripped = d.tripped(fail_on)
        if tripped:
            print(f"error: --fail-on {','.join(fail_on)}: this change has {', '.join(tripped)} "
                  f"({plan_diff.summary(d)})", file=stderr)
            return EXIT_FAIL_ON
    return EXIT_OK


class _ShowFlag(argparse.Action):
    """`--show-<what>`: the CLI's display flags; any other `--show-*` is refused by name."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        getattr(namespace, self.dest).append((option_string or "")[len("--show-"):])


def _color(value: str) -> str:
    if value not in display.COLOR_CHOICES:
        raise argparse.ArgumentTypeError(f"{text.terminal(value)!r}: expected one of {', '.join(display.COLOR_CHOICES)}")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="show what `pulumi up` would register for a stack, offline",
        description="Evaluate the program for a stack in preview mode under the mock engine, offline, and print "
                    "it as `pulumi preview` does.",
        allow_abbrev=False,
    )
    p.add_argument("--stack", "-s", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    p.add_argument("--out", type=Path, default=Path("build/plan"), help="output folder (default: build/plan)")
    p.add_argument("--diff", type=Path, help="an earlier plan.json to compare with (read before anything is written); "
                   "prints each change's details, as `pulumi preview --diff`")
    p.add_argument("--base-label", help="what the base plan is, for the report's heading (e.g. 'main at abc1234')")
    p.add_argument("--fail-on", type=parse_fail_on, default=[],
                   help=f"with --diff: exit {EXIT_FAIL_ON} when the diff has any of: {', '.join(plan_diff.FAIL_ON_CHOICES)} "
                        "(comma-separated, e.g. replace,delete)")
    p.add_argument("--markdown", type=Path, help="also write a Markdown report with a Mermaid picture (pull requests)")
    p.add_argument("--project", help="gcp:project to plan with when the stack file does not set it "
                   f"(then ${' / $'.join(PROJECT_ENV)}, then a placeholder shown as {fakes.PROJECT_AT_DEPLOY})")
    p.add_argument("--color", type=_color, default="auto", metavar="{always,never,auto}",
                   help="colour the printout: auto (default) on a terminal unless NO_COLOR is set, always, never")
    p.add_argument(*(f"--show-{s}" for s in SHOW_FLAGS), dest="show", action=_ShowFlag, nargs=0, default=[],
                   help="as the CLI: --show-sames lists unchanged resources and outputs, --show-replacement-steps "
                        "the two steps of each replacement; --show-reads is accepted (reads are always listed)")
    p.set_defaults(func=lambda a: run_plan(a.stack, a.out, a.diff, a.markdown, a.project, base_label=a.base_label,
                                           fail_on=a.fail_on, color=a.color, show=a.show))


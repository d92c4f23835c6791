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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, TextIO

from cloudrun_mesh import exit_codes
from cloudrun_mesh.offline import fakes, graph, harness, plan_diff, plan_report
from cloudrun_mesh.offline.plan_diff import PlanDiff, diff_plans, format_diff, short  # noqa: F401 - the plan's API
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


def build_plan(run: harness.ProgramRun) -> dict:
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


def kubernetes_objects(plan: dict) -> list[dict]:
    """Apply-ready manifests of the Kubernetes objects the program manages (reads excluded)."""
    objects = []
    for r in plan["resources"]:
        if not r["type"].startswith("kubernetes:") or r["read"]:
            continue
        objects.append(conventional_order(r["inputs"]))
    return objects


def manifest_filename(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    # A Namespace lives in no namespace (cluster-scoped); any other object without one is in `default`.
    scope = meta.get("namespace") or ("cluster" if obj.get("kind") == "Namespace" else "default")
    return f"{scope}-{str(obj.get('kind', 'object')).lower()}-{meta.get('name', 'unnamed')}.yaml"


def write_plan(plan: dict, out_dir: Path) -> list[Path]:
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    k8s_dir = out_dir / "k8s"
    k8s_dir.mkdir(exist_ok=True)
    for stale in k8s_dir.glob("*.yaml"):
        stale.unlink()
    written = [out_dir / "plan.json"]
    written[0].write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for obj in kubernetes_objects(plan):
        path = k8s_dir / manifest_filename(obj)
        path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# Human output
# --------------------------------------------------------------------------------------------


def format_plan(plan: dict) -> list[str]:
    resources = plan["resources"]
    by_parent: dict[str, list[dict]] = {}
    urns = {r["urn"] for r in resources}
    for r in resources:
        parent = r["parent"] if r["parent"] in urns else ""
        by_parent.setdefault(parent, []).append(r)

    lines = [f"Plan for stack {plan['stack']} of {plan['project']} (offline preview: nothing is contacted)", ""]

    def walk(parent: str, depth: int) -> None:
        for r in sorted(by_parent.get(parent, []), key=lambda r: (r["type"], r["name"])):
            # retainOnDelete (an owned namespace): `pulumi destroy` leaves the object in place.
            flags = [f for f, on in (("protect", r["protect"]), ("retainOnDelete", r.get("retainOnDelete")),
                                     ("read", r["read"])) if on]
            if r.get("importId"):
                flags.append(f"= import {r['importId']}")
            lines.append(f"{'    ' * depth}{r['type']}  {r['name']}" + (f"  [{', '.join(flags)}]" if flags else ""))
            deps = sorted({_name(u) for u in r["dependencies"]})
            if deps:
                lines.append(f"{'    ' * depth}    depends on: {', '.join(deps)}")
            walk(r["urn"], depth + 1)

    walk("", 1)
    path = plan["criticalPath"]
    lines += ["", f"Critical path ({len(path)}): " + " -> ".join(_name(u) for u in path), "", "Outputs:"]
    for key, value in sorted(plan["outputs"].items()):
        lines.append(f"    {key}: {json.dumps(value, sort_keys=True)}")
    lines += ["", f"{plan['summary']['resources']} resources, critical path {plan['summary']['criticalPath']}"]
    return lines


# --------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------


def resolve_project(values: dict, project: Optional[str], env: Optional[dict] = None) -> tuple[Optional[str], str]:
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
    values: dict,
    project: Optional[str],
    stderr: TextIO,
    env: Optional[dict] = None,
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


def read_base(path: Path) -> dict:
    try:
        base = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--diff {path}: cannot read it ({exc.strerror or exc}).") from None
    except ValueError as exc:
        raise UsageError(f"--diff {path}: not a plan.json written by `python -m cloudrun_mesh plan` (not JSON: {exc}).") from None
    if not isinstance(base, dict) or not isinstance(base.get("resources"), list) or "stack" not in base:
        raise UsageError(f"--diff {path}: not a plan.json written by `python -m cloudrun_mesh plan` "
                         "(it has no `stack` and `resources`).")
    return base


def _check_paths(out_dir: Path, diff: Optional[Path], markdown_file: Optional[Path]) -> None:
    """Refuse, before anything runs, a run that would overwrite its own base or cannot write."""
    plan_file = (out_dir / "plan.json").resolve()
    if diff is not None and diff.resolve() in (plan_file, markdown_file.resolve() if markdown_file else None):
        raise UsageError(
            f"--diff {diff} is where this run writes its {'plan' if diff.resolve() == plan_file else 'Markdown report'}: "
            "it would be overwritten. Copy the base plan elsewhere (or plan into another --out) and pass that copy."
        )
    for target, flag in ((out_dir, "--out"), (markdown_file.parent if markdown_file else None, "--markdown")):
        if target is None:
            continue
        try:
            target.mkdir(parents=True, exist_ok=True)
            probe = target / ".cloudrun-mesh-write-test"
            probe.write_text("", encoding="utf-8")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"{flag}: cannot write to {target} ({exc.strerror or exc}); choose a writable folder.") from None


def parse_fail_on(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in plan_diff.FAIL_ON_CHOICES]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"{', '.join(bad) or repr(text)}: expected a comma-separated list of {', '.join(plan_diff.FAIL_ON_CHOICES)}"
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
    env: Optional[dict] = None,
    project_dir: Path = harness.PROJECT_DIR,
) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        return _run_plan(stack, out, diff, markdown_file, project, stdout, stderr, base_label, fail_on, env, project_dir)
    except (UsageError, harness.UnknownStackError, harness.StackFileError) as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_USAGE


def _run_plan(stack, out, diff, markdown_file, project, stdout, stderr, base_label, fail_on, env, project_dir) -> int:
    values = harness.stack_config(stack, project_dir=project_dir)
    # Read the base first: nothing this run writes can change what it is compared with.
    base = read_base(diff) if diff is not None else None
    _check_paths(out / stack, diff, markdown_file)
    run = evaluate_offline(stack, values, project, stderr, env, project_dir)
    if isinstance(run, int):
        return run

    plan = build_plan(run)
    try:
        written = write_plan(plan, out / stack)
    except OSError as exc:
        raise UsageError(f"--out: cannot write the plan under {out / stack} ({exc.strerror or exc}).") from None
    plan_lines = format_plan(plan)
    print("\n".join(plan_lines), file=stdout)
    d: Optional[PlanDiff] = None
    label = base_label or f"{diff}" if diff is not None else None
    if base is not None:
        d = diff_plans(base, plan)
        print("", f"Compared with {label}:", *format_diff(d), sep="\n", file=stdout)
        for warning in d.warnings:
            print(f"warning: {warning}", file=stderr)
    if markdown_file is not None:
        report = plan_report.markdown(plan, d, base, base_label or plan_report.DEFAULT_BASE_LABEL, plan_lines)
        try:
            markdown_file.write_text(report, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--markdown: cannot write {markdown_file} ({exc.strerror or exc}).") from None
        written.append(markdown_file)
    print(f"\nWrote {written[0]} and {len(written) - 1} more file(s)", file=stdout)
    if fail_on:
        if d is None:
            raise UsageError("--fail-on needs --diff: without a base plan there is nothing to compare.")
        tripped = d.tripped(fail_on)
        if tripped:
            print(f"error: --fail-on {','.join(fail_on)}: this change has {', '.join(tripped)} "
                  f"({plan_diff.summary(d)})", file=stderr)
            return EXIT_FAIL_ON
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="show what `pulumi up` would register for a stack, offline",
        description="Evaluate the program for a stack in preview mode under the mock engine, offline.",
    )
    p.add_argument("--stack", "-s", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    p.add_argument("--out", type=Path, default=Path("build/plan"), help="output folder (default: build/plan)")
    p.add_argument("--diff", type=Path, help="an earlier plan.json to compare with (read before anything is written)")
    p.add_argument("--base-label", help="what the base plan is, for the report's heading (e.g. 'main at abc1234')")
    p.add_argument("--fail-on", type=parse_fail_on, default=[],
                   help=f"exit {EXIT_FAIL_ON} when the diff has any of: {', '.join(plan_diff.FAIL_ON_CHOICES)} "
                        "(comma-separated, e.g. replace,delete)")
    p.add_argument("--markdown", type=Path, help="also write a Markdown report with a Mermaid picture (pull requests)")
    p.add_argument("--project", help="gcp:project to plan with when the stack file does not set it "
                   f"(then ${' / $'.join(PROJECT_ENV)}, then a placeholder shown as {fakes.PROJECT_AT_DEPLOY})")
    p.set_defaults(func=lambda a: run_plan(a.stack, a.out, a.diff, a.markdown, a.project,
                                           base_label=a.base_label, fail_on=a.fail_on))



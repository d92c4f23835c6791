"""Offline plan: what `pulumi up` would register, with no cloud, cluster, credentials or CLI.

The program is evaluated in preview mode under the same mock engine the tests use
(``cloudrun_mesh.harness``); values that only a provider can compute are shown as unknown.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO

from cloudrun_mesh import graph, harness

PLACEHOLDER_PROJECT = "my-project"
EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_USAGE = 0, 1, 2, 3
PLAN_FORMAT = 1


def short(urn: str) -> str:
    """`<type>::<name>` without the stack and project, for humans."""
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]}::{parts[3]}" if len(parts) >= 4 else urn


def _name(urn: str) -> str:
    return urn.split("::")[-1]


# --------------------------------------------------------------------------------------------
# The plan document
# --------------------------------------------------------------------------------------------


def build_plan(run: harness.ProgramRun) -> dict:
    regs = sorted(run.resources(), key=lambda r: r.urn)
    path = graph.critical_path(regs)
    return {
        "format": PLAN_FORMAT,
        "project": run.project,
        "stack": run.stack,
        "preview": run.preview,
        "resources": [r.as_json() for r in regs],
        "outputs": run.outputs,
        "criticalPath": path,
        "summary": {"resources": len(regs), "criticalPath": len(path)},
    }


def kubernetes_objects(plan: dict) -> list[dict]:
    """Apply-ready manifests of the Kubernetes objects the program manages (reads excluded)."""
    objects = []
    for r in plan["resources"]:
        if not r["type"].startswith("kubernetes:") or r["type"].startswith("pulumi:providers:") or r["read"]:
            continue
        inputs = r["inputs"]
        manifest = {"apiVersion": inputs.get("apiVersion"), "kind": inputs.get("kind")}
        manifest.update({k: v for k, v in inputs.items() if k not in ("apiVersion", "kind")})
        objects.append(manifest)
    return objects


def manifest_filename(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    # Cluster-scoped objects (a Namespace) have no namespace: "cluster-namespace-ads.yaml".
    scope = "cluster" if obj.get("kind") == "Namespace" else meta.get("namespace", "default")
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
# Diff against an earlier plan.json
# --------------------------------------------------------------------------------------------


@dataclass
class PlanDiff:
    added: list[str]
    removed: list[str]
    changed: dict[str, list[str]]  # URN -> changed fields
    replaced_by_urn: list[tuple[str, str]]  # (old URN, new URN): same resource, new URN, no alias
    aliased: list[tuple[str, str]]  # (old URN, new URN) with an alias: moved without replacement
    outputs_changed: list[str]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.replaced_by_urn or self.aliased or self.outputs_changed)


_COMPARED = ("inputs", "protect", "dependencies", "provider", "deleteBeforeReplace", "replaceOnChanges", "ignoreChanges", "retainOnDelete", "parent")


def _changed_fields(old: dict, new: dict) -> list[str]:
    fields = []
    for key in _COMPARED:
        if key == "inputs":
            o, n = old.get("inputs") or {}, new.get("inputs") or {}
            fields += [f"inputs.{k}" for k in sorted(set(o) | set(n)) if o.get(k) != n.get(k)]
        elif old.get(key) != new.get(key):
            fields.append(key)
    return fields


def diff_plans(base: dict, head: dict) -> PlanDiff:
    old = {r["urn"]: r for r in base.get("resources", [])}
    new = {r["urn"]: r for r in head.get("resources", [])}
    removed = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    changed = {urn: f for urn in sorted(set(old) & set(new)) if (f := _changed_fields(old[urn], new[urn]))}

    # A resource whose URN changed: same type, and same name or same inputs.
    replaced, aliased = [], []
    for urn in list(added):
        n = new[urn]
        match = next(
            (
                o
                for o in removed
                if old[o]["type"] == n["type"] and (_name(o) == _name(urn) or old[o]["inputs"] == n["inputs"])
            ),
            None,
        )
        if match is None:
            continue
        removed.remove(match)
        added.remove(urn)
        (aliased if match in n.get("aliases", []) else replaced).append((match, urn))

    outputs_changed = sorted(
        k for k in set(base.get("outputs", {})) | set(head.get("outputs", {}))
        if base.get("outputs", {}).get(k) != head.get("outputs", {}).get(k)
    )
    return PlanDiff(added, removed, changed, replaced, aliased, outputs_changed)


def format_diff(d: PlanDiff) -> list[str]:
    if d.empty:
        return ["No changes against the base plan."]
    lines = []
    for urn in d.added:
        lines.append(f"+ create   {short(urn)}")
    for urn in d.removed:
        lines.append(f"- delete   {short(urn)}")
    for old, new in d.replaced_by_urn:
        lines.append(f"+- REPLACE {short(old)} -> {short(new)}: the URN changes, which replaces the resource in real stacks (add an alias to keep it)")
    for old, new in d.aliased:
        lines.append(f"~ move     {short(old)} -> {short(new)} (aliased: no replacement)")
    for urn, fields in d.changed.items():
        lines.append(f"~ update   {short(urn)}: {', '.join(fields)}")
    for key in d.outputs_changed:
        lines.append(f"~ output   {key}")
    counts = f"{len(d.added)} to create, {len(d.removed)} to delete, {len(d.replaced_by_urn)} to replace, {len(d.changed)} to update"
    return lines + [counts]


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
            flags = [f for f, on in (("protect", r["protect"]), ("read", r["read"])) if on]
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


def markdown(plan: dict, diff_lines: Optional[list[str]]) -> str:
    out = [f"### cloudrun-mesh offline plan: `{plan['stack']}`", ""]
    out.append(f"**{plan['summary']['resources']} resources, critical path {plan['summary']['criticalPath']}**")
    if diff_lines is not None:
        out += ["", "Changes against the base branch:", "", "```diff", *diff_lines, "```"]
    out += ["", "<details><summary>Full plan</summary>", "", "```", *format_plan(plan), "```", "", "</details>", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------


def run_plan(
    stack: str,
    out: Path,
    diff: Optional[Path] = None,
    markdown_file: Optional[Path] = None,
    project: Optional[str] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        values = harness.stack_config(stack)
    except harness.UnknownStackError as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_USAGE
    overrides: dict[str, Any] = {}
    if project:
        overrides["gcp:project"] = project
    elif "gcp:project" not in values:
        overrides["gcp:project"] = PLACEHOLDER_PROJECT
        print(
            f"note: gcp:project is not set for stack {stack}; planning with the placeholder {PLACEHOLDER_PROJECT!r} "
            f"(set yours with `pulumi config set gcp:project <id> -s {stack}` or pass --project)",
            file=stderr,
        )
    base = None
    if diff is not None:
        try:
            base = json.loads(diff.read_text(encoding="utf-8"))
            if not isinstance(base, dict) or not isinstance(base.get("resources"), list):
                raise ValueError("it has no `resources` list")
        except (OSError, ValueError) as exc:
            print(f"error: --diff {diff}: not a plan.json written by this command ({exc})", file=stderr)
            return EXIT_USAGE

    run = harness.run_program(stack, config=overrides, preview=True)
    if run.error is not None:
        from cloudrun_mesh.config import ConfigError

        kind = "configuration error" if isinstance(run.error, ConfigError) else "the program failed"
        print(f"error: {kind} for stack {stack}: {run.error}", file=stderr)
        return EXIT_CONFIG if isinstance(run.error, ConfigError) else EXIT_ERROR

    plan = build_plan(run)
    written = write_plan(plan, out / stack)
    print("\n".join(format_plan(plan)), file=stdout)
    diff_lines = None
    if base is not None:
        diff_lines = format_diff(diff_plans(base, plan))
        print("", f"Diff against {diff}:", *diff_lines, sep="\n", file=stdout)
    if markdown_file is not None:
        markdown_file.parent.mkdir(parents=True, exist_ok=True)
        markdown_file.write_text(markdown(plan, diff_lines), encoding="utf-8")
        written.append(markdown_file)
    print(f"\nWrote {written[0]} and {len(written) - 1} more file(s) under {out / stack}", file=stdout)
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="show what `pulumi up` would register for a stack, offline",
        description="Evaluate the program for a stack in preview mode under the mock engine, offline.",
    )
    p.add_argument("--stack", "-s", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    p.add_argument("--out", type=Path, default=Path("build/plan"), help="output folder (default: build/plan)")
    p.add_argument("--diff", type=Path, help="an earlier plan.json to compare with")
    p.add_argument("--markdown", type=Path, help="also write a Markdown report (for pull-request comments)")
    p.add_argument("--project", help=f"gcp:project to plan with when the stack does not set it (default: {PLACEHOLDER_PROJECT})")
    p.set_defaults(func=lambda a: run_plan(a.stack, a.out, a.diff, a.markdown, a.project))

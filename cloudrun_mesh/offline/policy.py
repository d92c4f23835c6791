"""Offline policies: the policy pack's policies on the offline plan's registrations.

`pulumi preview --policy-pack policy` hands every resource the engine registers to the pack's
analyzer (``Analyze``), then the whole stack (``AnalyzeStack``), with the values a preview cannot know
yet replaced by the engine's unknown sentinel. This command does the same without the Pulumi CLI: it
evaluates the program in preview mode under the mock engine (``cloudrun_mesh.offline.harness``, as the plan
does), configures the pack's own analyzer servicer from pulumi-policy with the policy configuration
file, and calls it with the recorded registrations. A policy that needs an unknown value is skipped, as
in a real preview (pulumi-policy reports it as "can't run policy ... during preview", whether the policy
read the value through pulumi-policy's proxy or raised the proxy's ``UnknownValueError`` itself after its
known checks); the summary counts those skips, and ``pulumi up`` runs the policy again with the real value.

An imported resource (``cloudrun-mesh:adopt``) is analyzed as the engine analyzes it: every property it
ignores takes the value the provider read back during the import (pulumi/pulumi
pkg/resource/deploy/step_generator.go at 1b5949891b3cefcb9974752b24a5ecef0acc86c8: the import step's
state, then ``processIgnoreChanges``, then ``analyzeAll``). Offline nothing is read back, so those
properties are unknown here, and the checks that need them are counted as skipped.

The pack needs ``pulumi-policy`` (``policy/requirements.txt``), which ``make policy`` installs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Optional, TextIO

from cloudrun_mesh import exit_codes, sdk_private, text
from cloudrun_mesh.offline import harness
from cloudrun_mesh.offline.plan import evaluate_offline

PACK_DIR = harness.PROJECT_DIR / "policy"
CONFIG_DIR = PACK_DIR / "config"
PACK_NAME = "cloudrun-mesh"
EXIT_OK, EXIT_MANDATORY, EXIT_USAGE = exit_codes.OK, exit_codes.FAILED, exit_codes.USAGE
LEVELS = ("mandatory", "advisory", "disabled")
# A policy configuration is a small object of policy names: bounded before it is parsed.
CONFIG_LIMIT = 1 << 20
CONFIG_DEPTH = 32


class PolicyConfigError(ValueError):
    """A policy configuration file the Pulumi CLI would refuse."""


@dataclass(frozen=True)
class Result:
    policy: str
    level: str  # mandatory | advisory | skipped
    resource: str  # `<type>::<name>` or "" for the stack
    message: str


def default_config(stack: str, config_dir: Path = CONFIG_DIR) -> Optional[Path]:
    """The checked-in configuration of a stack: ``policy/config/<stack>.json`` where the stack differs,
    else ``policy/config/default.json``; None when neither exists (the pack's own defaults)."""
    for path in (config_dir / f"{stack}.json", config_dir / "default.json"):
        if path.is_file():
            return path
    return None


PACK_MODULE = "cloudrun_mesh_policies"


def pack_module() -> ModuleType:
    """The pack's module, loaded from policy/ by path under the name `pulumi preview --policy-pack policy`
    imports it by (the pack's own `__main__.py` then finds it in ``sys.modules``)."""
    module = sys.modules.get(PACK_MODULE)
    if module is None:
        spec = importlib.util.spec_from_file_location(PACK_MODULE, PACK_DIR / f"{PACK_MODULE}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_MODULE] = module
        spec.loader.exec_module(module)
    return module


def _pack() -> Any:
    """The pack's policies, as `pulumi preview --policy-pack policy` loads them."""
    return pack_module().POLICIES


def read_config(path: Path, policies: Sequence[Any]) -> dict[str, Any]:
    """A `--policy-pack-config` file checked as the CLI checks it: each key a policy of the pack, each
    value an enforcement level or an object of the policy's config properties (and optionally
    `enforcementLevel`), valid against the policy's config schema."""
    import jsonschema

    try:
        data = text.load_json(path, limit=CONFIG_LIMIT, max_depth=CONFIG_DEPTH, what="policy configuration")
    except text.InputFileError as exc:
        raise PolicyConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise PolicyConfigError(f"the policy configuration {path} must be a JSON object keyed by policy name")
    by_name = {p.name: p for p in policies}
    problems = []
    for name, value in data.items():
        policy = by_name.get(name)
        if policy is None:
            problems.append(f"`{name}` is not a policy of the pack (policies: {', '.join(sorted(by_name))})")
            continue
        if isinstance(value, str):
            if value not in LEVELS:
                problems.append(f"`{name}` must be one of {', '.join(LEVELS)} or an object; got {value!r}")
            continue
        if not isinstance(value, dict):
            problems.append(f"`{name}` must be an enforcement level or an object; got {json.dumps(value)}")
            continue
        properties = {k: v for k, v in value.items() if k != "enforcementLevel"}
        level = value.get("enforcementLevel")
        if level is not None and level not in LEVELS:
            problems.append(f"`{name}.enforcementLevel` must be one of {', '.join(LEVELS)}; got {level!r}")
        schema = {
            "type": "object",
            "properties": dict(policy.config_schema.properties) if policy.config_schema else {},
            "additionalProperties": False,
        }
        for error in jsonschema.Draft7Validator(schema).iter_errors(properties):
            where = ".".join(str(p) for p in error.absolute_path)
            problems.append(f"`{name}{'.' + where if where else ''}`: {error.message}")
    if problems:
        raise PolicyConfigError(f"the policy configuration {path} is invalid: " + "; ".join(problems) + ".")
    return data


# --------------------------------------------------------------------------------------------
# The analyzer, called as the engine calls it
# --------------------------------------------------------------------------------------------


def engine_value(value: Any) -> Any:
    """A recorded input as the engine sends it to an analyzer: an unknown becomes the engine's sentinel
    (pulumi.runtime.rpc.UNKNOWN, which pulumi_policy/proxy.py knows as UNKNOWN_STRING_VALUE)."""
    from pulumi.runtime.rpc import UNKNOWN

    def convert(v: Any) -> Any:
        if harness.is_marker(v):  # unknown until deploy, or read from the cluster or GKE at deploy
            return UNKNOWN
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, list):
            return [convert(x) for x in v]
        return v

    return convert(value)


# A property path as `ignore_changes` names it: `template`, `spec.replicas`, `metadata.labels["app"]`.
_PATH_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


def analyzed_inputs(r: harness.Registration) -> dict[str, Any]:
    """The inputs the engine hands the analyzers for ``r``, unknowns as the engine's sentinel.

    For an imported resource every ignored property holds what the provider read back during the
    import (see the module's docstring), which is unknown offline: the whole top-level property, or
    the nested one when the path is plain keys (an ignored list element makes its list unknown).
    """
    from pulumi.runtime.rpc import UNKNOWN

    inputs: dict[str, Any] = engine_value(r.inputs)
    if not r.import_id:
        return inputs
    for path in r.ignore_changes:
        keys = path.split(".")
        if not all(_PATH_KEY.fullmatch(k) for k in keys):
            keys = [re.split(r"[.\[]", path, maxsplit=1)[0]]
        target = inputs
        for key in keys[:-1]:
            nested = target.get(key)
            if not isinstance(nested, dict):
                nested = target[key] = {}
            target = nested
        target[keys[-1]] = UNKNOWN
    return inputs


def _struct(inputs: Mapping[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    value = struct_pb2.Struct()
    value.update(inputs)
    return value


def analyzer(policies: Sequence[Any], config: Optional[Mapping[str, Any]] = None) -> Any:
    """pulumi-policy's own analyzer servicer (what `pulumi preview --policy-pack` talks to over gRPC),
    configured as the CLI configures it from a `--policy-pack-config` file."""
    from pulumi.runtime import proto
    from pulumi_policy import EnforcementLevel

    servicer: Any = sdk_private.policy_analyzer(PACK_NAME, policies, EnforcementLevel.ADVISORY)
    declared = {p.name: p.enforcement_level or EnforcementLevel.ADVISORY for p in policies}
    request = proto.ConfigureAnalyzerRequest()
    for name, value in (config or {}).items():
        entry = request.policyConfig[name]
        # The CLI sends every configured policy with a level: the one written, else the policy's own
        # (an object of properties alone must not turn a mandatory policy advisory).
        level = value if isinstance(value, str) else value.get("enforcementLevel")
        entry.enforcementLevel = sdk_private.enforcement_level_wire(servicer, EnforcementLevel(level) if level else declared[name])
        if isinstance(value, dict):
            entry.properties.update({k: v for k, v in value.items() if k != "enforcementLevel"})
    servicer.Configure(request, None)
    return servicer


def analyze(registrations: Sequence[harness.Registration], servicer: Any) -> list[Any]:
    """Every diagnostic the analyzer reports for these registrations, resource by resource, then the stack."""
    from pulumi.runtime import proto

    def options(r: harness.Registration) -> Any:
        return proto.AnalyzerResourceOptions(
            protect=r.protect,
            ignoreChanges=r.ignore_changes,
            deleteBeforeReplace=r.delete_before_replace,
            aliases=r.aliases,
        )

    diagnostics: list[Any] = []
    for r in registrations:
        request = proto.AnalyzeRequest(type=r.type, properties=_struct(analyzed_inputs(r)), urn=r.urn, name=r.name, options=options(r))
        for d in servicer.Analyze(request, None).diagnostics:
            d.urn = d.urn or r.urn  # the engine attributes a resource policy's violation to its resource
            diagnostics.append(d)
    resources = [
        proto.AnalyzerResource(
            type=r.type, properties=_struct(analyzed_inputs(r)), urn=r.urn, name=r.name, options=options(r), parent=r.parent,
            dependencies=r.dependencies,
        )
        for r in registrations
    ]
    diagnostics += servicer.AnalyzeStack(proto.AnalyzeStackRequest(resources=resources), None).diagnostics
    return diagnostics


# How pulumi-policy reports a policy that stopped at a value unknown during a preview (policy.py,
# `Analyze` and `AnalyzeStack`): the one form every skip takes, whoever raised it.
SKIPPED = re.compile(r"can't run policy '[^']*' from policy pack '[^']*' during preview: ")


def results(diagnostics: Sequence[Any]) -> list[Result]:
    from pulumi.runtime import proto

    found = []
    for d in diagnostics:
        # pulumi-policy prefixes the policy's description (policy.py, _create_report_violation).
        message = d.message.removeprefix(d.description + "\n") if d.description else d.message
        skipped = SKIPPED.match(message)
        if skipped:
            level = "skipped"  # an input it needs is unknown until deploy
            message = message[skipped.end():]
        else:
            level = "mandatory" if d.enforcementLevel == proto.MANDATORY else "advisory"
        found.append(Result(d.policyName, level, _short(d.urn), message))
    order = {"mandatory": 0, "advisory": 1, "skipped": 2}
    return sorted(found, key=lambda r: (order[r.level], r.policy, r.resource))


def _short(urn: str) -> str:
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]}::{parts[3]}" if len(parts) >= 4 else urn


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def shown(path: Optional[Path]) -> str:
    """A configuration path as the user would type it: relative to the working directory when inside it."""
    if path is None:
        return "the pack defaults"
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_results(stack: str, config: Optional[Path], found: Sequence[Result], policies: int, resources: int) -> list[str]:
    lines = [
        f"Policies of the {PACK_NAME} pack on the offline plan of stack {stack} "
        f"(config: {shown(config)}; values unknown until deploy are skipped)",
        "",
    ]
    if not found:
        lines.append("No violations.")
    for r in found:
        lines.append(f"{r.level.upper():9}  {r.policy}  {text.terminal(r.resource or 'stack')}")
        lines.append(f"           {text.terminal(r.message)}")
    lines += ["", summary(found, policies, resources)]
    return lines


def summary(found: Sequence[Result], policies: int, resources: int) -> str:
    count = {level: sum(1 for r in found if r.level == level) for level in ("mandatory", "advisory", "skipped")}
    verdict = "FAIL" if count["mandatory"] else "PASS"
    return (
        f"{verdict}: {count['mandatory']} mandatory violation(s), {count['advisory']} advisory, "
        f"{count['skipped']} skipped for unknown values; {policies} policies on {resources} resources."
    )


def markdown(stack: str, config: Optional[Path], found: Sequence[Result], policies: int, resources: int) -> str:
    out = [f"### cloudrun-mesh policies: {text.code_span(stack)}", "", f"**{summary(found, policies, resources)}**", ""]
    out.append(f"Configuration: {text.code_span(shown(config))}." if config else "Configuration: the pack defaults.")
    if found:
        out += ["", "| Level | Policy | Resource | Message |", "| --- | --- | --- | --- |"]
        out += [
            f"| {r.level} | {text.code_span(r.policy, in_table=True)} | {text.code_span(r.resource or 'stack', in_table=True)} "
            f"| {text.markdown(r.message)} |"
            for r in found
        ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------


def run_policy(
    stack: str,
    config: Optional[Path] = None,
    markdown_file: Optional[Path] = None,
    project: Optional[str] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
    project_dir: Path = harness.PROJECT_DIR,
) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        values = harness.stack_config(stack, None, project_dir)
    except (harness.UnknownStackError, harness.StackFileError) as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_USAGE
    try:
        policies = _pack()
    except ImportError as exc:
        print(f"error: the policy pack needs pulumi-policy ({exc}); `make policy` installs policy/requirements.txt", file=stderr)
        return EXIT_USAGE
    config = config if config is not None else default_config(stack, project_dir / "policy" / "config")
    try:
        policy_config = read_config(config, policies) if config else {}
    except PolicyConfigError as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_USAGE

    run = evaluate_offline(stack, values, project, stderr, project_dir=project_dir)
    if isinstance(run, int):
        return run

    found = results(analyze(run.registrations, analyzer(policies, policy_config)))
    resources = len(run.resources())
    print("\n".join(format_results(stack, config, found, len(policies), resources)), file=stdout)
    if markdown_file is not None:
        try:
            markdown_file.parent.mkdir(parents=True, exist_ok=True)
            markdown_file.write_text(markdown(stack, config, found, len(policies), resources), encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write --markdown {markdown_file}: {exc.strerror or exc}", file=stderr)
            return EXIT_USAGE
    return EXIT_MANDATORY if any(r.level == "mandatory" for r in found) else EXIT_OK


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "policy",
        help="run the policy pack on a stack's offline plan, as `pulumi preview --policy-pack policy` would",
        description="Run the policy pack's policies on the registrations of a stack's offline plan (values "
        "unknown until deploy are skipped, as in a preview). Exit 1 on a mandatory violation.",
    )
    p.add_argument("--stack", "-s", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    p.add_argument(
        "--config", type=Path,
        help="policy configuration, as for `pulumi preview --policy-pack-config` (default: policy/config/<stack>.json, else policy/config/default.json)",
    )
    p.add_argument("--markdown", type=Path, help="also write the results as Markdown (for a job summary)")
    p.add_argument("--project", help="gcp:project to evaluate with when the stack file does not set it "
                   "(then $GOOGLE_PROJECT / $GOOGLE_CLOUD_PROJECT, then a placeholder), as for `plan`")
    p.set_defaults(func=lambda a: run_policy(a.stack, a.config, a.markdown, a.project))

"""The GitHub workflows: valid against GitHub's schemas, and shaped as the documentation describes
(stacks discovered from Pulumi.<stack>.yaml; tests, offline plan, offline policies and preview per
stack on pull requests; each stack deployed and smoke-checked in the promotion order on main), with no
job that runs a pull request's code able to reach a deploy secret or a deploy environment.

Nothing here depends on which stacks ship: names are read from the stack files and .github/promotion,
and a name that is not a stack is generated, so adding or renaming a stack keeps this file green."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import check_jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result
from docs_support import pages
from testkit import ROOT

from cloudrun_mesh.offline import harness

GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
PREVIEW = WORKFLOWS / "stack-preview.yml"
UP = WORKFLOWS / "stack-up.yml"
DEPENDABOT = GITHUB / "dependabot.yml"
SETUP = GITHUB / "actions" / "stack-setup" / "action.yml"
DISCOVERY = GITHUB / "scripts" / "stacks.py"
PROMOTION = GITHUB / "promotion"
ALL = (PULL_REQUEST, DEPLOY, PREVIEW, UP, SETUP)
DOCS = [ROOT / name for name in pages()]


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as the boolean True.
        data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="module")
def pr() -> dict:
    return load(PULL_REQUEST)


@pytest.fixture(scope="module")
def deploy() -> dict:
    return load(DEPLOY)


@pytest.fixture(scope="module")
def preview() -> dict:
    return load(PREVIEW)


@pytest.fixture(scope="module")
def up() -> dict:
    return load(UP)


@pytest.fixture(scope="module")
def setup() -> dict:
    return load(SETUP)


def steps_using(steps: list[dict], action: str) -> list[dict]:
    return [s for s in steps if s.get("uses", "").split("@")[0] == action]


def the_step(steps: list[dict], action: str) -> dict:
    found = steps_using(steps, action)
    assert len(found) == 1, f"expected one {action} step, found {len(found)}"
    return found[0]


def step(steps: list[dict], id_: str) -> dict:
    return next(s for s in steps if s.get("id") == id_)


def scripts(steps: list[dict]) -> str:
    return "\n".join(s.get("run", "") for s in steps)


def check_schema(schema: str, *paths: Path) -> Result:
    # check-jsonschema's own command (what `python -m check_jsonschema` runs) in this process: a
    # subprocess per check paid ~0.6 s to import it. Its exit code is the verdict; a crash is raised.
    args = ["--builtin-schema", schema, *map(str, paths)]
    return CliRunner().invoke(check_jsonschema.main, args, catch_exceptions=False)


def test_the_workflows_and_the_shared_setup():
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["deploy.yml", "pull-request.yml", "stack-preview.yml", "stack-up.yml"]
    assert sorted(p.name for p in (GITHUB / "actions").iterdir()) == ["stack-setup"]


def test_workflows_match_githubs_schema():
    result = check_schema("vendor.github-workflows", PULL_REQUEST, DEPLOY, PREVIEW, UP)
    assert result.exit_code == 0, result.output


def test_dependabot_keeps_the_action_pins_and_the_requirements_current():
    result = check_schema("vendor.dependabot", DEPENDABOT)
    assert result.exit_code == 0, result.output
    updates = {u["package-ecosystem"]: u for u in yaml.safe_load(DEPENDABOT.read_text())["updates"]}
    assert set(updates) == {"github-actions", "pip"}
    # Every folder with an action reference, and every folder with a requirements file, is watched.
    def folder(path: Path) -> str:
        relative = path.parent.relative_to(ROOT).as_posix()
        return "/" if relative == "." else f"/{relative}"

    actions = {folder(p) for p in (GITHUB / "actions").glob("*/action.yml")}
    assert set(updates["github-actions"]["directories"]) == {"/"} | actions
    requirements = [*ROOT.glob("requirements*.txt"), *ROOT.glob("[!.]*/requirements*.txt")]
    assert set(updates["pip"]["directories"]) == {folder(p) for p in requirements}


def test_the_composite_action_matches_githubs_schema():
    result = check_schema("vendor.github-actions", SETUP)
    assert result.exit_code == 0, result.output


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(PULL_REQUEST.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    result = check_schema("vendor.github-workflows", broken)
    assert result.exit_code == 1, result.output
    assert "runs-on" in result.output


def test_triggers(pr, deploy, preview, up):
    assert pr["on"] == {"pull_request": {"branches": ["main"]}}  # never pull_request_target
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    for called in (preview, up):
        assert list(called["on"]) == ["workflow_call"]
        assert called["on"]["workflow_call"]["inputs"] == {
            "stack": {"description": "stack name (Pulumi.<stack>.yaml)", "type": "string", "required": True},
        }


def test_least_privilege_permissions(pr, deploy, preview, up):
    read = {"contents": "read"}
    for workflow in (pr, deploy, preview, up):
        assert workflow["permissions"] == read
    cloud = {**read, "id-token": "write"}
    assert {name: job["permissions"] for name, job in pr["jobs"].items()} == {
        "stacks": read, "test": read, "plan": read, "preview": {**cloud, "pull-requests": "write"},
    }
    assert {name: job["permissions"] for name, job in deploy["jobs"].items()} == {"stacks": read, "test": read, "deploy": cloud}
    # Each caller calls the one file whose jobs ask for exactly what it grants (GitHub refuses a
    # called job that asks for more, whatever its `if:`); only the preview may comment.
    assert {name: job["permissions"] for name, job in preview["jobs"].items()} == {"preview": pr["jobs"]["preview"]["permissions"]}
    assert {name: job["permissions"] for name, job in up["jobs"].items()} == {"up": deploy["jobs"]["deploy"]["permissions"]}
    assert pr["jobs"]["preview"]["uses"] == "./.github/workflows/stack-preview.yml"
    assert deploy["jobs"]["deploy"]["uses"] == "./.github/workflows/stack-up.yml"


def test_no_checkout_leaves_the_token_in_git_config(pr, deploy, preview, up):
    # No job pushes to git, and the plan, tests and previews run the pull request's own code:
    # actions/checkout's default would leave the job's token in .git/config for that code to read.
    checkouts = [s for w in (pr, deploy, preview, up) for job in w["jobs"].values() for s in steps_using(job.get("steps", []), "actions/checkout")]
    assert len(checkouts) == 8
    assert all(c.get("with", {}).get("persist-credentials") is False for c in checkouts)


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(?:\s+#\s*(.*))?$", re.M)


def test_actions_are_pinned_by_commit_with_their_version():
    # A tag can be moved to other code; a full commit SHA cannot. The version in the comment is what
    # Dependabot reads and updates with the SHA. One action, one pin, everywhere.
    pins: dict[str, set[str]] = {}
    for path in ALL:
        for ref, comment in USES.findall(path.read_text()):
            if ref.startswith("./"):
                assert (ROOT / ref).exists(), ref  # a local action or reusable workflow of this repository
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned by commit"
            assert re.fullmatch(r"v\d+\.\d+\.\d+", (comment or "").strip()), f"{path.name}: {ref} needs its version, `# vX.Y.Z`"
            pins.setdefault(ref.split("@")[0], set()).add(f"{ref} # {comment.strip()}")
    assert pins and all(len(p) == 1 for p in pins.values()), pins


def test_both_run_the_readme_test_command(pr, deploy):
    assert "make test" in (ROOT / "README.md").read_text()
    for workflow in (pr, deploy):
        steps = workflow["jobs"]["test"]["steps"]
        assert scripts(steps).strip() == "make test"
        assert the_step(steps, "actions/setup-python")["with"]["python-version"] == "3.11"


# --------------------------------------------------------------------------------------------
# Discovery: the stacks and the promotion order, read at run time.
# --------------------------------------------------------------------------------------------


def discovery_repo(tmp_path: Path, stacks: list[str], promotion: str | bytes | None = None) -> Path:
    """A copy of what the discovery step reads: stack files, .github/promotion and the script."""
    (tmp_path / ".github" / "scripts").mkdir(parents=True)
    for name in stacks:
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    shutil.copy(DISCOVERY, tmp_path / ".github" / "scripts" / "stacks.py")
    text = PROMOTION.read_text() if promotion is None else promotion
    target = tmp_path / ".github" / "promotion"
    target.write_bytes(text) if isinstance(text, bytes) else target.write_text(text, encoding="utf-8")
    return tmp_path


def run_discovery(workflow: dict, repo: Path) -> tuple[int, dict[str, Any], str]:
    """The discovery step of `workflow`, run as the runner runs it: (exit status, outputs, stderr)."""
    script = step(workflow["jobs"]["stacks"]["steps"], "discover")["run"]
    output = Path(tempfile.mkdtemp()) / "github-output"
    output.write_text("")
    result = subprocess.run(
        ["bash", "-e", "-c", script.replace("python3 ", f"{sys.executable} ", 1)],
        cwd=repo, env={"GITHUB_OUTPUT": str(output), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return result.returncode, {k: json.loads(v) for k, v in outputs.items()}, result.stderr


@pytest.mark.parametrize("which", ["pr", "deploy"])
def test_discovery_of_the_shipped_stacks(which, request):
    code, outputs, err = run_discovery(request.getfixturevalue(which), ROOT)
    assert code == 0, err
    # Derived from the files, so that adding a stack and its line in .github/promotion needs no test edit.
    listed = [line.split("#")[0].strip() for line in PROMOTION.read_text(encoding="utf-8").splitlines()]
    listed = [name for name in listed if name]
    assert outputs == {"stacks": harness.stacks(), "promotion": [s for s in harness.stacks() if s not in listed] + listed}
    assert set(listed) == set(harness.stacks())  # every stack has its place in the order


def test_a_new_stack_file_is_picked_up_without_editing_a_workflow(tmp_path, pr, deploy):
    repo = discovery_repo(tmp_path, ["dev", "prod"], promotion="dev\nprod\n")
    assert run_discovery(pr, repo)[1]["stacks"] == ["dev", "prod"]
    (repo / "Pulumi.staging.yaml").write_text("config: {}\n")
    code, outputs, _ = run_discovery(pr, repo)
    assert (code, outputs["stacks"]) == (0, ["dev", "prod", "staging"])
    # Not yet in the promotion order: deployed before the first stack it names, never after prod.
    assert run_discovery(deploy, repo)[1]["promotion"] == ["staging", "dev", "prod"]
    (repo / ".github" / "promotion").write_text("# order\ndev\nstaging  # after dev\nprod\n")
    assert run_discovery(deploy, repo)[1]["promotion"] == ["dev", "staging", "prod"]


INVALID = "is not a valid stack name (Pulumi allows 1-100 letters, digits, hyphens, underscores and periods); rename the file Pulumi.<stack>.yaml."


@pytest.mark.parametrize(
    "stacks, promotion, line",
    [
        (["dev", "my stack"], "dev\n", f"::error::'Pulumi.my stack.yaml': 'my stack' {INVALID}"),
        (["dev", "a" * 101], "dev\n", f"::error::'Pulumi.{'a' * 101}.yaml': '{'a' * 101}' is not a valid stack name"),
        # A file name is the pull request's to choose: a line break in it neither passes the name check
        # (`$` would let a final one through) nor starts a workflow command of its own in the log.
        (["dev", "dev\n"], "dev\n", f"::error::'Pulumi.dev\\n.yaml': 'dev\\n' {INVALID}"),
        (["dev", "x\n::error title=owned::y"], "dev\n",
         f"::error::'Pulumi.x\\n::error title=owned::y.yaml': 'x\\n::error title=owned::y' {INVALID}"),
        (["dev", "x\r\n::add-mask::y%0A"], "dev\n",
         f"::error::'Pulumi.x\\r\\n::add-mask::y%250A.yaml': 'x\\r\\n::add-mask::y%250A' {INVALID}"),
        (["dev", "\x1b[31mred"], "dev\n", f"::error::'Pulumi.\\x1b[31mred.yaml': '\\x1b[31mred' {INVALID}"),
        (["dev", "x\u2028y"], "dev\n", f"::error::'Pulumi.x\\u2028y.yaml': 'x\\u2028y' {INVALID}"),
        # Two stacks that would share a GitHub environment (names compared without case).
        (["dev", "dev-preview"], "dev\n", "::error::'Pulumi.dev-preview.yaml': a stack name must not end in '-preview'"),
        (["Dev-Preview", "dev"], "dev\n", "::error::'Pulumi.Dev-Preview.yaml': a stack name must not end in '-preview'"),
        (["Dev", "dev"], "dev\n", "::error::'Pulumi.dev.yaml': the stacks 'Dev' and 'dev' differ only in case"),
        (["dev", "prod"], "dev\nstaging\nprod\n",
         "::error::.github/promotion:2: the promotion order names 'staging', which has no Pulumi.staging.yaml "
         "(stacks: dev, prod)."),
        (["dev", "prod"], "dev\nprod\ndev\n",
         "::error::.github/promotion:3: 'dev' is already in the promotion order; name each stack once."),
        (["dev", "prod"], "dev\nprod\x0b::error::x\n",
         "::error::.github/promotion:2: 'prod\\x0b::error::x' is not a valid stack name"),
        (["dev"], "d\u00e9v\n", "::error::.github/promotion:1: 'd\u00e9v' is not a valid stack name"),
        (["dev"], b"dev\n\xff\n", "::error::.github/promotion: not UTF-8 text (byte 4)"),
        (["dev"], "dev\n" + "#" * 70_000, "::error::.github/promotion is larger than 65536 bytes"),
        ([], "", "::error::no stack files (Pulumi.<stack>.yaml) in"),
    ],
)
def test_bad_stack_files_and_promotion_orders_fail_with_one_line(tmp_path, deploy, stacks, promotion, line):
    code, outputs, err = run_discovery(deploy, discovery_repo(tmp_path, stacks, promotion))
    assert code == 1 and outputs == {}
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err  # one annotation, nothing after it
    assert err.startswith(line), err
    assert "Traceback" not in err


def test_the_documented_hostile_name_example_is_what_the_script_prints(tmp_path, deploy):
    example = re.search(r"for that file the line is\s+`([^`]+)`", (ROOT / "docs" / "ci-cd.md").read_text(encoding="utf-8"))
    assert example, "docs/ci-cd.md lost its example of a hostile stack file name"
    code, _, err = run_discovery(deploy, discovery_repo(tmp_path, ["dev", "dev\n"], "dev\n"))
    assert code == 1 and err.startswith(example.group(1)), (example.group(1), err)


def test_a_promotion_file_that_is_not_a_regular_file_is_refused_at_once(tmp_path, deploy):
    repo = discovery_repo(tmp_path, ["dev"], "")
    (repo / ".github" / "promotion").unlink()
    os.mkfifo(repo / ".github" / "promotion")  # reading it would wait for a writer forever
    code, _, err = run_discovery(deploy, repo)
    assert (code, err) == (1, "::error::.github/promotion is not a regular file; write one stack name per line.\n")


def test_a_stack_file_that_is_not_a_regular_file_is_refused(tmp_path, deploy):
    repo = discovery_repo(tmp_path, ["dev"], "")
    (repo / "Pulumi.prod.yaml").mkdir()
    code, _, err = run_discovery(deploy, repo)
    assert (code, err) == (1, "::error::'Pulumi.prod.yaml' is not a regular file; a stack file is a YAML file.\n")


def test_at_most_a_matrix_of_stacks(tmp_path, deploy):
    assert run_discovery(deploy, discovery_repo(tmp_path / "a", [f"s{i:03}" for i in range(256)], ""))[0] == 0
    code, _, err = run_discovery(deploy, discovery_repo(tmp_path / "b", [f"s{i:03}" for i in range(257)], ""))
    assert (code, err) == (1, "::error::more than 256 stack files: a GitHub matrix runs at most 256 jobs.\n")


def test_a_name_that_is_not_a_stack_is_refused_by_the_promotion_order(tmp_path, deploy):
    # The real stacks, plus a name generated to be none of them: the check holds whatever ships.
    stacks = harness.stacks()
    unknown = next(f"not-a-stack-{i}" for i in range(len(stacks) + 1) if f"not-a-stack-{i}" not in stacks)
    repo = discovery_repo(tmp_path, stacks, "\n".join([*stacks, unknown]) + "\n")
    code, _, err = run_discovery(deploy, repo)
    assert code == 1
    assert err.startswith(f"::error::.github/promotion:{len(stacks) + 1}: the promotion order names '{unknown}', which has no"), err


def test_the_matrices_come_from_discovery(pr, deploy):
    for job in ("plan", "preview"):
        assert pr["jobs"][job]["needs"] == "stacks"
        assert pr["jobs"][job]["strategy"]["matrix"] == {"stack": "${{ fromJSON(needs.stacks.outputs.stacks) }}"}
    assert deploy["jobs"]["deploy"]["strategy"]["matrix"] == {"stack": "${{ fromJSON(needs.stacks.outputs.promotion) }}"}
    for workflow in (pr, deploy):
        assert "matrix: stack: [" not in json.dumps(workflow)  # no stack is listed in a workflow
    text = "".join(path.read_text() for path in ALL)
    for name in harness.stacks():
        assert f"Pulumi.{name}.yaml" not in text and not re.search(rf"stack(-name)?: ['\"]?{re.escape(name)}\b", text), name


# --------------------------------------------------------------------------------------------
# Pull requests.
# --------------------------------------------------------------------------------------------


def test_pull_request_runs_supersede_each_other(pr):
    assert pr["concurrency"] == {"group": "pull-request-${{ github.event.pull_request.number }}", "cancel-in-progress": True}


def test_offline_plan_diffs_against_the_base_branch(pr):
    steps = pr["jobs"]["plan"]["steps"]
    checkouts = steps_using(steps, "actions/checkout")
    assert [c["with"].get("path") for c in checkouts] == ["head", "base"]
    assert checkouts[1]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    run = scripts(steps)
    assert "python -m cloudrun_mesh plan --help" in run  # a base branch without the plan is skipped
    assert 'python -m cloudrun_mesh plan --stack "$STACK" --out build/plan' in run
    assert "--diff $BASE_PLAN" in run and "--markdown build/plan/$STACK/summary.md" in run
    assert "--fail-on refused" in run and "--base-label" in run
    assert '>> "$GITHUB_STEP_SUMMARY"' in run
    upload = the_step(steps, "actions/upload-artifact")
    assert upload["with"]["path"] == "head/build/plan/${{ matrix.stack }}/"


@pytest.mark.parametrize("base, code", [("/base/plan.json", 4), ("", 0)])
def test_the_plan_step_gates_refused_changes_and_always_keeps_the_summary(tmp_path, pr, base, code):
    # The step as the runner runs it, through the real Makefile, with a stand-in for the virtualenv's
    # python that records the command line, writes a summary and exits as `plan --fail-on` does
    # when it finds what it was asked to stop (4).
    script = step_named(pr["jobs"]["plan"]["steps"], "Plan the pull request")["run"]
    head, venv = tmp_path / "head", tmp_path / "venv"
    head.mkdir()
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, head / name)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\nmkdir -p build/plan/dev\n'
        f'echo "### plan of dev" > build/plan/dev/summary.md\nexit {code}\n'
    )
    (venv / "bin" / "python").chmod(0o755)
    (venv / ".runtime-installed").touch()  # newer than requirements.txt: make installs nothing
    record, summary = tmp_path / "argv", tmp_path / "summary.md"
    env = {
        "PATH": "/usr/bin:/bin", "VENV": str(venv), "STACK": "dev", "BASE_PLAN": base, "BASE_REF": "main",
        "BASE_SHA": "abc1234" + "0" * 33, "GITHUB_STEP_SUMMARY": str(summary), "RECORD": str(record),
    }
    result = subprocess.run(["bash", "-e", "-c", script], cwd=head, env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode != 0) is (code != 0), result.stdout + result.stderr  # make reports 4 as its own 2
    argv = record.read_text().splitlines()
    expected = ["-m", "cloudrun_mesh", "plan", "--stack", "dev", "--out", "build/plan", "--markdown", "build/plan/dev/summary.md"]
    if base:
        expected += ["--diff", base, "--base-label", "main at abc1234", "--fail-on", "refused"]
    assert argv == expected
    written = summary.read_text()
    assert written.startswith("### plan of dev\n")  # even when the gate fails the step
    assert ("No plan of the base branch" in written) is (not base)


def test_policies_offline_for_every_stack_in_the_summary(pr):
    steps = pr["jobs"]["plan"]["steps"]
    names = [s.get("name") for s in steps]
    policy = steps[names.index("Policies, offline")]
    assert policy["run"] == 'make policy STACK="$STACK" ARGS="--markdown build/plan/$STACK/policy.md"'
    assert "continue-on-error" not in policy  # a mandatory violation fails the job
    assert policy["if"] == "always() && steps.plan.outcome != 'skipped'"  # also after a gated plan
    summary = steps[names.index("Policy results in the summary")]
    assert summary["if"] == "always()"
    assert 'cat "build/plan/$STACK/policy.md" >> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    assert names.index("Plan the pull request") < names.index("Policies, offline") < names.index("Keep the plan")


def test_offline_jobs_need_no_secrets_so_forks_get_them(pr):
    for name in ("stacks", "plan"):
        job = pr["jobs"][name]
        assert "if" not in job
        assert "secrets." not in json.dumps(job) and "vars." not in json.dumps(job)


def test_preview_only_where_cloud_access_exists(pr):
    job = pr["jobs"]["preview"]
    assert " ".join(job["if"].split()) == (
        "github.event.pull_request.head.repo.full_name == github.repository"
        " && github.actor != 'dependabot[bot]'"
        " && vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''"
    )
    assert job["uses"] == "./.github/workflows/stack-preview.yml"
    assert job["with"] == {"stack": "${{ matrix.stack }}"}


def test_secrets_are_passed_by_name_never_inherited(pr, deploy, preview, up):
    # By name, so that the called job's environment supplies the value (stack-preview.yml); the
    # preview's token and the deployer's have different names, so neither can stand in for the other.
    assert pr["jobs"]["preview"]["secrets"] == {"PULUMI_PREVIEW_ACCESS_TOKEN": "${{ secrets.PULUMI_PREVIEW_ACCESS_TOKEN }}"}
    assert deploy["jobs"]["deploy"]["secrets"] == {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}
    assert set(preview["on"]["workflow_call"]["secrets"]) == {"PULUMI_PREVIEW_ACCESS_TOKEN"}
    assert set(up["on"]["workflow_call"]["secrets"]) == {"PULUMI_ACCESS_TOKEN"}
    # No passphrase anywhere: one would encrypt as well as decrypt, and is usually shared by stacks.
    assert all("PASSPHRASE" not in path.read_text() for path in ALL)


def test_pull_requests_never_deploy(pr, preview):
    assert [job["uses"] for job in pr["jobs"].values() if "uses" in job] == ["./.github/workflows/stack-preview.yml"]
    assert not any(steps_using(job.get("steps", []), "pulumi/actions") for job in pr["jobs"].values())
    commands = [s["with"]["command"] for job in preview["jobs"].values() for s in steps_using(job["steps"], "pulumi/actions")]
    assert commands == ["preview"]


# --------------------------------------------------------------------------------------------
# Previews that cannot deploy: what the jobs that run a pull request's code can reach.
# --------------------------------------------------------------------------------------------

# Events whose runs execute code a pull request chose (its own workflows and scripts, or a build of it).
PULL_REQUEST_EVENTS = {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment", "issue_comment", "workflow_run"}
SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"
SECRET = re.compile(r"\bsecrets\.([A-Za-z_][A-Za-z0-9_]*)")
ANY_SECRETS = re.compile(r"\bsecrets\b(?!\.[A-Za-z_])")  # secrets[...] or toJSON(secrets): any secret at all
STACK_EXPRESSION = re.compile(r"\$\{\{\s*matrix\.stack\s*\}\}")


def workflow_jobs(workflows: dict[str, dict], name: str, caller: dict | None = None, seen: tuple = ()):
    """(file, job name, job, the caller job or None, the environment it runs in with `<stack>` for the
    matrix's stack) for every job of `name` and of the reusable workflows it calls, to any depth."""
    assert name not in seen, f"{name} calls itself"
    for job_name, job in workflows[name]["jobs"].items():
        environment = job.get("environment")
        if isinstance(environment, dict):
            environment = environment.get("name")
        if environment is not None and caller is not None:  # the caller's `with:` values, by input name
            for key, value in caller.get("with", {}).items():
                environment = re.sub(rf"\$\{{\{{\s*inputs\.{re.escape(key)}\s*\}}\}}", str(value), environment)
        if environment is not None:
            environment = STACK_EXPRESSION.sub("<stack>", environment)
        yield name, job_name, job, caller, environment
        uses = job.get("uses", "")
        if uses.startswith("./.github/workflows/"):
            yield from workflow_jobs(workflows, uses.rsplit("/", 1)[1], job, (*seen, name))


def secret_reach(workflows: dict[str, dict]) -> list[str]:
    """Every way a job that runs a pull request's code could reach a deploy secret or a deploy
    environment; empty when there is none. Deploy secrets and environments are those of the jobs of
    every other workflow (push to main), read from the files, so a new one is covered without an edit."""
    entry = {name: w for name, w in workflows.items() if "workflow_call" not in w["on"]}
    pr_runs = [job for name, w in entry.items() if set(w["on"]) & PULL_REQUEST_EVENTS for job in workflow_jobs(workflows, name)]
    deploy_runs = [job for name, w in entry.items() if not set(w["on"]) & PULL_REQUEST_EVENTS for job in workflow_jobs(workflows, name)]
    deploy_secrets = {n for *_, job, _, _ in deploy_runs for n in SECRET.findall(json.dumps(job))} - {"GITHUB_TOKEN"}
    deploy_environments = {env for *_, env in deploy_runs if env is not None}
    pr_secrets = {n for *_, job, _, _ in pr_runs for n in SECRET.findall(json.dumps(job))} - {"GITHUB_TOKEN"}
    problems = []
    for file, name, job, caller, environment in pr_runs:
        where = f"{file}: job {name}"
        text = json.dumps({k: v for k, v in job.items() if k != "secrets" or v == "inherit"})
        if job.get("secrets") == "inherit":
            problems.append(f"{where} hands every repository secret to the workflow it calls (`secrets: inherit`)")
        if ANY_SECRETS.search(text):
            problems.append(f"{where} reads the whole secrets context")
        for secret in sorted(set(SECRET.findall(json.dumps(job))) & deploy_secrets):
            problems.append(f"{where} names the deploy secret {secret}")
        if environment is not None and (environment in deploy_environments or not environment.endswith("-preview")):
            problems.append(f"{where} runs in the environment {environment!r}, not a `<stack>-preview` one")
        # A secret is consumed only in a preview environment, whose value overrides whatever the caller
        # passed; a job without one (or a caller passing it on) must never read one itself.
        used = set(SECRET.findall(text)) - {"GITHUB_TOKEN"}
        if used and environment is None and "uses" not in job:
            problems.append(f"{where} reads {sorted(used)} outside a `<stack>-preview` environment")
        # Forks: no secret, no OIDC token, no environment; the condition is on the job or its caller.
        reaches = bool(used) or environment is not None or job.get("permissions", {}).get("id-token") == "write" or "uses" in job
        guards = " ".join(str(j.get("if", "")) for j in (job, caller) if j is not None)
        if reaches and SAME_REPOSITORY not in " ".join(guards.split()):
            problems.append(f"{where} reaches secrets or the cloud without `if: {SAME_REPOSITORY}`")
    if not pr_secrets <= {n for *_, job, _, env in pr_runs if env for n in SECRET.findall(json.dumps(job))}:
        problems.append(f"secrets {sorted(pr_secrets)} are passed on a pull request but consumed by no preview environment")
    return problems


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict]:
    return {path.name: load(path) for path in sorted(WORKFLOWS.glob("*.yml"))}


def test_no_job_that_runs_a_pull_requests_code_can_reach_a_deploy_secret(workflows):
    assert secret_reach(workflows) == []
    # The check sees the real deploy side: what it protects is there to be protected.
    deploy_runs = list(workflow_jobs(workflows, "deploy.yml"))
    assert "PULUMI_ACCESS_TOKEN" in {n for *_, job, _, _ in deploy_runs for n in SECRET.findall(json.dumps(job))}
    assert {env for *_, env in deploy_runs if env} == {"<stack>"}
    assert {env for *_, env in workflow_jobs(workflows, "pull-request.yml") if env} == {"<stack>-preview"}


def _plan_steps(w):
    return w["pull-request.yml"]["jobs"]["plan"]["steps"]


@pytest.mark.parametrize(
    "breach, expected",
    [
        (lambda w: w["pull-request.yml"]["jobs"]["preview"].update(secrets="inherit"), "secrets: inherit"),
        (lambda w: w["pull-request.yml"]["jobs"]["preview"]["secrets"].update(PULUMI_ACCESS_TOKEN="${{ secrets.PULUMI_ACCESS_TOKEN }}"),
         "names the deploy secret PULUMI_ACCESS_TOKEN"),
        (lambda w: w["stack-preview.yml"]["jobs"]["preview"].update(environment="${{ inputs.stack }}"), "runs in the environment '<stack>'"),
        (lambda w: w["stack-preview.yml"]["jobs"]["preview"].update(environment="prod"), "runs in the environment 'prod'"),
        (lambda w: w["stack-preview.yml"]["jobs"]["preview"].pop("environment"),
         "reads ['PULUMI_PREVIEW_ACCESS_TOKEN'] outside a `<stack>-preview` environment"),
        (lambda w: _plan_steps(w).append({"run": "echo", "env": {"T": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}}),
         "names the deploy secret PULUMI_ACCESS_TOKEN"),
        (lambda w: _plan_steps(w).append({"run": "echo", "env": {"T": "${{ secrets.ANYTHING }}"}}),
         "reads ['ANYTHING'] outside a `<stack>-preview` environment"),
        (lambda w: _plan_steps(w).append({"run": "echo", "env": {"T": "${{ toJSON(secrets) }}"}}), "reads the whole secrets context"),
        (lambda w: w["pull-request.yml"]["jobs"]["preview"].update({"if": "vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''"}),
         "without `if: github.event.pull_request.head.repo.full_name == github.repository`"),
        # A pull request workflow that calls the deploy workflow's reusable file.
        (lambda w: w["pull-request.yml"]["jobs"]["preview"].update(uses="./.github/workflows/stack-up.yml"),
         "runs in the environment '<stack>'"),
    ],
)
def test_the_secret_reach_check_can_fail(workflows, breach, expected):
    broken = copy.deepcopy(workflows)
    breach(broken)
    problems = secret_reach(broken)
    assert any(expected in p for p in problems), problems


# --------------------------------------------------------------------------------------------
# The stack workflow: environments, previews, deploys, the smoke check.
# --------------------------------------------------------------------------------------------


def test_each_job_runs_in_its_stacks_environment(preview, up):
    assert preview["jobs"]["preview"]["environment"] == "${{ inputs.stack }}-preview"
    assert up["jobs"]["up"]["environment"] == "${{ inputs.stack }}"
    assert "if" not in preview["jobs"]["preview"] and "if" not in up["jobs"]["up"]  # each file does one thing


def test_one_update_per_stack_at_a_time(up, preview, deploy):
    assert up["jobs"]["up"]["concurrency"] == {"group": "pulumi-up-${{ inputs.stack }}", "cancel-in-progress": False}
    assert "concurrency" not in preview["jobs"]["preview"]  # previews take no lock a deploy would wait for
    assert "concurrency" not in deploy  # a run-wide group would cancel a queued prod approval


def test_deploys_follow_the_promotion_order_one_at_a_time(deploy):
    job = deploy["jobs"]["deploy"]
    assert job["needs"] == ["stacks", "test"]
    assert job["strategy"]["max-parallel"] == 1 and job["strategy"]["fail-fast"] is True
    assert job["uses"] == "./.github/workflows/stack-up.yml"
    assert job["with"] == {"stack": "${{ matrix.stack }}"}
    assert job["if"] == "vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''"


@pytest.mark.parametrize("which, job, command", [("preview", "preview", "preview"), ("up", "up", "up")])
def test_pulumi_with_the_policy_pack_and_the_stacks_policy_configuration(request, which, job, command):
    steps = request.getfixturevalue(which)["jobs"][job]["steps"]
    pulumi = the_step(steps, "pulumi/actions")["with"]
    assert (pulumi["command"], pulumi["stack-name"], pulumi["policyPacks"]) == (command, "${{ inputs.stack }}", "policy")
    assert pulumi["policyPackConfigs"] == "${{ steps.setup.outputs.policy-config }}"
    assert pulumi["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert (ROOT / pulumi["policyPacks"] / "PulumiPolicy.yaml").is_file()
    assert step(steps, "setup")["uses"] == "./.github/actions/stack-setup"
    assert pulumi.get("comment-on-pr") is (True if job == "preview" else None)


def test_the_smoke_check_follows_pulumi_up_and_gates_promotion(up):
    steps = up["jobs"]["up"]["steps"]
    names = [s.get("uses", s.get("name", "")).split("@")[0] for s in steps]
    assert names.index("pulumi/actions") == names.index("Smoke check (make verify)") - 1
    smoke = steps[names.index("Smoke check (make verify)")]
    assert "if" not in smoke and "continue-on-error" not in smoke  # its failure fails the job
    run = smoke["run"]
    assert run.startswith("set -euo pipefail\n")
    assert 'CLOUDRUN_MESH_ID_TOKEN="$token" make verify STACK="$STACK" ARGS="--outputs build/smoke/$client.json"' in run
    assert 'echo "::add-mask::$token"' in run and 'echo "::add-mask::$access_token"' in run
    assert ":generateIdToken" in run and "includeEmail: true" in run
    assert smoke["env"]["VERIFY_SERVICE_ACCOUNT"] == "${{ vars.GCP_VERIFY_SERVICE_ACCOUNT }}"


def test_the_per_client_outputs_of_the_smoke_check(tmp_path, up):
    # The jq filter that gives each client's check only its own URL (the token's audience) and pairs.
    run = step_named(up["jobs"]["up"]["steps"], "Smoke check (make verify)")["run"]
    jq_filter = re.search(r"jq --arg c \"\$client\" '([^']+)'", run).group(1)
    outputs = {
        "cloudRunUrls": {"a-client": "https://a.run.app", "b-client": "https://b.run.app"},
        "fetchUrls": {"a-client": {"ads": "https://a.run.app/fortio/fetch/ads.x"}, "b-client": {"ads": "https://b.run.app/fortio/fetch/ads.x"}},
        "dnsZone": "z",
    }
    result = subprocess.run(["jq", "--arg", "c", "b-client", jq_filter], input=json.dumps(outputs), capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == {
        "cloudRunUrls": {"b-client": "https://b.run.app"},
        "fetchUrls": {"b-client": {"ads": "https://b.run.app/fortio/fetch/ads.x"}},
        "dnsZone": "z",
    }


def step_named(steps: list[dict], name: str) -> dict:
    return next(s for s in steps if s.get("name") == name)


# --------------------------------------------------------------------------------------------
# The shared setup of every job that reaches Google Cloud.
# --------------------------------------------------------------------------------------------


def test_google_auth_through_workload_identity_federation(preview, up, setup):
    for path in ALL:
        assert "credentials_json" not in path.read_text()
    steps = setup["runs"]["steps"]
    auth = the_step(steps, "google-github-actions/auth")["with"]
    assert auth["workload_identity_provider"] == "${{ inputs.workload_identity_provider }}"
    assert auth["service_account"] == "${{ inputs.service_account }}"
    for job in (preview["jobs"]["preview"], up["jobs"]["up"]):
        given = step(job["steps"], "setup")["with"]
        assert given["workload_identity_provider"] == "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
        assert given["service_account"] == "${{ vars.GCP_SERVICE_ACCOUNT }}"
        assert job["permissions"]["id-token"] == "write"
        order = [s.get("id") or s.get("uses", "").split("@")[0] for s in job["steps"]]
        assert order.index("setup") < order.index("pulumi/actions")


def test_gke_auth_plugin_and_ambient_cluster_credentials(setup):
    steps = setup["runs"]["steps"]
    assert the_step(steps, "google-github-actions/setup-gcloud")["with"]["install_components"] == "gke-gcloud-auth-plugin"
    assert the_step(steps, "google-github-actions/get-gke-credentials")["if"] == "steps.cluster.outputs.ambient == 'true'"


def run_setup_step(setup: dict, id_: str, cwd: Path, stack_name: str) -> list[str]:
    """A `run` step of the shared setup, run by bash in `cwd`: the lines it adds to $GITHUB_OUTPUT."""
    script = step(setup["runs"]["steps"], id_)["run"].replace(".venv/bin/python", sys.executable)
    output = Path(tempfile.mkdtemp()) / "github-output"
    subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env={"STACK": stack_name, "GITHUB_OUTPUT": str(output)}, check=True, timeout=60)
    return output.read_text().split()


@pytest.mark.parametrize("cluster, ambient", [(None, "true"), ({"name": "c", "location": "us-central1"}, "false")])
def test_the_ambient_cluster_check(tmp_path, setup, cluster, ambient):
    config: dict[str, Any] = {"gcp:region": "us-central1"}
    if cluster:
        config["cloudrun-mesh:cluster"] = cluster
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": config}))
    assert run_setup_step(setup, "cluster", tmp_path, "dev") == [f"ambient={ambient}"]


@pytest.mark.parametrize("stack_name, config", [("dev", "policy/config/dev.json"), ("prod", "policy/config/default.json")])
def test_the_policy_configuration_each_stack_gets(setup, stack_name, config):
    assert run_setup_step(setup, "policy", ROOT, stack_name) == [f"config={config}"]
    assert (ROOT / config).is_file()


def test_installs_match_the_virtualenvs_pulumi_uses(setup):
    program = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]["virtualenv"]
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]["options"]["virtualenv"]
    run = scripts(setup["runs"]["steps"])
    assert f"python -m venv {program}\n" in run
    assert f"python -m venv policy/{pack}\n" in run
    assert f"policy/{pack}/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt" in run


def test_the_docs_name_every_variable_secret_and_environment():
    docs = "".join(path.read_text(encoding="utf-8") for path in DOCS)
    used = set()
    for path in ALL:
        used |= set(re.findall(r"\b(?:vars|secrets)\.([A-Z_]+)", path.read_text()))
    assert used >= {"GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT", "GCP_VERIFY_SERVICE_ACCOUNT", "PULUMI_BACKEND_URL"}
    assert sorted(name for name in used if f"`{name}`" not in docs) == []
    for text in ("`<stack>-preview`", "repo:OWNER/REPO:environment:prod", "`.github/promotion`", "max-parallel: 1"):
        assert text in docs, text


@pytest.mark.parametrize("stack_name", harness.stacks())
def test_each_stack_lets_one_service_account_invoke_every_client(stack_name):
    # The smoke check calls every client as one service account (GCP_VERIFY_SERVICE_ACCOUNT): a stack
    # in which no service account may invoke each client could never be promoted past. Which account
    # is the stack's to choose.
    clients = yaml.safe_load((ROOT / f"Pulumi.{stack_name}.yaml").read_text())["config"]["cloudrun-mesh:clients"]
    common = set.intersection(*(set(c.get("invokers", [])) for c in clients))
    assert {m for m in common if m.startswith("serviceAccount:")}, common

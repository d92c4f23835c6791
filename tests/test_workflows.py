"""The GitHub workflows: valid against GitHub's schemas, and shaped as README.md describes (stacks
discovered from Pulumi.<stack>.yaml; tests, offline plan, offline policies and preview per stack on
pull requests; each stack deployed and smoke-checked in the promotion order on main)."""

from __future__ import annotations

import json
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
from docs_support import page
from testkit import ROOT

from cloudrun_mesh.offline import harness

GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
STACK = WORKFLOWS / "stack.yml"
SETUP = GITHUB / "actions" / "stack-setup" / "action.yml"
DISCOVERY = GITHUB / "scripts" / "stacks.py"
PROMOTION = GITHUB / "promotion"
ALL = (PULL_REQUEST, DEPLOY, STACK, SETUP)


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
def stack() -> dict:
    return load(STACK)


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
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["deploy.yml", "pull-request.yml", "stack.yml"]
    assert sorted(p.name for p in (GITHUB / "actions").iterdir()) == ["stack-setup"]


def test_workflows_match_githubs_schema():
    result = check_schema("vendor.github-workflows", PULL_REQUEST, DEPLOY, STACK)
    assert result.exit_code == 0, result.output


def test_the_composite_action_matches_githubs_schema():
    result = check_schema("vendor.github-actions", SETUP)
    assert result.exit_code == 0, result.output


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(PULL_REQUEST.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    result = check_schema("vendor.github-workflows", broken)
    assert result.exit_code == 1, result.output
    assert "runs-on" in result.output


def test_triggers(pr, deploy, stack):
    assert pr["on"] == {"pull_request": {"branches": ["main"]}}  # never pull_request_target
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert list(stack["on"]) == ["workflow_call"]
    assert stack["on"]["workflow_call"]["inputs"]["stack"]["required"] is True


def test_least_privilege_permissions(pr, deploy, stack):
    read = {"contents": "read"}
    for workflow in (pr, deploy, stack):
        assert workflow["permissions"] == read
    cloud = {**read, "id-token": "write"}
    assert {name: job["permissions"] for name, job in pr["jobs"].items()} == {
        "stacks": read, "test": read, "plan": read, "preview": {**cloud, "pull-requests": "write"},
    }
    assert {name: job["permissions"] for name, job in deploy["jobs"].items()} == {"stacks": read, "test": read, "deploy": cloud}
    # A called job can only narrow what its caller grants: only the preview may comment.
    assert stack["jobs"]["preview"]["permissions"] == pr["jobs"]["preview"]["permissions"]
    assert stack["jobs"]["up"]["permissions"] == deploy["jobs"]["deploy"]["permissions"]


def test_no_checkout_leaves_the_token_in_git_config(pr, deploy, stack):
    # No job pushes to git, and the plan, tests and previews run the pull request's own code:
    # actions/checkout's default would leave the job's token in .git/config for that code to read.
    checkouts = [s for w in (pr, deploy, stack) for job in w["jobs"].values() for s in steps_using(job.get("steps", []), "actions/checkout")]
    assert len(checkouts) == 8
    assert all(c.get("with", {}).get("persist-credentials") is False for c in checkouts)


def test_actions_are_pinned_to_a_version():
    for path in ALL:
        for ref in re.findall(r"uses:\s*(\S+)", path.read_text()):
            if ref.startswith("./"):
                assert (ROOT / ref).exists(), ref  # a local action or reusable workflow of this repository
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", ref), f"{path.name}: {ref}"


def test_both_run_the_readme_test_command(pr, deploy):
    assert "make test" in (ROOT / "README.md").read_text()
    for workflow in (pr, deploy):
        steps = workflow["jobs"]["test"]["steps"]
        assert scripts(steps).strip() == "make test"
        assert the_step(steps, "actions/setup-python")["with"]["python-version"] == "3.11"


# --------------------------------------------------------------------------------------------
# Discovery: the stacks and the promotion order, read at run time.
# --------------------------------------------------------------------------------------------


def discovery_repo(tmp_path: Path, stacks: list[str], promotion: str | None = None) -> Path:
    """A copy of what the discovery step reads: stack files, .github/promotion and the script."""
    for name in stacks:
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    (tmp_path / ".github" / "scripts").mkdir(parents=True)
    shutil.copy(DISCOVERY, tmp_path / ".github" / "scripts" / "stacks.py")
    (tmp_path / ".github" / "promotion").write_text(PROMOTION.read_text() if promotion is None else promotion)
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
    assert set(listed) == set(harness.stacks())  # every shipped stack has its place in the order
    readme = page("docs/ci-cd.md")
    assert "(" + ", ".join(f"`{name}`" for name in listed) + ": one stack per line)" in readme


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


@pytest.mark.parametrize(
    "stacks, promotion, line",
    [
        (["dev", "my stack"], "dev\n",
         "::error::Pulumi.my stack.yaml: 'my stack' is not a valid stack name (Pulumi allows 1-100 letters, digits, "
         "hyphens, underscores and periods); rename the file Pulumi.<stack>.yaml."),
        (["dev", "a" * 101], "dev\n", f"::error::Pulumi.{'a' * 101}.yaml: '{'a' * 101}' is not a valid stack name"),
        (["dev", "prod"], "dev\nstaging\nprod\n",
         "::error::.github/promotion:2: the promotion order names 'staging', which has no Pulumi.staging.yaml "
         "(stacks: dev, prod)."),
        (["dev", "prod"], "dev\nprod\ndev\n",
         "::error::.github/promotion:3: 'dev' is already in the promotion order; name each stack once."),
        ([], "", "::error::no stack files (Pulumi.<stack>.yaml) in"),
    ],
)
def test_bad_stack_files_and_promotion_orders_fail_with_one_line(tmp_path, deploy, stacks, promotion, line):
    code, outputs, err = run_discovery(deploy, discovery_repo(tmp_path, stacks, promotion))
    assert code == 1 and outputs == {}
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(line), err


def test_the_matrices_come_from_discovery(pr, deploy):
    for job in ("plan", "preview"):
        assert pr["jobs"][job]["needs"] == "stacks"
        assert pr["jobs"][job]["strategy"]["matrix"] == {"stack": "${{ fromJSON(needs.stacks.outputs.stacks) }}"}
    assert deploy["jobs"]["deploy"]["strategy"]["matrix"] == {"stack": "${{ fromJSON(needs.stacks.outputs.promotion) }}"}
    for workflow in (pr, deploy):
        assert "matrix: stack: [" not in json.dumps(workflow)  # no stack is listed in a workflow
    assert "\ndev\n" not in PULL_REQUEST.read_text() + DEPLOY.read_text() + STACK.read_text()


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
    assert job["uses"] == "./.github/workflows/stack.yml"
    assert job["with"] == {"stack": "${{ matrix.stack }}", "command": "preview"}


def test_secrets_are_passed_by_name_never_inherited(pr, deploy, stack):
    expected = {name: f"${{{{ secrets.{name} }}}}" for name in ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE")}
    assert pr["jobs"]["preview"]["secrets"] == expected
    assert deploy["jobs"]["deploy"]["secrets"] == expected
    assert set(stack["on"]["workflow_call"]["secrets"]) == set(expected)


def test_pull_requests_never_deploy(pr):
    assert [job["with"]["command"] for job in pr["jobs"].values() if "uses" in job] == ["preview"]
    assert not any(steps_using(job.get("steps", []), "pulumi/actions") for job in pr["jobs"].values())


# --------------------------------------------------------------------------------------------
# The stack workflow: environments, previews, deploys, the smoke check.
# --------------------------------------------------------------------------------------------


def test_each_job_runs_in_its_stacks_environment(stack):
    assert stack["jobs"]["preview"]["environment"] == "${{ inputs.stack }}-preview"
    assert stack["jobs"]["up"]["environment"] == "${{ inputs.stack }}"
    assert stack["jobs"]["preview"]["if"] == "inputs.command == 'preview'"
    assert stack["jobs"]["up"]["if"] == "inputs.command == 'up'"


def test_one_update_per_stack_at_a_time(stack, deploy):
    assert stack["jobs"]["up"]["concurrency"] == {"group": "pulumi-up-${{ inputs.stack }}", "cancel-in-progress": False}
    assert "concurrency" not in stack["jobs"]["preview"]  # previews take no lock a deploy would wait for
    assert "concurrency" not in deploy  # a run-wide group would cancel a queued prod approval


def test_deploys_follow_the_promotion_order_one_at_a_time(deploy):
    job = deploy["jobs"]["deploy"]
    assert job["needs"] == ["stacks", "test"]
    assert job["strategy"]["max-parallel"] == 1 and job["strategy"]["fail-fast"] is True
    assert job["uses"] == "./.github/workflows/stack.yml"
    assert job["with"] == {"stack": "${{ matrix.stack }}", "command": "up"}
    assert job["if"] == "vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''"


@pytest.mark.parametrize("job, command", [("preview", "preview"), ("up", "up")])
def test_pulumi_with_the_policy_pack_and_the_stacks_policy_configuration(stack, job, command):
    steps = stack["jobs"][job]["steps"]
    pulumi = the_step(steps, "pulumi/actions")["with"]
    assert (pulumi["command"], pulumi["stack-name"], pulumi["policyPacks"]) == (command, "${{ inputs.stack }}", "policy")
    assert pulumi["policyPackConfigs"] == "${{ steps.setup.outputs.policy-config }}"
    assert pulumi["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert (ROOT / pulumi["policyPacks"] / "PulumiPolicy.yaml").is_file()
    assert step(steps, "setup")["uses"] == "./.github/actions/stack-setup"
    assert pulumi.get("comment-on-pr") is (True if job == "preview" else None)


def test_the_smoke_check_follows_pulumi_up_and_gates_promotion(stack):
    steps = stack["jobs"]["up"]["steps"]
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


def test_the_per_client_outputs_of_the_smoke_check(tmp_path, stack):
    # The jq filter that gives each client's check only its own URL (the token's audience) and pairs.
    run = step_named(stack["jobs"]["up"]["steps"], "Smoke check (make verify)")["run"]
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


def test_google_auth_through_workload_identity_federation(stack, setup):
    for path in ALL:
        assert "credentials_json" not in path.read_text()
    steps = setup["runs"]["steps"]
    auth = the_step(steps, "google-github-actions/auth")["with"]
    assert auth["workload_identity_provider"] == "${{ inputs.workload_identity_provider }}"
    assert auth["service_account"] == "${{ inputs.service_account }}"
    for job in stack["jobs"].values():
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


def test_readme_documents_every_variable_secret_and_environment():
    readme = page("docs/ci-cd.md")
    used = set()
    for path in ALL:
        used |= set(re.findall(r"\b(?:vars|secrets)\.([A-Z_]+)", path.read_text()))
    assert used >= {"GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT", "GCP_VERIFY_SERVICE_ACCOUNT", "PULUMI_BACKEND_URL"}
    assert sorted(name for name in used if f"`{name}`" not in readme) == []
    for text in ("`<stack>-preview`", "repo:OWNER/REPO:environment:prod", "`.github/promotion`", "max-parallel: 1"):
        assert text in readme, text


@pytest.mark.parametrize("stack_name", harness.stacks())
def test_each_shipped_stack_lists_one_verifier_among_every_clients_invokers(stack_name):
    # The smoke check calls every client as one service account (GCP_VERIFY_SERVICE_ACCOUNT): a stack
    # that does not let it invoke each client could never be promoted past.
    clients = yaml.safe_load((ROOT / f"Pulumi.{stack_name}.yaml").read_text())["config"]["cloudrun-mesh:clients"]
    common = set.intersection(*(set(c.get("invokers", [])) for c in clients))
    verifiers = {m for m in common if m.startswith("serviceAccount:verify-")}
    assert verifiers == {f"serviceAccount:verify-{stack_name}@example-ci.iam.gserviceaccount.com"}, common

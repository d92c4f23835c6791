"""The GitHub workflows: valid against GitHub's workflow schema, and shaped as README.md describes
(tests, offline plan and preview on pull requests; dev then approved prod on main)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
STACKS = ["dev", "prod"]


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True.
    data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="module")
def pr() -> dict:
    return load(PULL_REQUEST)


@pytest.fixture(scope="module")
def deploy() -> dict:
    return load(DEPLOY)


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def the_step(job: dict, action: str) -> dict:
    found = steps_using(job, action)
    assert len(found) == 1, f"expected one {action} step, found {len(found)}"
    return found[0]


def scripts(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


def check_schema(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exactly_the_two_workflows():
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["deploy.yml", "pull-request.yml"]


def test_workflows_match_githubs_schema():
    result = check_schema(PULL_REQUEST, DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(PULL_REQUEST.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    result = check_schema(broken)
    assert result.returncode != 0
    assert "runs-on" in result.stdout


def test_triggers(pr, deploy):
    assert pr["on"] == {"pull_request": {"branches": ["main"]}}  # never pull_request_target
    assert deploy["on"] == {"push": {"branches": ["main"]}}


def test_least_privilege_permissions(pr, deploy):
    assert pr["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"contents": "read"}
    read = {"contents": "read"}
    assert {name: job["permissions"] for name, job in pr["jobs"].items()} == {
        "test": read,
        "plan": read,
        "preview": {**read, "id-token": "write", "pull-requests": "write"},
    }
    assert {name: job["permissions"] for name, job in deploy["jobs"].items()} == {
        "test": read,
        "dev": {**read, "id-token": "write"},
        "prod": {**read, "id-token": "write"},
    }


def test_actions_are_pinned_to_a_version():
    for path in (PULL_REQUEST, DEPLOY):
        for ref in re.findall(r"uses:\s*(\S+)", path.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", ref), f"{path.name}: {ref}"


def test_both_run_the_readme_test_command(pr, deploy):
    assert "make test" in (ROOT / "README.md").read_text()
    for workflow in (pr, deploy):
        assert scripts(workflow["jobs"]["test"]).strip() == "make test"
        assert the_step(workflow["jobs"]["test"], "actions/setup-python")["with"]["python-version"] == "3.11"


# --------------------------------------------------------------------------------------------
# Pull requests.
# --------------------------------------------------------------------------------------------


def test_pull_request_runs_supersede_each_other(pr):
    assert pr["concurrency"] == {"group": "pull-request-${{ github.event.pull_request.number }}", "cancel-in-progress": True}


def test_offline_plan_diffs_against_the_base_branch(pr):
    job = pr["jobs"]["plan"]
    assert job["strategy"]["matrix"]["stack"] == STACKS
    checkouts = steps_using(job, "actions/checkout")
    assert [c["with"].get("path") for c in checkouts] == ["head", "base"]
    assert checkouts[1]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    run = scripts(job)
    assert "python -m cloudrun_mesh plan --help" in run  # a base branch without the plan is skipped
    assert 'python -m cloudrun_mesh plan --stack "$STACK" --out build/plan' in run
    assert "--diff $BASE_PLAN" in run and "--markdown build/plan/$STACK/summary.md" in run
    assert '>> "$GITHUB_STEP_SUMMARY"' in run
    upload = the_step(job, "actions/upload-artifact")
    assert upload["with"]["path"] == "head/build/plan/${{ matrix.stack }}/"


def test_offline_plan_needs_no_secrets_so_forks_get_it(pr):
    job = pr["jobs"]["plan"]
    assert "if" not in job
    assert "secrets." not in json.dumps(job) and "vars." not in json.dumps(job)


def test_preview_only_where_cloud_access_exists(pr):
    job = pr["jobs"]["preview"]
    assert " ".join(job["if"].split()) == (
        "github.event.pull_request.head.repo.full_name == github.repository"
        " && github.actor != 'dependabot[bot]'"
        " && vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''"
    )
    assert job["strategy"]["matrix"]["stack"] == STACKS


def test_preview_runs_the_policy_pack_and_comments(pr):
    pulumi = the_step(pr["jobs"]["preview"], "pulumi/actions")["with"]
    assert pulumi["command"] == "preview"
    assert pulumi["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["comment-on-pr"] is True
    assert pulumi["policyPacks"] == "policy"


def test_pull_requests_never_deploy(pr):
    commands = [the_step(job, "pulumi/actions")["with"]["command"] for job in pr["jobs"].values() if steps_using(job, "pulumi/actions")]
    assert commands == ["preview"]


# --------------------------------------------------------------------------------------------
# Deploys.
# --------------------------------------------------------------------------------------------


def test_dev_then_approved_prod(deploy):
    jobs = deploy["jobs"]
    assert jobs["dev"]["needs"] == "test"
    assert jobs["prod"]["needs"] == "dev"
    assert jobs["prod"]["environment"] == "production"
    assert jobs["dev"].get("environment") != "production"
    for stack in STACKS:
        pulumi = the_step(jobs[stack], "pulumi/actions")["with"]
        assert (pulumi["command"], pulumi["stack-name"], pulumi["policyPacks"]) == ("up", stack, "policy")
        assert jobs[stack]["env"]["STACK"] == stack


def test_one_update_per_stack_at_a_time(deploy):
    groups = {stack: deploy["jobs"][stack]["concurrency"] for stack in STACKS}
    assert groups == {
        "dev": {"group": "pulumi-up-dev", "cancel-in-progress": False},
        "prod": {"group": "pulumi-up-prod", "cancel-in-progress": False},
    }
    assert "concurrency" not in deploy  # a run-wide group would cancel a queued prod approval


# --------------------------------------------------------------------------------------------
# Every job that reaches Google Cloud.
# --------------------------------------------------------------------------------------------


def cloud_jobs(pr: dict, deploy: dict) -> dict[str, dict]:
    return {"preview": pr["jobs"]["preview"], "dev": deploy["jobs"]["dev"], "prod": deploy["jobs"]["prod"]}


def test_google_auth_through_workload_identity_federation(pr, deploy):
    for path in (PULL_REQUEST, DEPLOY):
        assert "credentials_json" not in path.read_text()
    for name, job in cloud_jobs(pr, deploy).items():
        auth = the_step(job, "google-github-actions/auth")["with"]
        assert auth["workload_identity_provider"] == "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}", name
        assert auth["service_account"] == "${{ vars.GCP_SERVICE_ACCOUNT }}", name
        assert job["permissions"]["id-token"] == "write", name
        steps = [s.get("uses", "").split("@")[0] for s in job["steps"]]
        assert steps.index("google-github-actions/auth") < steps.index("pulumi/actions"), name


def test_gke_auth_plugin_and_ambient_cluster_credentials(pr, deploy):
    for name, job in cloud_jobs(pr, deploy).items():
        gcloud = the_step(job, "google-github-actions/setup-gcloud")["with"]
        assert gcloud["install_components"] == "gke-gcloud-auth-plugin", name
        credentials = the_step(job, "google-github-actions/get-gke-credentials")
        assert credentials["if"] == "steps.cluster.outputs.ambient == 'true'", name


@pytest.mark.parametrize("cluster, ambient", [(None, "true"), ({"name": "c", "location": "us-central1"}, "false")])
def test_the_ambient_cluster_check(tmp_path, pr, cluster, ambient):
    # The step the cloud jobs share, run on a stack file with and without cloudrun-mesh:cluster.
    script = next(s for s in pr["jobs"]["preview"]["steps"] if s.get("id") == "cluster")["run"]
    config: dict[str, Any] = {"gcp:region": "us-central1"}
    if cluster:
        config["cloudrun-mesh:cluster"] = cluster
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": config}))
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    output = tmp_path / "output"
    subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env={"STACK": "dev", "GITHUB_OUTPUT": str(output)}, check=True, timeout=60)
    assert output.read_text().split() == [f"ambient={ambient}"]


def test_installs_match_the_virtualenvs_pulumi_uses(pr, deploy):
    program = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]["virtualenv"]
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]["options"]["virtualenv"]
    for name, job in cloud_jobs(pr, deploy).items():
        run = scripts(job)
        assert f"python -m venv {program}\n" in run, name
        assert f"python -m venv policy/{pack}\n" in run, name
        assert f"policy/{pack}/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt" in run
        pulumi = the_step(job, "pulumi/actions")["with"]
        assert (ROOT / pulumi["policyPacks"] / "PulumiPolicy.yaml").is_file()
        assert pulumi["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"


def test_readme_documents_every_variable_and_secret():
    readme = (ROOT / "README.md").read_text()
    used = set()
    for path in (PULL_REQUEST, DEPLOY):
        used |= set(re.findall(r"\b(?:vars|secrets)\.([A-Z_]+)", path.read_text()))
    assert used >= {"GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT", "PULUMI_BACKEND_URL"}
    assert sorted(name for name in used if f"`{name}`" not in readme) == []

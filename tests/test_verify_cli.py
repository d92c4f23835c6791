"""The command line as users run it: flags, defaults, the process, and what it does not load."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import fortio_standin as fs
import pytest
from docs_support import page
from testkit import ROOT
from verify_support import (
    TOKEN,
    cloud_run,
    hanging_run,
    hanging_runs,
    host,
    loopback_only,
    no_ambient_credentials,
    run_verify,
    stack,
    verify_captured,
    write_outputs,
)

from cloudrun_mesh.__main__ import main
from cloudrun_mesh.verify import cli
from cloudrun_mesh.verify.tokens import TOKEN_ENV


@pytest.mark.parametrize("flag, value", [("--deadline", "0"), ("--deadline", "soon"), ("--timeout", "-1")])
def test_bad_flags(capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--outputs", "x", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be" in err and "Traceback" not in err


def test_default_deadline_covers_iam_propagation():
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["verify"])
    # IAM: "typically 2 minutes, potentially 7 minutes or longer".
    assert args.deadline == cli.DEFAULT_DEADLINE == 7 * 60
    assert args.timeout == 10


def test_command_line_end_to_end(cloud_run, write_outputs):
    a = cloud_run({host("ads"): fs.DESTINATION_OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))
    env = {"PATH": "/nonexistent", TOKEN_ENV: TOKEN, "PYTHONPATH": str(ROOT)}

    proc = subprocess.run([sys.executable, "-m", "cloudrun_mesh", "verify", "--outputs", path, "--deadline", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)

    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^mesh-svc -> ads\s+attempt  1  200\s+\d+ ms  OK$", proc.stdout, re.M)
    assert TOKEN not in proc.stdout + proc.stderr


def test_the_check_does_not_load_the_pulumi_sdk():
    code = "import sys, cloudrun_mesh.verify; sys.exit('pulumi' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, timeout=30)
    assert proc.returncode == 0


def test_help_names_the_default_deadline(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "default 420, the documented upper IAM propagation time" in re.sub(r"\s+", " ", capsys.readouterr().out)


@pytest.mark.slow
@hanging_run("docs-example")
def _docs_example_run(tmp: Path) -> tuple:
    a = fs.start_client({host("ads"): fs.BLACKHOLE, host("payments"): fs.DESTINATION_OK}, token=TOKEN)
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / "outputs.json"
        path.write_text(json.dumps(stack({"mesh-svc": a.url}, ["ads", "payments"])))
        return verify_captured("--outputs", str(path), "--token", TOKEN, "--deadline", "1", "--timeout", "1")
    finally:
        a.close()


def test_readme_example_matches_a_run(hanging_runs):
    readme = page("docs/verify.md")
    section = readme[readme.index("## Verify after pulumi up"):]
    example = section[section.index("```text") + len("```text"):section.index("```", section.index("```text") + 7)]
    code, out, _, _ = hanging_runs["docs-example"]
    assert code == 1

    def fetch2_message(text: str) -> str:
        return re.search(r"^mesh-svc -> ads\s+fetch2\s+400\s+\d+ ms  (.*)$", text, re.M).group(1)

    assert fetch2_message(example) == fetch2_message(out)  # fortio's 400 with Go's error text, as a run prints it
    run_lines = out.splitlines()
    diagnosis_start = next(i for i, line in enumerate(run_lines) if line.startswith("Diagnosis 1 of 1: "))
    title, why = run_lines[diagnosis_start], run_lines[diagnosis_start + 3]
    assert title in example.splitlines()
    assert why in example.splitlines()
    assert "A 403 from Cloud Run is retried for 120 s (invoker grants propagate in about 2 minutes); a 401 is not " \
           "retried. A failed pair is asked once more through /fortio/fetch2/ for the reason." in example

"""The stack outputs: from a file, standard input or the Pulumi CLI, and every way they can be wrong."""

from __future__ import annotations

import io
import json
import sys

import fortio_standin as fs
import pytest
from testkit import ROOT
from verify_support import SLACK, TOKEN, cloud_run, fake_cli, host, loopback_only, no_ambient_credentials, run_verify, stack

from cloudrun_mesh.verify import targets


def test_outputs_from_the_pulumi_cli(cloud_run, capsys, tmp_path, no_ambient_credentials):
    a = cloud_run({host("ads"): fs.DESTINATION_OK})
    data = tmp_path / "stack.json"
    data.write_text(json.dumps(stack({"mesh-svc": a.url}, ["ads"])))
    seen = tmp_path / "argv.json"
    fake_cli(no_ambient_credentials, "pulumi",
             f"json.dump({{'argv': sys.argv[1:], 'cwd': os.getcwd()}}, open({str(seen)!r}, 'w'))\n"
             f"sys.stdout.write(open({str(data)!r}).read())")

    code, out, _, _ = run_verify(capsys, "--stack", "dev", "--token", TOKEN, "--deadline", "2", "--timeout", "1")

    assert code == 0, out
    assert json.loads(seen.read_text()) == {
        "argv": ["stack", "output", "--json", "--show-secrets", "--stack", "dev"], "cwd": str(ROOT)}


def test_unknown_stack(capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "pulumi", "sys.stderr.write(\"error: no stack named 'nope' found\\n\"); sys.exit(255)")

    code, out, err, _ = run_verify(capsys, "--stack", "nope", "--token", TOKEN, "--deadline", "1")

    assert (code, out) == (2, "")
    assert err.startswith("error: unknown stack: error: no stack named 'nope' found")
    assert "The stack files here are for: dev, prod" in err


def test_other_cli_failure_is_passed_on_whole(capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "pulumi", "print('noise'); sys.stderr.write('error: could not read the backend\\n"
                                               "  PULUMI_ACCESS_TOKEN must be set for login\\n'); sys.exit(1)")

    code, _, err, _ = run_verify(capsys, "--stack", "dev", "--token", TOKEN, "--deadline", "1")

    assert code == 2
    assert err.strip() == ("error: `pulumi stack output` failed for stack 'dev': error: could not read the backend "
                           "PULUMI_ACCESS_TOKEN must be set for login")


@pytest.mark.slow
def test_hanging_cli_is_killed_within_the_bound(capsys, no_ambient_credentials):
    # The CLI starts a child that keeps the pipes open: the whole process group must go.
    fake_cli(no_ambient_credentials, "pulumi", "import subprocess\nsubprocess.Popen([sys.executable, '-c', "
                                               "'import time; time.sleep(30)'])\ntime.sleep(30)")

    code, _, err, elapsed = run_verify(capsys, "--stack", "dev", "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.3")

    assert code == 2 and "did not answer within" in err
    assert elapsed <= 0.3 + 0.3 + SLACK


def test_without_cli_or_file(capsys):
    code, out, err, _ = run_verify(capsys, "--stack", "dev", "--token", TOKEN)

    assert (code, out) == (2, "")
    assert "the Pulumi CLI is not on PATH" in err and "--outputs FILE" in err and "--stack dev" in err


def test_outputs_from_stdin(cloud_run, capsys, monkeypatch):
    a = cloud_run({host("ads"): fs.DESTINATION_OK})
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(stack({"mesh-svc": a.url}, ["ads"]))))

    code, _, _, _ = run_verify(capsys, "--outputs", "-", "--token", TOKEN, "--deadline", "1")
    assert code == 0


SECRET = targets.SECRET_MARKER


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read the outputs file"),
        ("{not json", "are not valid JSON"),
        ("[1, 2]", "are a JSON list, not an object of stack outputs"),
        ("{}", "have no `fetchUrls` (outputs present: none)"),
        (json.dumps({"cloudRunUrls": {}}), "(outputs present: cloudRunUrls)"),
        (json.dumps({"fetchUrls": {"mesh-svc": {}}}), "`fetchUrls.mesh-svc` has no services"),
        (json.dumps({"fetchUrls": {"mesh-svc": {"ads": 42}}}), "`fetchUrls.mesh-svc.ads`: 42 is not a URL"),
        (json.dumps({"fetchUrls": {"mesh-svc": {"ads": "http://mesh-svc.example.com/fortio/fetch/ads.mesh.private"}}}),
         "uses plain http; the identity token is only sent over https"),
        (json.dumps({"fetchUrls": {"mesh-svc": {"ads": "ftp://x/y"}}}), "is not an https URL"),
        (json.dumps({"fetchUrls": {"mesh-svc": {"ads": "https://x:99999999/y"}}}), "is not a valid URL"),
        (json.dumps({"fetchUrls": SECRET}), f"hide `fetchUrls` as \"{SECRET}\""),
        (json.dumps({"fetchUrls": {"mesh-svc": {"ads": SECRET}}, "cloudRunUrls": {"mesh-svc": SECRET}}),
         f"hide `fetchUrls.mesh-svc.ads`, `cloudRunUrls.mesh-svc` as \"{SECRET}\""),
    ],
)
def test_bad_outputs(tmp_path, capsys, content, message):
    path = tmp_path / "outputs.json"
    if content is not None:
        path.write_text(content)

    code, out, err, _ = run_verify(capsys, "--outputs", str(path), "--token", TOKEN)

    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_secret_outputs_say_how_to_read_them(tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"fetchUrls": SECRET, "meshName": SECRET}))

    code, _, err, _ = run_verify(capsys, "--outputs", str(path), "--token", TOKEN)

    assert code == 2
    assert "`fetchUrls`, `meshName`" in err
    assert "they were read without --show-secrets" in err
    assert "`pulumi stack output --json --show-secrets --stack <stack> > outputs.json`" in err


def test_url_problem():
    assert targets.url_problem("https://mesh-svc-1.us-central1.run.app/fortio/fetch/ads.mesh.private") is None
    assert targets.url_problem("http://127.0.0.1:8080/x") is None
    assert targets.url_problem("http://localhost/x") is None
    assert "plain http" in targets.url_problem("http://10.0.0.1/x")
    assert "not a URL" in targets.url_problem("")


def test_targets_read_from_outputs():
    t = targets.read_targets(stack({"mesh-svc": "https://mesh-svc-1.a.run.app"}, ["ads"]))
    assert [p.label for p in t.pairs] == ["mesh-svc -> ads"] and t.pairs[0].host == "ads.mesh.private"
    assert t.mesh_project == "123456789012" and t.record_address == fs.RECORD_ADDRESS
    client = t.clients["mesh-svc"]
    assert (client.base_url, client.project, client.region) == ("https://mesh-svc-1.a.run.app", "my-project",
                                                                "us-central1")

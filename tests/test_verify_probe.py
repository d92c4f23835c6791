"""One request is bounded whatever answers at the URL: the probe against servers that are not Cloud Run."""

from __future__ import annotations

import json
import re
import socket
import struct
from pathlib import Path

import fortio_standin as fs
import pytest
from verify_support import (
    SLACK,
    TOKEN,
    attempt_lines,
    cloud_run,
    concurrently,
    diagnosis,
    hanging_run,
    hanging_runs,
    host,
    loopback_guard,
    loopback_only,
    no_ambient_credentials,
    raw_servers,
    run_verify,
    stack,
    verify_captured,
    write_outputs,
)

from cloudrun_mesh.verify import probe


def hang(h) -> None:
    h.server.release.wait(30)


def reset(h) -> None:
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()


def garbage(h) -> None:
    h.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe not http at all\r\n\r\n")
    h.wfile.flush()


def drip(h) -> None:
    """Headers, then a body one byte at a time, forever: only a wall-clock limit ends it."""
    h.send_response(200)
    h.send_header("Content-Length", "100000")
    h.end_headers()
    while not h.server.release.wait(0.05):
        try:
            h.wfile.write(b"x")
            h.wfile.flush()
        except OSError:
            return


@pytest.fixture
def raw_server():
    with raw_servers() as start:
        yield start


BEHAVIOURS = {"hang": hang, "drip": drip, "reset": reset, "garbage": garbage}


@hanging_run("probe")
def _behaviour_runs(tmp: Path) -> dict:
    """One run against each behaviour, all at once (the slow ones wait out the same timeout)."""
    tmp.mkdir(parents=True, exist_ok=True)
    with raw_servers() as start:
        paths = {}
        for name, behaviour in BEHAVIOURS.items():
            paths[name] = tmp / f"{name}.json"
            paths[name].write_text(json.dumps(stack({"mesh-svc": start(behaviour)}, ["ads"])))
        return concurrently({name: lambda path=path: verify_captured("--outputs", str(path), "--token", TOKEN,
                                                                     "--deadline", "0.5", "--timeout", "0.4")
                             for name, path in paths.items()})


@pytest.mark.slow
@pytest.mark.parametrize("behaviour, code, reason", [
    ("hang", "timeout", "no complete answer within 0.4 s"),
    ("drip", "timeout", "no complete answer within 0.4 s"),
    ("reset", "connect", "connection reset by peer|closed the connection without answering"),
    ("garbage", "protocol", "BadStatusLine"),
])
def test_whatever_answers_the_run_ends_in_time(hanging_runs, behaviour, code, reason):
    out_code, out, _, elapsed = hanging_runs["probe"][behaviour]

    assert out_code == 1 and elapsed <= 0.5 + 0.4 + SLACK, elapsed
    assert {c for _, c in attempt_lines(out, "mesh-svc -> ads")} == {code}
    assert re.search(reason, out)
    if code in ("connect", "protocol"):  # Cloud Run itself was not reached: nothing to ask fortio
        assert not re.search(r"^mesh-svc -> ads\s+fetch2", out, re.M)
        assert re.search(r"Diagnosis 1 of 1: (Cloud Run was not reached|the client's URL does not answer with HTTP)", out)
    assert "Traceback" not in out


def test_nothing_listening(write_outputs, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_outputs(stack({"mesh-svc": f"http://127.0.0.1:{port}"}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.3")

    assert code == 1 and elapsed <= 0.3 + 0.3 + SLACK
    assert attempt_lines(out, "mesh-svc -> ads")[0] == (1, "connect")
    assert "connection refused" in diagnosis(out, "mesh-svc -> ads")


def test_redirects_are_not_followed(cloud_run, raw_server, write_outputs, capsys):
    other = cloud_run({host("ads"): fs.DESTINATION_OK})

    def redirect(h) -> None:
        h.send_response(302)
        h.send_header("Location", f"{other.url}/fortio/fetch/ads.mesh.private")
        h.send_header("Content-Length", "0")
        h.end_headers()

    path = write_outputs(stack({"mesh-svc": raw_server(redirect)}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.5", "--timeout", "0.5")

    assert code == 1
    assert "the client's URL answered with a redirect (HTTP 302)" in out and f"to {other.url}/fortio" in out
    assert other.requests == []  # the token went nowhere else


def test_fetch2_url():
    url = probe.fetch2_url("https://mesh-svc-1.us-central1.run.app/", "ads.mesh.private", 10)
    assert url == ("https://mesh-svc-1.us-central1.run.app/fortio/fetch2/?url=http%3A%2F%2Fads.mesh.private%2F"
                   "&timeout=8000ms")

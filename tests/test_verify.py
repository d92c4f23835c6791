"""`python -m cloudrun_mesh verify` against real HTTP servers on 127.0.0.1 that play Cloud Run and fortio.

Each fake Cloud Run service checks the bearer token like Cloud Run does (401 for a token it does not
accept, 403 for a caller without run.invoker) and answers `/fortio/fetch/<host>` from a script:
fortio's relayed answers, Envoy's errors, slow, hanging, reset and garbage. A guard fails any test
that opens a connection or resolves a name anywhere but this machine; google-auth and gcloud are
replaced so no test reaches a real credential.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Callable, Optional

import pytest

from cloudrun_mesh import outputs as stack_outputs
from cloudrun_mesh import verify
from cloudrun_mesh.__main__ import main
from conftest import ROOT, evaluate

PROJECT = "my-project"
MESH_NAME = "projects/123456789012/locations/global/meshes/proj-123456789012-mesh"
SLACK = 0.4  # thread start-up and scheduling, on top of deadline + timeout


def jwt(email: str = "alice@example.com", aud: str = "32555940559.apps.googleusercontent.com",
        exp: Optional[float] = None) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"email": email, "aud": aud, "exp": int(exp if exp is not None else time.time() + 3600)}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


TOKEN = jwt()


# --------------------------------------------------------------------------------------------
# Isolation: loopback only, no ambient credentials, no real CLIs.
# --------------------------------------------------------------------------------------------

LOOPBACK = ("127.0.0.1", "::1", "localhost")
GOOGLE_AUTH_MODULES = ("google.auth", "google.auth.transport", "google.auth.transport.requests", "google.oauth2",
                       "google.oauth2.id_token")


@contextlib.contextmanager
def loopback_guard():
    """Fail on any connection or name lookup that is not this machine's."""
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    attempts: list = []

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            attempts.append(address)
            raise AssertionError(f"connection to {address} outside the loopback interface")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK and host is not None:
            attempts.append(host)
            raise AssertionError(f"name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        yield attempts
    assert not attempts, f"traffic left the loopback interface: {attempts}"


@pytest.fixture(autouse=True)
def loopback_only():
    with loopback_guard() as attempts:
        yield attempts


def test_the_guard_refuses_other_addresses():
    # 0.0.0.0 is not on the allowed list, yet Linux delivers it locally: even a broken guard sends nothing out.
    with pytest.raises(AssertionError, match="outside the loopback"):
        with loopback_guard():
            with socket.socket() as s:
                s.connect(("0.0.0.0", 9))
    with pytest.raises(AssertionError, match="name lookup"):
        with loopback_guard():
            socket.getaddrinfo("mesh-svc-123456789012.us-central1.run.app", 443)


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch, tmp_path):
    """No token in the environment, no google-auth, and a PATH holding only the test's fake CLIs."""
    for var in (verify.TOKEN_ENV, "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for name in GOOGLE_AUTH_MODULES:  # "google" itself stays: protobuf lives there too
        monkeypatch.setitem(sys.modules, name, None)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def fake_cli(bin_dir: Path, name: str, body: str) -> Path:
    """An executable `name` on the test PATH: a Python script (this interpreter) with `body` as its code."""
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys, time\n{body}\n")
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------------------------
# Fake Cloud Run services running fortio
# --------------------------------------------------------------------------------------------

Behaviour = Callable[["_Handler"], None]


def answer(status: int, body: str = "", headers: Optional[dict] = None) -> Behaviour:
    def run(h: "_Handler") -> None:
        data = body.encode()
        h.send_response(status)
        for k, v in {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return run


def slow(seconds: float, then: Behaviour) -> Behaviour:
    def run(h: "_Handler") -> None:
        h.server.release.wait(seconds)
        then(h)

    return run


def hang(h: "_Handler") -> None:
    h.server.release.wait(30)


def reset(h: "_Handler") -> None:
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()


def garbage(h: "_Handler") -> None:
    h.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe not http at all\r\n\r\n")
    h.wfile.flush()


def drip(h: "_Handler") -> None:
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


def sequence(*behaviours: Behaviour) -> Behaviour:
    """One behaviour per request, the last one repeating: a sidecar that warms up, say."""
    calls = iter(range(10**6))

    def run(h: "_Handler") -> None:
        behaviours[min(next(calls), len(behaviours) - 1)](h)

    return run


OK = answer(200, "HTTP/1.1 200 OK from the mesh")
GFE_403 = answer(403, "<html><head><title>403 Forbidden</title></head><body><h1>Error: Forbidden</h1>"
                      "<h2>Your client does not have permission to get URL <code>/fortio/fetch/</code> from this "
                      "server.</h2></body></html>", {"Content-Type": "text/html"})
GFE_401 = answer(401, "<html><body><h1>Error: Unauthorized</h1>Your client does not have permission to the "
                      "requested URL.</body></html>", {"Content-Type": "text/html"})
GFE_404 = answer(404, "<html><body><h1>Error: Page not found</h1>The requested URL was not found on this server."
                      "</body></html>", {"Content-Type": "text/html"})


def fortio_error(host: str, error: str, status: int = 502) -> Behaviour:
    # fortio's fetch relays what its client got; a failed fetch reports the Go error for the upstream.
    return answer(status, f'Error for "http://{host}": Get "http://{host}": {error}\n')


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        srv = self.server
        srv.requests.append((self.path, dict(self.headers)))
        if self.headers.get("Authorization") != f"Bearer {srv.token}":
            return GFE_401(self)
        if not srv.invoker:
            return GFE_403(self)
        prefix = stack_outputs.FETCH_PATH
        host = self.path[len(prefix):] if self.path.startswith(prefix) else None
        behaviour = srv.script.get(host) if host is not None else None
        (behaviour or GFE_404)(self)

    def log_message(self, *args) -> None:  # quiet
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The default backlog of 5 overflows when every pair connects at once, and a dropped connection
    # is retried by the kernel only after a second.
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:  # resets and hangs are on purpose
        pass


class FakeCloudRun:
    """One Cloud Run client service: `script` maps the fetched host to fortio's (or Envoy's) answer."""

    def __init__(self, script: dict[str, Behaviour], token: str = TOKEN, invoker: bool = True):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.script, self.server.token, self.server.invoker = script, token, invoker
        self.server.requests = []
        self.server.release = threading.Event()
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def requests(self) -> list:
        return self.server.requests

    def close(self) -> None:
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloud_run():
    started: list[FakeCloudRun] = []

    def start(script: dict[str, Behaviour], **kwargs) -> FakeCloudRun:
        s = FakeCloudRun(script, **kwargs)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def stack(clients: dict[str, str], services: list[str], *, regions: Optional[dict[str, str]] = None,
          troubleshooting: bool = True) -> dict:
    """Stack outputs shaped like the program's, pointing at the fake services."""
    hosts = {svc: f"{svc}.mesh.private" for svc in services}
    out = {
        "cloudRunUrls": dict(clients),
        "meshName": MESH_NAME,
        "exportedHosts": hosts,
        "fetchUrls": {c: {s: stack_outputs.fetch_url(u, h) for s, h in hosts.items()} for c, u in clients.items()},
        "dnsZone": "prod",
        "recordAddress": "10.0.0.1",
    }
    if troubleshooting:
        out["loggingFilters"] = {c: stack_outputs.logging_filter(c, (regions or {}).get(c, "us-central1"), PROJECT)
                                 for c in clients}
        out["proxyStatusCommands"] = stack_outputs.proxy_status_commands(PROJECT)
    return out


@pytest.fixture
def write_outputs(tmp_path):
    def write(data) -> str:
        path = tmp_path / "outputs.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    return write


def run_verify(capsys, *argv: str) -> tuple[int, str, str, float]:
    start = time.monotonic()
    code = main(["verify", *argv])
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    return code, out, err, elapsed


def attempt_lines(out: str, label: str) -> list[tuple[int, str]]:
    """(attempt number, status) for each attempt line of a pair, in order."""
    pattern = re.compile(rf"^{re.escape(label)}\s+attempt\s+(\d+)\s+(\S+)\s+\d+ ms", re.M)
    return [(int(n), code) for n, code in pattern.findall(out)]


def diagnosis(out: str, label: str) -> str:
    """The diagnosis block of one pair."""
    start = out.index(f"Diagnosis for {label} ")
    end = out.find("\nDiagnosis for ", start + 1)
    return out[start:end if end != -1 else len(out)]


# --------------------------------------------------------------------------------------------
# Success and retries
# --------------------------------------------------------------------------------------------


def test_every_pair_answers_200(cloud_run, write_outputs, capsys):
    a = cloud_run({"ads.mesh.private": OK, "payments.mesh.private": OK})
    b = cloud_run({"ads.mesh.private": OK, "payments.mesh.private": OK})
    path = write_outputs(stack({"mesh-svc": a.url, "checkout-web": b.url}, ["ads", "payments"]))

    code, out, err, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "3", "--timeout", "1")

    assert (code, err) == (0, "")
    for label in ("mesh-svc -> ads", "mesh-svc -> payments", "checkout-web -> ads", "checkout-web -> payments"):
        assert attempt_lines(out, label) == [(1, "200")]
        assert re.search(rf"^  ok    {re.escape(label)}\s+200 on attempt 1 \(\d+ ms\)$", out, re.M)
    assert "Summary: 4 of 4 pairs answered 200" in out
    assert "Diagnosis" not in out
    assert sorted(p for p, _ in a.requests) == ["/fortio/fetch/ads.mesh.private", "/fortio/fetch/payments.mesh.private"]
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _, h in a.requests + b.requests)
    assert elapsed < 1.5


def test_retries_until_the_sidecar_is_ready(cloud_run, write_outputs, capsys):
    warming = sequence(answer(503, "no healthy upstream"), fortio_error("ads.mesh.private", "dial tcp 10.0.0.1:80: i/o timeout"),
                       OK)
    a = cloud_run({"ads.mesh.private": warming})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "5", "--timeout", "1")

    assert code == 0
    assert attempt_lines(out, "mesh-svc -> ads") == [(1, "503"), (2, "502"), (3, "200")]
    assert "200 on attempt 3" in out
    # Backoff with jitter: at least 0.25 s then 0.5 s between attempts, and well before the deadline.
    assert 0.75 <= elapsed < 2.5


def test_backoff_is_exponential_with_jitter_and_capped():
    rng = verify.random.Random(7)
    for n in range(1, 12):
        ceiling = min(verify.BACKOFF_CAP, verify.BACKOFF_BASE * 2 ** (n - 1))
        delays = [verify.backoff(n, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not fixed
    assert verify.backoff(30, rng) <= verify.BACKOFF_CAP


# --------------------------------------------------------------------------------------------
# Failures: what each looks like, what the diagnosis says, and the time bound
# --------------------------------------------------------------------------------------------

MATRIX = {
    "ads": OK,
    "slow": slow(0.3, OK),
    "nodns": fortio_error("nodns.mesh.private", "dial tcp: lookup nodns.mesh.private on 169.254.169.254:53: no such host"),
    "direct": fortio_error("direct.mesh.private", "dial tcp 10.0.0.1:80: connect: connection refused"),
    "noroute": answer(404, "", {"Server": "envoy", "X-Envoy-Upstream-Service-Time": "0"}),
    "noendpoints": answer(503, "no healthy upstream"),
    "unreachable": answer(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"),
    "rbac": answer(403, "RBAC: access denied"),
    "broken": answer(500, "internal error"),
    "hang": hang,
    "reset": reset,
    "garbage": garbage,
    "drip": drip,
}


@pytest.fixture(scope="module")
def matrix_run():
    """One run over every scripted answer at once (the pairs are checked concurrently)."""
    with loopback_guard():
        yield _run_matrix()


def _run_matrix():
    server = FakeCloudRun({f"{svc}.mesh.private": b for svc, b in MATRIX.items()})
    deadline, timeout = 1.5, 0.6
    lines: list[str] = []
    try:
        printer = verify.Printer(_Lines(lines), _Lines(lines))
        printer.secrets.add(TOKEN)
        budget = verify.Budget(deadline, timeout)
        targets = verify.read_targets(stack({"mesh-svc": server.url}, list(MATRIX)))
        start = time.monotonic()
        code = verify.check(targets, verify.Tokens(TOKEN, None, budget, timeout), budget, timeout, printer)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    return types.SimpleNamespace(code=code, out="\n".join(lines), elapsed=elapsed, deadline=deadline, timeout=timeout)


class _Lines:
    def __init__(self, lines: list[str]):
        self.lines = lines
        self.encoding = "utf-8"

    def write(self, text: str) -> None:
        self.lines.extend(text.rstrip("\n").split("\n"))

    def flush(self) -> None:
        pass


def test_matrix_exit_code_summary_and_time_bound(matrix_run):
    r = matrix_run
    assert r.code == verify.EXIT_FAILED
    assert r.elapsed <= r.deadline + r.timeout + SLACK, r.elapsed
    assert f"Summary: 2 of {len(MATRIX)} pairs answered 200" in r.out
    assert re.search(r"^  ok    mesh-svc -> slow\s+200 on attempt 1 \(([3-5]\d\d) ms\)$", r.out, re.M)
    for svc in set(MATRIX) - {"ads", "slow"}:
        assert re.search(rf"^  FAIL  mesh-svc -> {svc}\s", r.out, re.M), svc
        assert f"Diagnosis for mesh-svc -> {svc} " in r.out


@pytest.mark.parametrize(
    "service, status",
    [("nodns", "502"), ("direct", "502"), ("noroute", "404"), ("noendpoints", "503"), ("unreachable", "503"),
     ("rbac", "403"), ("broken", "500"), ("hang", "timeout"), ("reset", "connect"), ("garbage", "protocol"),
     ("drip", "timeout")],
)
def test_matrix_every_attempt_is_reported(matrix_run, service, status):
    attempts = attempt_lines(matrix_run.out, f"mesh-svc -> {service}")
    assert attempts, matrix_run.out
    assert [n for n, _ in attempts] == list(range(1, len(attempts) + 1))
    assert {code for _, code in attempts} == {status}
    if status not in ("timeout",):
        assert len(attempts) >= 2  # retried with backoff until the deadline


def test_matrix_dns_diagnosis(matrix_run):
    d = diagnosis(matrix_run.out, "mesh-svc -> nodns")
    assert "could not resolve nodns.mesh.private (HTTP 502)" in d
    assert "no such host" in d
    assert "$ gcloud dns record-sets list --zone=prod --project=my-project" in d
    assert "$ gcloud dns managed-zones describe prod --project=my-project" in d


def test_matrix_sidecar_without_config_diagnosis(matrix_run):
    d = diagnosis(matrix_run.out, "mesh-svc -> direct")
    assert "went to 10.0.0.1 itself instead of through the sidecar" in d
    assert ("$ gcloud projects add-iam-policy-binding 123456789012 "
            "--member=serviceAccount:mesh-svc@my-project.iam.gserviceaccount.com "
            "--role=roles/trafficdirector.client") in d
    logs = stack_outputs.logging_read_command(
        stack_outputs.logging_filter("mesh-svc", "us-central1", PROJECT, "trafficdirector.networks.getConfigs"), PROJECT)
    assert f"$ {logs}" in d
    assert ("$ gcloud alpha container fleet mesh debug proxy-status --membership=MEMBERSHIP_NAME "
            "--location=MEMBERSHIP_LOCATION --project=my-project") in d


def test_matrix_route_diagnoses(matrix_run):
    noroute = diagnosis(matrix_run.out, "mesh-svc -> noroute")
    assert "no route for noroute.mesh.private (HTTP 404 from Envoy)" in noroute
    assert "in another namespace than Service noroute" in noroute
    assert "$ kubectl get virtualservices.networking.istio.io -A" in noroute
    assert "$ kubectl get services -A --field-selector metadata.name=noroute" in noroute

    unreachable = diagnosis(matrix_run.out, "mesh-svc -> unreachable")
    assert "cannot reach its destination (HTTP 503)" in unreachable
    assert "same namespace as Service unreachable" in unreachable

    endpoints = diagnosis(matrix_run.out, "mesh-svc -> noendpoints")
    assert "Service noendpoints has no ready endpoints" in endpoints
    assert "$ kubectl get endpoints -A --field-selector metadata.name=noendpoints" in endpoints

    rbac = diagnosis(matrix_run.out, "mesh-svc -> rbac")
    assert "AuthorizationPolicy" in rbac and "mesh-svc@my-project.iam.gserviceaccount.com" in rbac
    assert "run.invoker" not in rbac  # a 403 from the mesh is not Cloud Run's

    broken = diagnosis(matrix_run.out, "mesh-svc -> broken")
    assert "HTTP 500 from mesh-svc's fortio" in broken
    assert f"$ {stack_outputs.logging_read_command(stack_outputs.logging_filter('mesh-svc', 'us-central1', PROJECT), PROJECT)}" in broken


def test_matrix_fault_diagnoses(matrix_run):
    assert "not taken over by the client's sidecar" in diagnosis(matrix_run.out, "mesh-svc -> hang")
    assert "not taken over by the client's sidecar" in diagnosis(matrix_run.out, "mesh-svc -> drip")
    reset_d = diagnosis(matrix_run.out, "mesh-svc -> reset")
    assert "Could not talk to the Cloud Run service mesh-svc" in reset_d
    assert re.search(r"connection reset by peer|closed the connection without answering", reset_d)
    garbage_d = diagnosis(matrix_run.out, "mesh-svc -> garbage")
    assert "did not answer with HTTP" in garbage_d and "BadStatusLine" in garbage_d
    assert "Traceback" not in matrix_run.out


def test_hanging_servers_are_checked_concurrently_within_the_bound(cloud_run, write_outputs, capsys):
    services = ["a1", "a2", "a3", "a4"]
    a = cloud_run({f"{s}.mesh.private": hang for s in services})
    path = write_outputs(stack({"mesh-svc": a.url}, services))

    code, out, err, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.8", "--timeout", "0.6")

    assert code == 1 and err == ""
    assert elapsed <= 0.8 + 0.6 + SLACK, elapsed
    for s in services:
        assert attempt_lines(out, f"mesh-svc -> {s}")[0] == (1, "timeout")
    assert "no complete answer within 0.6 s" in out


def test_caller_without_run_invoker(cloud_run, write_outputs, capsys):
    a = cloud_run({"ads.mesh.private": OK}, invoker=False)
    b = cloud_run({"ads.mesh.private": OK}, invoker=False, token=TOKEN)
    path = write_outputs(stack({"mesh-svc": a.url, "checkout-web": b.url}, ["ads"],
                               regions={"checkout-web": "europe-west1"}))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.6", "--timeout", "0.5")

    assert code == 1
    assert len(attempt_lines(out, "mesh-svc -> ads")) >= 2  # IAM takes a while to apply: retried
    d = diagnosis(out, "mesh-svc -> ads")
    assert "alice@example.com lacks roles/run.invoker on service mesh-svc" in d
    assert ("$ gcloud run services add-iam-policy-binding mesh-svc --region=us-central1 --project=my-project "
            "--member=user:alice@example.com --role=roles/run.invoker") in d
    assert "--region=europe-west1" in diagnosis(out, "checkout-web -> ads")
    assert elapsed <= 0.6 + 0.5 + SLACK


def test_service_account_caller_gets_a_service_account_member(cloud_run, write_outputs, capsys):
    token = jwt(email="ci@example-ci.iam.gserviceaccount.com")
    a = cloud_run({"ads.mesh.private": OK}, invoker=False, token=token)
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", token, "--deadline", "0.3", "--timeout", "0.3")

    assert code == 1
    assert "--member=serviceAccount:ci@example-ci.iam.gserviceaccount.com --role=roles/run.invoker" in out


def test_refused_token_is_not_retried_and_the_audience_is_explained(cloud_run, write_outputs, capsys):
    a = cloud_run({"ads.mesh.private": OK}, token="another-token")
    wrong = jwt(aud="https://some-other-service-123.us-central1.run.app")
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", wrong, "--deadline", "3", "--timeout", "1")

    assert code == 1
    assert attempt_lines(out, "mesh-svc -> ads") == [(1, "401")]
    assert elapsed < 1.0  # the same token is refused every time: no waiting for the deadline
    d = diagnosis(out, "mesh-svc -> ads")
    assert "Cloud Run refused the identity token (HTTP 401)" in d
    assert f"audience is 'https://some-other-service-123.us-central1.run.app', not this service's URL '{a.url}'" in d


def test_access_token_instead_of_id_token(cloud_run, write_outputs, capsys):
    a = cloud_run({"ads.mesh.private": OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", "ya29.an-access-token", "--deadline", "1")

    assert code == 1
    assert "is not a JWT ID token" in diagnosis(out, "mesh-svc -> ads")
    assert "ya29.an-access-token" not in out


def test_expired_token(cloud_run, write_outputs, capsys):
    expired = jwt(exp=time.time() - 60)
    a = cloud_run({"ads.mesh.private": OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", expired, "--deadline", "1")

    assert code == 1 and "The token expired at" in out


def test_no_fortio_at_the_path(cloud_run, write_outputs, capsys):
    a = cloud_run({})  # every fetch path is unknown: the image is not fortio
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.5", "--timeout", "0.5")

    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    assert "HTTP 404 from the service itself" in d and "fortio/fortio" in d
    assert ("$ gcloud run services describe mesh-svc --region=us-central1 --project=my-project "
            "--format='value(spec.template.spec.containers[0].image)'") in d
    assert "Page not found" in d  # the evidence, without its HTML


def test_nothing_listening(write_outputs, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_outputs(stack({"mesh-svc": f"http://127.0.0.1:{port}"}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.3")

    assert code == 1 and elapsed <= 0.3 + 0.3 + SLACK
    assert attempt_lines(out, "mesh-svc -> ads")[0] == (1, "connect")
    assert "connection refused" in diagnosis(out, "mesh-svc -> ads")


def test_redirects_are_not_followed(cloud_run, write_outputs, capsys):
    other = cloud_run({"ads.mesh.private": OK})
    a = cloud_run({"ads.mesh.private": answer(302, "", {"Location": f"{other.url}/fortio/fetch/ads.mesh.private"})})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.5", "--timeout", "0.5")

    assert code == 1
    assert "answered with a redirect (HTTP 302" in out
    assert other.requests == []  # the token went nowhere else


# --------------------------------------------------------------------------------------------
# Tokens: order of sources, and never shown
# --------------------------------------------------------------------------------------------


def echo_authorization(h: "_Handler") -> None:
    answer(502, f"upstream said: you sent Authorization: {h.headers.get('Authorization')}")(h)


@pytest.mark.parametrize("token", [TOKEN, "plain-s3cret-not-a-jwt-4242"])
@pytest.mark.parametrize("via", ["--token", "env"])
def test_token_never_appears_in_output(cloud_run, write_outputs, capsys, monkeypatch, token, via):
    a = cloud_run({"ads.mesh.private": echo_authorization}, token=token)
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))
    args = ["--outputs", path, "--deadline", "0.3", "--timeout", "0.5"]
    if via == "env":
        monkeypatch.setenv(verify.TOKEN_ENV, token)
    else:
        args += ["--token", token]

    code, out, err, _ = run_verify(capsys, *args)

    assert code == 1
    assert a.requests and a.requests[0][1]["Authorization"] == f"Bearer {token}"  # it was sent...
    assert token not in out + err  # ...and never shown
    assert token.split(".")[-1] not in out + err
    assert "Authorization: Bearer [redacted]" in out
    assert f"token from {'--token' if via == '--token' else '$' + verify.TOKEN_ENV}" in out


def test_printer_redacts_known_tokens_and_anything_shaped_like_one():
    lines: list[str] = []
    p = verify.Printer(_Lines(lines), _Lines(lines))
    p.secrets.add("opaque-secret-value")
    p.line("a opaque-secret-value b")
    p.line(f"jwt {jwt(email='x@y.z')} end")
    p.error("header Authorization: Bearer abc.def")
    assert lines == ["a [redacted] b", "jwt [redacted] end", "header Authorization: Bearer [redacted]"]


def install_google_auth(monkeypatch, fetch: Callable[[object, str], str]) -> list:
    """A stand-in for google-auth's `id_token.fetch_id_token` (the real package is not needed)."""
    calls: list = []
    modules = {name: types.ModuleType(name) for name in GOOGLE_AUTH_MODULES}
    modules["google.auth.transport.requests"].Request = type("Request", (), {})

    def fetch_id_token(request, audience):
        calls.append(audience)
        return fetch(request, audience)

    modules["google.oauth2.id_token"].fetch_id_token = fetch_id_token
    modules["google.oauth2"].id_token = modules["google.oauth2.id_token"]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_google_auth_mints_a_token_per_cloud_run_url(cloud_run, write_outputs, capsys, monkeypatch,
                                                     no_ambient_credentials):
    a = cloud_run({"ads.mesh.private": OK}, token="token-for-a")
    b = cloud_run({"ads.mesh.private": OK}, token="token-for-b")
    by_audience = {a.url: "token-for-a", b.url: "token-for-b"}
    calls = install_google_auth(monkeypatch, lambda request, audience: by_audience[audience])
    fake_cli(no_ambient_credentials, "gcloud", "sys.exit('gcloud must not be called')")
    path = write_outputs(stack({"mesh-svc": a.url, "checkout-web": b.url}, ["ads"]))

    code, out, err, _ = run_verify(capsys, "--outputs", path, "--deadline", "2", "--timeout", "1")

    assert (code, err) == (0, "")
    assert sorted(calls) == sorted([a.url, b.url])  # the Cloud Run URL is the audience, one token each
    assert "token from google-auth" in out
    assert "token-for-a" not in out and "token-for-b" not in out


def test_falls_back_to_gcloud_when_google_auth_fails(cloud_run, write_outputs, capsys, monkeypatch,
                                                     no_ambient_credentials):
    def refuse(request, audience):
        raise RuntimeError("Neither metadata server or valid service account credentials are found.")

    install_google_auth(monkeypatch, refuse)
    fake_cli(no_ambient_credentials, "gcloud", f"assert sys.argv[1:] == ['auth', 'print-identity-token']\n"
                                               f"print({TOKEN!r})")
    a = cloud_run({"ads.mesh.private": OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, err, _ = run_verify(capsys, "--outputs", path, "--deadline", "2", "--timeout", "1")

    assert (code, err) == (0, "")
    assert "token from gcloud auth print-identity-token" in out
    assert TOKEN not in out


def test_falls_back_to_gcloud_without_google_auth(cloud_run, write_outputs, capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "gcloud", f"print({TOKEN!r})")
    a = cloud_run({"ads.mesh.private": OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--deadline", "2", "--timeout", "1")

    assert code == 0 and a.requests[0][1]["Authorization"] == f"Bearer {TOKEN}"


def test_explicit_token_wins_over_environment_and_libraries(cloud_run, write_outputs, capsys, monkeypatch,
                                                            no_ambient_credentials):
    calls = install_google_auth(monkeypatch, lambda request, audience: "from-google-auth")
    fake_cli(no_ambient_credentials, "gcloud", "print('from-gcloud')")
    monkeypatch.setenv(verify.TOKEN_ENV, "from-env")
    a = cloud_run({"ads.mesh.private": OK}, token="from-flag")
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, _, _, _ = run_verify(capsys, "--outputs", path, "--token", "from-flag", "--deadline", "1")
    assert code == 0 and calls == []

    b = cloud_run({"ads.mesh.private": OK}, token="from-env")
    code, _, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": b.url}, ["ads"])), "--deadline", "1")
    assert code == 0 and calls == []


def test_no_credentials_at_all(write_outputs, capsys):
    path = write_outputs(stack({"mesh-svc": "https://mesh-svc-123456789012.us-central1.run.app"}, ["ads"]))

    code, out, err, _ = run_verify(capsys, "--outputs", path, "--deadline", "1")

    assert code == verify.EXIT_INPUT and out == ""
    assert err.startswith("error: no identity token: google-auth could not mint one (google-auth is not installed) "
                          "and `gcloud auth print-identity-token` failed (gcloud is not on PATH).")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_gcloud_without_an_account(write_outputs, capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "gcloud",
             "sys.stderr.write('ERROR: (gcloud.auth.print-identity-token) You do not currently have an active "
             "account selected.\\n'); sys.exit(1)")
    path = write_outputs(stack({"mesh-svc": "https://mesh-svc-123456789012.us-central1.run.app"}, ["ads"]))

    code, _, err, _ = run_verify(capsys, "--outputs", path, "--deadline", "1")

    assert code == 2
    assert "You do not currently have an active account selected." in err
    assert "gcloud auth login" in err


def test_hanging_gcloud_is_bounded(write_outputs, capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "gcloud", "time.sleep(30)")
    path = write_outputs(stack({"mesh-svc": "https://mesh-svc-123456789012.us-central1.run.app"}, ["ads"]))

    code, _, err, elapsed = run_verify(capsys, "--outputs", path, "--deadline", "0.3", "--timeout", "0.3")

    assert code == 2 and re.search(r"`gcloud auth print-identity-token` failed \(no answer within 0\.\d s\)", err)
    assert elapsed <= 0.3 + 0.3 + SLACK


def test_token_claims():
    assert verify.token_claims(jwt(email="a@b.c"))["email"] == "a@b.c"
    assert verify.token_claims("ya29.not-a-jwt") is None
    assert verify.token_claims("a.!!!.c") is None


# --------------------------------------------------------------------------------------------
# Outputs: file, stdin, the Pulumi CLI, and every way they can be wrong
# --------------------------------------------------------------------------------------------


def test_outputs_from_the_pulumi_cli(cloud_run, capsys, tmp_path, no_ambient_credentials):
    a = cloud_run({"ads.mesh.private": OK})
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


def test_other_cli_failure_is_passed_on(capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "pulumi", "print('noise'); sys.stderr.write('error: PULUMI_ACCESS_TOKEN must be set for login\\n'); sys.exit(1)")

    code, _, err, _ = run_verify(capsys, "--stack", "dev", "--token", TOKEN, "--deadline", "1")

    assert code == 2
    assert err.strip() == "error: `pulumi stack output` failed for stack 'dev': error: PULUMI_ACCESS_TOKEN must be set for login"


def test_hanging_cli_is_killed_within_the_bound(capsys, no_ambient_credentials):
    # The CLI starts a child that keeps the pipes open: the whole process group must go.
    fake_cli(no_ambient_credentials, "pulumi", "import subprocess\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\ntime.sleep(30)")

    code, _, err, elapsed = run_verify(capsys, "--stack", "dev", "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.3")

    assert code == 2 and "did not answer within" in err
    assert elapsed <= 0.3 + 0.3 + SLACK


def test_without_cli_or_file(capsys):
    code, out, err, _ = run_verify(capsys, "--stack", "dev", "--token", TOKEN)

    assert (code, out) == (2, "")
    assert "the Pulumi CLI is not on PATH" in err and "--outputs FILE" in err and "--stack dev" in err


def test_outputs_from_stdin(cloud_run, capsys, monkeypatch):
    import io

    a = cloud_run({"ads.mesh.private": OK})
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(stack({"mesh-svc": a.url}, ["ads"]))))

    code, _, _, _ = run_verify(capsys, "--outputs", "-", "--token", TOKEN, "--deadline", "1")
    assert code == 0


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


@pytest.mark.parametrize("flag, value", [("--deadline", "0"), ("--deadline", "soon"), ("--timeout", "-1")])
def test_bad_flags(capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--outputs", "x", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be" in err and "Traceback" not in err


def test_url_problem():
    assert verify.url_problem("https://mesh-svc-1.us-central1.run.app/fortio/fetch/ads.mesh.private") is None
    assert verify.url_problem("http://127.0.0.1:8080/x") is None
    assert verify.url_problem("http://localhost/x") is None
    assert "plain http" in verify.url_problem("http://10.0.0.1/x")
    assert "not a URL" in verify.url_problem("")


# --------------------------------------------------------------------------------------------
# The program's own outputs drive the diagnosis
# --------------------------------------------------------------------------------------------


def test_diagnosis_uses_the_programs_outputs(cloud_run, write_outputs, capsys):
    outputs = dict(evaluate(None, {"gcp:region": "us-central1", "cloudrun-mesh:cluster": {"name": "mesh-cluster", "location": "us-central1-c"}}).outputs)
    host = outputs["exportedHosts"]["ads"]
    a = cloud_run({host: fortio_error(host, f"dial tcp {outputs['recordAddress']}:80: i/o timeout")})
    outputs["cloudRunUrls"] = {"mesh-svc": a.url}
    outputs["fetchUrls"] = {"mesh-svc": {"ads": stack_outputs.fetch_url(a.url, host)}}

    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(outputs), "--token", TOKEN,
                                 "--deadline", "0.3", "--timeout", "0.5")

    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    assert ("$ gcloud projects add-iam-policy-binding 123456789012 "
            "--member=serviceAccount:mesh-svc@my-project.iam.gserviceaccount.com --role=roles/trafficdirector.client") in d
    assert 'resource.labels.project_id="my-project"' in d and 'resource.labels.location="us-central1"' in d
    for command in outputs["proxyStatusCommands"]:
        assert f"$ {command}" in d
    assert "--membership=mesh-cluster --location=us-central1" in d
    assert "placeholders" not in d


def test_older_stack_without_troubleshooting_outputs(cloud_run, write_outputs, capsys):
    a = cloud_run({"ads.mesh.private": fortio_error("ads.mesh.private", "dial tcp 10.0.0.1:80: i/o timeout")})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"], troubleshooting=False))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.5")

    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    assert "--member=serviceAccount:mesh-svc@PROJECT_ID.iam.gserviceaccount.com" in d
    assert "--membership=MEMBERSHIP_NAME --location=MEMBERSHIP_LOCATION --project=PROJECT_ID" in d
    assert "PROJECT_ID and REGION are placeholders" in d


# --------------------------------------------------------------------------------------------
# As users run it
# --------------------------------------------------------------------------------------------


def test_command_line_end_to_end(cloud_run, write_outputs):
    a = cloud_run({"ads.mesh.private": OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))
    env = {"PATH": "/nonexistent", verify.TOKEN_ENV: TOKEN, "PYTHONPATH": str(ROOT)}

    proc = subprocess.run([sys.executable, "-m", "cloudrun_mesh", "verify", "--outputs", path, "--deadline", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)

    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^mesh-svc -> ads\s+attempt  1  200\s+\d+ ms  OK$", proc.stdout, re.M)
    assert TOKEN not in proc.stdout + proc.stderr


def test_the_check_does_not_load_the_pulumi_sdk():
    code = "import sys, cloudrun_mesh.verify; sys.exit('pulumi' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, timeout=30)
    assert proc.returncode == 0

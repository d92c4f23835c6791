"""Shared machinery of the `verify` tests: isolation (loopback only, no ambient credentials), the
stand-in clients (`fortio_standin`), stack outputs pointing at them, and readers of the output.

A test module activates the isolation by importing ``loopback_only`` and ``no_ambient_credentials``
(both autouse) and the ``cloud_run`` fixture.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import http.server
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional, TypeVar

import fortio_standin
import pytest

from cloudrun_mesh import outputs as stack_outputs
from cloudrun_mesh.__main__ import main
from cloudrun_mesh.verify import cli
from cloudrun_mesh.verify.tokens import TOKEN_ENV

T = TypeVar("T")

PROJECT = "my-project"
MESH_NAME = "projects/123456789012/locations/global/meshes/proj-123456789012-mesh"
SLACK = 0.4  # thread start-up and scheduling, on top of deadline + timeout
LOOPBACK = ("127.0.0.1", "::1", "localhost")
GOOGLE_AUTH_MODULES = ("google.auth", "google.auth.transport", "google.auth.transport.requests", "google.oauth2",
                       "google.oauth2.id_token")


def jwt(email: str = "alice@example.com", aud: str = "32555940559.apps.googleusercontent.com",
        exp: Optional[float] = None) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"email": email, "aud": aud, "exp": int(exp if exp is not None else time.time() + 3600)}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


TOKEN = jwt()


# --------------------------------------------------------------------------------------------
# Isolation
# --------------------------------------------------------------------------------------------


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


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch, tmp_path):
    """No token in the environment, no google-auth, and a PATH holding only the test's fake CLIs."""
    for var in (TOKEN_ENV, "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
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
# Stand-in clients and the stack outputs that point at them
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cloud_run():
    """start(routes, token=TOKEN, invoker=True, h2=False, fortio=True, empty_reply=...) -> CloudRunClient."""
    started: list[fortio_standin.CloudRunClient] = []

    def start(routes: dict, token: str = TOKEN, **kwargs) -> fortio_standin.CloudRunClient:
        client = fortio_standin.start_client(routes, token=token, **kwargs)
        started.append(client)
        return client

    yield start
    concurrently({str(i): client.close for i, client in enumerate(started)})


class _Raw(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.behaviour(self)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def raw_servers():
    """start(behaviour) -> URL of a loopback server whose every GET runs ``behaviour(handler)``; each
    server's ``release`` event ends what still waits when the block ends."""
    servers = []

    def start(behaviour: Callable) -> str:
        srv = fortio_standin._Quiet(("127.0.0.1", 0), _Raw)
        srv.behaviour, srv.release = behaviour, threading.Event()
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": fortio_standin.POLL}, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    try:
        yield start
    finally:
        for srv in servers:
            srv.release.set()
            srv.shutdown()
            srv.server_close()


def host(service: str) -> str:
    return f"{service}.mesh.private"


def uptime_check(client: str, service: str) -> str:
    """An uptime check's resource name as Cloud Monitoring writes it (the id is made up for the tests)."""
    return f"projects/{PROJECT}/uptimeCheckConfigs/{client}-{service}-a1b2c3"


def stack(clients: dict[str, str], services: list[str], *, regions: Optional[dict[str, str]] = None,
          troubleshooting: bool = True, uptime: bool = False) -> dict:
    """Stack outputs shaped like the program's, pointing at the stand-ins; ``uptime`` adds `uptimeChecks`
    (issue 20: client -> service -> uptime check resource name, the keys of `fetchUrls`)."""
    hosts = {svc: host(svc) for svc in services}
    out = {
        "cloudRunUrls": dict(clients),
        "meshName": MESH_NAME,
        "exportedHosts": hosts,
        "fetchUrls": {c: {s: stack_outputs.fetch_url(u, h) for s, h in hosts.items()} for c, u in clients.items()},
        "dnsZone": "prod",
        "recordAddress": fortio_standin.RECORD_ADDRESS,
    }
    if troubleshooting:
        out["loggingFilters"] = {c: stack_outputs.logging_filter(c, (regions or {}).get(c, "us-central1"), PROJECT)
                                 for c in clients}
        out["proxyStatusCommands"] = stack_outputs.proxy_status_commands(PROJECT)
    if uptime:
        out["uptimeChecks"] = {c: {s: uptime_check(c, s) for s in services} for c in clients}
    return out


@pytest.fixture
def write_outputs(tmp_path):
    def write(data) -> str:
        path = tmp_path / "outputs.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    return write


# --------------------------------------------------------------------------------------------
# Running the command and reading what it printed
# --------------------------------------------------------------------------------------------


class SkippingClock:
    """Real time plus the waits skipped: ``skip_to`` moves it forward at once (``Budget.skip_to``, called by the
    check's scheduler only when no request is in flight). Requests still take real time, so every bound on
    real time still holds; back-off waits cost none. ``skipped`` is the time jumped over."""

    def __init__(self):
        self.skipped = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    def skip_to(self, t: float) -> None:
        with self._lock:
            self.skipped = max(self.skipped, t - time.monotonic())


def _parse(argv: tuple[str, ...]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["verify", *argv])


def run_verify(capsys, *argv: str, real_time: bool = False) -> tuple[int, str, str, float]:
    """The command on the process's streams; with a ``SkippingClock`` unless ``real_time``. ``elapsed`` is
    real time."""
    start = time.monotonic()
    code = main(["verify", *argv]) if real_time else cli.run(_parse(argv), clock=SkippingClock())
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    return code, out, err, elapsed


def verify_captured(*argv: str, clock: Optional[Callable[[], float]] = None,
                    real_time: bool = False) -> tuple[int, str, str, float]:
    """``run_verify`` with the command's own streams instead of the process's: several can run at once."""
    args = _parse(argv)
    out: list[str] = []
    err: list[str] = []
    start = time.monotonic()
    code = cli.run(args, Lines(out), Lines(err), clock=None if real_time else (clock or SkippingClock()))
    elapsed = time.monotonic() - start
    return code, "\n".join(out) + ("\n" if out else ""), "\n".join(err) + ("\n" if err else ""), elapsed


# Runs that wait on real request timeouts (hanging stand-ins), registered by each module at import with
# ``hanging_run``: the first slow test that asks for ``hanging_runs`` runs them all at once, so the suite
# waits out the longest instead of their sum.
HANGING_RUNS: dict[str, Callable[[Path], object]] = {}


def hanging_run(name: str) -> Callable[[Callable[[Path], T]], Callable[[Path], T]]:
    def register(fn: Callable[[Path], T]) -> Callable[[Path], T]:
        HANGING_RUNS[name] = fn
        return fn
    return register


_HANGING_RESULTS: dict = {}


@pytest.fixture(scope="session")
def hanging_runs(tmp_path_factory) -> dict:
    # Each module that imports this fixture has its own copy of it: the results are kept here, so the
    # runs happen once per session whichever module asks first.
    if not _HANGING_RESULTS:
        tmp = tmp_path_factory.mktemp("hanging")
        with loopback_guard():
            _HANGING_RESULTS.update(concurrently({name: lambda name=name, fn=fn: fn(tmp / name)
                                                  for name, fn in HANGING_RUNS.items()}))
    return _HANGING_RESULTS


def concurrently(calls: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Each call in its own thread, all at once; their results by name. Scenarios that mostly wait on
    deadlines and timeouts take the time of the longest instead of their sum."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(calls), 1)) as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def attempt_lines(out: str, label: str) -> list[tuple[int, str]]:
    """(attempt number, status) for each attempt line of a pair, in order."""
    pattern = re.compile(rf"^{re.escape(label)}\s+attempt\s+(\d+)\s+(\S+)\s+\d+ ms", re.M)
    return [(int(n), code) for n, code in pattern.findall(out)]


def fetch2_lines(out: str, label: str) -> list[str]:
    return re.findall(rf"^{re.escape(label)}\s+fetch2\s+(\S+)\s+\d+ ms", out, re.M)


def diagnoses(out: str) -> list[str]:
    """Every diagnosis block."""
    starts = [m.start() for m in re.finditer(r"^Diagnosis \d+ of \d+: ", out, re.M)]
    return [out[s:e].rstrip() for s, e in zip(starts, starts[1:] + [len(out)], strict=False)]


def diagnosis(out: str, label: str) -> str:
    """The diagnosis block whose pairs include ``label``."""
    found = [d for d in diagnoses(out) if re.search(rf"^  Pairs \(\d+\): (.*, )?{re.escape(label)}(,|$)", d, re.M)]
    assert len(found) == 1, f"{label}: {len(found)} diagnoses in\n{out}"
    return found[0]


class Lines:
    """A stream for Printer that keeps the lines."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.encoding = "utf-8"

    def write(self, text: str) -> None:
        self.lines.extend(text.rstrip("\n").split("\n"))

    def flush(self) -> None:
        pass

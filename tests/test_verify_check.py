"""Retries, the invoker grace, the fetch2 follow-up and the time bound, through the stand-in.

Most scenarios spend their time waiting on real deadlines and timeouts, so those marked
``@at_once`` run together, once, in the module's ``runs`` fixture (each with its own stand-ins and
output streams), and each test reads its own run. Scenarios that change module constants run alone.
"""

from __future__ import annotations

import json
import random
import re
import threading
import types
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import fortio_standin as fs
import pytest
from verify_support import (
    SLACK,
    TOKEN,
    Lines,
    SkippingClock,
    attempt_lines,
    cloud_run,
    concurrently,
    diagnosis,
    fetch2_lines,
    hanging_run,
    hanging_runs,
    host,
    loopback_guard,
    loopback_only,
    no_ambient_credentials,
    run_verify,
    stack,
    verify_captured,
    write_outputs,
)

from cloudrun_mesh.verify import check, probe, support, targets, tokens

SCENARIOS: dict[str, Callable[[Scenario], types.SimpleNamespace]] = {}
# Scenarios that wait on real request timeouts (a hanging fortio): run together, by the slow tests only.
HANGING_SCENARIOS: dict[str, Callable[[Scenario], types.SimpleNamespace]] = {}


def at_once(fn: Callable[[Scenario], types.SimpleNamespace]) -> Callable:
    SCENARIOS[fn.__name__] = fn
    return fn


def at_once_hanging(fn: Callable[[Scenario], types.SimpleNamespace]) -> Callable:
    HANGING_SCENARIOS[fn.__name__] = fn
    return fn


class Scenario:
    """What a scenario uses: stand-in clients, an outputs file of its own, and the command."""

    def __init__(self, name: str, tmp: Path, clients: list):
        self.name, self.tmp, self.clients = name, tmp, clients

    def client(self, routes: dict, token: str = TOKEN, **kwargs) -> fs.CloudRunClient:
        started = fs.start_client(routes, token=token, **kwargs)
        self.clients.append(started)
        return started

    def outputs(self, data: dict) -> str:
        path = self.tmp / f"{self.name}.json"
        path.write_text(json.dumps(data))
        return str(path)

    def verify(self, *argv: str, **clients: fs.CloudRunClient) -> types.SimpleNamespace:
        clock = SkippingClock()
        code, out, err, elapsed = verify_captured(*argv, clock=clock)
        return types.SimpleNamespace(code=code, out=out, err=err, elapsed=elapsed, clock=clock, **clients)


def _run_all(tmp: Path, scenarios: dict) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    clients: list = []
    try:
        return concurrently({name: lambda name=name, fn=fn: fn(Scenario(name, tmp, clients))
                             for name, fn in scenarios.items()})
    finally:
        concurrently({str(i): c.close for i, c in enumerate(clients)})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with loopback_guard():
        return _run_all(tmp_path_factory.mktemp("runs"), SCENARIOS)


@hanging_run("check")
def _hanging_check_runs(tmp: Path) -> dict:
    return _run_all(tmp, HANGING_SCENARIOS)


@at_once
def every_pair_ok(s: Scenario) -> types.SimpleNamespace:
    a = s.client({host("ads"): fs.DESTINATION_OK, host("payments"): fs.DESTINATION_OK})
    b = s.client({host("ads"): fs.DESTINATION_OK, host("payments"): fs.DESTINATION_OK})
    path = s.outputs(stack({"mesh-svc": a.url, "checkout-web": b.url}, ["ads", "payments"]))
    return s.verify("--outputs", path, "--token", TOKEN, "--deadline", "3", "--timeout", "1", a=a, b=b)


def test_every_pair_answers_200(runs):
    r = runs["every_pair_ok"]
    code, out, err, elapsed, a, b = r.code, r.out, r.err, r.elapsed, r.a, r.b

    assert (code, err) == (0, "")
    for label in ("mesh-svc -> ads", "mesh-svc -> payments", "checkout-web -> ads", "checkout-web -> payments"):
        assert attempt_lines(out, label) == [(1, "200")]
        assert fetch2_lines(out, label) == []
        assert re.search(rf"^  ok    {re.escape(label)}\s+200 on attempt 1 \(\d+ ms\)$", out, re.M)
    assert "Summary: 4 of 4 pairs answered 200" in out and "Diagnosis" not in out
    assert sorted(p for p, _ in a.requests) == ["/fortio/fetch/ads.mesh.private", "/fortio/fetch/payments.mesh.private"]
    assert all(h[probe.TOKEN_HEADER] == f"Bearer {TOKEN}" and "Authorization" not in h for _, h in a.requests + b.requests)
    assert elapsed < 1.5


@at_once
def warming_sidecar(s: Scenario) -> types.SimpleNamespace:
    warming = fs.Sequence(fs.NO_HEALTHY_UPSTREAM, fs.REFUSED, fs.DESTINATION_OK)
    a = s.client({host("ads"): warming})
    path = s.outputs(stack({"mesh-svc": a.url}, ["ads"]))
    return s.verify("--outputs", path, "--token", TOKEN, "--deadline", "5", "--timeout", "1")


def test_retries_until_the_sidecar_is_ready(runs):
    r = runs["warming_sidecar"]
    code, out, elapsed = r.code, r.out, r.elapsed

    assert code == 0
    # 503 relayed from Envoy, then the front end's 503 for fortio's silent close, then the route.
    assert attempt_lines(out, "mesh-svc -> ads") == [(1, "503"), (2, "503"), (3, "200")]
    assert fetch2_lines(out, "mesh-svc -> ads") == []
    # Backoff with jitter: at least 0.25 s then 0.5 s between attempts (on the check's clock, which skipped
    # them: the test does not wait), and well before the deadline.
    assert 0.75 <= r.clock.skipped <= 1.5
    assert elapsed < 0.75


def test_backoff_is_exponential_with_jitter_and_capped():
    rng = random.Random(7)
    for n in range(1, 12):
        ceiling = min(check.BACKOFF_CAP, check.BACKOFF_BASE * 2 ** (n - 1))
        delays = [check.backoff(n, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not fixed
    assert check.backoff(30, rng) <= check.BACKOFF_CAP


@at_once
def refused_token(s: Scenario) -> types.SimpleNamespace:
    a = s.client({host("ads"): fs.DESTINATION_OK}, token="another-token")
    path = s.outputs(stack({"mesh-svc": a.url}, ["ads"]))
    return s.verify("--outputs", path, "--token", TOKEN, "--deadline", "3", "--timeout", "1", a=a)


def test_401_is_never_retried(runs):
    r = runs["refused_token"]
    code, out, elapsed, a = r.code, r.out, r.elapsed, r.a

    assert code == 1
    assert attempt_lines(out, "mesh-svc -> ads") == [(1, "401")]
    assert fetch2_lines(out, "mesh-svc -> ads") == [] and len(a.requests) == 1
    assert "stopped early: a 401 is not retried" in diagnosis(out, "mesh-svc -> ads")
    assert elapsed < 1.0  # the same token is refused every time: no waiting for the deadline


@at_once
def default_grace(s: Scenario) -> types.SimpleNamespace:
    a = s.client({host("ads"): fs.DESTINATION_OK}, token="another-token")  # a 401 ends the run at once
    return s.verify("--outputs", s.outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token", TOKEN, "--deadline", "1000")


def test_default_invoker_grace_is_printed(runs):
    code, out = runs["default_grace"].code, runs["default_grace"].out
    assert code == 1
    assert "A 403 from Cloud Run is retried for 120 s (invoker grants propagate in about 2 minutes); a 401 is " \
           "not retried." in out
    assert check.INVOKER_GRACE == 120.0


def test_403_is_retried_only_for_the_grace(cloud_run, write_outputs, capsys, monkeypatch):
    monkeypatch.setattr(check, "INVOKER_GRACE", 0.6)
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, invoker=False)
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "5", "--timeout", "1")

    assert code == 1
    assert "A 403 from Cloud Run is retried for 0.6 s" in out
    assert len(attempt_lines(out, "mesh-svc -> ads")) >= 2  # IAM takes a while to apply: retried...
    assert re.search(r"^mesh-svc -> ads\s+stopped\s+403 from Cloud Run for the 0\.6 s invoker grace$", out, re.M)
    assert elapsed < 1.6  # ...but not until the 5 s deadline
    assert "The check retried for 0.6 s" in diagnosis(out, "mesh-svc -> ads")


@at_once
def grant_arrives(s: Scenario) -> types.SimpleNamespace:
    a = s.client({host("ads"): fs.DESTINATION_OK}, invoker=False)
    path = s.outputs(stack({"mesh-svc": a.url}, ["ads"]))
    a.front_end.server.grant_after = 2  # the grant propagates after two refused attempts
    return s.verify("--outputs", path, "--token", TOKEN, "--deadline", "5", "--timeout", "1")


def test_403_grace_covers_a_grant_that_arrives(runs):
    code, out = runs["grant_arrives"].code, runs["grant_arrives"].out
    assert code == 0
    codes = [c for _, c in attempt_lines(out, "mesh-svc -> ads")]
    assert codes == ["403", "403", "200"]


@at_once_hanging
def follow_up_after_a_hang(s: Scenario) -> types.SimpleNamespace:
    a = s.client({host("ads"): fs.BLACKHOLE})
    path = s.outputs(stack({"mesh-svc": a.url}, ["ads"]))
    return s.verify("--outputs", path, "--token", TOKEN, "--deadline", "1", "--timeout", "0.8", a=a)


@pytest.mark.slow
def test_follow_up_is_bounded_by_the_same_deadline(hanging_runs):
    r = hanging_runs["check"]["follow_up_after_a_hang"]
    code, out, elapsed, a = r.code, r.out, r.elapsed, r.a

    assert code == 1
    assert attempt_lines(out, "mesh-svc -> ads") == [(1, "timeout")]  # a second could not end by the deadline
    assert fetch2_lines(out, "mesh-svc -> ads") == ["400"]
    assert elapsed <= 1 + 0.8 + SLACK, elapsed
    [asked] = [p for p in a.fortio_requests if p.startswith("/fortio/fetch2/")]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(asked).query)
    assert query["url"] == ["http://ads.mesh.private/"]
    assert 0 < int(query["timeout"][0].removesuffix("ms")) <= 800 * probe.FORTIO_SHARE


@pytest.mark.slow
def test_follow_up_ends_in_time_even_when_fortio_does_not(cloud_run, write_outputs, capsys, monkeypatch):
    monkeypatch.setattr(probe, "FORTIO_SHARE", 10.0)  # fortio's own client would wait far longer than we do
    a = cloud_run({host("ads"): fs.BLACKHOLE})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.3",
                                       "--timeout", "0.4")

    assert code == 1 and fetch2_lines(out, "mesh-svc -> ads") == ["timeout"]
    assert elapsed <= 0.3 + 0.4 + SLACK, elapsed
    assert "no answer from /fortio/fetch/ within the request timeout" in diagnosis(out, "mesh-svc -> ads")


HANGING = ["a1", "a2", "a3", "a4"]


@at_once_hanging
def hanging_pairs(s: Scenario) -> types.SimpleNamespace:
    a = s.client({host(svc): fs.BLACKHOLE for svc in HANGING})
    path = s.outputs(stack({"mesh-svc": a.url}, HANGING))
    return s.verify("--outputs", path, "--token", TOKEN, "--deadline", "0.8", "--timeout", "0.6")


@pytest.mark.slow
def test_hanging_pairs_are_checked_concurrently_within_the_bound(hanging_runs):
    r = hanging_runs["check"]["hanging_pairs"]
    code, out, err, elapsed, services = r.code, r.out, r.err, r.elapsed, HANGING

    assert code == 1 and err == ""
    assert elapsed <= 0.8 + 0.6 + SLACK, elapsed
    for s in services:
        assert attempt_lines(out, f"mesh-svc -> {s}")[0] == (1, "timeout")
    assert "no complete answer within 0.6 s" in out


def test_summary_without_any_attempt():
    lines: list[str] = []
    budget = support.Budget(1, 1)
    pair = targets.Pair("mesh-svc", "ads", "https://x/fortio/fetch/ads.mesh.private", "ads.mesh.private")
    assert check.summarize([check.PairResult(pair)], budget, support.Printer(Lines(lines), Lines(lines))) is False
    assert any("FAIL  mesh-svc -> ads" in line and "no attempt fitted in the deadline" in line for line in lines)
    assert tokens.Tokens(TOKEN, None, budget, 1).source == "--token"

"""Retries, the invoker grace, the fetch2 follow-up and the time bound, through the stand-in."""

from __future__ import annotations

import random
import re
import threading
import urllib.parse

import fortio_standin as fs
from cloudrun_mesh.verify import check, probe, support, targets, tokens
from verify_support import (SLACK, TOKEN, Lines, attempt_lines, cloud_run, diagnosis, fetch2_lines, host,  # noqa: F401
                            loopback_only, no_ambient_credentials, run_verify, stack, write_outputs)


def test_every_pair_answers_200(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK, host("payments"): fs.DESTINATION_OK})
    b = cloud_run({host("ads"): fs.DESTINATION_OK, host("payments"): fs.DESTINATION_OK})
    path = write_outputs(stack({"mesh-svc": a.url, "checkout-web": b.url}, ["ads", "payments"]))

    code, out, err, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "3", "--timeout", "1")

    assert (code, err) == (0, "")
    for label in ("mesh-svc -> ads", "mesh-svc -> payments", "checkout-web -> ads", "checkout-web -> payments"):
        assert attempt_lines(out, label) == [(1, "200")]
        assert fetch2_lines(out, label) == []
        assert re.search(rf"^  ok    {re.escape(label)}\s+200 on attempt 1 \(\d+ ms\)$", out, re.M)
    assert "Summary: 4 of 4 pairs answered 200" in out and "Diagnosis" not in out
    assert sorted(p for p, _ in a.requests) == ["/fortio/fetch/ads.mesh.private", "/fortio/fetch/payments.mesh.private"]
    assert all(h[probe.TOKEN_HEADER] == f"Bearer {TOKEN}" and "Authorization" not in h for _, h in a.requests + b.requests)
    assert elapsed < 1.5


def test_retries_until_the_sidecar_is_ready(cloud_run, write_outputs, capsys):
    warming = fs.Sequence(fs.NO_HEALTHY_UPSTREAM, fs.REFUSED, fs.DESTINATION_OK)
    a = cloud_run({host("ads"): warming})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "5", "--timeout", "1")

    assert code == 0
    # 503 relayed from Envoy, then the front end's 503 for fortio's silent close, then the route.
    assert attempt_lines(out, "mesh-svc -> ads") == [(1, "503"), (2, "503"), (3, "200")]
    assert fetch2_lines(out, "mesh-svc -> ads") == []
    # Backoff with jitter: at least 0.25 s then 0.5 s between attempts, and well before the deadline.
    assert 0.75 <= elapsed < 2.5


def test_backoff_is_exponential_with_jitter_and_capped():
    rng = random.Random(7)
    for n in range(1, 12):
        ceiling = min(check.BACKOFF_CAP, check.BACKOFF_BASE * 2 ** (n - 1))
        delays = [check.backoff(n, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not fixed
    assert check.backoff(30, rng) <= check.BACKOFF_CAP


def test_401_is_never_retried(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, token="another-token")
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "3", "--timeout", "1")

    assert code == 1
    assert attempt_lines(out, "mesh-svc -> ads") == [(1, "401")]
    assert fetch2_lines(out, "mesh-svc -> ads") == [] and len(a.requests) == 1
    assert "stopped early: a 401 is not retried" in diagnosis(out, "mesh-svc -> ads")
    assert elapsed < 1.0  # the same token is refused every time: no waiting for the deadline


def test_default_invoker_grace_is_printed(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, token="another-token")  # a 401 ends the run at once
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])),
                                 "--token", TOKEN, "--deadline", "1000")
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


def test_403_grace_covers_a_grant_that_arrives(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, invoker=False)
    timer = threading.Timer(0.4, lambda: setattr(a.front_end.server, "invoker", True))
    timer.start()
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "5", "--timeout", "1")

    timer.cancel()
    assert code == 0
    codes = [c for _, c in attempt_lines(out, "mesh-svc -> ads")]
    assert codes[0] == "403" and codes[-1] == "200"


def test_follow_up_is_bounded_by_the_same_deadline(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.BLACKHOLE})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "1",
                                       "--timeout", "0.8")

    assert code == 1
    assert attempt_lines(out, "mesh-svc -> ads") == [(1, "timeout")]  # a second could not end by the deadline
    assert fetch2_lines(out, "mesh-svc -> ads") == ["400"]
    assert elapsed <= 1 + 0.8 + SLACK, elapsed
    [asked] = [p for p in a.fortio_requests if p.startswith("/fortio/fetch2/")]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(asked).query)
    assert query["url"] == ["http://ads.mesh.private/"]
    assert 0 < int(query["timeout"][0].removesuffix("ms")) <= 800 * probe.FORTIO_SHARE


def test_follow_up_ends_in_time_even_when_fortio_does_not(cloud_run, write_outputs, capsys, monkeypatch):
    monkeypatch.setattr(probe, "FORTIO_SHARE", 10.0)  # fortio's own client would wait far longer than we do
    a = cloud_run({host("ads"): fs.BLACKHOLE})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.3",
                                       "--timeout", "0.4")

    assert code == 1 and fetch2_lines(out, "mesh-svc -> ads") == ["timeout"]
    assert elapsed <= 0.3 + 0.4 + SLACK, elapsed
    assert "no answer from /fortio/fetch/ within the request timeout" in diagnosis(out, "mesh-svc -> ads")


def test_hanging_pairs_are_checked_concurrently_within_the_bound(cloud_run, write_outputs, capsys):
    services = ["a1", "a2", "a3", "a4"]
    a = cloud_run({host(s): fs.BLACKHOLE for s in services})
    path = write_outputs(stack({"mesh-svc": a.url}, services))

    code, out, err, elapsed = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.8",
                                         "--timeout", "0.6")

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

"""Each cause, through the stand-in (tests/fortio_standin.py, which follows fortio/fortio
`fhttp/http_server.go` at commit 45e18710810d864a615618087228996a0a824b2f): what the check prints, and
that one diagnosis covers every pair with the same cause."""

from __future__ import annotations

import re
import time
import types

import fortio_standin as fs
import pytest
from testkit import evaluate
from verify_support import (
    PROJECT,
    SLACK,
    TOKEN,
    Lines,
    attempt_lines,
    cloud_run,
    concurrently,
    diagnoses,
    diagnosis,
    fetch2_lines,
    hanging_run,
    hanging_runs,
    host,
    jwt,
    loopback_guard,
    loopback_only,
    no_ambient_credentials,
    run_verify,
    stack,
    uptime_check,
    write_outputs,
)

from cloudrun_mesh import outputs as stack_outputs
from cloudrun_mesh.verify import check, probe, support, targets, tokens
from cloudrun_mesh.verify import diagnosis as diag

MATRIX = {
    "ads": fs.DESTINATION_OK,
    "nodns": fs.NXDOMAIN,
    "hole": fs.BLACKHOLE,
    "refused": fs.REFUSED,
    "reset": fs.RESET,
    "noroute": fs.ENVOY_NO_ROUTE,
    "noendpoints": fs.NO_HEALTHY_UPSTREAM,
    "unreachable": fs.UPSTREAM_CONNECT_ERROR,
    "rbac": fs.RBAC_DENIED,
    "broken": fs.destination(500, "internal error"),
}
# The follow-up after a hanging attempt gets one request timeout, of which fortio's client gets 80 %:
# a second is enough margin on a loaded machine.
DEADLINE, TIMEOUT = 2.0, 1.0


def _run_matrix(empty_reply):
    """One run over every cause at once (pairs are checked concurrently), for two clients."""
    a = fs.start_client({host(s): r for s, r in MATRIX.items()}, token=TOKEN, empty_reply=empty_reply)
    b = fs.start_client({host("nodns"): fs.NXDOMAIN, host("hole"): fs.BLACKHOLE}, token=TOKEN, empty_reply=empty_reply)
    lines: list[str] = []
    try:
        raw = stack({"mesh-svc": a.url}, list(MATRIX))
        other = stack({"checkout-web": b.url}, ["nodns", "hole"], regions={"checkout-web": "europe-west1"})
        for key in ("cloudRunUrls", "fetchUrls", "loggingFilters"):
            raw[key].update(other[key])
        printer = support.Printer(Lines(lines), Lines(lines))
        printer.secrets.add(TOKEN)
        budget = support.Budget(DEADLINE, TIMEOUT)
        start = time.monotonic()
        code = check.check(targets.read_targets(raw), tokens.Tokens(TOKEN, None, budget, TIMEOUT), budget, printer)
        elapsed = time.monotonic() - start
    finally:
        concurrently({"a": a.close, "b": b.close})
    return types.SimpleNamespace(code=code, out="\n".join(lines), elapsed=elapsed, fortio=a.fortio_requests)


# What Cloud Run's front end answers for a container that closed without a response is not
# documented: the diagnosis must not depend on it, so every assertion holds for both answers.
EMPTY_REPLIES = {"envoy-text": fs.EMPTY_REPLY_ENVOY, "google-page": fs.EMPTY_REPLY_GOOGLE}


@hanging_run("matrix")
def _matrix_runs(tmp) -> dict:
    # The two runs at once (each mostly waits on the same deadline): every test below reads them.
    return concurrently({name: lambda reply=reply: _run_matrix(reply) for name, reply in EMPTY_REPLIES.items()})


# The matrix waits on real timeouts (its hanging pairs): every test reading it is a slow one.
@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.slow) for name in EMPTY_REPLIES])
def matrix(request, hanging_runs):
    return hanging_runs["matrix"][request.param]


def test_matrix_exit_code_summary_and_time_bound(matrix):
    assert matrix.code == check.EXIT_FAILED
    assert matrix.elapsed <= DEADLINE + TIMEOUT + SLACK, matrix.elapsed
    assert f"Summary: 1 of {len(MATRIX) + 2} pairs answered 200" in matrix.out
    assert re.search(r"^  ok    mesh-svc -> ads\s+200 on attempt 1 \(\d+ ms\)$", matrix.out, re.M)
    assert "Traceback" not in matrix.out


def test_every_failed_pair_gets_one_fetch2_follow_up(matrix):
    for svc in set(MATRIX) - {"ads"}:
        assert len(fetch2_lines(matrix.out, f"mesh-svc -> {svc}")) == 1, svc
    assert fetch2_lines(matrix.out, "mesh-svc -> ads") == []
    asked = [p for p in matrix.fortio if p.startswith("/fortio/fetch2/")]
    assert len(asked) == len(MATRIX) - 1
    # fortio's own client is limited to 80 % of the request timeout: its 400 arrives before ours ends.
    limits = [int(m) for p in asked for m in re.findall(r"[?&]timeout=(\d+)ms(?:&|$)", p)]
    share = probe.FORTIO_SHARE * TIMEOUT * 1000
    assert len(limits) == len(asked) and all(share - 100 <= ms <= share for ms in limits), asked
    assert all(re.search(r"[?&]url=http%3A%2F%2F[a-z]+\.mesh\.private%2F(&|$)", p) for p in asked), asked


def test_one_diagnosis_per_distinct_cause(matrix):
    blocks = diagnoses(matrix.out)
    titles = [b.splitlines()[0].split(": ", 1)[1] for b in blocks]
    assert len(titles) == len(set(titles)) == 8, titles
    # The same missing-configuration cause on three pairs of two clients: one diagnosis listing them all.
    sidecar = diagnosis(matrix.out, "mesh-svc -> hole")
    assert sidecar == diagnosis(matrix.out, "mesh-svc -> refused") == diagnosis(matrix.out, "checkout-web -> hole")
    assert re.search(r"^  Pairs \(3\): ", sidecar, re.M)
    for client in ("mesh-svc", "checkout-web"):  # each client's own grant and log query
        assert (f"$ gcloud projects add-iam-policy-binding 123456789012 --member=serviceAccount:{client}@my-project"
                ".iam.gserviceaccount.com --role=roles/trafficdirector.client") in sidecar
    assert diagnosis(matrix.out, "mesh-svc -> nodns") == diagnosis(matrix.out, "checkout-web -> nodns")


def test_name_resolution(matrix):
    d = diagnosis(matrix.out, "mesh-svc -> nodns")
    assert d.startswith("Diagnosis ") and ": fortio could not complete the fetch: the host does not resolve" in d
    assert ('400 \'Error for "http://nodns.mesh.private/": Get "http://nodns.mesh.private/": dial tcp: lookup '
            "nodns.mesh.private on 169.254.169.254:53: no such host'") in d
    assert "fortio closed the connection without answering and Cloud Run's front end answered in its place" in d
    assert "$ gcloud dns record-sets list --zone=prod --project=my-project" in d
    assert "$ gcloud dns managed-zones describe prod --project=my-project" in d
    assert "--region=europe-west1" in d  # the other client's own command


def test_sidecar_without_configuration(matrix):
    d = diagnosis(matrix.out, "mesh-svc -> hole")
    assert "fortio could not complete the fetch: the client's sidecar does not take its connection" in d
    assert "context deadline exceeded (Client.Timeout exceeded while awaiting headers)" in d
    assert "dial tcp 10.0.0.1:80: connect: connection refused" in d
    assert "fortio waits up to a minute for the destination" in d  # the fetch itself timed out
    assert "IAM may still be propagating (typically 2 minutes, up to 7)" in d
    logs = stack_outputs.logging_read_command(
        stack_outputs.logging_filter("mesh-svc", "us-central1", PROJECT, "trafficdirector.networks.getConfigs"), PROJECT)
    assert f"$ {logs}" in d
    assert ("$ gcloud alpha container fleet mesh debug proxy-status --membership=MEMBERSHIP_NAME "
            "--location=MEMBERSHIP_LOCATION --project=my-project") in d
    assert "VirtualService" not in d.split("\n")[0]  # the front end's 5xx is not blamed on the route


def test_reset(matrix):
    d = diagnosis(matrix.out, "mesh-svc -> reset")
    assert "fortio could not complete the fetch: the connection was closed without an answer" in d
    assert re.search(r"read tcp 127\.0\.0\.1:\d+->10\.0\.0\.1:80: read: connection reset by peer", d)
    assert "$ kubectl get services -A --field-selector metadata.name=reset" in d


def test_mesh_answers_relayed(matrix):
    noroute = diagnosis(matrix.out, "mesh-svc -> noroute")
    assert "the client's sidecar has no route for the host (Envoy's 404)" in noroute
    assert "$ kubectl get virtualservices.networking.istio.io -A" in noroute
    assert "$ kubectl get services -A --field-selector metadata.name=noroute" in noroute

    endpoints = diagnosis(matrix.out, "mesh-svc -> noendpoints")
    assert "the destination Service has no ready endpoints (no healthy upstream)" in endpoints
    assert "$ kubectl get endpoints -A --field-selector metadata.name=noendpoints" in endpoints

    unreachable = diagnosis(matrix.out, "mesh-svc -> unreachable")
    assert "the sidecar cannot reach the destination (upstream connect error)" in unreachable
    assert "same namespace as the Service" in unreachable

    rbac = diagnosis(matrix.out, "mesh-svc -> rbac")
    assert "the mesh refused the request (RBAC: access denied)" in rbac
    assert "client identity mesh-svc@my-project.iam.gserviceaccount.com" in rbac
    assert "run.invoker" not in rbac  # a 403 from the mesh is not Cloud Run's
    assert len(attempt_lines(matrix.out, "mesh-svc -> rbac")) >= 2  # and is retried like any mesh answer

    broken = diagnosis(matrix.out, "mesh-svc -> broken")
    assert "the route works: the destination itself answered HTTP 500" in broken


def test_front_end_text_is_not_read_as_the_mesh(cloud_run, write_outputs, capsys):
    # Cloud Run's empty-reply answer can carry Envoy's "upstream connect error" text: without the
    # follow-up it would read as the sidecar failing to reach the destination.
    a = cloud_run({host("ads"): fs.REFUSED}, empty_reply=fs.EMPTY_REPLY_ENVOY)
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 TOKEN, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1
    assert "connection termination" in out  # what the front end answered
    assert "the client's sidecar does not take its connection" in diagnosis(out, "mesh-svc -> ads")
    assert "upstream connect error)" not in out


def test_http2_end_to_end(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, h2=True)
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 TOKEN, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1
    assert attempt_lines(out, "mesh-svc -> ads")[0] == (1, "505")
    d = diagnosis(out, "mesh-svc -> ads")
    assert "the client serves HTTP/2 end to end, so /fortio/fetch/ answers 505" in d
    assert "'Use fetch2 when using http/2.0'" in d
    assert "Through /fortio/fetch2/ the route answered 200: the mesh itself works." in d
    assert ("$ gcloud run services update mesh-svc --region=us-central1 --project=my-project --no-use-http2") in d


def test_not_fortio(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, fortio=False)
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 TOKEN, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    assert "nothing answers /fortio/fetch/ on the client (HTTP 404 from the service itself)" in d
    assert "fortio/fortio" in d and "Not Found" in d  # the evidence, without its HTML
    assert ("$ gcloud run services describe mesh-svc --region=us-central1 --project=my-project "
            "--format='value(spec.template.spec.containers[0].image)'") in d


def test_route_recovering_after_the_last_attempt(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.Sequence(fs.NO_HEALTHY_UPSTREAM, fs.DESTINATION_OK)})
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 TOKEN, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1 and fetch2_lines(out, "mesh-svc -> ads") == ["200"]
    assert "the route answered 200 through /fortio/fetch2/ right after /fortio/fetch/ failed" in out


def test_same_token_problem_once_for_every_pair(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK, host("payments"): fs.DESTINATION_OK})
    b = cloud_run({host("ads"): fs.DESTINATION_OK, host("payments"): fs.DESTINATION_OK})
    path = write_outputs(stack({"mesh-svc": a.url, "checkout-web": b.url}, ["ads", "payments"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", "ya29.an-access-token", "--deadline", "1")

    assert code == 1
    blocks = diagnoses(out)
    assert len(blocks) == 1, out
    assert "Cloud Run refused the identity token (HTTP 401)" in blocks[0]
    assert re.search(r"^  Pairs \(4\): ", blocks[0], re.M)
    assert "is not a JWT ID token" in blocks[0]
    assert f"--audiences={a.url}" in blocks[0] and f"--audiences={b.url}" in blocks[0]
    assert "ya29.an-access-token" not in out


def test_refused_token_audience_is_explained(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, token="another-token")
    wrong = jwt(aud="https://some-other-service-123.us-central1.run.app")
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 wrong, "--deadline", "3", "--timeout", "1")
    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    assert f"audience is 'https://some-other-service-123.us-central1.run.app', not the service's URL '{a.url}'" in d


def test_expired_token(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK})
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 jwt(exp=time.time() - 60), "--deadline", "1")
    assert code == 1 and "The token expired at" in out


def test_caller_without_run_invoker(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, invoker=False)
    b = cloud_run({host("ads"): fs.DESTINATION_OK}, invoker=False)
    path = write_outputs(stack({"mesh-svc": a.url, "checkout-web": b.url}, ["ads"],
                               regions={"checkout-web": "europe-west1"}))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.6", "--timeout", "0.5")

    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    assert d == diagnosis(out, "checkout-web -> ads")  # one cause: the caller
    assert "Cloud Run refused the caller (HTTP 403): alice@example.com lacks roles/run.invoker" in d
    assert ("$ gcloud run services add-iam-policy-binding mesh-svc --region=us-central1 --project=my-project "
            "--member=user:alice@example.com --role=roles/run.invoker") in d
    assert "add-iam-policy-binding checkout-web --region=europe-west1" in d
    assert fetch2_lines(out, "mesh-svc -> ads") == []  # fortio was never reached: nothing to ask it


def test_service_account_caller_gets_a_service_account_member(cloud_run, write_outputs, capsys):
    token = jwt(email="ci@example-ci.iam.gserviceaccount.com")
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, invoker=False, token=token)
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 token, "--deadline", "0.3", "--timeout", "0.3")
    assert code == 1
    assert "--member=serviceAccount:ci@example-ci.iam.gserviceaccount.com --role=roles/run.invoker" in out


def test_diagnosis_uses_the_programs_outputs(cloud_run, write_outputs, capsys):
    outputs = dict(evaluate(None, {"gcp:region": "us-central1", "cloudrun-mesh:cluster": {"name": "mesh-cluster", "location": "us-central1-c"}}).outputs)
    target = outputs["exportedHosts"]["ads"]
    a = cloud_run({target: fs.REFUSED})
    outputs["cloudRunUrls"] = {"mesh-svc": a.url}
    outputs["fetchUrls"] = {"mesh-svc": {"ads": stack_outputs.fetch_url(a.url, target)}}

    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(outputs), "--token", TOKEN,
                                 "--deadline", "0.3", "--timeout", "0.5")

    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    assert ("$ gcloud projects add-iam-policy-binding 123456789012 "
            "--member=serviceAccount:mesh-svc@my-project.iam.gserviceaccount.com --role=roles/trafficdirector.client") in d
    assert 'resource.labels.project_id="my-project"' in d and 'resource.labels.location="us-central1"' in d
    for command in outputs["proxyStatusCommands"]:
        assert f"$ {command}" in d
    assert f"fortio's connection to {outputs['recordAddress']} (the wildcard record)" in d
    assert "placeholders" not in d


def test_older_stack_without_troubleshooting_outputs(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.REFUSED})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"], troubleshooting=False))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.5")

    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    assert "--member=serviceAccount:mesh-svc@PROJECT_ID.iam.gserviceaccount.com" in d
    assert "--membership=MEMBERSHIP_NAME --location=MEMBERSHIP_LOCATION --project=PROJECT_ID" in d
    assert "PROJECT_ID and REGION are placeholders" in d


@pytest.mark.parametrize("error, cause", [
    ("dial tcp: lookup ads.mesh.private on 169.254.169.254:53: no such host", "dns"),
    ("dial tcp: lookup ads.mesh.private on 169.254.169.254:53: server misbehaving", "dns"),
    ("dial tcp 10.0.0.1:80: i/o timeout", "no-mesh-config"),
    ("dial tcp 10.0.0.1:80: connect: connection timed out", "no-mesh-config"),
    ("context deadline exceeded (Client.Timeout exceeded while awaiting headers)", "no-mesh-config"),
    ("dial tcp 10.0.0.1:80: connect: no route to host", "no-mesh-config"),
    ("read tcp 10.8.0.5:43120->10.0.0.1:80: read: connection reset by peer", "reset"),
    ("EOF", "reset"),
    ("tls: first record does not look like a TLS handshake", "fortio-other"),
])
def test_go_errors(error, cause):
    url = "http://ads.mesh.private/"
    follow = diag.Outcome("http", 5, status=400, body=f'Error for "{url}": Get "{url}": {error}\n')
    assert diag.fortio_error(follow) == f'Get "{url}": {error}'
    pair = targets.Pair("mesh-svc", "ads", "https://x/fortio/fetch/ads.mesh.private", "ads.mesh.private")
    result = check.PairResult(pair, [diag.Outcome("http", 5, status=503, body="")], follow)
    t = targets.read_targets(stack({"mesh-svc": "https://x"}, ["ads"]))
    assert diag.explain(result, t, tokens.Tokens(TOKEN, None, support.Budget(1, 1), 1), 1).cause == cause


def test_only_fortios_own_error_text_counts_as_its_error():
    relayed = diag.Outcome("http", 5, status=400, body="bad request from the destination")
    assert diag.fortio_error(relayed) is None
    assert diag.fortio_error(diag.Outcome("http", 5, status=502, body='Error for "x": boom')) is None


def test_other_answer_relayed_by_fetch2(cloud_run, write_outputs, capsys):
    # No Envoy text and no x-envoy-upstream-service-time (the front end may drop it): fortio still
    # completed the request, so the route exists and the answer is the mesh's or the destination's.
    a = cloud_run({host("ads"): fs.answer(500, "internal error")})
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 TOKEN, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1 and fetch2_lines(out, "mesh-svc -> ads") == ["500"]
    d = diagnosis(out, "mesh-svc -> ads")
    assert "the mesh answered HTTP 500" in d and "the client's sidecar routes the host" in d


def test_cloud_run_limiting_requests(cloud_run, write_outputs, capsys):
    a = cloud_run({host("ads"): fs.DESTINATION_OK})
    a.front_end.server.limited = True
    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])), "--token",
                                 TOKEN, "--deadline", "0.3", "--timeout", "0.5")
    assert code == 1 and fetch2_lines(out, "mesh-svc -> ads") == []
    assert "Cloud Run is limiting requests (HTTP 429)" in diagnosis(out, "mesh-svc -> ads")


@pytest.mark.slow
def test_fetch_failed_and_fetch2_told_nothing(cloud_run, write_outputs, capsys, monkeypatch):
    # /fortio/fetch/ gets the front end's 5xx; the follow-up finds fortio's own client still waiting.
    monkeypatch.setattr(probe, "FORTIO_SHARE", 10.0)
    a = cloud_run({host("ads"): fs.Sequence(fs.REFUSED, fs.BLACKHOLE)})
    code, out, _, elapsed = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])),
                                       "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.4")
    assert code == 1 and fetch2_lines(out, "mesh-svc -> ads") == ["timeout"]
    assert elapsed <= 0.3 + 0.4 + SLACK
    d = diagnosis(out, "mesh-svc -> ads")
    assert re.search(r"Diagnosis 1 of 1: HTTP (502|503) from the client's /fortio/fetch/", d)
    assert "/fortio/fetch2/ did not tell which" in d


# --------------------------------------------------------------------------------------------
# Issue 20: the diagnosis names the failing pair's uptime check, when the stack exports one
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uptime", [True, False])
def test_a_failing_pair_names_its_uptime_check(cloud_run, write_outputs, capsys, uptime):
    a = cloud_run({host("ads"): fs.ENVOY_NO_ROUTE, host("payments"): fs.DESTINATION_OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads", "payments"], uptime=uptime))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.5")

    assert code == 1
    d = diagnosis(out, "mesh-svc -> ads")
    name = uptime_check("mesh-svc", "ads")
    if uptime:
        assert re.search(rf"^    mesh-svc -> ads: .*; uptime check {re.escape(name)}$", d, re.M)
        assert f"$ gcloud monitoring uptime describe {name}" in d
        assert uptime_check("mesh-svc", "payments") not in out  # the pair that answered is not named
    else:
        assert "uptime" not in out


@pytest.mark.parametrize("value, shown", [
    (targets.SECRET_MARKER, 'its uptime check is hidden as "[secret]" in the outputs'),
    (targets.UNKNOWN_MARKER, "its uptime check is not known yet"),
    (None, None),
])
def test_an_uptime_check_hidden_or_unknown(cloud_run, write_outputs, capsys, value, shown):
    a = cloud_run({host("ads"): fs.ENVOY_NO_ROUTE})
    outputs = stack({"mesh-svc": a.url}, ["ads"], uptime=True)
    outputs["uptimeChecks"]["mesh-svc"]["ads"] = value

    code, out, _, _ = run_verify(capsys, "--outputs", write_outputs(outputs), "--token", TOKEN, "--deadline", "0.3",
                                 "--timeout", "0.5")

    assert code == 1  # an optional output hidden or unknown is no reason to refuse the run
    d = diagnosis(out, "mesh-svc -> ads")
    assert "gcloud monitoring uptime describe" not in d
    if shown:
        assert shown in d
    else:
        assert "uptime" not in d

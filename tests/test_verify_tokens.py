"""Identity tokens: the order of their sources, the reasons when none is found, and never shown."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable

import fortio_standin as fs
import pytest
from verify_support import (
    GOOGLE_AUTH_MODULES,
    SLACK,
    TOKEN,
    Lines,
    attempt_lines,
    cloud_run,
    fake_cli,
    fetch2_lines,
    host,
    jwt,
    loopback_only,
    no_ambient_credentials,
    run_verify,
    stack,
    write_outputs,
)

from cloudrun_mesh.verify import probe, support, tokens
from cloudrun_mesh.verify.tokens import TOKEN_ENV

RUN_URL = "https://mesh-svc-123456789012.us-central1.run.app"


@pytest.mark.parametrize("token", [TOKEN, "plain-s3cret-not-a-jwt-4242"])
@pytest.mark.parametrize("via", ["--token", "env"])
def test_token_never_appears_in_output(cloud_run, write_outputs, capsys, monkeypatch, token, via):
    # fortio's fetch2 copies every request header upstream (Fetch2CopiesAllHeader), so a destination
    # that echoes headers hands the token header back in the follow-up's body (unsigned by then).
    a = cloud_run({host("ads"): fs.ECHO_HEADERS}, token=token)
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))
    args = ["--outputs", path, "--deadline", "0.3", "--timeout", "0.5"]
    if via == "env":
        monkeypatch.setenv(TOKEN_ENV, token)
    else:
        args += ["--token", token]

    code, out, err, _ = run_verify(capsys, *args)

    assert code == 1
    assert a.requests and a.requests[0][1][probe.TOKEN_HEADER] == f"Bearer {token}"  # it was sent...
    assert f"{probe.TOKEN_HEADER}: Bearer [redacted]".lower() in out.lower()  # ...came back in the echo...
    assert token not in out + err  # ...and was never shown
    assert token.split(".")[-1] not in out + err
    assert f"token from {'--token' if via == '--token' else '$' + TOKEN_ENV}" in out


@pytest.mark.parametrize("header, usable_token_reaches_the_mesh", [
    (probe.TOKEN_HEADER, False),  # what the check sends: Cloud Run strips the signature first
    ("Authorization", True),  # the header the guide's curl uses: the stand-in shows it would leak
])
def test_follow_up_hands_no_usable_token_to_the_mesh(cloud_run, write_outputs, capsys, monkeypatch, header,
                                                     usable_token_reaches_the_mesh):
    monkeypatch.setattr(probe, "TOKEN_HEADER", header)
    a = cloud_run({host("ads"): fs.destination(500, "internal error")})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, _, _ = run_verify(capsys, "--outputs", path, "--token", TOKEN, "--deadline", "0.3", "--timeout", "0.5")

    assert code == 1 and fetch2_lines(out, "mesh-svc -> ads") == ["500"]
    # /fortio/fetch/ forwards no incoming header; the fetch2 follow-up forwards them all.
    fetch2_received = [h for h in a.mesh.received if h[header] is not None]
    assert len(fetch2_received) == 1 and len(a.mesh.received) == len(attempt_lines(out, "mesh-svc -> ads")) + 1
    seen = fetch2_received[0][header]
    signature = TOKEN.split(".")[2]
    assert (signature in seen) is usable_token_reaches_the_mesh
    assert any(signature in v for h in a.mesh.received for v in h.values()) is usable_token_reaches_the_mesh
    if not usable_token_reaches_the_mesh:
        header_and_claims = TOKEN.rsplit(".", 1)[0]
        assert seen == f"Bearer {header_and_claims}.{fs.SIGNATURE_REMOVED}"


def test_printer_redacts_known_tokens_and_anything_shaped_like_one():
    lines: list[str] = []
    p = support.Printer(Lines(lines), Lines(lines))
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
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, token="token-for-a")
    b = cloud_run({host("ads"): fs.DESTINATION_OK}, token="token-for-b")
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
    a = cloud_run({host("ads"): fs.DESTINATION_OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, out, err, _ = run_verify(capsys, "--outputs", path, "--deadline", "2", "--timeout", "1")

    assert (code, err) == (0, "")
    assert "token from gcloud auth print-identity-token" in out
    assert TOKEN not in out


def test_falls_back_to_gcloud_without_google_auth(cloud_run, write_outputs, capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "gcloud", f"print({TOKEN!r})")
    a = cloud_run({host("ads"): fs.DESTINATION_OK})
    path = write_outputs(stack({"mesh-svc": a.url}, ["ads"]))

    code, _, _, _ = run_verify(capsys, "--outputs", path, "--deadline", "2", "--timeout", "1")

    assert code == 0 and a.requests[0][1][probe.TOKEN_HEADER] == f"Bearer {TOKEN}"


def test_explicit_token_wins_over_environment_and_libraries(cloud_run, write_outputs, capsys, monkeypatch,
                                                            no_ambient_credentials):
    calls = install_google_auth(monkeypatch, lambda request, audience: "from-google-auth")
    fake_cli(no_ambient_credentials, "gcloud", "print('from-gcloud')")
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    a = cloud_run({host("ads"): fs.DESTINATION_OK}, token="from-flag")
    code, _, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": a.url}, ["ads"])),
                               "--token", "from-flag", "--deadline", "1")
    assert code == 0 and calls == []

    b = cloud_run({host("ads"): fs.DESTINATION_OK}, token="from-env")
    code, _, _, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": b.url}, ["ads"])), "--deadline", "1")
    assert code == 0 and calls == []


def test_no_credentials_at_all(write_outputs, capsys):
    code, out, err, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": RUN_URL}, ["ads"])),
                                   "--deadline", "1")

    assert code == 2 and out == ""
    assert err.startswith("error: no identity token: google-auth could not mint one (google-auth is not installed) "
                          "and `gcloud auth print-identity-token` failed (gcloud is not on PATH).")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_gcloud_failure_shows_its_whole_reason(write_outputs, capsys, no_ambient_credentials):
    # gcloud states the cause first and the remedy after it, over several lines.
    fake_cli(no_ambient_credentials, "gcloud",
             "sys.stderr.write('ERROR: (gcloud.auth.print-identity-token) There was a problem refreshing your current "
             "auth tokens: Reauthentication failed. cannot prompt during non-interactive execution.\\n"
             "Please run:\\n\\n  $ gcloud auth login\\n\\nto obtain new credentials.\\n'); sys.exit(1)")

    code, _, err, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": RUN_URL}, ["ads"])),
                                 "--deadline", "1")

    assert code == 2 and len(err.strip().splitlines()) == 1
    assert ("failed (ERROR: (gcloud.auth.print-identity-token) There was a problem refreshing your current auth "
            "tokens: Reauthentication failed. cannot prompt during non-interactive execution. Please run: $ gcloud "
            "auth login to obtain new credentials.)") in err


def test_google_auth_failure_shows_its_whole_reason(write_outputs, capsys, monkeypatch):
    def refuse(request, audience):
        raise RuntimeError("Could not fetch an ID token.\nCaused by: the metadata server answered 404.")

    install_google_auth(monkeypatch, refuse)
    code, _, err, _ = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": RUN_URL}, ["ads"])),
                                 "--deadline", "1")
    assert code == 2
    assert "google-auth could not mint one (Could not fetch an ID token. Caused by: the metadata server answered 404.)" in err


@pytest.mark.slow
def test_hanging_gcloud_is_bounded(write_outputs, capsys, no_ambient_credentials):
    fake_cli(no_ambient_credentials, "gcloud", "time.sleep(30)")

    code, _, err, elapsed = run_verify(capsys, "--outputs", write_outputs(stack({"mesh-svc": RUN_URL}, ["ads"])),
                                       "--deadline", "0.3", "--timeout", "0.3")

    assert code == 2 and re.search(r"`gcloud auth print-identity-token` failed \(no answer within 0\.\d s\)", err)
    assert elapsed <= 0.3 + 0.3 + SLACK


def test_token_claims():
    assert tokens.token_claims(jwt(email="a@b.c"))["email"] == "a@b.c"
    assert tokens.token_claims("ya29.not-a-jwt") is None
    assert tokens.token_claims("a.!!!.c") is None


def test_invoker_member():
    assert tokens.invoker_member(jwt(email="a@b.c")) == "user:a@b.c"
    assert tokens.invoker_member(jwt(email="ci@p.iam.gserviceaccount.com")) == "serviceAccount:ci@p.iam.gserviceaccount.com"
    assert tokens.invoker_member("opaque") == '"user:$(gcloud config get-value account)"'

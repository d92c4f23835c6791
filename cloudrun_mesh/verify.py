"""`python -m cloudrun_mesh verify`: prove the route works after `pulumi up`, and say why when it does not.

For every client x exported service pair in the stack output ``fetchUrls`` it asks the Cloud Run
client's fortio to fetch the service through the mesh, exactly as the guide's final curl does, with
an identity token for the caller. It retries with exponential backoff and jitter until the deadline
(a new revision's sidecar needs a moment to receive its configuration), prints one line per attempt,
a summary, and for each pair that never answered 200 a diagnosis with the next commands filled in
with the stack's values.

Only the standard library speaks HTTP here, and the Pulumi SDK is never loaded: the check starts
fast and runs anywhere Python does. Tokens are sent only in the Authorization header and never
printed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TextIO

from cloudrun_mesh import outputs as stack_outputs

PROJECT_DIR = Path(__file__).resolve().parent.parent
TOKEN_ENV = "CLOUDRUN_MESH_ID_TOKEN"
DEFAULT_DEADLINE = 180.0
DEFAULT_TIMEOUT = 10.0
TOKEN_WAIT = 5.0  # at least this long for google-auth or gcloud (within the overall bound)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 10.0
MAX_BODY = 64 * 1024
EXCERPT = 160
USER_AGENT = "cloudrun-mesh-verify"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# Placeholders for values a stack deployed before the troubleshooting outputs existed cannot give.
PROJECT_PLACEHOLDER = "PROJECT_ID"
REGION_PLACEHOLDER = "REGION"


class VerifyError(Exception):
    """A problem with the input or the environment: printed as one paragraph, exit code 2."""


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds; got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400 seconds; got {text!r}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "verify",
        help="check that every Cloud Run client reaches every exported service through the mesh",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Exit status: 0 every pair answered 200; 1 at least one did not (diagnosis printed); "
            "2 bad input, unreadable outputs or no credentials; 130 interrupted.\n"
            f"Token order: --token, ${TOKEN_ENV}, google-auth (an ID token for each Cloud Run URL), "
            "`gcloud auth print-identity-token`."
        ),
    )
    p.add_argument("--stack", help="stack whose outputs `pulumi stack output` reads (default: the selected stack)")
    p.add_argument("--outputs", metavar="FILE",
                   help="JSON of `pulumi stack output --json --show-secrets` ('-' for stdin) instead of the CLI")
    p.add_argument("--token", help=f"identity token to send (prefer ${TOKEN_ENV}: arguments are visible to other users)")
    p.add_argument("--deadline", type=_seconds, default=DEFAULT_DEADLINE, metavar="SECONDS",
                   help=f"keep retrying until this many seconds after the start (default {DEFAULT_DEADLINE:g})")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"limit for each request (default {DEFAULT_TIMEOUT:g}); the run ends within deadline + timeout")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    printer = Printer(sys.stdout, sys.stderr)
    budget = Budget(args.deadline, args.timeout)
    try:
        raw = load_outputs(args.outputs, args.stack, budget)
        targets = read_targets(raw)
        tokens = Tokens(args.token, os.environ.get(TOKEN_ENV), budget, args.timeout)
        for client in targets.clients.values():
            printer.secrets.add(tokens.get(client.base_url))
        return check(targets, tokens, budget, args.timeout, printer)
    except VerifyError as exc:
        printer.error(f"error: {exc}")
        return EXIT_INPUT
    except KeyboardInterrupt:
        printer.error("interrupted")
        return EXIT_INTERRUPTED


# --------------------------------------------------------------------------------------------
# Time: one clock for the whole run, so it always ends within deadline + one request timeout.
# --------------------------------------------------------------------------------------------


class Budget:
    def __init__(self, deadline: float, timeout: float, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.deadline = deadline
        self.start = clock()
        self.end = self.start + deadline  # no attempt starts after this
        self.hard_end = self.end + timeout  # nothing runs after this

    def left(self) -> float:
        return self.end - self.clock()

    def hard_left(self) -> float:
        return self.hard_end - self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start


def _bounded(fn: Callable[[], Any], limit: float) -> tuple[bool, Any]:
    """Run ``fn`` in a daemon thread for at most ``limit`` seconds: (finished, result or exception).

    A call that does not finish is abandoned; being a daemon, its thread never delays the exit.
    """
    box: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which tells it by its type
            box.append((False, exc))

    worker = threading.Thread(target=target, name="cloudrun-mesh-verify", daemon=True)
    worker.start()
    worker.join(max(limit, 0.0))
    if not box:
        return False, None
    return True, box[0][1]


def _run_command(cmd: Sequence[str], limit: float, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """A subprocess that, with everything it started, is killed when ``limit`` passes."""
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=max(limit, 0.01))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (OSError, AttributeError):  # already gone, or no process groups on this system
            proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --------------------------------------------------------------------------------------------
# Output: one lock, and no token ever leaves through it.
# --------------------------------------------------------------------------------------------

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
REDACTED = "[redacted]"


class Printer:
    def __init__(self, out: TextIO, err: TextIO):
        self.out, self.err = out, err
        self.secrets: set[str] = set()
        self._lock = threading.Lock()

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, REDACTED)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, _JWT.sub(REDACTED, text))

    def line(self, text: str = "") -> None:
        self._write(self.out, text)

    def error(self, text: str) -> None:
        self._write(self.err, text)

    def _write(self, stream: TextIO, text: str) -> None:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        text = self.redact(text).encode(encoding, "replace").decode(encoding)
        with self._lock:
            stream.write(text + "\n")
            stream.flush()


# --------------------------------------------------------------------------------------------
# Input: the stack's outputs.
# --------------------------------------------------------------------------------------------


def load_outputs(path: Optional[str], stack: Optional[str], budget: Budget) -> dict:
    if path:
        where = "standard input" if path == "-" else path
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise VerifyError(f"cannot read the outputs file {where}: {reason}. Write it with "
                              f"`pulumi stack output --json --show-secrets --stack <stack> > {path}`.") from None
    else:
        where = "`pulumi stack output`"
        text = _outputs_from_cli(stack, budget)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise VerifyError(f"the outputs from {where} are not valid JSON ({exc}); expected the object printed by "
                          "`pulumi stack output --json --show-secrets`.") from None
    if not isinstance(data, dict):
        raise VerifyError(f"the outputs from {where} are a JSON {type(data).__name__}, not an object of stack "
                          "outputs; expected the object printed by `pulumi stack output --json --show-secrets`.")
    return data


def _outputs_from_cli(stack: Optional[str], budget: Budget) -> str:
    which = f"stack {stack!r}" if stack else "the selected stack"
    exe = shutil.which("pulumi")
    if exe is None:
        raise VerifyError(
            f"the Pulumi CLI is not on PATH, so the outputs of {which} cannot be read. Install it, or pass "
            "--outputs FILE with the JSON of `pulumi stack output --json --show-secrets"
            + (f" --stack {stack}`." if stack else "`.")
        )
    cmd = [exe, "stack", "output", "--json", "--show-secrets"] + (["--stack", stack] if stack else [])
    limit = budget.hard_left()
    try:
        proc = _run_command(cmd, limit, cwd=PROJECT_DIR)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"`pulumi stack output` did not answer within {limit:.0f} s (the deadline plus one "
                          "request timeout); check the CLI's login and backend, or pass --outputs FILE.") from None
    except OSError as exc:
        raise VerifyError(f"could not run the Pulumi CLI at {exe}: {exc.strerror or exc}.") from None
    if proc.returncode != 0:
        reason = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit status {proc.returncode}"
        if re.search(r"no stack named|stack .* not found|could not find stack", reason, re.I):
            from cloudrun_mesh import harness

            known = ", ".join(harness.stacks()) or "none"
            raise VerifyError(f"unknown stack: {reason} The stack files here are for: {known}; "
                              "`pulumi stack ls` lists the stacks of your backend.")
        raise VerifyError(f"`pulumi stack output` failed for {which}: {reason}")
    return proc.stdout


# --------------------------------------------------------------------------------------------
# What to check, and what the stack tells us for the diagnosis.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    name: str
    base_url: str  # the Cloud Run URL: the token's audience
    project: Optional[str]
    region: Optional[str]
    logging_filter: Optional[str]


@dataclass(frozen=True)
class Pair:
    client: str
    service: str
    url: str
    host: str

    @property
    def label(self) -> str:
        return f"{self.client} -> {self.service}"


@dataclass
class Targets:
    pairs: list[Pair]
    clients: dict[str, Client]
    hosts: dict[str, str]
    mesh_name: Optional[str]
    dns_zone: Optional[str]
    record_address: Optional[str]
    proxy_status: list[str]

    @property
    def mesh_project(self) -> Optional[str]:
        parts = (self.mesh_name or "").split("/")
        return parts[1] if len(parts) == 6 and parts[0] == "projects" and parts[1] else None

    @property
    def project(self) -> Optional[str]:
        return next((c.project for c in self.clients.values() if c.project), None)


def _origin(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def url_problem(url: Any) -> Optional[str]:
    """Why a URL cannot be checked, or None. Plain http only to this machine: a token never travels in clear."""
    if not isinstance(url, str) or not url:
        return f"{json.dumps(url)} is not a URL"
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname
        u.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc})"
    if u.scheme not in ("https", "http") or not host:
        return f"{url!r} is not an https URL"
    if u.scheme == "http" and host not in LOOPBACK_HOSTS:
        return f"{url!r} uses plain http; the identity token is only sent over https (or to this machine)"
    return None


def _str_map(value: Any) -> dict[str, str]:
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def read_targets(raw: dict) -> Targets:
    fetch = raw.get("fetchUrls")
    if not isinstance(fetch, dict) or not fetch:
        present = ", ".join(sorted(raw)) or "none"
        raise VerifyError("the stack outputs have no `fetchUrls` (outputs present: "
                          f"{present}). Run `pulumi up` for this stack first, and check --stack or --outputs.")
    urls = _str_map(raw.get("cloudRunUrls"))
    hosts = _str_map(raw.get("exportedHosts"))
    filters = _str_map(raw.get("loggingFilters"))
    pairs: list[Pair] = []
    clients: dict[str, Client] = {}
    problems: list[str] = []
    for client, services in fetch.items():
        if not isinstance(services, dict) or not services:
            problems.append(f"`fetchUrls.{client}` has no services")
            continue
        for service, url in services.items():
            problem = url_problem(url)
            if problem:
                problems.append(f"`fetchUrls.{client}.{service}`: {problem}")
                continue
            path = urllib.parse.urlsplit(url).path
            host = path.split(stack_outputs.FETCH_PATH, 1)[1] if stack_outputs.FETCH_PATH in path else service
            pairs.append(Pair(client, service, url, host))
        base = urls.get(client)
        if base is None or url_problem(base):
            base = next((_origin(p.url) for p in pairs if p.client == client), "")
        labels = stack_outputs.logging_filter_labels(filters.get(client, ""))
        clients[client] = Client(client, base.rstrip("/"), labels.get("project_id"), labels.get("location"),
                                 filters.get(client))
    if problems:
        raise VerifyError("the stack outputs cannot be checked: " + "; ".join(problems) + ".")
    proxy = raw.get("proxyStatusCommands")
    if not (isinstance(proxy, list) and proxy and all(isinstance(c, str) for c in proxy)):
        proxy = stack_outputs.proxy_status_commands(next((c.project for c in clients.values() if c.project),
                                                         PROJECT_PLACEHOLDER))
    return Targets(pairs, clients, hosts, _text(raw, "meshName"), _text(raw, "dnsZone"), _text(raw, "recordAddress"),
                   list(proxy))


def _text(raw: dict, key: str) -> Optional[str]:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------------------------
# Identity tokens
# --------------------------------------------------------------------------------------------


class Tokens:
    """--token, then the environment, then google-auth per audience, then gcloud; each value cached."""

    def __init__(self, explicit: Optional[str], env: Optional[str], budget: Budget, timeout: float):
        self.budget = budget
        self.wait = max(timeout, TOKEN_WAIT)
        self.fixed = (explicit or "").strip() or (env or "").strip() or None
        self.source = "--token" if (explicit or "").strip() else (f"${TOKEN_ENV}" if self.fixed else None)
        self._cache: dict[str, str] = {}
        self._google_auth_failed: Optional[str] = None
        self._gcloud: Optional[str] = None

    def get(self, audience: str) -> str:
        if self.fixed:
            return self.fixed
        if audience in self._cache:
            return self._cache[audience]
        if self._gcloud is None and self._google_auth_failed is None:
            token, reason = self._from_google_auth(audience)
            if token:
                self.source = "google-auth"
                self._cache[audience] = token
                return token
            self._google_auth_failed = reason
        if self._gcloud is None:
            token, reason = self._from_gcloud()
            if not token:
                raise VerifyError(
                    "no identity token: google-auth could not mint one "
                    f"({self._google_auth_failed}) and `gcloud auth print-identity-token` failed ({reason}). "
                    "Log in with `gcloud auth login` (or `gcloud auth application-default login`, or set "
                    f"GOOGLE_APPLICATION_CREDENTIALS to a service account's key), or pass a token in ${TOKEN_ENV}."
                )
            self.source = "gcloud auth print-identity-token"
            self._gcloud = token
        return self._gcloud

    def _limit(self) -> float:
        return min(self.wait, self.budget.hard_left())

    def _from_google_auth(self, audience: str) -> tuple[Optional[str], str]:
        try:
            from google.auth.transport.requests import Request
            from google.oauth2 import id_token
        except ImportError:
            return None, "google-auth is not installed"
        limit = self._limit()
        finished, value = _bounded(lambda: id_token.fetch_id_token(Request(), audience), limit)
        if not finished:
            return None, f"no answer within {limit:.1f} s"
        if isinstance(value, BaseException):
            return None, _last_line(str(value))[:200] or type(value).__name__
        if not isinstance(value, str) or not value.strip():
            return None, "it returned no token"
        return value.strip(), ""

    def _from_gcloud(self) -> tuple[Optional[str], str]:
        exe = shutil.which("gcloud")
        if exe is None:
            return None, "gcloud is not on PATH"
        limit = self._limit()
        try:
            proc = _run_command([exe, "auth", "print-identity-token"], limit)
        except subprocess.TimeoutExpired:
            return None, f"no answer within {limit:.1f} s"
        except OSError as exc:
            return None, str(exc.strerror or exc)
        token = proc.stdout.strip()
        if proc.returncode != 0 or not token or any(ch.isspace() for ch in token):
            return None, _last_line(proc.stderr)[:300] or f"exit status {proc.returncode}"
        return token, ""


def token_claims(token: str) -> Optional[dict]:
    """The payload of a JWT, unverified (only to explain a refusal), or None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


# --------------------------------------------------------------------------------------------
# One request
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str  # "http" | "timeout" | "connect" | "protocol"
    ms: int
    status: Optional[int] = None
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "http" and self.status == 200

    @property
    def code(self) -> str:
        return str(self.status) if self.kind == "http" else self.kind

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name), "")

    @property
    def excerpt(self) -> str:
        return _excerpt(self.body)

    @property
    def note(self) -> str:
        if self.ok:
            return "OK"
        if self.kind == "http":
            return self.excerpt or "(empty body)"
        return f"not HTTP: {self.error}" if self.kind == "protocol" else self.error


def _excerpt(text: str, limit: int = EXCERPT) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would resend the Authorization header to wherever a redirect points: never follow one.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401, ANN001
        return None


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [_NoRedirect()]
    if urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS:
        handlers.append(urllib.request.ProxyHandler({}))  # this machine is never reached through a proxy
    return urllib.request.build_opener(*handlers)


def _read_body(resp: Any, until: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY and time.monotonic() < until:
        try:
            chunk = resp.read1(8192) if hasattr(resp, "read1") else resp.read(8192)
        except Exception:  # noqa: BLE001 - a body cut short is still evidence: keep what arrived
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason))
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed the connection without answering"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _excerpt(f"{type(exc).__name__}: {exc}", 120)


def _timed_out(limit: float) -> str:
    return f"no complete answer within {limit:g} s"


def _classify(exc: BaseException, ms: int, limit: float) -> Outcome:
    inner = exc.reason if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException) else exc
    if isinstance(inner, (socket.timeout, TimeoutError)):
        return Outcome("timeout", ms, error=_timed_out(limit))
    if isinstance(inner, OSError):  # refused, reset, closed early, TLS
        return Outcome("connect", ms, error=_describe(exc))
    if isinstance(inner, http.client.HTTPException):
        return Outcome("protocol", ms, error=_excerpt(f"{type(inner).__name__}: {inner}", 100))
    return Outcome("connect", ms, error=_describe(exc))


def _request(url: str, token: str, limit: float) -> Outcome:
    start = time.monotonic()
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT})
    ms = lambda: int((time.monotonic() - start) * 1000)  # noqa: E731
    try:
        resp = _opener(url).open(req, timeout=limit)
    except urllib.error.HTTPError as exc:
        resp = exc
    except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome
        return _classify(exc, ms(), limit)
    try:
        body = _read_body(resp, start + limit)
        headers = tuple((k, v) for k, v in (resp.headers.items() if resp.headers else ()))
        return Outcome("http", ms(), status=resp.getcode(), body=body.decode("utf-8", "replace"), headers=headers)
    finally:
        resp.close()


def attempt(url: str, token: str, limit: float) -> Outcome:
    """One request, bounded in wall-clock time whatever the server does (hang, drip, reset, garbage)."""
    start = time.monotonic()
    finished, value = _bounded(lambda: _request(url, token, limit), limit)
    if finished and isinstance(value, Outcome):
        return value
    ms = int((time.monotonic() - start) * 1000)
    if not finished:
        return Outcome("timeout", ms, error=_timed_out(limit))
    return _classify(value, ms, limit)


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


@dataclass
class PairResult:
    pair: Pair
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and self.outcomes[-1].ok

    @property
    def last(self) -> Optional[Outcome]:
        return self.outcomes[-1] if self.outcomes else None


def backoff(attempt_no: int, rng: random.Random) -> float:
    """Exponential with equal jitter: between half and all of min(cap, base * 2^(n-1))."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt_no - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _check_pair(result: PairResult, token: str, budget: Budget, timeout: float, rng: random.Random,
                printer: Printer, stop: threading.Event) -> None:
    pair = result.pair
    n = 0
    while not stop.is_set():
        limit = min(timeout, budget.hard_left())
        if limit <= 0 or (n and budget.left() <= 0):
            return
        n += 1
        outcome = attempt(pair.url, token, limit)
        result.outcomes.append(outcome)
        printer.line(f"{pair.label:<32} attempt {n:>2}  {outcome.code:<8} {outcome.ms:>6} ms  {outcome.note}")
        if outcome.ok or outcome.status == 401:  # the same token is refused every time
            return
        delay = backoff(n, rng)
        if delay >= budget.left():
            return
        stop.wait(delay)


def check(targets: Targets, tokens: Tokens, budget: Budget, timeout: float, printer: Printer,
          rng: Optional[random.Random] = None) -> int:
    rng = rng or random.Random()
    results = [PairResult(p) for p in targets.pairs]
    printer.line(
        f"Checking {len(results)} pair{'s' if len(results) != 1 else ''} (Cloud Run client -> exported service) "
        f"with a token from {tokens.source}: retrying until {budget.deadline:g} s, {timeout:g} s per request."
    )
    stop = threading.Event()
    workers = []
    for r in results:
        token = tokens.get(targets.clients[r.pair.client].base_url)
        w = threading.Thread(target=_check_pair, args=(r, token, budget, timeout, rng, printer, stop),
                             name=f"verify {r.pair.label}", daemon=True)
        w.start()
        workers.append(w)
    try:
        for w in workers:
            w.join(max(budget.hard_left(), 0.0))
    except KeyboardInterrupt:
        stop.set()
        printer.line("Interrupted.")
        summarize(results, budget, printer)
        return EXIT_INTERRUPTED
    stop.set()
    ok = summarize(results, budget, printer)
    if ok:
        return EXIT_OK
    for r in results:
        if not r.ok:
            printer.line()
            for line in diagnose(r, targets, tokens):
                printer.line(line)
    return EXIT_FAILED


def summarize(results: list[PairResult], budget: Budget, printer: Printer) -> bool:
    good = sum(r.ok for r in results)
    printer.line()
    printer.line(f"Summary: {good} of {len(results)} pairs answered 200 in {budget.elapsed():.1f} s.")
    for r in results:
        last = r.last
        n = len(r.outcomes)
        if r.ok and last:
            printer.line(f"  ok    {r.pair.label:<32} 200 on attempt {n} ({last.ms} ms)")
        elif last:
            which = f"the last of {n} attempts" if n > 1 else "its only attempt"
            printer.line(f"  FAIL  {r.pair.label:<32} {last.code} on {which}")
        else:
            printer.line(f"  FAIL  {r.pair.label:<32} no attempt fitted in the deadline")
    return good == len(results)


# --------------------------------------------------------------------------------------------
# Diagnosis: what the answers mean, and the next commands with the stack's values.
# --------------------------------------------------------------------------------------------

_RBAC = re.compile(r"rbac: access denied", re.I)
_ENVOY_NO_ENDPOINTS = re.compile(r"no healthy upstream", re.I)
_ENVOY_UPSTREAM = re.compile(r"upstream connect error|disconnect/reset before headers|upstream request timeout|"
                             r"cluster_not_found|upstream_reset", re.I)
_DNS = re.compile(r"no such host|nxdomain|name or service not known|name resolution|server misbehaving|"
                  r"could not resolve|lookup \S+ on \S+", re.I)
_DIRECT = re.compile(r"connection refused|i/o timeout|connect: |connection timed out|network is unreachable|"
                     r"no route to host", re.I)


class _Facts:
    """The stack's values for one pair, with visible placeholders for what it does not know."""

    def __init__(self, pair: Pair, targets: Targets):
        self.pair = pair
        self.targets = targets
        self.client = targets.clients[pair.client]
        self.project = self.client.project or PROJECT_PLACEHOLDER
        self.region = self.client.region or REGION_PLACEHOLDER
        self.mesh_project = targets.mesh_project or "MESH_PROJECT"
        self.sa = stack_outputs.client_service_account(pair.client, self.project)
        self.placeholders = not (self.client.project and self.client.region)

    def logs(self, text: Optional[str] = None) -> str:
        if text is None and self.client.logging_filter:
            filter_ = self.client.logging_filter
        else:
            filter_ = stack_outputs.logging_filter(self.pair.client, self.region, self.project, text)
        return stack_outputs.logging_read_command(filter_, self.project)

    def traffic_director(self) -> str:
        return stack_outputs.traffic_director_binding_command(self.mesh_project, self.sa)

    def describe_run(self, fmt: str) -> str:
        return (f"gcloud run services describe {self.pair.client} --region={self.region} --project={self.project} "
                f"--format='{fmt}'")

    def routes(self) -> list[str]:
        svc = self.pair.service
        return [
            "kubectl get virtualservices.networking.istio.io -A -o custom-columns="
            "NAMESPACE:.metadata.namespace,NAME:.metadata.name,HOSTS:.spec.hosts,GATEWAYS:.spec.gateways",
            f"kubectl get services -A --field-selector metadata.name={svc}",
        ]


def _member(claims: Optional[dict]) -> str:
    email = (claims or {}).get("email")
    if isinstance(email, str) and "@" in email:
        return f"{'serviceAccount' if email.endswith('.gserviceaccount.com') else 'user'}:{email}"
    return '"user:$(gcloud config get-value account)"'


def _seen(result: PairResult) -> str:
    counts: dict[str, int] = {}
    for o in result.outcomes[:-1]:
        counts[o.code] = counts.get(o.code, 0) + 1
    return "; earlier: " + ", ".join(f"{k} x{v}" for k, v in counts.items()) if counts else ""


def _token_problems(token: str, audience: str) -> list[str]:
    claims = token_claims(token)
    if claims is None:
        return ["The token is not a JWT ID token (an access token from `gcloud auth print-access-token`, or a "
                "truncated value?); Cloud Run accepts only ID tokens."]
    notes = []
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp < time.time():
        notes.append(f"The token expired at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(exp))}; "
                     "ID tokens last one hour.")
    aud = claims.get("aud")
    if isinstance(aud, str) and aud.rstrip("/") != audience and not aud.endswith(".apps.googleusercontent.com"):
        notes.append(f"The token's audience is {aud!r}, not this service's URL {audience!r}: an ID token for a "
                     "service account must be minted for the Cloud Run URL.")
    return notes or ["The token looks well formed: it may be for an unknown or deleted identity, or minted for "
                     "another audience than Cloud Run accepts."]


def diagnose(result: PairResult, targets: Targets, tokens: Tokens) -> list[str]:
    pair, last = result.pair, result.last
    f = _Facts(pair, targets)
    if last is None:
        return [f"Diagnosis for {pair.label}: no attempt fitted before the deadline; run again with a longer --deadline."]
    head = f"Diagnosis for {pair.label} (last answer: {last.code}{', ' + repr(last.excerpt) if last.excerpt else ''}{_seen(result)}):"
    why, commands = _explain(last, f, tokens)
    lines = [head] + [f"  {w}" for w in why]
    if commands:
        lines.append("  Next:")
        lines += [f"    $ {c}" for c in commands]
    if f.placeholders:
        lines.append(f"  ({PROJECT_PLACEHOLDER} and {REGION_PLACEHOLDER} are placeholders: the stack has no "
                     "`loggingFilters` output yet; `pulumi up` with this version adds it.)")
    return lines


def _explain(o: Outcome, f: _Facts, tokens: Tokens) -> tuple[list[str], list[str]]:
    pair, host = f.pair, f.pair.host
    base = f.client.base_url
    record = f.targets.record_address or "the wildcard record's address"
    zone = f.targets.dns_zone or "ZONE_NAME"
    proxy = list(f.targets.proxy_status)
    sidecar_config = [f.logs(stack_outputs.GET_CONFIGS_PERMISSION), f.traffic_director()] + proxy

    if o.kind == "timeout":
        return ([f"No complete answer within the request timeout. fortio waits for {host} for up to a minute, so a "
                 f"hang usually means the connection to {record} is not taken over by the client's sidecar: it has "
                 "no mesh configuration yet (a new revision needs a moment) or cannot get any, most often because "
                 f"{f.sa} lacks {stack_outputs.TRAFFIC_DIRECTOR_CLIENT_ROLE} on the mesh project {f.mesh_project}. "
                 "It can also be a destination that accepts but does not answer."], sidecar_config)
    if o.kind == "connect":
        return ([f"Could not talk to the Cloud Run service {pair.client} at {base} ({o.error}). Check the URL in "
                 "`cloudRunUrls`, your network or proxy settings, and that the service exists and is ready."],
                [f.describe_run("value(status.url,status.conditions[0].message)")])
    if o.kind == "protocol":
        return ([f"{base} did not answer with HTTP ({o.error}): it is not a Cloud Run service, or something "
                 "between you and it (a proxy, a captive portal) interferes. Check `cloudRunUrls`."],
                [f.describe_run("value(status.url)")])

    status, body = o.status or 0, o.body
    if status == 401:
        token = tokens.get(base)
        return (["Cloud Run refused the identity token (HTTP 401) before anything reached fortio."]
                + _token_problems(token, base),
                ["gcloud auth login",
                 f"gcloud auth print-identity-token --audiences={base}   # for a service account: the URL as audience"])
    if _RBAC.search(body):
        return ([f"The mesh refused the request (HTTP {status}, \"RBAC: access denied\"): an Istio AuthorizationPolicy "
                 f"in Service {pair.service}'s namespace does not allow the Cloud Run client's identity {f.sa}."],
                ["kubectl get authorizationpolicies.security.istio.io -A"] + f.routes()[1:])
    if _ENVOY_NO_ENDPOINTS.search(body):
        return ([f"The sidecar has a route for {host} but Service {pair.service} has no ready endpoints in the mesh "
                 f"(HTTP {status}, \"no healthy upstream\"): its pods are not ready, not selected by the Service, or "
                 "not in the mesh."],
                [f"kubectl get endpoints -A --field-selector metadata.name={pair.service}"] + f.routes())
    if _ENVOY_UPSTREAM.search(body):
        return ([f"The sidecar has a route for {host} but cannot reach its destination (HTTP {status}). The "
                 "VirtualService must be in the same namespace as Service "
                 f"{pair.service} (its destination is a short name, resolved in the VirtualService's namespace), "
                 "name the Service's port, and the workload must answer on it."],
                f.routes() + [f"kubectl get endpoints -A --field-selector metadata.name={pair.service}"])
    if _DNS.search(body):
        return ([f"fortio in {pair.client} could not resolve {host} (HTTP {status}). The host must be under the "
                 f"DNS name of the private zone {zone}, the zone must be visible to the VPC network the service "
                 "egresses into (Direct VPC egress), and the wildcard A record must exist."]
                + ([f"The stack exports {pair.service} as {f.targets.hosts[pair.service]!r} but this URL asks for "
                    f"{host!r}."] if f.targets.hosts.get(pair.service, host) != host else []),
                [f"gcloud dns managed-zones describe {zone} --project={f.project} "
                 "--format='value(dnsName,visibility,privateVisibilityConfig.networks[].networkUrl)'",
                 f"gcloud dns record-sets list --zone={zone} --project={f.project}",
                 f.describe_run("yaml(spec.template.metadata.annotations)")])
    if record in body or _DIRECT.search(body):
        return ([f"fortio's connection to {host} went to {record} itself instead of through the sidecar "
                 f"(HTTP {status}): the client's sidecar has no mesh configuration. Usually {f.sa} lacks "
                 f"{stack_outputs.TRAFFIC_DIRECTOR_CLIENT_ROLE} on the mesh project {f.mesh_project} and the sidecar "
                 f"logs \"Permission '{stack_outputs.GET_CONFIGS_PERMISSION}' denied\"; or the revision was deployed "
                 "without the mesh."], sidecar_config)
    if status == 403:
        member = _member(token_claims(tokens.get(base)))
        who = member.split(":", 1)[1] if not member.startswith('"') else "the caller"
        return ([f"Cloud Run refused the caller (HTTP 403): {who} lacks {stack_outputs.INVOKER_ROLE} on service "
                 f"{pair.client}. The program grants it only to the members listed in `cloudrun-mesh:clients[].invokers` "
                 "(add the member there and run `pulumi up`, or grant it directly); IAM changes take a minute or two."],
                [stack_outputs.invoker_binding_command(pair.client, f.region, f.project, member)])
    if status == 404:
        envoy = o.header("server").lower() == "envoy" or any(k.lower().startswith("x-envoy-") for k, _ in o.headers)
        if envoy or "route_not_found" in body.lower():
            return ([f"The client's sidecar has no route for {host} (HTTP 404 from Envoy): no VirtualService with "
                     f"host {host} on the external-mesh gateway reached the mesh, or it is in another namespace than "
                     f"Service {pair.service}."], f.routes() + proxy)
        return ([f"Nothing answered {stack_outputs.FETCH_PATH} on {pair.client} (HTTP 404 from the service itself): "
                 "it does not run fortio (`cloudrun-mesh:clients[].image` must be a fortio image such as "
                 "fortio/fortio), or the URL is not this service's."],
                [f.describe_run("value(spec.template.spec.containers[0].image)")])
    if 300 <= status < 400:
        return ([f"{base} answered with a redirect (HTTP {status} to {o.header('location') or 'nowhere'}); Cloud "
                 "Run does not redirect, so the URL is not the service's. The redirect was not followed, so the "
                 "token went nowhere else."], [f.describe_run("value(status.url)")])
    if status == 429:
        return (["Cloud Run is limiting requests (HTTP 429): no instance was available, for example at the "
                 "service's maximum instance count. Run the check again in a minute."],
                [f.describe_run("value(spec.template.metadata.annotations)")])
    return ([f"HTTP {status} from {pair.client}'s fortio for {host}. In order of likelihood: the VirtualService for "
             f"{host} is missing or in another namespace than Service {pair.service}; the sidecar has no mesh "
             f"configuration ({f.sa} lacks {stack_outputs.TRAFFIC_DIRECTOR_CLIENT_ROLE} on {f.mesh_project}); the "
             "destination fails. The sidecar's errors are in the client's log."],
            f.routes() + [f.logs(), f.traffic_director()] + proxy)

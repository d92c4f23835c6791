"""One request to a Cloud Run client's fortio, bounded in wall-clock time whatever the server does.

The two fortio endpoints the check uses (fortio/fortio `fhttp/http_server.go`, read at commit
45e18710810d864a615618087228996a0a824b2f; `ui/uihandler.go` mounts them under /fortio/):

- ``/fortio/fetch/<host>`` (``FetcherHandler``): the guide's check. fortio hijacks the connection,
  fetches ``http://<host>`` with its own HTTP/1.1 client (up to one minute), writes back whatever
  bytes it read (the upstream's raw status line, headers and body) and closes. When its request
  fails (name resolution, refused, timeout, reset) it writes nothing: Cloud Run's front end then
  answers in its place, never with fortio's reason. Over HTTP/2 the connection cannot be hijacked and
  it answers 505 "Use fetch2 when using http/2.0".
- ``/fortio/fetch2/?url=<url>`` (``FetcherHandler2``): the same request with Go's net/http client.
  On failure it answers 400 ``Error for "<url>": <Go error>``; on success it relays status, headers
  and body. Its options come from the query (``CommonHTTPOptionsFromForm`` in
  `fhttp/http_utils.go`): ``timeout`` is a Go duration that becomes the client's ``Timeout``; without
  it the client has none, so the check always passes one that ends before its own request does.

The token header. ``FetcherHandler2`` builds its request with ``MakeSimpleRequest(url, r,
Fetch2CopiesAllHeader.Get())`` and ``CopyHeaders`` (`fhttp/http_forwarder.go`) copies every header of
the incoming request to the upstream while that flag is true, which is its default (server flag
``-proxy-all-headers``; no query parameter turns it off). ``FetcherHandler`` copies none of them (only
``H`` query arguments and ``X-On-Behalf-Of``). So whatever bearer header reaches fortio reaches the
destination in the mesh on the follow-up. The token therefore goes in ``X-Serverless-Authorization``,
never in ``Authorization``. Cloud Run accepts an ID token in either header and, when both are present,
checks only ``X-Serverless-Authorization``; it "removes the token signature before passing the token to
the user container" (https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token;
the precedence is confirmed on that page's behalf in GoogleCloudPlatform/cloud-run-proxy pull 25, the
sentence quoted in owainlewis/machinist pull 277, and services behind Cloud Run receive the token
ending in ``.SIGNATURE_REMOVED_BY_GOOGLE``, na0fu3y/ochakai pull 740). What fortio copies on is then the token's claims without a signature: nothing anyone can
replay. The header is documented for exactly this case (an application that reads ``Authorization``
itself), and sending the token only there keeps ``Authorization`` out of what fortio forwards.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Any, Optional

from cloudrun_mesh.verify.support import bounded, excerpt
from cloudrun_mesh.verify.targets import LOOPBACK_HOSTS

FETCH2_PATH = "/fortio/fetch2/"
FORTIO_SHARE = 0.8  # of a request's limit given to fortio's own client, so its 400 arrives in time
# What is read of an answer's body: fortio's errors, Envoy's replies and Google's error pages are all
# well under it, and the last answer and the follow-up of each of 10,000 pairs then hold at most 80 MB.
MAX_BODY = 4 * 1024
# Headers kept from an answer: only those the diagnosis reads, each cut to MAX_HEADER characters
# (http.client itself refuses more than 100 header lines or a line over 64 KiB).
KEPT_HEADERS = ("location", "x-envoy-upstream-service-time", "content-type")
MAX_HEADER = 512
USER_AGENT = "cloudrun-mesh-verify"
# See the module docstring: the one header whose token Cloud Run documents as unsigned by the time the
# container (fortio, which copies it onward) sees it.
TOKEN_HEADER = "X-Serverless-Authorization"


@dataclass(frozen=True)
class Outcome:
    kind: str  # "http" | "timeout" | "connect" | "protocol"
    ms: int
    status: int | None = None
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "http" and self.status == 200

    @property
    def code(self) -> str:
        return str(self.status) if self.kind == "http" else self.kind

    def without_body(self) -> Outcome:
        return dataclasses.replace(self, body="", headers=())

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    def excerpt(self, limit: int = 160) -> str:
        return excerpt(self.body, limit)

    @property
    def note(self) -> str:
        if self.ok:
            return "OK"
        if self.kind == "http":
            return self.excerpt() or "(empty body)"
        return f"not HTTP: {self.error}" if self.kind == "protocol" else self.error


def fetch2_url(base_url: str, host: str, limit: float) -> str:
    """fortio's fetch2 for ``http://<host>/``, with a client timeout that ends before ``limit``."""
    fortio_ms = max(int(limit * FORTIO_SHARE * 1000), 1)
    query = urllib.parse.urlencode({"url": f"http://{host}/", "timeout": f"{fortio_ms}ms"})
    return f"{base_url.rstrip('/')}{FETCH2_PATH}?{query}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would resend the token header to wherever a redirect points: never follow one.
    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> Optional[urllib.request.Request]:
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
            want = min(8192, MAX_BODY - size)
            chunk = resp.read1(want) if hasattr(resp, "read1") else resp.read(want)
        except Exception:  # a body cut short is still evidence: keep what arrived
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
    return excerpt(f"{type(exc).__name__}: {exc}", 120)


def _timed_out(limit: float) -> str:
    return f"no complete answer within {limit:g} s"


def _classify(exc: BaseException, ms: int, limit: float) -> Outcome:
    inner = exc.reason if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException) else exc
    if isinstance(inner, (socket.timeout, TimeoutError)):
        return Outcome("timeout", ms, error=_timed_out(limit))
    if isinstance(inner, OSError):  # refused, reset, closed early, TLS
        return Outcome("connect", ms, error=_describe(exc))
    if isinstance(inner, http.client.HTTPException):
        return Outcome("protocol", ms, error=excerpt(f"{type(inner).__name__}: {inner}", 100))
    return Outcome("connect", ms, error=_describe(exc))


def _request(url: str, token: str, limit: float) -> Outcome:
    start = time.monotonic()
    req = urllib.request.Request(url, headers={TOKEN_HEADER: f"Bearer {token}", "User-Agent": USER_AGENT})

    def ms() -> int:
        return int((time.monotonic() - start) * 1000)

    try:
        resp = _opener(url).open(req, timeout=limit)
    except urllib.error.HTTPError as exc:
        resp = exc
    except Exception as exc:  # every failure becomes an outcome
        return _classify(exc, ms(), limit)
    try:
        body = _read_body(resp, start + limit)
        headers = tuple((k, v[:MAX_HEADER]) for k, v in (resp.headers.items() if resp.headers else ())
                        if k.lower() in KEPT_HEADERS)
        return Outcome("http", ms(), status=resp.getcode(), body=body.decode("utf-8", "replace"), headers=headers)
    finally:
        resp.close()


def attempt(url: str, token: str, limit: float, slots: Optional[threading.BoundedSemaphore] = None) -> Outcome:
    """One request, bounded in wall-clock time whatever the server does (hang, drip, reset, garbage)."""
    start = time.monotonic()
    finished, value = bounded(lambda: _request(url, token, limit), limit, slots)
    if finished and isinstance(value, Outcome):
        return value
    ms = int((time.monotonic() - start) * 1000)
    if not finished or not isinstance(value, BaseException):  # a finished call gives an Outcome or an exception
        return Outcome("timeout", ms, error=_timed_out(limit))
    return _classify(value, ms, limit)

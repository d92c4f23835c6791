"""Loopback stand-ins for a Cloud Run client running fortio, its front end, and the mesh behind it.

Three real HTTP servers on 127.0.0.1, chained as in production:

``FrontEnd`` (Cloud Run's front end)
    Checks the bearer token like Cloud Run (401 for a token it does not accept, 403 for a caller
    without run.invoker, Google's HTML pages): from ``X-Serverless-Authorization`` when present, else
    from ``Authorization``, and passes ``X-Serverless-Authorization`` on with the token's signature
    replaced by ``SIGNATURE_REMOVED_BY_GOOGLE``
    (https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token; see
    ``cloudrun_mesh/verify/probe.py``). ``Authorization`` goes to the container as sent: the check does
    not rely on Cloud Run stripping that one, and a check that sent its token there is caught handing
    a usable one to the mesh. It forwards the request over HTTP/1.1 to the container,
    sets ``Server: Google Frontend`` on what it relays, and, when the container closes the
    connection without a response, answers ``empty_reply`` in its place. What Cloud Run really
    answers then is not documented (see ``cloudrun_mesh/verify/diagnosis.py``); the tests run the
    diagnosis against more than one plausible answer.
``Fortio`` (the container)
    Follows fortio/fortio `fhttp/http_server.go` at commit 45e18710810d864a615618087228996a0a824b2f:
    ``FetcherHandler`` on /fortio/fetch/<host> hijacks the connection, fetches ``http://<host>`` and
    writes back the upstream's raw bytes, or nothing at all on any client error (then closes); it
    answers 505 "Use fetch2 when using http/2.0" when the request came over HTTP/2 (``h2=True``
    stands for a service with end-to-end HTTP/2, which http.server cannot speak).
    ``FetcherHandler2`` on /fortio/fetch2/?url=<url>[&timeout=<Go duration>] answers
    400 ``Error for "<url>": <Go error>`` (Go's ``http.Error``: text/plain, nosniff, a trailing
    newline) with the error strings Go's net/http client produces, or relays the upstream's status,
    headers and body.
``Mesh`` (what the client's sidecar does with each host)
    A table host -> ``Route``: an answer served by a real loopback server (the sidecar's own
    replies or the destination's), or a failure fortio's client meets: the name does not resolve,
    the dial to the record address hangs (no sidecar takes it), is refused, or is reset. The server
    keeps the headers of every request it received (``Mesh.received``): what the destination saw.

Nothing here resolves a name or connects anywhere but 127.0.0.1: a mesh host is looked up in the
table, never in DNS.
"""

from __future__ import annotations

import http.client
import http.server
import itertools
import re
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

RECORD_ADDRESS = "10.0.0.1"  # what every mesh host resolves to (the wildcard record): shown, never dialled
METADATA_DNS = "169.254.169.254:53"  # the resolver Cloud Run instances use, as Go's resolver names it
# How often a server's loop looks for shutdown: only closing waits on it (requests are served at once),
# and every test closes a few servers.
POLL = 0.01
FORTIO_WAIT = 30.0  # fortio waits up to a minute for a hanging destination: longer than any test's timeout


# --------------------------------------------------------------------------------------------
# The mesh
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    kind: str  # "answer" | "echo" | "nxdomain" | "blackhole" | "refused" | "reset"
    status: int = 200
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()


def answer(status: int, body: str = "", headers: Optional[dict] = None) -> Route:
    return Route("answer", status, body, tuple((headers or {}).items()))


NXDOMAIN = Route("nxdomain")
BLACKHOLE = Route("blackhole")
REFUSED = Route("refused")
RESET = Route("reset")
# Envoy's own replies carry `server: envoy`; the front end replaces it, so the check must not need it.
ENVOY_NO_ROUTE = answer(404, "", {"server": "envoy"})
NO_HEALTHY_UPSTREAM = answer(503, "no healthy upstream", {"content-type": "text/plain", "server": "envoy"})
UPSTREAM_CONNECT_ERROR = answer(
    503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    {"content-type": "text/plain", "server": "envoy"})
RBAC_DENIED = answer(403, "RBAC: access denied", {"content-type": "text/plain", "server": "envoy"})
DESTINATION_OK = answer(200, "hello from the mesh", {"server": "envoy", "x-envoy-upstream-service-time": "3"})
# A destination that answers 500 with the request's headers in its body (a debug endpoint, say).
ECHO_HEADERS = Route("echo", 500, "", (("server", "envoy"), ("x-envoy-upstream-service-time", "1")))


def destination(status: int, body: str = "") -> Route:
    """The workload's own answer, routed through Envoy (which adds x-envoy-upstream-service-time)."""
    return answer(status, body, {"server": "envoy", "x-envoy-upstream-service-time": "2"})


class Sequence:
    """One route per lookup, the last repeating: a sidecar that warms up, say."""

    def __init__(self, *routes: Route):
        self.routes = routes
        self._calls = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> Route:
        with self._lock:
            return self.routes[min(next(self._calls), len(self.routes) - 1)]


class _Quiet(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The default backlog of 5 overflows when every pair connects at once, and a dropped connection
    # is retried by the kernel only after a second.
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:  # resets and hangs are on purpose
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass


class _MeshHandler(_Handler):
    """Serves the "answer" routes, by Host header, closing after each (HTTP/1.0)."""

    def do_GET(self) -> None:
        self.server.mesh.received.append(self.headers)  # an email.message.Message: names case-insensitive
        route = self.server.mesh.route(self.headers.get("Host", ""), consume=False)
        data = route.body.encode() if route.kind == "answer" else str(self.headers).encode()
        self.send_response(route.status)
        for k, v in route.headers:
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Mesh:
    def __init__(self, routes: dict[str, Route | Sequence]):
        self.routes = routes
        self.received: list = []  # the headers (email.message.Message) of each request the mesh served
        self._current: dict[str, Route] = {}
        self.server = _Quiet(("127.0.0.1", 0), _MeshHandler)
        self.server.mesh = self
        self.reset_server = socket.socket()
        self.reset_server.bind(("127.0.0.1", 0))
        self.reset_server.listen(128)
        with socket.socket() as s:  # a port with nothing listening: a real "connection refused"
            s.bind(("127.0.0.1", 0))
            self.closed_port = s.getsockname()[1]
        self.release = threading.Event()
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": POLL}, daemon=True).start()
        threading.Thread(target=self._reset_all, daemon=True).start()

    def _reset_all(self) -> None:
        while not self.release.is_set():
            try:
                conn, _ = self.reset_server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def route(self, host: str, consume: bool = True) -> Route:
        """The route for a host; each fetch consumes one step of a Sequence, the mesh server reuses it."""
        name = host.split(":")[0]
        entry = self.routes.get(name, NXDOMAIN)
        if not isinstance(entry, Sequence):
            return entry
        if consume or name not in self._current:
            self._current[name] = entry.next()
        return self._current[name]

    def address(self, route: Route) -> int:
        return {"answer": self.server.server_address[1], "echo": self.server.server_address[1], "reset": self.reset_server.getsockname()[1],
                "refused": self.closed_port}[route.kind]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.reset_server.close()


# --------------------------------------------------------------------------------------------
# fortio
# --------------------------------------------------------------------------------------------


class FetchFailed(Exception):
    """What Go's net/http client would report, after `Get "<url>": `."""


def _go_duration(text: str) -> Optional[float]:
    """time.ParseDuration for the forms the check sends ("800ms", "1.5s"); None when absent or invalid."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text.strip())
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)] if m else None


class _FortioHandler(_Handler):
    protocol_version = "HTTP/1.1"
    server: _FortioServer

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append(self.path)
        if self.path.startswith("/fortio/fetch/"):
            return self._fetch(self.path[len("/fortio/fetch/"):])
        if self.path.startswith("/fortio/fetch2/"):
            return self._fetch2(urllib.parse.urlsplit(self.path).query)
        self._go_error(404, "404 page not found")

    # FetcherHandler: raw relay or nothing.
    def _fetch(self, url: str) -> None:
        if self.server.h2:
            return self._go_error(505, "Use fetch2 when using http/2.0")
        self.close_connection = True  # hijacked: fortio closes it whatever happens
        try:
            raw = self._get(url if "://" in url else f"http://{url}", FORTIO_WAIT, [], raw=True)
        except FetchFailed:
            return  # writes nothing: the caller sees the connection close without a response
        self.wfile.write(raw)
        self.wfile.flush()

    # FetcherHandler2: Go's client, 400 with its error, or the upstream's answer relayed.
    def _fetch2(self, query: str) -> None:
        params = urllib.parse.parse_qs(query)
        if "url" not in params:
            return self._go_error(400, "missing url query argument")
        url = params["url"][0].strip()
        if not url:
            return self._go_error(400, "missing url value")
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        timeout = _go_duration(params.get("timeout", [""])[0])  # no timeout: Go's client waits indefinitely
        # Fetch2CopiesAllHeader (default true): every header of the incoming request goes upstream too.
        copied = [(k, v) for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")]
        try:
            status, headers, body = self._get(url, timeout if timeout else FORTIO_WAIT, copied)
        except FetchFailed as exc:
            return self._go_error(400, f'Error for "{url}": Get "{url}": {exc}')
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _go_error(self, status: int, message: str) -> None:
        """Go's http.Error: text/plain, nosniff, the message and a newline."""
        data = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _get(self, url: str, wait: float, headers: list, raw: bool = False):
        mesh: Mesh = self.server.mesh
        parts = urllib.parse.urlsplit(url)
        host, path = parts.hostname or "", parts.path or "/"
        route = mesh.route(host)
        if route.kind == "nxdomain":
            raise FetchFailed(f"dial tcp: lookup {host} on {METADATA_DNS}: no such host")
        if route.kind == "blackhole":  # nothing takes the connection to the record address
            mesh.release.wait(wait)
            raise FetchFailed("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")
        sock = socket.socket()
        sock.settimeout(wait)
        try:
            try:
                sock.connect(("127.0.0.1", mesh.address(route)))
            except ConnectionRefusedError:
                raise FetchFailed(f"dial tcp {RECORD_ADDRESS}:80: connect: connection refused") from None
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fortio.org/fortio\r\n{extra}\r\n".encode())
            chunks = []
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    local = sock.getsockname()
                    raise FetchFailed(f"read tcp {local[0]}:{local[1]}->{RECORD_ADDRESS}:80: read: connection reset "
                                      "by peer") from None
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            sock.close()
        data = b"".join(chunks)
        if not data:
            raise FetchFailed("EOF")
        if raw:
            return data
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = [tuple(s.strip() for s in line.split(":", 1)) for line in lines[1:] if ":" in line]
        return status, headers, body


class _FortioServer(_Quiet):
    mesh: Mesh
    h2: bool
    requests: list


class Fortio:
    def __init__(self, mesh: Mesh, h2: bool = False):
        self.server = _FortioServer(("127.0.0.1", 0), _FortioHandler)
        self.server.mesh, self.server.h2, self.server.requests = mesh, h2, []
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": POLL}, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------
# Cloud Run's front end
# --------------------------------------------------------------------------------------------

GOOGLE_403 = ("<html><head><title>403 Forbidden</title></head><body><h1>Error: Forbidden</h1><h2>Your client does "
              "not have permission to get URL <code>{path}</code> from this server.</h2></body></html>")
GOOGLE_401 = ("<html><body><h1>Error: Unauthorized</h1>Your client does not have permission to the requested URL."
              "</body></html>")
# Two plausible answers for a container that closed without a response (not documented; see the module
# docstring): the Envoy-style text reported from Cloud Run, and a bare Google error page.
EMPTY_REPLY_ENVOY = (503, "upstream connect error or disconnect/reset before headers. reset reason: connection termination")
EMPTY_REPLY_GOOGLE = (502, "<html><head><title>502 Server Error</title></head><body><h1>Error: Server Error</h1>"
                           "<h2>The server encountered a temporary error and could not complete your request.</h2>"
                           "</body></html>")


SERVERLESS_AUTHORIZATION = "X-Serverless-Authorization"
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"


def without_signature(bearer: str) -> str:
    """``Bearer h.p.s`` as the container receives it: ``Bearer h.p.SIGNATURE_REMOVED_BY_GOOGLE``.

    A value that is not a JWT keeps nothing of itself (Cloud Run would have refused it anyway).
    """
    token = bearer.split(" ", 1)[-1]
    parts = token.split(".")
    kept = ".".join(parts[:2]) + "." if len(parts) == 3 else ""
    return f"Bearer {kept}{SIGNATURE_REMOVED}"


class _FrontEndHandler(_Handler):
    protocol_version = "HTTP/1.1"
    server: _FrontEndServer

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append((self.path, self.headers))  # an email.message.Message: names case-insensitive
        if srv.grant_after is not None and len(srv.requests) > srv.grant_after:
            srv.invoker = True  # an invoker grant that propagates after this many refused requests
        if srv.limited:  # no instance available (the page's text is this stand-in's, not Google's)
            return self._send(429, "<html><body><h1>Error: Too Many Requests</h1></body></html>",
                              [("Content-Type", "text/html; charset=UTF-8")])
        # Only X-Serverless-Authorization is checked when it is present.
        presented = self.headers.get(SERVERLESS_AUTHORIZATION) or self.headers.get("Authorization")
        if presented != f"Bearer {srv.token}":
            return self._send(401, GOOGLE_401, [("Content-Type", "text/html; charset=UTF-8")])
        if not srv.invoker:
            return self._send(403, GOOGLE_403.format(path=self.path), [("Content-Type", "text/html; charset=UTF-8")])
        conn = http.client.HTTPConnection("127.0.0.1", srv.container_port, timeout=FORTIO_WAIT)
        try:
            forwarded = {k: without_signature(v) if k.lower() == SERVERLESS_AUTHORIZATION.lower() else v
                         for k, v in self.headers.items() if k.lower() != "host"}
            conn.request("GET", self.path, headers=forwarded)
            resp = conn.getresponse()
            body = resp.read()
        except (http.client.HTTPException, OSError):
            status, text = srv.empty_reply
            return self._send(status, text, [("Content-Type", "text/html; charset=UTF-8" if text.startswith("<")
                                              else "text/plain")])
        finally:
            conn.close()
        self._send(resp.status, body, [(k, v) for k, v in resp.getheaders()
                                       if k.lower() not in ("server", "content-length", "connection", "transfer-encoding")])

    def _send(self, status: int, body, headers: list) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Server", "Google Frontend")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _FrontEndServer(_Quiet):
    token: str
    invoker: bool
    grant_after: Optional[int]
    limited: bool
    container_port: int
    empty_reply: tuple[int, str]
    requests: list


class FrontEnd:
    def __init__(self, container_port: int, token: str, invoker: bool = True,
                 empty_reply: tuple[int, str] = EMPTY_REPLY_ENVOY):
        self.server = _FrontEndServer(("127.0.0.1", 0), _FrontEndHandler)
        self.server.token, self.server.invoker, self.server.limited = token, invoker, False
        self.server.grant_after = None
        self.server.container_port, self.server.empty_reply, self.server.requests = container_port, empty_reply, []
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": POLL}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _NotFortioHandler(_Handler):
    def do_GET(self) -> None:
        data = b"<html><body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class CloudRunClient:
    """A Cloud Run client service: front end -> fortio (or another image) -> mesh."""

    url: str
    front_end: FrontEnd
    fortio: Optional[Fortio]
    mesh: Mesh
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def requests(self) -> list:
        return self.front_end.server.requests

    @property
    def fortio_requests(self) -> list:
        return self.fortio.server.requests if self.fortio else []

    def close(self) -> None:
        """Every server at once: each shutdown waits up to one poll interval for its loop to notice."""
        self.mesh.release.set()
        closing = [threading.Thread(target=close, daemon=True) for close in self._closers]
        for t in closing:
            t.start()
        for t in closing:
            t.join()


def start_client(routes: dict[str, Route | Sequence], *, token: str, invoker: bool = True, h2: bool = False,
                 fortio: bool = True, empty_reply: tuple[int, str] = EMPTY_REPLY_ENVOY) -> CloudRunClient:
    mesh = Mesh(routes)
    closers: list[Callable[[], None]] = [mesh.close]
    if fortio:
        container: Optional[Fortio] = Fortio(mesh, h2=h2)
        port = container.port
        closers.append(container.close)
    else:
        container = None
        plain = _Quiet(("127.0.0.1", 0), _NotFortioHandler)
        threading.Thread(target=plain.serve_forever, kwargs={"poll_interval": POLL}, daemon=True).start()
        port = plain.server_address[1]
        closers.append(lambda: (plain.shutdown(), plain.server_close()))
    front = FrontEnd(port, token, invoker, empty_reply)
    closers.append(front.close)
    return CloudRunClient(front.url, front, container, mesh, closers)

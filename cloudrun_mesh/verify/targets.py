"""What to check, read from the stack outputs, and what they tell the diagnosis."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Optional

from cloudrun_mesh import outputs as stack_outputs
from cloudrun_mesh import text as safe
from cloudrun_mesh.text import InputFileError, read_regular_file
from cloudrun_mesh.verify.support import Budget, OutputTooLarge, VerifyError, bounded, run_command, whole_reason

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Placeholders for values a stack deployed before the troubleshooting outputs existed cannot give.
PROJECT_PLACEHOLDER = "PROJECT_ID"
REGION_PLACEHOLDER = "REGION"
# What `pulumi stack output` prints for a secret value without --show-secrets (pulumi/pulumi,
# backend/display `massagePropertyValue`, used by `stack output` through `MassageSecrets`).
SECRET_MARKER = "[secret]"
SHOW_SECRETS = "pulumi stack output --json --show-secrets"
# The outputs the check reads; the first is required.
USED_OUTPUTS = ("fetchUrls", "cloudRunUrls", "exportedHosts", "loggingFilters", "proxyStatusCommands", "meshName",
                "dnsZone", "recordAddress")
# Read too, but optional: a check hidden as "[secret]" is named as hidden rather than refused.
OPTIONAL_OUTPUTS = ("uptimeChecks",)

# A JSON object as parsed, before its values are checked against the grammar of what the program exports.
JsonObject = dict[str, Any]


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
    uptime_check: Optional[str] = None  # its uptime check's resource name, SECRET_MARKER or UNKNOWN_MARKER

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


# --------------------------------------------------------------------------------------------
# Reading the outputs: a file, standard input, or the Pulumi CLI; bounded before parsing
# --------------------------------------------------------------------------------------------

# The outputs of 10 clients x 1,000 services (fetchUrls and uptimeChecks) are about 2 MB; 4 MiB leaves
# room for every other output. Parsed JSON takes many times its size in memory: docs/input-limits.md, "The smoke check".
MAX_OUTPUTS_BYTES = 4 * 1024 * 1024
# `pulumi stack output --json` nests our outputs three deep; anything past this is not ours (and the
# standard library's parser would recurse once per level).
MAX_JSON_DEPTH = 64
# Arrays and objects in the whole file: ours are one per output and one per client of each map.
MAX_JSON_CONTAINERS = 100_000
# 10 clients x 1,000 services; more is refused before any request (see docs/input-limits.md, "The smoke check").
MAX_PAIRS = 10_000


def _read_stdin(budget: Budget) -> bytes:
    # A text stream replacing sys.stdin (a test's StringIO, an embedding program's) may have no buffer.
    stream: Optional[BinaryIO] = getattr(sys.stdin, "buffer", None)

    def read() -> bytes:
        if stream is not None:
            return stream.read(MAX_OUTPUTS_BYTES + 1)
        return sys.stdin.read(MAX_OUTPUTS_BYTES + 1).encode("utf-8", "surrogateescape")

    finished, value = bounded(read, budget.hard_left())
    if not finished or value is None:  # None only when read() did not finish: it returns bytes
        raise VerifyError(f"nothing complete arrived on standard input within {budget.hard_left():.0f} s (the "
                          f"deadline plus one request timeout); pipe the JSON of `{SHOW_SECRETS}` into it.")
    if isinstance(value, BaseException):
        raise VerifyError(f"cannot read the outputs from standard input: {value}.")
    return value


def source(path: Optional[str]) -> str:
    """Where the outputs come from, for messages."""
    return "`pulumi stack output`" if not path else ("standard input" if path == "-" else f"the outputs file {path}")


def load_outputs(path: Optional[str], stack: Optional[str], budget: Budget) -> JsonObject:
    where = source(path)
    if path:
        try:
            data = _read_stdin(budget) if path == "-" else read_regular_file(path, MAX_OUTPUTS_BYTES, "outputs file")
        except InputFileError as exc:
            raise VerifyError(f"cannot read {where}: {str(exc).removeprefix(exc.path + ': ')} Write it with "
                              f"`{SHOW_SECRETS} --stack <stack> > outputs.json`.") from None
        if len(data) > MAX_OUTPUTS_BYTES:
            raise VerifyError(f"cannot read {where}: it is larger than the limit of {MAX_OUTPUTS_BYTES:,} bytes.")
        return parse_outputs(data, where)
    return parse_outputs(_outputs_from_cli(stack, budget), where)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> JsonObject:
    out: JsonObject = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


class _Duplicate(ValueError):
    pass


def parse_outputs(data: bytes | str, where: str) -> JsonObject:
    """The JSON object of stack outputs, or a VerifyError naming ``where``: size and nesting are checked
    before the parser runs, and a duplicate key is refused (the CLI never prints one)."""
    expected = f"expected the object printed by `{SHOW_SECRETS}`"
    if isinstance(data, bytes):
        if len(data) > MAX_OUTPUTS_BYTES:
            raise VerifyError(f"the outputs from {where} are larger than the limit of {MAX_OUTPUTS_BYTES:,} bytes.")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VerifyError(f"the outputs from {where} are not UTF-8 (byte {exc.start}); {expected}.") from None
    else:
        text = data
        data = text.encode("utf-8", "surrogatepass")
        if len(data) > MAX_OUTPUTS_BYTES:
            raise VerifyError(f"the outputs from {where} are larger than the limit of {MAX_OUTPUTS_BYTES:,} bytes.")
    problem = safe.json_shape_problem(data, MAX_JSON_DEPTH, MAX_JSON_CONTAINERS)
    if problem:
        raise VerifyError(f"the outputs from {where} are refused before parsing: {problem}; {expected}.")
    try:
        parsed = json.loads(text, object_pairs_hook=_no_duplicates)
    except _Duplicate as exc:
        raise VerifyError(f"the outputs from {where} repeat the key {json.dumps(str(exc)[:80])} in one object; "
                          f"{expected}.") from None
    except (ValueError, RecursionError) as exc:
        raise VerifyError(f"the outputs from {where} are not valid JSON ({str(exc)[:200]}); {expected}.") from None
    if not isinstance(parsed, dict):
        raise VerifyError(f"the outputs from {where} are a JSON {type(parsed).__name__}, not an object of stack "
                          f"outputs; {expected}.")
    return parsed


def _outputs_from_cli(stack: Optional[str], budget: Budget) -> str:
    which = f"stack {stack!r}" if stack else "the selected stack"
    exe = shutil.which("pulumi")
    if exe is None:
        raise VerifyError(
            f"the Pulumi CLI is not on PATH, so the outputs of {which} cannot be read. Install it, or pass "
            f"--outputs FILE with the JSON of `{SHOW_SECRETS}" + (f" --stack {shlex.quote(stack)}`." if stack else "`.")
        )
    cmd = [exe, "stack", "output", "--json", "--show-secrets"] + (["--stack", stack] if stack else [])
    limit = budget.hard_left()
    try:
        proc = run_command(cmd, limit, cwd=PROJECT_DIR, max_output=MAX_OUTPUTS_BYTES)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"`pulumi stack output` did not answer within {limit:.0f} s (the deadline plus one "
                          "request timeout); check the CLI's login and backend, or pass --outputs FILE.") from None
    except OutputTooLarge as exc:
        raise VerifyError(f"`pulumi stack output` was stopped: {exc}, the limit for stack outputs.") from None
    except OSError as exc:
        raise VerifyError(f"could not run the Pulumi CLI at {exe}: {exc.strerror or exc}.") from None
    if proc.returncode != 0:
        reason = whole_reason(proc.stderr)[:2000] or whole_reason(proc.stdout)[:2000] or f"exit status {proc.returncode}"
        if re.search(r"no stack named|stack .* not found|could not find stack", reason, re.I):
            from cloudrun_mesh.offline import harness

            known = ", ".join(harness.stacks()) or "none"
            raise VerifyError(f"unknown stack: {reason} The stack files here are for: {known}; "
                              "`pulumi stack ls` lists the stacks of your backend.")
        raise VerifyError(f"`pulumi stack output` failed for {which}: {reason}")
    return proc.stdout


# --------------------------------------------------------------------------------------------
# The grammar of what the program exports, checked whole (re.fullmatch)
# --------------------------------------------------------------------------------------------

# Cloud Run service names: lowercase letters, digits and dashes, starting with a letter, not ending with
# a dash, at most 49 characters (https://cloud.google.com/run/docs/deploying#service, "Service name").
CLOUD_RUN_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?")
# Kubernetes Service names are RFC 1035 labels (kubernetes.io/docs/concepts/overview/working-with-objects/names).
SERVICE_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A DNS name of RFC 1123 labels (the exported hosts), at most 253 characters, an optional port.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DNS_NAME = re.compile(rf"(?=[a-z0-9.-]{{1,253}}(?::|\Z)){_LABEL}(?:\.{_LABEL})*\.?(?::[0-9]{{1,5}})?")
# Project ids (https://cloud.google.com/resource-manager/docs/creating-managing-projects: 6 to 30
# lowercase letters, digits or hyphens, starting with a letter, not ending with a hyphen) or numbers.
PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20}")
REGION = re.compile(r"[a-z]+(?:-[a-z]+)+[0-9]+")
LOCATION = re.compile(r"[a-z]+(?:-[a-z]+)+[0-9]+(?:-[a-z])?|global")
GCE_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
MESH_NAME = re.compile(r"projects/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})/locations/global/meshes/"
                       r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")
# An uptime check's resource name: projects/[PROJECT_ID_OR_NUMBER]/uptimeCheckConfigs/[UPTIME_CHECK_ID]
# (https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.uptimeCheckConfigs, field `name`);
# the id is generated by Cloud Monitoring from the display name: letters, digits, `-` and `_`.
UPTIME_CHECK = re.compile(r"projects/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})/uptimeCheckConfigs/"
                          r"(?P<id>[A-Za-z0-9][A-Za-z0-9_-]{0,127})")
# What the engine stores for a string not known yet (pulumi/pulumi sdk/go/common/resource/plugin/rpc.go,
# UnknownStringValue); a stack updated with `--target` can keep one in an output.
UNKNOWN_MARKER = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
MAX_URL = 2048
MAX_FILTER = 4096
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[a-z0-9.-]{1,253}|\[[0-9a-f:]{2,39}\])(?::(?P<port>[0-9]{1,5}))?",
                     re.I)
# The two commands `outputs.proxy_status_commands` writes; the values are checked and quoted again.
_PROXY_LIST = re.compile(r"gcloud container fleet memberships list --project=(?P<project>\S+)")
_PROXY_STATUS = re.compile(r"gcloud alpha container fleet mesh debug proxy-status --membership=(?P<membership>\S+) "
                           r"--location=(?P<location>\S+) --project=(?P<project>\S+)")


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]{1,80}", k) else json.dumps(k[:80] + ("..." if len(k) > 80 else ""))


def _path(*parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + _key(str(p)))
    return f"`{out}`"


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else json.dumps(value[:80] + ("..." if len(value) > 80 else ""))
    return text if len(text) <= 100 else text[:97] + "..."


def url_problem(url: Any) -> Optional[str]:
    """Why a URL cannot be checked, or None. Plain http only to this machine: a token never travels in clear.

    The URL is checked whole: printable ASCII without spaces, at most ``MAX_URL`` characters, no user
    information, and a host that is a DNS name or an IP address."""
    if not isinstance(url, str) or not url:
        return f"{_shown(url)} is not a URL"
    if len(url) > MAX_URL:
        return f"a URL of {len(url):,} characters is longer than the limit of {MAX_URL}"
    if not re.fullmatch(r"[!-~]+", url):
        return f"{_shown(url)} is not a URL (spaces or characters outside printable ASCII)"
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname
        u.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        return f"{_shown(url)} is not a valid URL ({exc})"
    if u.scheme not in ("https", "http") or not host:
        return f"{_shown(url)} is not an https URL"
    if "@" in u.netloc:
        return f"{_shown(url)} carries user information; a Cloud Run URL has none"
    if not _ORIGIN.fullmatch(f"{u.scheme}://{u.netloc}"):
        return f"{_shown(url)} does not have a DNS name or an IP address as its host"
    if u.scheme == "http" and host not in LOOPBACK_HOSTS:
        return f"{_shown(url)} uses plain http; the identity token is only sent over https (or to this machine)"
    return None


def origin(url: str) -> str:
    """scheme://host[:port], lowercased: the one place a client's token may go."""
    u = urllib.parse.urlsplit(url)
    port = u.port
    default = {"https": 443, "http": 80}.get(u.scheme)
    host = (u.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    return f"{u.scheme.lower()}://{host}" + (f":{port}" if port and port != default else "")


def _secret_paths(value: Any, path: tuple[str | int, ...]) -> list[str]:
    if value == SECRET_MARKER:
        return [_path(*path)]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _secret_paths(v, path + (k,))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_paths(v, path + (i,))]
    return []


def _refuse_secret_markers(raw: JsonObject) -> None:
    """Outputs written without --show-secrets carry "[secret]" where a value was marked secret."""
    hidden = [p for key in USED_OUTPUTS if key in raw for p in _secret_paths(raw[key], (key,))]
    if hidden:
        shown = ", ".join(hidden[:5]) + (f" and {len(hidden) - 5} more" if len(hidden) > 5 else "")
        raise VerifyError(f"the stack outputs hide {shown} as \"{SECRET_MARKER}\": they were read without "
                          f"--show-secrets. Read them with `{SHOW_SECRETS} --stack <stack> > outputs.json` and pass "
                          "--outputs outputs.json, or use --stack (which passes --show-secrets itself).")


class _Problems:
    """Every problem with the outputs at once (the first ``SHOWN``), raised as one paragraph."""

    SHOWN = 5

    def __init__(self, where: str):
        self.where, self.items = where, list[str]()

    def add(self, text: str) -> None:
        self.items.append(text)

    def raise_any(self) -> None:
        if not self.items:
            return
        more = len(self.items) - self.SHOWN
        shown = "; ".join(self.items[: self.SHOWN]) + (f"; and {more} more" if more > 0 else "")
        raise VerifyError(f"{self.where} cannot be checked: {shown}. They are not what `{SHOW_SECRETS}` prints for "
                          "this program's stack: read them again from the stack.")


def _object(value: Any, key: str, problems: _Problems, required: bool = False) -> JsonObject:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        problems.add(f"{_path(key)} is {_shown(value)}, not an object")
        return {}
    return value


def _names(value: JsonObject, key: str, grammar: re.Pattern[str], what: str, problems: _Problems) -> JsonObject:
    for k in value:
        if not grammar.fullmatch(k):
            problems.add(f"{_path(key, k)}: the key is not a {what}")
    return {k: v for k, v in value.items() if grammar.fullmatch(k)}


def _labels(filter_: str, path: str, problems: _Problems) -> dict[str, str]:
    labels = stack_outputs.logging_filter_labels(filter_)
    for label, grammar in (("project_id", PROJECT), ("location", REGION), ("service_name", CLOUD_RUN_NAME)):
        if label in labels and not grammar.fullmatch(labels[label]):
            problems.add(f"{path}: resource.labels.{label} {_shown(labels[label])} does not match {grammar.pattern}")
            labels.pop(label)
    return labels


def _proxy_commands(value: Any, problems: _Problems) -> Optional[list[str]]:
    """The proxy-status commands, re-rendered from their checked values with each argument quoted."""
    if value is None:
        return None
    if not isinstance(value, list):
        problems.add(f"{_path('proxyStatusCommands')} is {_shown(value)}, not a list")
        return None
    placeholders = {"membership": stack_outputs.MEMBERSHIP_PLACEHOLDER, "location": stack_outputs.LOCATION_PLACEHOLDER,
                    "project": PROJECT_PLACEHOLDER}
    grammars = {"membership": GCE_NAME, "location": LOCATION, "project": PROJECT}
    out = []
    for i, command in enumerate(value):
        m = (_PROXY_LIST.fullmatch(command) or _PROXY_STATUS.fullmatch(command)) if isinstance(command, str) else None
        bad = [k for k, v in (m.groupdict() if m else {}).items() if v != placeholders[k] and not grammars[k].fullmatch(v)]
        if m is None or bad:
            problems.add(f"{_path('proxyStatusCommands', i)} is {_shown(command)}, not one of the fleet commands the "
                         "program writes" + (f" ({', '.join(bad)} fails its grammar)" if bad else ""))
            continue
        q = {k: shlex.quote(v) for k, v in m.groupdict().items()}
        out.append(f"gcloud container fleet memberships list --project={q['project']}" if m.re is _PROXY_LIST else
                   "gcloud alpha container fleet mesh debug proxy-status "
                   f"--membership={q['membership']} --location={q['location']} --project={q['project']}")
    return out or None


def _text(raw: JsonObject, key: str, grammar: re.Pattern[str] | Callable[[str], bool], problems: _Problems) -> Optional[str]:
    value = raw.get(key)
    if value is None:
        return None
    if not (isinstance(value, str) and (grammar.fullmatch(value) if isinstance(grammar, re.Pattern) else grammar(value))):
        problems.add(f"{_path(key)} is {_shown(value)}, not what the program exports")
        return None
    return value


def _ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address) and value.isascii()
    except ValueError:
        return False


def _uptime_checks(raw: JsonObject, problems: _Problems) -> dict[tuple[str, str], str]:
    """client -> service -> uptime check resource name (issue 20). A value hidden as "[secret]" or not
    known yet is kept as that marker; an absent or null one means no check."""
    checks = _object(raw.get("uptimeChecks"), "uptimeChecks", problems)
    out: dict[tuple[str, str], str] = {}
    for client, services in _names(checks, "uptimeChecks", CLOUD_RUN_NAME, "Cloud Run service name", problems).items():
        if services in (None, SECRET_MARKER, UNKNOWN_MARKER):
            continue
        if not isinstance(services, dict):
            problems.add(f"{_path('uptimeChecks', client)} is {_shown(services)}, not an object")
            continue
        for service, name in services.items():
            if not SERVICE_NAME.fullmatch(service):
                problems.add(f"{_path('uptimeChecks', client, service)}: the key is not a Kubernetes Service name")
            elif name in (SECRET_MARKER, UNKNOWN_MARKER) or (isinstance(name, str) and UPTIME_CHECK.fullmatch(name)):
                out[(client, service)] = name
            elif name is not None:
                problems.add(f"{_path('uptimeChecks', client, service)} is {_shown(name)}, not an uptime check's "
                             "resource name (projects/PROJECT/uptimeCheckConfigs/ID)")
    return out


# --------------------------------------------------------------------------------------------
# From outputs to pairs
# --------------------------------------------------------------------------------------------


def read_targets(raw: JsonObject, where: str = "the stack outputs") -> Targets:
    _refuse_secret_markers(raw)
    fetch = raw.get("fetchUrls")
    if not isinstance(fetch, dict) or not fetch:
        present = ", ".join(_key(k) for k in sorted(raw)[:20]) or "none"
        raise VerifyError(f"{where} have no `fetchUrls` (outputs present: "
                          f"{present}). Run `pulumi up` for this stack first, and check --stack or --outputs.")
    problems = _Problems(where)
    count = sum(len(v) if isinstance(v, dict) else 1 for v in fetch.values())
    if count > MAX_PAIRS:
        raise VerifyError(f"{where} have {count:,} client x service pairs in `fetchUrls`, more than the limit of "
                          f"{MAX_PAIRS:,} one run checks; check the stack in parts with an outputs file per part.")
    urls = _names(_object(raw.get("cloudRunUrls"), "cloudRunUrls", problems), "cloudRunUrls", CLOUD_RUN_NAME,
                  "Cloud Run service name", problems)
    hosts = _names(_object(raw.get("exportedHosts"), "exportedHosts", problems), "exportedHosts", SERVICE_NAME,
                   "Kubernetes Service name", problems)
    filters = _names(_object(raw.get("loggingFilters"), "loggingFilters", problems), "loggingFilters", CLOUD_RUN_NAME,
                     "Cloud Run service name", problems)
    for service, h in hosts.items():
        if not (isinstance(h, str) and DNS_NAME.fullmatch(h)):
            problems.add(f"{_path('exportedHosts', service)} is {_shown(h)}, not a DNS name")
    for client, f in filters.items():
        if not (isinstance(f, str) and len(f) <= MAX_FILTER and f.isprintable()):
            problems.add(f"{_path('loggingFilters', client)} is {_shown(f)}, not a Cloud Logging filter of printable "
                         f"text up to {MAX_FILTER} characters")
    for client, u in urls.items():
        problem = url_problem(u)
        if problem:
            problems.add(f"{_path('cloudRunUrls', client)}: {problem}")
        elif urllib.parse.urlsplit(u).path.strip("/") or urllib.parse.urlsplit(u).query:
            problems.add(f"{_path('cloudRunUrls', client)}: {_shown(u)} has a path; a Cloud Run URL is an origin")
    uptime = _uptime_checks(raw, problems)
    pairs: list[Pair] = []
    clients: dict[str, Client] = {}
    for client, services in fetch.items():
        if not CLOUD_RUN_NAME.fullmatch(client):
            problems.add(f"{_path('fetchUrls', client)}: the key is not a Cloud Run service name")
            continue
        if not isinstance(services, dict) or not services:
            problems.add(f"{_path('fetchUrls', client)} has no services")
            continue
        base = urls.get(client) if isinstance(urls.get(client), str) and not url_problem(urls.get(client)) else None
        audience = origin(base) if base else None
        for service, url in services.items():
            path = _path("fetchUrls", client, service)
            if not SERVICE_NAME.fullmatch(service):
                problems.add(f"{path}: the key is not a Kubernetes Service name")
                continue
            problem = url_problem(url)
            if problem:
                problems.add(f"{path}: {problem}")
                continue
            u = urllib.parse.urlsplit(url)
            host = u.path[len(stack_outputs.FETCH_PATH):] if u.path.startswith(stack_outputs.FETCH_PATH) else ""
            if not DNS_NAME.fullmatch(host) or u.query or u.fragment:
                problems.add(f"{path}: {_shown(url)} is not `<Cloud Run URL>{stack_outputs.FETCH_PATH}<host>`")
                continue
            # The token is minted for the client's Cloud Run URL: it goes to that host only.
            audience = audience or origin(url)
            if origin(url) != audience:
                problems.add(f"{path}: {_shown(url)} is not on the client's host {audience} (`cloudRunUrls.{client}` "
                             "or its first fetch URL); the identity token is sent only to the host it was minted for")
                continue
            pairs.append(Pair(client, service, url, host, uptime.get((client, service))))
        labels = _labels(filters[client], _path("loggingFilters", client), problems) \
            if isinstance(filters.get(client), str) else {}
        filter_ = filters.get(client) if isinstance(filters.get(client), str) and filters[client].isprintable() else None
        clients[client] = Client(client, (audience or "").rstrip("/"), labels.get("project_id"), labels.get("location"),
                                 filter_ if len(filter_ or "") <= MAX_FILTER else None)
    proxy = _proxy_commands(raw.get("proxyStatusCommands"), problems)
    mesh_name = _text(raw, "meshName", MESH_NAME, problems)
    dns_zone = _text(raw, "dnsZone", GCE_NAME, problems)
    record = _text(raw, "recordAddress", _ipv4, problems)
    problems.raise_any()
    if proxy is None:
        proxy = stack_outputs.proxy_status_commands(next((c.project for c in clients.values() if c.project),
                                                         PROJECT_PLACEHOLDER))
    return Targets(pairs, clients, hosts, mesh_name, dns_zone, record, list(proxy))

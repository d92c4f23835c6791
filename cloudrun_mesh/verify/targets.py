"""What to check, read from the stack outputs, and what they tell the diagnosis."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from cloudrun_mesh import outputs as stack_outputs
from cloudrun_mesh.verify.support import Budget, VerifyError, run_command, whole_reason

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


# --------------------------------------------------------------------------------------------
# Reading the outputs: a file, standard input, or the Pulumi CLI
# --------------------------------------------------------------------------------------------


def load_outputs(path: Optional[str], stack: Optional[str], budget: Budget) -> dict:
    if path:
        where = "standard input" if path == "-" else path
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise VerifyError(f"cannot read the outputs file {where}: {reason}. Write it with "
                              f"`{SHOW_SECRETS} --stack <stack> > {path}`.") from None
    else:
        where = "`pulumi stack output`"
        text = _outputs_from_cli(stack, budget)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise VerifyError(f"the outputs from {where} are not valid JSON ({exc}); expected the object printed by "
                          f"`{SHOW_SECRETS}`.") from None
    if not isinstance(data, dict):
        raise VerifyError(f"the outputs from {where} are a JSON {type(data).__name__}, not an object of stack "
                          f"outputs; expected the object printed by `{SHOW_SECRETS}`.")
    return data


def _outputs_from_cli(stack: Optional[str], budget: Budget) -> str:
    which = f"stack {stack!r}" if stack else "the selected stack"
    exe = shutil.which("pulumi")
    if exe is None:
        raise VerifyError(
            f"the Pulumi CLI is not on PATH, so the outputs of {which} cannot be read. Install it, or pass "
            f"--outputs FILE with the JSON of `{SHOW_SECRETS}" + (f" --stack {stack}`." if stack else "`.")
        )
    cmd = [exe, "stack", "output", "--json", "--show-secrets"] + (["--stack", stack] if stack else [])
    limit = budget.hard_left()
    try:
        proc = run_command(cmd, limit, cwd=PROJECT_DIR)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"`pulumi stack output` did not answer within {limit:.0f} s (the deadline plus one "
                          "request timeout); check the CLI's login and backend, or pass --outputs FILE.") from None
    except OSError as exc:
        raise VerifyError(f"could not run the Pulumi CLI at {exe}: {exc.strerror or exc}.") from None
    if proc.returncode != 0:
        reason = whole_reason(proc.stderr) or whole_reason(proc.stdout) or f"exit status {proc.returncode}"
        if re.search(r"no stack named|stack .* not found|could not find stack", reason, re.I):
            from cloudrun_mesh.offline import harness

            known = ", ".join(harness.stacks()) or "none"
            raise VerifyError(f"unknown stack: {reason} The stack files here are for: {known}; "
                              "`pulumi stack ls` lists the stacks of your backend.")
        raise VerifyError(f"`pulumi stack output` failed for {which}: {reason}")
    return proc.stdout


# --------------------------------------------------------------------------------------------
# From outputs to pairs
# --------------------------------------------------------------------------------------------


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


def _secret_paths(value: Any, path: str) -> list[str]:
    if value == SECRET_MARKER:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _secret_paths(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_paths(v, f"{path}[{i}]")]
    return []


def _refuse_secret_markers(raw: dict) -> None:
    """Outputs written without --show-secrets carry "[secret]" where a value was marked secret."""
    hidden = [p for key in USED_OUTPUTS if key in raw for p in _secret_paths(raw[key], key)]
    if hidden:
        shown = ", ".join(f"`{p}`" for p in hidden[:5]) + (f" and {len(hidden) - 5} more" if len(hidden) > 5 else "")
        raise VerifyError(f"the stack outputs hide {shown} as \"{SECRET_MARKER}\": they were read without "
                          f"--show-secrets. Read them with `{SHOW_SECRETS} --stack <stack> > outputs.json` and pass "
                          "--outputs outputs.json, or use --stack (which passes --show-secrets itself).")


def _str_map(value: Any) -> dict[str, str]:
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def _text(raw: dict, key: str) -> Optional[str]:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def _origin(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def read_targets(raw: dict) -> Targets:
    _refuse_secret_markers(raw)
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

"""What the answers mean, one diagnosis per distinct cause, and the next commands with the stack's values.

Evidence, in order of trust:

1. The /fortio/fetch2/ follow-up (see ``probe``). fortio answers 400 ``Error for "<url>": <Go error>``
   when its own request failed, so a Go error string names the cause (name resolution, a dial that
   timed out or was refused, a reset). Anything else it relays as the mesh answered it: Envoy's 404
   with an empty body when the sidecar has no route (envoyproxy/envoy `source/common/router/router.cc`,
   ``Filter::decodeHeaders``: ``sendLocalReply(Http::Code::NotFound, "", ...)`` with RouteNotFound),
   503 ``no healthy upstream`` and 503 ``upstream connect error ...`` (the same router), 403
   ``RBAC: access denied`` (Envoy's RBAC filter), or the destination's own answer, which carries
   Envoy's ``x-envoy-upstream-service-time`` header (added by Envoy's router to every response from
   an upstream: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter).
2. The /fortio/fetch/ answer itself. When fortio's request fails it closes the connection without a
   byte and Cloud Run's front end answers in its place. What that answer is could not be established
   from Google's documentation: public reports show 502 or 503, with a body such as Envoy's
   ``upstream connect error or disconnect/reset before headers. reset reason: connection termination``
   and ``Server: Google Frontend`` (GoogleCloudPlatform/esp-v2#430; ahmetb/cloud-run-faq#140).
   So a 5xx from /fortio/fetch/ is never read as the mesh's answer on its own: only the follow-up
   tells a relayed Envoy 503 from the front end's. For the same reason no header is trusted to name
   its author except ``x-envoy-upstream-service-time`` as a hint, and never ``server``: the front end
   replaces it with ``Google Frontend`` (esp-v2#430, where ``x-envoy-*`` headers did pass through).
3. Cloud Run's own refusals: 401 (token) and 403 (invoker), before anything reaches fortio.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from cloudrun_mesh import outputs as stack_outputs
from cloudrun_mesh.verify.probe import FETCH2_PATH, Outcome
from cloudrun_mesh.verify.targets import PROJECT_PLACEHOLDER, REGION_PLACEHOLDER, SECRET_MARKER, UNKNOWN_MARKER, Pair, Targets
from cloudrun_mesh.verify.tokens import Tokens, invoker_member, token_problems

if TYPE_CHECKING:
    from cloudrun_mesh.verify.check import PairResult

FETCH = stack_outputs.FETCH_PATH
# Pairs named in full per diagnosis; the rest are counted (10,000 pairs with one cause stay readable).
MAX_LISTED = 20
q = shlex.quote  # every value from the outputs or a token is quoted in a command printed for pasting
# fortio FetcherHandler2: http.Error(w, fmt.Sprintf("Error for %q: %v", url, err), 400).
_FORTIO_ERROR = re.compile(r'\AError for "(?P<url>(?:[^"\\]|\\.)*)": (?P<error>.*?)\s*\Z', re.S)
# Go net/http client errors (the text after `Get "<url>": `).
_GO_DNS = re.compile(r"no such host|server misbehaving|lookup \S+(?: on \S+)?: ", re.I)
_GO_NO_PATH = re.compile(r"i/o timeout|Client\.Timeout exceeded|context deadline exceeded|connection refused|"
                         r"connection timed out|no route to host|network is unreachable", re.I)
_GO_RESET = re.compile(r"connection reset by peer|(?:^|: )EOF$|unexpected EOF|server closed idle connection|"
                       r"malformed HTTP", re.I)
# What the mesh's Envoy answers itself.
_RBAC = re.compile(r"rbac: access denied", re.I)
_NO_ENDPOINTS = re.compile(r"no healthy upstream", re.I)
_UPSTREAM = re.compile(r"upstream connect error|disconnect/reset before headers|upstream request timeout", re.I)
_UPSTREAM_TIME = "x-envoy-upstream-service-time"
_HTTP2 = "Use fetch2 when using http/2.0"  # fortio FetcherHandler, with 505


def cloud_run_refused(o: Outcome) -> bool:
    """A 403 from Cloud Run itself (run.invoker), not the mesh's RBAC refusal relayed by fortio."""
    return o.kind == "http" and o.status == 403 and not _RBAC.search(o.body)


def wants_follow_up(o: Outcome) -> bool:
    """Whether fetch2 can tell more: not when Cloud Run itself refused or was not reached."""
    if o.ok or o.kind in ("connect", "protocol"):
        return False
    return not (o.status in (401, 429) or cloud_run_refused(o) or (o.status and 300 <= o.status < 400))


def fortio_error(o: Optional[Outcome]) -> Optional[str]:
    """The Go error of a fetch2 that failed, or None when fetch2 relayed an answer (or did not run)."""
    if o is None or o.kind != "http" or o.status != 400:
        return None
    m = _FORTIO_ERROR.match(o.body.strip())
    return m.group("error") if m else None


@dataclass
class Finding:
    cause: str
    title: str
    why: list[str]
    commands: list[str] = field(default_factory=list)
    note: str = ""  # about this pair only, shown with its evidence


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
        self.record = targets.record_address or "the wildcard record's address"
        self.zone = targets.dns_zone or "ZONE_NAME"

    def logs(self, text: Optional[str] = None) -> str:
        if text is None and self.client.logging_filter:
            filter_ = self.client.logging_filter
        else:
            filter_ = stack_outputs.logging_filter(self.pair.client, self.region, self.project, text)
        return stack_outputs.logging_read_command(filter_, q(self.project))

    def describe_run(self, fmt: str) -> str:
        return (f"gcloud run services describe {q(self.pair.client)} --region={q(self.region)} "
                f"--project={q(self.project)} --format='{fmt}'")

    def sidecar(self) -> list[str]:
        return [self.logs(stack_outputs.GET_CONFIGS_PERMISSION),
                stack_outputs.traffic_director_binding_command(q(self.mesh_project), q(self.sa))] + self.targets.proxy_status

    def routes(self) -> list[str]:
        return ["kubectl get virtualservices.networking.istio.io -A -o custom-columns="
                "NAMESPACE:.metadata.namespace,NAME:.metadata.name,HOSTS:.spec.hosts,GATEWAYS:.spec.gateways",
                f"kubectl get services -A --field-selector metadata.name={q(self.pair.service)}"]

    def endpoints(self) -> str:
        return f"kubectl get endpoints -A --field-selector metadata.name={q(self.pair.service)}"

    def uptime(self) -> list[str]:
        """The pair's uptime check (issue 20), so the page that paged and this run meet in one place.
        `gcloud monitoring uptime describe` takes the fully qualified name as CHECK_ID
        (https://cloud.google.com/sdk/gcloud/reference/monitoring/uptime/describe)."""
        name = self.pair.uptime_check
        return [f"gcloud monitoring uptime describe {q(name)}"] if name and name not in (SECRET_MARKER,
                                                                                         UNKNOWN_MARKER) else []


# --------------------------------------------------------------------------------------------
# From the answers to one finding per pair
# --------------------------------------------------------------------------------------------

_COULD_NOT = "fortio could not complete the fetch"


def _from_fortio_error(error: str, f: _Facts) -> Finding:
    if _GO_DNS.search(error):
        exported = f.targets.hosts.get(f.pair.service, f.pair.host)
        return Finding("dns", f"{_COULD_NOT}: the host does not resolve", [
            f"fortio's client failed on name resolution. Each host must be under the DNS name of the private zone "
            f"{f.zone}, the zone must be visible to the VPC network the client egresses into (Direct VPC egress), "
            f"and the zone needs its wildcard A record to {f.record}."],
            [f"gcloud dns managed-zones describe {q(f.zone)} --project={q(f.project)} "
             "--format='value(dnsName,visibility,privateVisibilityConfig.networks[].networkUrl)'",
             f"gcloud dns record-sets list --zone={q(f.zone)} --project={q(f.project)}",
             f.describe_run("yaml(spec.template.metadata.annotations)")],
            note=(f"the stack exports {f.pair.service} as {exported!r} but this URL asks for {f.pair.host!r}"
                  if exported != f.pair.host else ""))
    if _GO_NO_PATH.search(error):
        return Finding("no-mesh-config", f"{_COULD_NOT}: the client's sidecar does not take its connection", [
            f"fortio's connection to {f.record} (the wildcard record) timed out or was refused: no sidecar took it "
            "over, so the client's sidecar has no mesh configuration for the host. Usually the client's service "
            f"account lacks {stack_outputs.TRAFFIC_DIRECTOR_CLIENT_ROLE} on the mesh project {f.mesh_project}, and "
            f"the sidecar logs \"Permission '{stack_outputs.GET_CONFIGS_PERMISSION}' denied\". If that role was "
            "granted in the last minutes, IAM may still be propagating (typically 2 minutes, up to 7): run the "
            "check again. Otherwise the revision was deployed without the mesh, no VirtualService routes the "
            "host, or the destination accepts but never answers."], f.sidecar())
    if _GO_RESET.search(error):
        return Finding("reset", f"{_COULD_NOT}: the connection was closed without an answer", [
            "Something accepted fortio's connection, then reset or closed it before any HTTP answer. The mesh "
            "routes HTTP only on a Service port declared as HTTP (port name `http` or `http-...`, or appProtocol "
            "http); on any other port it relays raw TCP, and a destination that drops the connection shows as "
            "this. Check the Service's port, the workload, and the proxy status."],
            f.routes()[1:] + [f.endpoints()] + f.targets.proxy_status)
    return Finding("fortio-other", f"{_COULD_NOT}: {error}", [
        "fortio's client failed with the error above, which this check does not recognise; the client's log "
        "has the sidecar's side."], [f.logs()] + f.targets.proxy_status)


def _from_relayed(o: Outcome, f: _Facts) -> Optional[Finding]:
    """What an answer relayed from the mesh says, or None if it says nothing specific."""
    status, body = o.status or 0, o.body
    if _RBAC.search(body):
        return Finding("rbac", "the mesh refused the request (RBAC: access denied)", [
            "An Istio AuthorizationPolicy in the destination Service's namespace does not allow the Cloud Run "
            "client's identity (its service account)."],
            ["kubectl get authorizationpolicies.security.istio.io -A"], note=f"client identity {f.sa}")
    if _NO_ENDPOINTS.search(body):
        return Finding("no-endpoints", "the destination Service has no ready endpoints (no healthy upstream)", [
            "The client's sidecar has a route for the host, but the Service has no ready endpoints in the mesh: "
            "its pods are not ready, not selected by the Service, or not in the mesh."],
            [f.endpoints()] + f.routes())
    if _UPSTREAM.search(body):
        return Finding("upstream", "the sidecar cannot reach the destination (upstream connect error)", [
            "The client's sidecar has a route for the host but cannot reach its destination. The VirtualService "
            "must be in the same namespace as the Service (its destination is a short name, resolved in the "
            "VirtualService's namespace), name the Service's port, and the workload must answer on it."],
            f.routes() + [f.endpoints()])
    if o.header(_UPSTREAM_TIME):
        return Finding("destination", f"the route works: the destination itself answered HTTP {status}", [
            f"The answer passed through the mesh to the workload (it carries Envoy's {_UPSTREAM_TIME} header). "
            "The guide's check needs the destination to answer 200 on /."], f.routes()[1:])
    if status == 404 and not body.strip():
        return Finding("no-route", "the client's sidecar has no route for the host (Envoy's 404)", [
            "Envoy answers 404 with an empty body when no route matches: no VirtualService for the host on the "
            "external-mesh gateway reached the mesh, or it is in another namespace than the Service."],
            f.routes() + f.targets.proxy_status)
    if status == 404:
        return Finding("not-fortio", f"nothing answers {FETCH} on the client (HTTP 404 from the service itself)", [
            "The client does not run fortio (`cloudrun-mesh:clients[].image` must be a fortio image such as "
            "fortio/fortio), or the URL is not the service's."],
            [f.describe_run("value(spec.template.spec.containers[0].image)")])
    return None


def explain(result: PairResult, targets: Targets, tokens: Tokens, grace: float) -> Finding:
    pair, last, follow = result.pair, result.last, result.follow_up
    f = _Facts(pair, targets)
    if last is None:
        return Finding("no-attempt", "not tried: no attempt fitted before the deadline", [
            "No worker was free before the deadline for these pairs (pairs are checked a bounded number at a "
            "time), or the deadline is shorter than one request. Run again with a longer --deadline, or check "
            "the stack in parts."])
    base = f.client.base_url

    if last.kind == "connect":
        return Finding("unreachable", "Cloud Run was not reached", [
            "The client's URL did not answer HTTP: check `cloudRunUrls`, your network or proxy settings, and "
            "that the service exists and is ready."], [f.describe_run("value(status.url,status.conditions[0].message)")])
    if last.kind == "protocol":
        return Finding("not-http", "the client's URL does not answer with HTTP", [
            "It is not a Cloud Run service, or something between you and it (a proxy, a captive portal) "
            "interferes. Check `cloudRunUrls`."], [f.describe_run("value(status.url)")])
    if last.status == 401:
        return Finding("token", "Cloud Run refused the identity token (HTTP 401)",
                       token_problems(tokens.get(base), base),
                       ["gcloud auth login",
                        f"gcloud auth print-identity-token --audiences={q(base)}   # for a service account: the URL "
                        "as audience"])
    if cloud_run_refused(last):
        member = invoker_member(tokens.get(base))
        who = member.split(":", 1)[1] if not member.startswith('"') else "the caller"
        return Finding("invoker", f"Cloud Run refused the caller (HTTP 403): {who} lacks {stack_outputs.INVOKER_ROLE}", [
            f"The program grants {stack_outputs.INVOKER_ROLE} only to the members listed in "
            "`cloudrun-mesh:clients[].invokers`: add the member there and run `pulumi up`, or grant it directly. "
            f"The check retried for {grace:g} s; IAM changes typically propagate in 2 minutes, up to 7, so run it "
            "again if the grant is more recent."],
            [stack_outputs.invoker_binding_command(q(pair.client), q(f.region), q(f.project),
                                                   member if member.startswith('"') else q(member))])
    if last.status and 300 <= last.status < 400:
        return Finding("redirect", f"the client's URL answered with a redirect (HTTP {last.status})", [
            "Cloud Run does not redirect, so the URL is not the service's. The redirect was not followed, so the "
            "token went nowhere else."], [f.describe_run("value(status.url)")],
            note=f"to {last.header('location') or 'nowhere'}")
    if last.status == 429:
        return Finding("rate", "Cloud Run is limiting requests (HTTP 429)", [
            "No instance was available, for example at the service's maximum instance count. Run the check again "
            "in a minute."], [f.describe_run("value(spec.template.metadata.annotations)")])

    # fortio was reached: the fetch2 follow-up names the cause when it ran.
    error = fortio_error(follow)
    inner = _from_fortio_error(error, f) if error else (
        _from_relayed(follow, f) if follow is not None and follow.kind == "http" and not follow.ok else None)
    # Cloud Run downgrades requests to HTTP/1 for the container unless the service is set to end-to-end
    # HTTP/2 (h2c), `gcloud run services update SERVICE --use-http2`, whose boolean flag gcloud negates
    # as --no-use-http2 (https://cloud.google.com/run/docs/configuring/http2).
    if last.status == 505 and _HTTP2 in last.body:
        works = follow is not None and follow.ok
        return Finding("http2", "the client serves HTTP/2 end to end, so /fortio/fetch/ answers 505", [
            f"fortio's {FETCH} takes over the HTTP/1.1 connection and answers 505 \"{_HTTP2}\" when the request "
            "arrives over HTTP/2, as it does when the Cloud Run service uses end-to-end HTTP/2 (h2c). The guide's "
            "check needs HTTP/1.1 to the container: turn end-to-end HTTP/2 off."
            + (f" Through {FETCH2_PATH} the route answered 200: the mesh itself works." if works else
               (f" Through {FETCH2_PATH}: {inner.title}." if inner else ""))],
            [f"gcloud run services update {q(pair.client)} --region={q(f.region)} --project={q(f.project)} "
             "--no-use-http2"]
            + (inner.commands if inner else []))
    if inner is not None:
        return inner
    if follow is not None and follow.ok:
        return Finding("recovered", f"the route answered 200 through {FETCH2_PATH} right after {FETCH} failed", [
            "The sidecar probably received its configuration during the check, or the failure is intermittent: "
            "run the check again."], [f.logs()] + f.targets.proxy_status)
    if follow is not None and follow.kind == "http" and not error:
        return Finding("relayed", f"the mesh answered HTTP {follow.status}", [
            f"fortio completed its request through {FETCH2_PATH} and relayed this answer, so the client's sidecar "
            "routes the host; the answer comes from the mesh or from the destination. The client's log and the "
            "destination's logs have the details."], [f.logs()] + f.routes()[1:] + f.targets.proxy_status)
    # No usable follow-up: the fetch's own answer is all there is.
    relayed = _from_relayed(last, f) if _RBAC.search(last.body) or _NO_ENDPOINTS.search(last.body) else None
    if relayed is not None:
        return relayed
    if last.kind == "timeout":
        return Finding("timeout", f"no answer from {FETCH} within the request timeout", [
            f"fortio waits up to a minute for the destination, so a hang usually means its connection to {f.record} "
            "is not taken over by the client's sidecar: no mesh configuration yet (a new revision needs a moment) "
            f"or none at all, most often because the client's service account lacks "
            f"{stack_outputs.TRAFFIC_DIRECTOR_CLIENT_ROLE} on the mesh project {f.mesh_project}. It can also be a "
            "destination that accepts but does not answer."], f.sidecar())
    return Finding("unknown", f"HTTP {last.status} from the client's {FETCH}", [
        f"Either fortio could not complete the fetch (it then closes the connection and Cloud Run's front end "
        f"answers in its place) or the mesh answered this; {FETCH2_PATH} did not tell which. In order of likelihood: "
        "the client's sidecar has no mesh configuration (its service account lacks "
        f"{stack_outputs.TRAFFIC_DIRECTOR_CLIENT_ROLE} on {f.mesh_project}); the VirtualService for the host is "
        "missing or in another namespace than the Service; the destination fails. The sidecar's errors are in the "
        "client's log."], f.routes() + f.sidecar())


# --------------------------------------------------------------------------------------------
# One diagnosis per distinct cause
# --------------------------------------------------------------------------------------------


def _seen(result: PairResult) -> str:
    counts: dict[str, int] = {}
    for o in result.outcomes[:-1]:
        counts[o.code] = counts.get(o.code, 0) + 1
    return "; earlier " + ", ".join(f"{k} x{v}" for k, v in counts.items()) if counts else ""


def _answer(o: Outcome, limit: int) -> str:
    if o.kind != "http":
        return o.note
    text = o.excerpt(limit)
    return f"{o.status} {text!r}" if text else f"{o.status} (empty body)"


def evidence(result: PairResult, finding: Finding) -> str:
    last, follow = result.last, result.follow_up
    if last is None:
        return f"{result.pair.label}: not tried"
    n = len(result.outcomes)
    which = f"the last of {n} attempts{_seen(result)}" if n > 1 else "its only attempt"
    text = f"{result.pair.label}: {FETCH} {_answer(last, 120)} ({which})"
    if fortio_error(follow) and last.kind == "http" and last.status and last.status >= 500:
        text += ": fortio closed the connection without answering and Cloud Run's front end answered in its place"
    elif fortio_error(follow) and last.kind == "timeout":
        text += ": fortio waits up to a minute for the destination"
    if follow is not None:
        text += f"; {FETCH2_PATH} {_answer(follow, 300)}"
    if result.stopped:
        text += f"; stopped early: {result.stopped}"
    if finding.note:
        text += f"; {finding.note}"
    check = result.pair.uptime_check
    if check == SECRET_MARKER:
        text += "; its uptime check is hidden as \"[secret]\" in the outputs"
    elif check == UNKNOWN_MARKER:
        text += "; its uptime check is not known yet (the stack's last update did not finish it)"
    elif check:
        text += f"; uptime check {check}"
    return text


def diagnose_all(failed: list[PairResult], targets: Targets, tokens: Tokens, grace: float) -> list[list[str]]:
    """One block per distinct cause, naming the pairs it affects, with their commands merged."""
    groups: dict[tuple[str, str, tuple[str, ...]], list[tuple[PairResult, Finding]]] = {}
    for r in failed:
        finding = explain(r, targets, tokens, grace)
        groups.setdefault((finding.cause, finding.title, tuple(finding.why)), []).append((r, finding))
    blocks = []
    for i, members in enumerate(groups.values(), 1):
        first = members[0][1]
        labels = [r.pair.label for r, _ in members]
        more = len(labels) - MAX_LISTED
        lines = [f"Diagnosis {i} of {len(groups)}: {first.title}",
                 f"  Pairs ({len(labels)}): {', '.join(labels[:MAX_LISTED])}" + (f" and {more} more" if more > 0 else "")]
        lines += [f"    {evidence(r, finding)}" for r, finding in members[:MAX_LISTED]]
        if more > 0:
            lines.append(f"    ({more} more pairs with the same cause are in the summary above)")
        lines += [f"  {w}" for w in first.why]
        commands = list(dict.fromkeys(c for r, finding in members[:MAX_LISTED]
                                      for c in finding.commands + _Facts(r.pair, targets).uptime()))
        if commands:
            lines.append("  Next:")
            lines += [f"    $ {c}" for c in commands]
        if any(_Facts(r.pair, targets).placeholders for r, _ in members):
            lines.append(f"  ({PROJECT_PLACEHOLDER} and {REGION_PLACEHOLDER} are placeholders: the stack has no "
                         "`loggingFilters` output yet; `pulumi up` with this version adds it.)")
        blocks.append(lines)
    return blocks

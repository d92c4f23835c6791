"""Example principals: recognised so that a preview shows them and `pulumi up` refuses them.

A principal is a placeholder when its domain is reserved for examples and can never be a real
identity: example.com, example.net, example.org and their subdomains (RFC 2606, section 3), and the
top-level domains .example, .test, .invalid and .localhost (RFC 2606 section 2, RFC 6761 section 6).
Service accounts have no reserved domain of their own (`<id>@<project>.iam.gserviceaccount.com`), so
this program reserves one marker: a project id `example` or beginning with `example-` in a
service-account email (`verify-dev@example-ci.iam.gserviceaccount.com`). Never name a real project
`example-...` for identities this program grants roles to.
"""

from __future__ import annotations

import re
from typing import Optional

_RESERVED_SLDS = ("example.com", "example.net", "example.org")
_RESERVED_TLDS = ("example", "test", "invalid", "localhost")
_SA_MARKER = re.compile(r"example(-[a-z0-9-]*)?\.iam\.gserviceaccount\.com")


def placeholder_reason(member: str) -> Optional[str]:
    """Why an IAM principal is an example, or None for a real-looking one."""
    _kind, _, rest = member.partition(":")
    domain = rest.rpartition("@")[2] if "@" in rest else rest
    domain = domain.lower().rstrip(".")
    if _SA_MARKER.fullmatch(domain):
        return "its project `example-...` marks an example service account"
    if any(domain == d or domain.endswith("." + d) for d in _RESERVED_SLDS):
        return "its domain is reserved for examples by RFC 2606"
    if domain.rpartition(".")[2] in _RESERVED_TLDS:
        return "its top-level domain is reserved by RFC 2606 and RFC 6761"
    return None

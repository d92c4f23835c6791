"""Stack outputs derived from several components."""

from __future__ import annotations

from typing import Mapping

import pulumi

FETCH_PATH = "/fortio/fetch/"


def fetch_url(url: str, host: str) -> str:
    """The guide's check: fortio in the Cloud Run client fetches `host` through the mesh."""
    return f"{url.rstrip('/')}{FETCH_PATH}{host}"


def fetch_urls(
    urls: Mapping[str, pulumi.Input[str]], hosts: Mapping[str, pulumi.Input[str]]
) -> pulumi.Output[dict[str, dict[str, str]]]:
    """client -> service -> `<url>/fortio/fetch/<host>`."""
    return pulumi.Output.all(dict(urls), dict(hosts)).apply(
        lambda a: {client: {svc: fetch_url(url, host) for svc, host in a[1].items()} for client, url in a[0].items()}
    )

"""Facts read from a provider's source are only as good as the version they were read at: each table
records it, and an SDK upgrade (`make upgrade`) fails here until someone re-reads the cited sources."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from cloudrun_mesh import adoption, sdk_private
from cloudrun_mesh.offline import replacements

TABLES = {
    "cloudrun_mesh/adoption.py (import id formats)": adoption.CHECKED_AGAINST,
    "cloudrun_mesh/offline/replacements.py (ForceNew facts)": replacements.CHECKED_AGAINST,
    "cloudrun_mesh/sdk_private.py (private SDK names)": sdk_private.CHECKED_AGAINST,
}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_each_cited_fact_was_checked_against_the_installed_sdk(table):
    stale = {pkg: (checked, version(pkg)) for pkg, checked in TABLES[table].items() if version(pkg) != checked}
    assert not stale, (
        f"{table}: checked against {stale} (checked, installed): re-read the cited sources for the "
        "installed version, correct the facts, then update CHECKED_AGAINST")

"""The regions Cloud Run serves, for `gcp:region` and `clients[i].region`.

Source: "Cloud Run locations", https://cloud.google.com/run/docs/locations (Tier 1 and Tier 2 pricing
lists), as published when read on 2026-12-02. Google adds regions: a value missing from the list is a
warning (it may be newer than the list), unless it is a near miss of a listed region (`us-centrl1`),
which is an error with a did-you-mean. Update the list and its date together.
"""

from __future__ import annotations

import difflib
import re
from typing import Optional

CLOUD_RUN_REGIONS_DATE = "2026-12-02"
CLOUD_RUN_REGIONS = (
    # Tier 1
    "asia-east1", "asia-northeast1", "asia-northeast2", "europe-north1", "europe-southwest1", "europe-west1",
    "europe-west4", "europe-west8", "europe-west9", "me-west1", "us-central1", "us-east1", "us-east4", "us-east5",
    "us-south1", "us-west1",
    # Tier 2
    "africa-south1", "asia-east2", "asia-northeast3", "asia-southeast1", "asia-southeast2", "asia-south1",
    "asia-south2", "australia-southeast1", "australia-southeast2", "europe-central2", "europe-west10",
    "europe-west12", "europe-west2", "europe-west3", "europe-west6", "me-central1", "me-central2",
    "northamerica-northeast1", "northamerica-northeast2", "southamerica-east1", "southamerica-west1", "us-west2",
    "us-west3", "us-west4",
)
_AREA = re.compile(r"([a-z]+(?:-[a-z]+)+)[0-9]+")
_KNOWN_AREAS = frozenset(m.group(1) for r in CLOUD_RUN_REGIONS if (m := _AREA.fullmatch(r)))


def check_region(value: str) -> tuple[Optional[str], Optional[str]]:
    """(error, warning) for a region-shaped value: a near miss of a listed region is an error with the
    region meant; a new number in a known area (`europe-north2`) or anything else unlisted, a warning."""
    if value in CLOUD_RUN_REGIONS:
        return None, None
    m = _AREA.fullmatch(value)
    if m is None or m.group(1) not in _KNOWN_AREAS:
        close = difflib.get_close_matches(value, CLOUD_RUN_REGIONS, n=1, cutoff=0.8)
        if close:
            return f"is not a region Cloud Run serves (did you mean {close[0]!r}?)", None
    return None, (f"{value!r} is not in the list of Cloud Run regions of {CLOUD_RUN_REGIONS_DATE} "
                  "(https://cloud.google.com/run/docs/locations); if it is newer than the list, ignore this warning")

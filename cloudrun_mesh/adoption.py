"""Adopting a setup made by hand with Google's guide: import ids and what is ignored while importing.

With ``cloudrun-mesh:adopt`` the components register the objects the guide's commands create with
Pulumi's ``import`` resource option instead of creating them: Pulumi reads the live object with the
given id and takes it over. Pulumi refuses such an import when the program's inputs differ from the
live object (CLIs before pulumi/pulumi#19339), or imports it and then updates it in the same run
(later CLIs): https://www.pulumi.com/docs/iac/concepts/resources/options/import/ (source:
pulumi/docs content/docs/iac/concepts/resources/options/import.md). Either way, an adopting
``pulumi up`` must describe each object as it is. So the program declares what the guide's commands
set where it is known (``GUIDE_ZONE_DESCRIPTION``; the record's name, type, TTL and address come
from the stack's config, whose defaults are the guide's), and lists in ``ignore_changes`` the fields
it cannot know or means to change: an ignored field takes the live value during the import (import
with ``ignoreChanges``: https://github.com/pulumi/pulumi/issues/5878, pulumi/pulumi#5976), so the
adopting run changes nothing in the cloud. Once ``adopt`` is false again the next run applies the
program's values to those fields as an ordinary, reviewable update.

Each id follows the provider's documented import format, cited beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import pulumi

# The SDK versions whose "## Import" sections the id formats below were read from;
# tests/test_cited_versions.py fails when the installed SDK differs.
CHECKED_AGAINST = {"pulumi-gcp": "10.2.0", "pulumi-kubernetes": "4.34.2"}

# `gcloud dns managed-zones create ZONE_NAME --description="zone for service mesh routes"
# --dns-name=DNS_SUFFIX. --networks=default --visibility=private`, step 1 of "Configure a Custom Domain
# for VirtualService hosts": https://cloud.google.com/service-mesh/docs/route-from-cloud-run
GUIDE_ZONE_DESCRIPTION = "zone for service mesh routes"

# The Cloud Run service the guide deploys with `gcloud beta run deploy ... --mesh --network` runs as
# whatever identity gcloud chose (the project's default compute service account unless
# --service-account was given), with a revision template, launch stage (ALPHA or BETA, from the gcloud
# track used) and client fields the program cannot know. `deletionProtection` is a provider-side
# flag that the API does not hold. The program changes the identity to the client's dedicated service
# account, which is a new revision: ignored while adopting, rolled out by the next `pulumi up`.
CLOUD_RUN_IGNORED = ("client", "clientVersion", "deletionProtection", "ingress", "launchStage", "template")

# The guide's VirtualService (its name and spec are the reader's), its sample Deployment (no probes,
# requests or hardening) and Service (no explicit protocol) differ in `spec` from what the program
# declares; their names and namespaces are the same. Ignored while adopting, applied afterwards.
KUBERNETES_IGNORED = ("spec",)


def _text(*parts: Any) -> tuple[str, ...]:
    # An import id is plain text the engine sends to the provider: it cannot wait for an Output.
    for part in parts:
        if not isinstance(part, str) or not part:
            raise TypeError(f"an import id needs plain, non-empty strings; got {part!r}")
    return parts


def zone_id(project: object, zone: object) -> str:
    # `projects/{{project}}/managedZones/{{name}}`: "## Import" of pulumi_gcp/dns/managed_zone.py
    # (pulumi-gcp 10.2.0).
    project, zone = _text(project, zone)
    return f"projects/{project}/managedZones/{zone}"


def record_set_id(project: object, zone: object, name: object, type_: object) -> str:
    # `projects/{{project}}/managedZones/{{zone}}/rrsets/{{name}}/{{type}}`, "The record name must include
    # the trailing dot": "## Import" of pulumi_gcp/dns/record_set.py (pulumi-gcp 10.2.0).
    project, zone, name, type_ = _text(project, zone, name, type_)
    if not name.endswith("."):
        raise ValueError(f"a record set's import id needs the name with its trailing dot; got {name!r}")
    return f"projects/{project}/managedZones/{zone}/rrsets/{name}/{type_}"


def address_id(project: object, region: object, name: object) -> str:
    # `projects/{{project}}/regions/{{region}}/addresses/{{name}}`: "## Import" of
    # pulumi_gcp/compute/address.py (pulumi-gcp 10.2.0).
    project, region, name = _text(project, region, name)
    return f"projects/{project}/regions/{region}/addresses/{name}"


def cloud_run_service_id(project: object, location: object, name: object) -> str:
    # `projects/{{project}}/locations/{{location}}/services/{{name}}`: "## Import" of
    # pulumi_gcp/cloudrunv2/service.py (pulumi-gcp 10.2.0).
    project, location, name = _text(project, location, name)
    return f"projects/{project}/locations/{location}/services/{name}"


def kubernetes_id(namespace: object, name: object) -> str:
    # `<namespace>/<name>` for a namespaced object: the provider gives every object the id
    # `fqName(namespace, name)` = "namespace/name" and reads an imported id back with `parseFqName`,
    # which splits it on "/" (pulumi/pulumi-kubernetes provider/pkg/provider/util.go, commit
    # 2e462e75e8e240b5c46649726dc5a5e9e22c3bd9); the SDK says the same of an id
    # (pulumi_kubernetes/apiextensions/CustomResource.py: "Takes the form <namespace>/<name> or
    # <name>", pulumi-kubernetes 4.34.2). Written out in full so a namespace is never assumed.
    namespace, name = _text(namespace, name)
    return f"{namespace}/{name}"


def child_options(parent: pulumi.Resource, import_id: Optional[str], ignored: Sequence[str] = ()) -> pulumi.ResourceOptions:
    """Options of a component's child: exactly ``parent=`` when not adopting, so nothing else changes."""
    if import_id is None:
        return pulumi.ResourceOptions(parent=parent)
    return pulumi.ResourceOptions(parent=parent, import_=import_id, ignore_changes=list(ignored) or None)

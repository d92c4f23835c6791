"""Which input changes make `pulumi up` replace a resource, per resource type the program registers.

Taken from the providers' own schemas, not guessed: pulumi-gcp is bridged from
terraform-provider-google-beta, which magic-modules generates. A field marked ``immutable: true`` in
``mmv1/products/<product>/<Resource>.yaml`` (or a resource marked ``immutable: true`` as a whole,
except fields with their own ``update_url``) becomes ``ForceNew`` (``IsForceNew`` in
``mmv1/api/type.go``), and ``ForceNew`` is what the bridge reports as a replacement. Every generated
resource with a project also gets a ``ForceNew`` ``project`` (``mmv1/templates/terraform/resource.go.tmpl``).
Handwritten resources declare ``ForceNew`` in their Go schema under ``mmv1/third_party/terraform/``.
Read at GoogleCloudPlatform/magic-modules commit d57784406a440397f4edea072ae4f606a57e172d.

pulumi-kubernetes replaces an object whose ``metadata.name`` or ``metadata.namespace`` changes and,
per kind, when a field the API server will not update changes (``forceNew`` in
``provider/pkg/provider/diff.go``, pulumi/pulumi-kubernetes commit
94977969d64112b04e19945818a7d5d5f38f631d); its provider is replaced when the active cluster of its
kubeconfig changes (``DiffConfig`` in ``provider/pkg/provider/provider.go``), which replaces every
object it manages.

Paths are the engine's input names (camelCase), dotted for nested fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

MAGIC_MODULES = "GoogleCloudPlatform/magic-modules@d57784406a440397f4edea072ae4f606a57e172d"
PULUMI_KUBERNETES = "pulumi/pulumi-kubernetes@94977969d64112b04e19945818a7d5d5f38f631d"
# The SDK versions the facts above were checked against (each rule's input names are also checked
# against that SDK's *Args by tests/test_plan_diff.py); tests/test_cited_versions.py fails when the
# installed SDK differs, so an upgrade re-reads the sources before the table is trusted again.
CHECKED_AGAINST = {"pulumi-gcp": "10.2.0", "pulumi-kubernetes": "4.34.2"}


@dataclass(frozen=True)
class Rule:
    forces: tuple[str, ...] = ()
    """Input paths whose change replaces the resource."""
    all_but: Optional[tuple[str, ...]] = None
    """The resource is immutable as a whole: a change of any input but these replaces it."""
    source: str = ""
    note: str = ""
    """What a reviewer should know when a resource of this type is replaced."""
    deleted: str = ""
    """What a reviewer should know when one is deleted and nothing takes its place."""

    def note_for(self, replaced: bool) -> str:
        return self.note if replaced else self.deleted

    def forcing(self, changed: Iterable[str]) -> list[str]:
        """The changed paths (``a.b[0].c``) that force a replacement."""
        out = []
        for path in changed:
            top = re.split(r"[.\[]", path, maxsplit=1)[0]
            if self.all_but is not None:
                if top not in self.all_but:
                    out.append(path)
            elif any(_within(path, f) or _within(f, path) for f in self.forces):
                out.append(path)
        return out


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


_K8S_IDENTITY = ("metadata.name", "metadata.namespace")  # diff.go: metadataForceNewProperties(".metadata")

TABLE: dict[str, Rule] = {
    # mmv1/products/dns/ManagedZone.yaml: name, dnsName, visibility, reverseLookup and
    # serviceDirectoryConfig are `immutable: true`; project from resource.go.tmpl. (description and
    # privateVisibilityConfig update in place.)
    "gcp:dns/managedZone:ManagedZone": Rule(
        forces=("name", "dnsName", "visibility", "reverseLookup", "serviceDirectoryConfig", "project"),
        source=f"{MAGIC_MODULES}:mmv1/products/dns/ManagedZone.yaml",
        note="a new zone: every client loses name resolution between the delete and the create",
        deleted="the zone goes: clients of the network no longer resolve names under its suffix",
    ),
    # mmv1/third_party/terraform/services/dns/resource_dns_record_set.go: managed_zone, name, project
    # (and routing_policy.*.health_check, which the program never sets) are ForceNew; ttl, type and
    # rrdatas update in place.
    "gcp:dns/recordSet:RecordSet": Rule(
        forces=("managedZone", "name", "project"),
        source=f"{MAGIC_MODULES}:mmv1/third_party/terraform/services/dns/resource_dns_record_set.go",
    ),
    # mmv1/products/compute/Address.yaml: `immutable: true` at the resource level; only labels has
    # an update_url (setLabels), so any other change replaces the reservation.
    "gcp:compute/address:Address": Rule(
        all_but=("labels",),
        source=f"{MAGIC_MODULES}:mmv1/products/compute/Address.yaml",
        note="a new reservation: the wildcard record moves to the new address",
        deleted="the reservation is released: another resource may take the address",
    ),
    # mmv1/third_party/terraform/services/resourcemanager/resource_google_service_account.go:
    # account_id and project are ForceNew; display_name and description update in place.
    "gcp:serviceaccount/account:Account": Rule(
        forces=("accountId", "project"),
        source=f"{MAGIC_MODULES}:mmv1/third_party/terraform/services/resourcemanager/resource_google_service_account.go",
        note="a new identity: its grants are re-created and the Cloud Run revision runs as the new account",
        deleted="the identity goes, and every grant to it",
    ),
    # mmv1/third_party/terraform/tpgiamresource/resource_iam_member.go: role, member and condition
    # are ForceNew; the parent's project from IamProjectSchema in
    # mmv1/third_party/terraform/services/resourcemanager/iam_project.go.tmpl.
    "gcp:projects/iAMMember:IAMMember": Rule(
        forces=("project", "role", "member", "condition"),
        source=f"{MAGIC_MODULES}:mmv1/third_party/terraform/tpgiamresource/resource_iam_member.go",
    ),
    # mmv1/products/cloudrunv2/Service.yaml: location (parameter), name and tags are
    # `immutable: true`; project from resource.go.tmpl. Everything else rolls out a new revision.
    "gcp:cloudrunv2/service:Service": Rule(
        forces=("name", "location", "project", "tags"),
        source=f"{MAGIC_MODULES}:mmv1/products/cloudrunv2/Service.yaml",
        note="a new service with a new URL: callers of the old URL fail once it is deleted",
        deleted="the service and its URL go: its callers fail",
    ),
    # IAM members generated from Service.yaml's iam_policy: every parent parameter (project,
    # location, name) is ForceNew in mmv1/templates/terraform/iam_policy.go.tmpl, and role, member,
    # condition in resource_iam_member.go as above.
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": Rule(
        forces=("project", "location", "name", "role", "member", "condition"),
        source=f"{MAGIC_MODULES}:mmv1/templates/terraform/iam_policy.go.tmpl",
    ),
    # mmv1/products/monitoring/UptimeCheckConfig.yaml (read at magic-modules commit
    # 059355fc2a4ae5032af00302908230de83501071): period, checkerType, httpCheck.requestMethod,
    # monitoredResource (type and labels) and resourceGroup are `immutable: true`; project from
    # resource.go.tmpl. The rest (display name, timeout, regions, path, auth, accepted codes, labels) is
    # a PATCH with an update mask. A new client URL is a new `host` label, so a new check.
    "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": Rule(
        forces=("period", "checkerType", "httpCheck.requestMethod", "monitoredResource", "resourceGroup", "project"),
        source="GoogleCloudPlatform/magic-modules@059355fc2a4ae5032af00302908230de83501071:"
        "mmv1/products/monitoring/UptimeCheckConfig.yaml",
        note="a new check with a new id: the alert policy follows it by host; its history starts again",
        deleted="the pair is no longer probed: a broken route pages no one",
    ),
    # mmv1/products/monitoring/AlertPolicy.yaml (read at magic-modules commit
    # 04bf6136b42a75678e8262201de8033b72737424): no field is immutable, every change is a PATCH with an
    # update mask; project from resource.go.tmpl.
    "gcp:monitoring/alertPolicy:AlertPolicy": Rule(
        forces=("project",),
        source="GoogleCloudPlatform/magic-modules@04bf6136b42a75678e8262201de8033b72737424:"
        "mmv1/products/monitoring/AlertPolicy.yaml",
        note="a new policy: incidents open on the old one close with it",
        deleted="nothing pages when a mesh route breaks",
    ),
    # diff.go: `deployment` = .spec.selector and its matchLabels/matchExpressions.
    "kubernetes:apps/v1:Deployment": Rule(
        forces=(*_K8S_IDENTITY, "spec.selector"),
        source=f"{PULUMI_KUBERNETES}:provider/pkg/provider/diff.go",
    ),
    # diff.go: core/v1 Service = .spec.clusterIP.
    "kubernetes:core/v1:Service": Rule(
        forces=(*_K8S_IDENTITY, "spec.clusterIP"),
        source=f"{PULUMI_KUBERNETES}:provider/pkg/provider/diff.go",
    ),
    # diff.go: no kind-specific fields; the name (a namespace has no namespace).
    "kubernetes:core/v1:Namespace": Rule(
        forces=_K8S_IDENTITY,
        source=f"{PULUMI_KUBERNETES}:provider/pkg/provider/diff.go",
        note="deleting a namespace deletes every object in it",
        deleted="deleting a namespace deletes every object in it",
    ),
    # A CustomResource: diff.go has no entry for networking.istio.io, so only name and namespace.
    "kubernetes:networking.istio.io/v1:VirtualService": Rule(
        forces=_K8S_IDENTITY,
        source=f"{PULUMI_KUBERNETES}:provider/pkg/provider/diff.go",
    ),
    # provider.go DiffConfig: kubeconfig, context or cluster replace the provider when the active
    # cluster changes (always, while the new value is unknown). The program's kubeconfig changes
    # only with the cluster it names, so any change is taken as a different cluster.
    "pulumi:providers:kubernetes": Rule(
        forces=("kubeconfig", "context", "cluster"),
        source=f"{PULUMI_KUBERNETES}:provider/pkg/provider/provider.go",
        note="a different cluster: every Kubernetes object of the stack is replaced with it",
    ),
    # A read (`.get`): looked up at every deploy, never created, replaced or deleted by Pulumi.
    "kubernetes:mesh.cloud.google.com/v1beta1:ControlPlaneRevision": Rule(
        source="pulumi/pulumi: a read resource is re-read at each deploy and only forgotten when dropped",
        note="read only: Pulumi never changes or deletes it",
    ),
}


def rule_for(type_: str) -> Optional[Rule]:
    return TABLE.get(type_)

"""The one table of values that providers compute, as a real deploy would return them.

Used by the mock engine for tests and for the offline plan. In preview mode the engine does not
know these values yet, and neither does the plan: they are shown as unknown. Reads and invokes do
answer in a real preview (from the cluster, from the GKE API), so the fake cloud answers them too,
for the program to evaluate; the offline plan then shows each invented value as a marker
(``STAND_INS``), never as the plausible literal the program was given.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

FAKE_PROJECT_NUMBER = "123456789012"
# The stack project's number as Resource Manager would answer `organizations.getProject` (the
# Monitoring service agent's address is built from it): a different number from the mesh project's, so
# that each shows its own marker.
FAKE_STACK_PROJECT_NUMBER = "987654321098"
FAKE_MESH_ID = "proj-123456789012-mesh"
FAKE_RESERVED_ADDRESS = "10.128.0.53"
FAKE_CLUSTER_ENDPOINT = "192.0.2.10"  # TEST-NET-1: documentation only, never routed
FAKE_CA = base64.b64encode(b"offline plan: not a certificate").decode()
FAKE_MESH_NAME = f"projects/{FAKE_PROJECT_NUMBER}/locations/global/meshes/{FAKE_MESH_ID}"

READ_FROM_CLUSTER = "<read from the cluster at deploy>"
READ_FROM_GKE = "<read from GKE at deploy>"
# The project a deploy of a stack without gcp:project gets from its environment (the offline plan's
# placeholder project stands for it: cloudrun_mesh.offline.plan.PLACEHOLDER_PROJECT).
PROJECT_AT_DEPLOY = "<gcp:project at deploy>"
READ_FROM_RESOURCE_MANAGER = "<project number, read from Resource Manager at deploy>"
# What Cloud Monitoring assigns when it creates an uptime check or an alert policy (the id in its name).
ASSIGNED_BY_MONITORING = "<assigned by Cloud Monitoring at deploy>"
MARKERS = (READ_FROM_CLUSTER, READ_FROM_GKE, PROJECT_AT_DEPLOY, READ_FROM_RESOURCE_MANAGER, ASSIGNED_BY_MONITORING)

# Invented literal -> the marker the offline plan shows instead, longest first so that a mesh name
# becomes one marker rather than a name with a marker inside.
STAND_INS: dict[str, str] = {
    FAKE_MESH_NAME: READ_FROM_CLUSTER,  # the ControlPlaneRevision annotation
    FAKE_MESH_ID: READ_FROM_CLUSTER,
    FAKE_PROJECT_NUMBER: READ_FROM_CLUSTER,  # the mesh project, taken from the mesh name
    f"https://{FAKE_CLUSTER_ENDPOINT}": READ_FROM_GKE,  # the kubeconfig's server
    FAKE_CLUSTER_ENDPOINT: READ_FROM_GKE,
    FAKE_CA: READ_FROM_GKE,  # the kubeconfig's certificate-authority-data
    FAKE_STACK_PROJECT_NUMBER: READ_FROM_RESOURCE_MANAGER,  # organizations.getProject's number
}


def stand_ins() -> tuple[tuple[str, str], ...]:
    return tuple(sorted(STAND_INS.items(), key=lambda item: -len(item[0])))


class NoFakeError(LookupError):
    """The program called a function the fake cloud does not know: add it to this table on purpose."""


# What a provider computes for one resource (or an invoke answers): the engine's property map, whose
# values are whatever JSON the provider returns.
Computed = dict[str, Any]
ComputeFn = Callable[[str, Mapping[str, Any], Mapping[str, str]], Computed]


def _project(inputs: Mapping[str, Any], config: Mapping[str, str]) -> str:
    return inputs.get("project") or config.get("gcp:project") or "offline-project"


def _suffix(name: str) -> str:
    # Stable, like a provider's auto-name suffix, but deterministic for golden files.
    return hashlib.sha256(name.encode()).hexdigest()[:7]


def _account(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    email = f"{inputs['accountId']}@{_project(inputs, config)}.iam.gserviceaccount.com"
    return {
        "email": email,
        "member": f"serviceAccount:{email}",
        "name": f"projects/{_project(inputs, config)}/serviceAccounts/{email}",
        "uniqueId": str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)).zfill(21)[:21],
    }


def _cloud_run(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    uri = f"https://{inputs['name']}-{FAKE_PROJECT_NUMBER}.{inputs['location']}.run.app"
    return {"uri": uri, "urls": [uri], "latestReadyRevision": f"{inputs['name']}-00001-abc", "etag": "fake-etag"}


def _address(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    return {
        "name": inputs.get("name") or f"{name}-{_suffix(name)}",
        "address": inputs.get("address") or FAKE_RESERVED_ADDRESS,
        "selfLink": f"projects/{_project(inputs, config)}/regions/{inputs.get('region')}/addresses/{name}",
    }


def _zone(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    return {
        "managedZoneId": str(int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)),
        "nameServers": ["ns-gcp-private.googledomains.com."],
    }


def _etag(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    return {"etag": "BwYfakeETAG="}


def _control_plane_revision(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    return {
        "apiVersion": "mesh.cloud.google.com/v1beta1",
        "kind": "ControlPlaneRevision",
        "metadata": {
            "name": "asm-managed",
            "namespace": "istio-system",
            "annotations": {
                "mesh.cloud.google.com/external-mesh": FAKE_MESH_NAME
            },
        },
    }


def _uptime_check(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    # The id is Cloud Monitoring's to choose: a marker, never a plausible id.
    return {
        "name": f"projects/{_project(inputs, config)}/uptimeCheckConfigs/{ASSIGNED_BY_MONITORING}",
        "uptimeCheckId": ASSIGNED_BY_MONITORING,
    }


def _alert_policy(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    return {"name": f"projects/{_project(inputs, config)}/alertPolicies/{ASSIGNED_BY_MONITORING}"}


def _k8s_service(name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    return {"status": {"loadBalancer": {}}, "spec": {**(inputs.get("spec") or {}), "clusterIP": "10.96.12.34"}}


COMPUTED: dict[str, ComputeFn] = {
    "gcp:serviceaccount/account:Account": _account,
    "gcp:cloudrunv2/service:Service": _cloud_run,
    "gcp:compute/address:Address": _address,
    "gcp:dns/managedZone:ManagedZone": _zone,
    "gcp:projects/iAMMember:IAMMember": _etag,
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": _etag,
    "kubernetes:mesh.cloud.google.com/v1beta1:ControlPlaneRevision": _control_plane_revision,
    "kubernetes:core/v1:Service": _k8s_service,
    "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": _uptime_check,
    "gcp:monitoring/alertPolicy:AlertPolicy": _alert_policy,
}


def computed(type_: str, name: str, inputs: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    fn = COMPUTED.get(type_)
    return fn(name, inputs, config) if fn else {}


def resource_id(type_: str, name: str, inputs: Mapping[str, Any], computed_values: Mapping[str, Any]) -> str:
    meta = inputs.get("metadata") or computed_values.get("metadata") or {}
    if type_.startswith("kubernetes:") and meta.get("name"):
        return f"{meta.get('namespace', 'default')}/{meta['name']}"
    return computed_values.get("name") or inputs.get("name") or f"{name}-id"


def invoke(token: str, args: Mapping[str, Any], config: Mapping[str, str]) -> Computed:
    if token == "gcp:container/getCluster:getCluster":
        return {
            "name": args.get("name"),
            "location": args.get("location"),
            "project": args.get("project"),
            "endpoint": FAKE_CLUSTER_ENDPOINT,
            "masterAuths": [
                {
                    "clusterCaCertificate": FAKE_CA,
                    "clientCertificate": "",
                    "clientCertificateConfigs": [],
                    "clientKey": "",
                    "password": "",
                    "username": "",
                }
            ],
        }
    if token == "gcp:organizations/getProject:getProject":
        project = args.get("projectId") or config.get("gcp:project") or "offline-project"
        return {"projectId": project, "number": FAKE_STACK_PROJECT_NUMBER, "name": project}
    raise NoFakeError(f"the fake cloud has no answer for invoke {token}; add one to cloudrun_mesh/offline/fakes.py")

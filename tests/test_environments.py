"""Environments side by side: the stack files, whatever a team writes in them, can be deployed at
the same time. Each stack's physical names are computed from its registrations, as the real engine
would receive them, and no two stacks that can meet in one project, network or cluster may share one
(docs: "Environments"). A collision names both stacks and the object; nothing else fails.

Where two stacks meet: Google Cloud names within a project (the stack file's `gcp:project`; a stack
file without one can be deployed into any project, so it meets every other stack), private zones on
one network, Kubernetes objects and mesh hosts within a cluster (`cloudrun-mesh:cluster`; without it
the deploying machine's kubeconfig chooses, so it meets every other stack).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Optional

import pytest
from stackkit import DEV_LIKE, PROD_LIKE, evaluate_stack, scratch_project
from testkit import PROJECT, ROOT, shared_evaluation

from cloudrun_mesh.offline import harness

# Every stack file, including the ones added after this test was written.
STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))

ZONE = "gcp:dns/managedZone:ManagedZone"
RUN = "gcp:cloudrunv2/service:Service"
SA = "gcp:serviceaccount/account:Account"
ADDRESS = "gcp:compute/address:Address"
PROJECT_GRANT = "gcp:projects/iAMMember:IAMMember"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
VS = "kubernetes:networking.istio.io/v1:VirtualService"


def physical_names(run: harness.ProgramRun) -> dict[str, set[tuple]]:
    """What each managed resource is called in Google Cloud or in the cluster, by kind of name."""
    names: dict[str, set[tuple]] = defaultdict(set)

    def project(r):
        return r.inputs.get("project") or run.config["gcp:project"]

    for r in run.resources():
        if not r.custom or r.read or r.type.startswith("pulumi:providers:"):
            continue  # reads (the ControlPlaneRevision) and providers own no name
        i = r.inputs
        if r.type == ZONE:
            names["Cloud DNS zone"].add((project(r), i["name"]))
        elif r.type == RUN:
            names["Cloud Run service"].add((project(r), i["location"], i["name"]))
        elif r.type == SA:
            names["service account"].add((project(r), i["accountId"]))
        elif r.type == ADDRESS and i.get("name"):
            names["address"].add((project(r), i["region"], i["name"]))  # unnamed: auto-named, unique
        elif r.type == PROJECT_GRANT:
            names["project IAM grant"].add((i["project"], i["role"], i["member"]))
        elif r.type == INVOKER:
            names["Cloud Run IAM grant"].add((i["project"], i["location"], i["name"], i["role"], i["member"]))
        elif r.type.startswith("kubernetes:"):
            meta = i["metadata"]
            kind = r.type.rsplit(":", 1)[1]
            names["Kubernetes object"].add((meta.get("namespace", ""), kind, meta["name"]))
            if r.type == VS:
                names["mesh host"].update((host,) for host in i["spec"]["hosts"])
    return names


def dns_names(run: harness.ProgramRun) -> set[tuple[str, str]]:
    """(network, DNS name) of each private zone."""
    return {
        (net["networkUrl"], r.inputs["dnsName"].rstrip(".").lower())
        for r in run.resources(ZONE)
        for net in r.inputs["privateVisibilityConfig"]["networks"]
    }


def _nested(a: str, b: str) -> bool:
    return a == b or a.endswith("." + b) or b.endswith("." + a)


# Names that live in a cluster; every other kind carries its project (or network) in the name itself.
CLUSTER_KINDS = ("Kubernetes object", "mesh host")


def cluster_of(run: harness.ProgramRun) -> Optional[tuple[str, str, str]]:
    """(project, location, name) of the stack's `cloudrun-mesh:cluster`, or None: the kubeconfig's."""
    import json

    raw = run.config.get("cloudrun-mesh:cluster")
    if not raw:
        return None
    cluster = json.loads(raw)
    return (cluster.get("project") or run.config["gcp:project"], cluster["location"], cluster["name"])


def _same_cluster(r1: harness.ProgramRun, r2: harness.ProgramRun) -> bool:
    c1, c2 = cluster_of(r1), cluster_of(r2)
    return c1 is None or c2 is None or c1 == c2


def collisions(runs: dict[str, harness.ProgramRun]) -> list[str]:
    found = []
    names = {stack: physical_names(run) for stack, run in runs.items()}
    for (s1, n1), (s2, n2) in itertools.combinations(names.items(), 2):
        for kind in sorted(set(n1) & set(n2)):
            if kind in CLUSTER_KINDS and not _same_cluster(runs[s1], runs[s2]):
                continue
            for shared in sorted(n1[kind] & n2[kind]):
                found.append(f"{s1} and {s2} share the {kind} {shared}")
        # Cloud DNS: private zones on one network whose names are identical or nested overlap
        # (https://cloud.google.com/dns/docs/zones/zones-overview); the most specific one answers,
        # so one stack's wildcard would answer for the other's names.
        for (net1, d1), (net2, d2) in itertools.product(dns_names(runs[s1]), dns_names(runs[s2])):
            if net1 == net2 and _nested(d1, d2):
                found.append(f"{s1} and {s2} have overlapping private zones {d1}. and {d2}. on {net1}")
    return found


def evaluated_for_sharing(stack: str) -> harness.ProgramRun:
    """A stack file's program in its own `gcp:project`, or, when the file sets none, in the tests'
    project: such a stack can be deployed into any project, so it is compared as if it were in the
    same one as the others."""
    own = harness.stack_config(stack).get("gcp:project")
    return shared_evaluation(stack, {"gcp:project": own} if own else None)


@pytest.fixture(scope="module")
def stack_runs() -> dict[str, harness.ProgramRun]:
    return {stack: evaluated_for_sharing(stack) for stack in STACKS}


def test_every_stack_file_is_covered(stack_runs):
    assert set(stack_runs) == set(harness.stacks())


def test_the_stack_files_share_no_physical_name(stack_runs):
    assert collisions(stack_runs) == []


# -- the check itself, on stacks written here --------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return scratch_project(tmp_path_factory.mktemp("environments"), {"prod": PROD_LIKE, "dev": DEV_LIKE})




def test_two_stacks_with_their_own_names_do_not_collide(prod_run, dev_run):
    assert collisions({"prod": prod_run, "dev": dev_run}) == []
    kinds = set(physical_names(prod_run)) | set(physical_names(dev_run))
    assert {"Cloud DNS zone", "Cloud Run service", "service account", "project IAM grant", "Cloud Run IAM grant",
            "Kubernetes object", "mesh host"} <= kinds


def test_the_check_finds_every_kind_of_collision(prod_run):
    found = collisions({"prod": prod_run, "copy": prod_run})
    for kind in ("Cloud DNS zone", "Cloud Run service", "service account", "project IAM grant",
                 "Cloud Run IAM grant", "Kubernetes object", "mesh host"):
        assert any(line.startswith(f"prod and copy share the {kind} (") for line in found), kind
    assert "prod and copy share the Cloud DNS zone ('my-project', 'prod')" in found
    assert any("overlapping private zones mesh.private. and mesh.private." in line for line in found)


def test_a_suffix_under_another_stacks_suffix_is_an_overlap(project, prod_run):
    nested = evaluate_stack(project, "dev", {"cloudrun-mesh:dns": {"zone": "mesh-dev", "suffix": "dev.mesh.private"}})
    assert collisions({"prod": prod_run, "dev": nested}) == [
        f"prod and dev have overlapping private zones mesh.private. and dev.mesh.private. on "
        f"projects/{PROJECT}/global/networks/default"
    ]


def test_one_shared_object_is_named_with_both_stacks(project, prod_run):
    # The guide's sample in `default` in two stacks that can meet in one cluster: a real collision.
    sample = {"cloudrun-mesh:services": [{"name": "ads", "namespace": "default", "deploySample": True}]}
    other = evaluate_stack(project, "dev", sample)
    again = evaluate_stack(project, "dev", {**sample, "cloudrun-mesh:dns": {"zone": "mesh-qa", "suffix": "mesh-qa.private"},
                                       "cloudrun-mesh:clients": [{"name": "mesh-svc-qa"}]})
    found = collisions({"dev": other, "qa": again})
    assert found == [
        "dev and qa share the Kubernetes object ('default', 'Deployment', 'ads')",
        "dev and qa share the Kubernetes object ('default', 'Service', 'ads')",
        "dev and qa share the Kubernetes object ('default', 'VirtualService', 'ads-external')",
    ]


def test_stacks_in_different_projects_or_clusters_do_not_meet(project, prod_run):
    elsewhere = evaluate_stack(project, "prod", {"gcp:project": "other-project"})
    found = collisions({"prod": prod_run, "elsewhere": elsewhere})
    # Google Cloud names differ by project; the cluster is the kubeconfig's for both: they meet there.
    assert found and all(" Kubernetes object " in line or " mesh host " in line for line in found), found
    cluster = {"name": "mesh-cluster", "location": "us-central1"}
    own_cluster = evaluate_stack(project, "prod", {"gcp:project": "other-project", "cloudrun-mesh:cluster": cluster})
    other_cluster = evaluate_stack(project, "prod", {"cloudrun-mesh:cluster": {**cluster, "name": "other-cluster"}})
    assert collisions({"a": own_cluster, "b": other_cluster}) == []

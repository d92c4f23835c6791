"""Environments side by side: every shipped stack can be deployed into one project, one VPC and one
cluster at the same time. Each stack's physical names are computed from its registrations, as the
real engine would receive them, and no two stacks may share one (README, "Environments")."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from testkit import PROJECT, ROOT, evaluate, shared_evaluation

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


def collisions(runs: dict[str, harness.ProgramRun]) -> list[str]:
    found = []
    names = {stack: physical_names(run) for stack, run in runs.items()}
    for (s1, n1), (s2, n2) in itertools.combinations(names.items(), 2):
        for kind in sorted(set(n1) & set(n2)):
            for shared in sorted(n1[kind] & n2[kind]):
                found.append(f"{s1} and {s2} share the {kind} {shared}")
        # Cloud DNS: private zones on one network whose names are identical or nested overlap
        # (https://cloud.google.com/dns/docs/zones/zones-overview); the most specific one answers,
        # so one stack's wildcard would answer for the other's names.
        for (net1, d1), (net2, d2) in itertools.product(dns_names(runs[s1]), dns_names(runs[s2])):
            if net1 == net2 and _nested(d1, d2):
                found.append(f"{s1} and {s2} have overlapping private zones {d1}. and {d2}. on {net1}")
    return found


@pytest.fixture(scope="module")
def stack_runs(request) -> dict[str, harness.ProgramRun]:
    # One project for all, as a team that shares a project, a VPC and a cluster would have. dev and
    # prod reuse the evaluations conftest shares; other stacks are evaluated here.
    shared = {"dev": "dev_run", "prod": "prod_run"}
    return {stack: request.getfixturevalue(shared[stack]) if stack in shared else shared_evaluation(stack) for stack in STACKS}


def test_every_stack_file_is_covered(stack_runs):
    assert set(stack_runs) == set(harness.stacks()) and len(STACKS) >= 2


def test_shipped_stacks_share_no_physical_name(stack_runs):
    assert collisions(stack_runs) == []


def test_every_kind_of_name_is_computed(stack_runs):
    kinds = set().union(*(physical_names(run) for run in stack_runs.values()))
    assert {"Cloud DNS zone", "Cloud Run service", "service account", "project IAM grant",
            "Kubernetes object", "mesh host"} <= kinds


def test_exported_hosts_are_distinct(stack_runs):
    hosts = [h for run in stack_runs.values() for h in run.outputs["exportedHosts"].values()]
    assert len(hosts) == len(set(hosts))


def test_the_check_finds_every_kind_of_collision(prod_run):
    found = collisions({"prod": prod_run, "copy": prod_run})
    for kind in ("Cloud DNS zone", "Cloud Run service", "service account", "project IAM grant",
                 "Cloud Run IAM grant", "Kubernetes object", "mesh host"):
        assert any(f"share the {kind} " in line for line in found), kind
    assert any("overlapping private zones mesh.private. and mesh.private." in line for line in found)


def test_a_suffix_under_another_stacks_suffix_is_an_overlap(prod_run):
    nested = evaluate("dev", {"cloudrun-mesh:dns": {"zone": "mesh-dev", "suffix": "dev.mesh.private"}})
    assert collisions({"prod": prod_run, "dev": nested}) == [
        f"prod and dev have overlapping private zones mesh.private. and dev.mesh.private. on "
        f"projects/{PROJECT}/global/networks/default"
    ]

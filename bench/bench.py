"""Benchmark: the program's cost against the import floor, scaling to 1,000 services, critical path.

    python bench/bench.py [--runs 5] [--sizes 10,100,1000] [--doubling 2000] [--markdown]

Every figure is the median of ``--runs`` runs (``--runs`` x ``--pairs`` for the floors and the dev
row, whose ratio is the finest target), each in a fresh interpreter (``python -c``) that prints its
measurements as JSON; the runs of all rows are interleaved, so a burst of load on the machine
spreads over every row instead of skewing one. Exits 1 when a target is missed. Rows:

- import floor: ``import pulumi`` plus exactly the SDK modules an evaluation loaded, derived from a
  warm-up evaluation (one floor per distinct set: the dev stack's, the VirtualService-only stacks');
- dev stack: ``harness.run_program("dev")`` under the mock engine, ``gcp:project`` a placeholder;
- N svc, VS only: generated stacks, N existing Services exported (VirtualServices only) and 10
  clients with one invoker each;
- N svc + sample: the same with the sample Deployment and Service for every service;
- unit test suite: ``python -m pytest -q``.

A script that prints numbers, never a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "bench-project"  # placeholder gcp:project; nothing is deployed
CLIENTS = 10
NAMESPACES = ("payments", "catalog", "search", "checkout")
VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
SDKS = ("pulumi_gcp", "pulumi_kubernetes")
# The SDKs register every subpackage as a stub of this type, which loads on first use.
LAZY_MODULE_TYPE = "_LazyModule"

# Targets of the issue.
DEV_RATIO_MAX = 1.2
BIG_SERVICES = 1000
BIG_SECONDS_MAX = 5.0
BIG_MB_MAX = 250.0
DOUBLING_MAX = 2.2
CRITICAL_PATH_MAX = 4
SUITE_SECONDS_MAX = 20.0

# --------------------------------------------------------------------------------------------
# Generated stacks
# --------------------------------------------------------------------------------------------


def service_name(i: int) -> str:
    return f"svc-{i:04d}"


def client_name(j: int) -> str:
    return f"client-{j:02d}"


def generate_stack(services: int, clients: int = CLIENTS, deploy_sample: bool = False) -> dict[str, Any]:
    """Config overrides for ``harness.run_program``: ``services`` exported Services, ``clients`` clients.

    Services spread over a few namespaces, alternate two ports and half of them also bind the
    in-cluster ``mesh`` gateway; every client has exactly one invoker, so the invoker binding, the
    last link of the real deploy chain, exists.
    """
    svcs = [
        {
            "name": service_name(i),
            "namespace": NAMESPACES[i % len(NAMESPACES)],
            "port": 8080 if i % 2 else 9999,
            "deploySample": deploy_sample,
            "gkeClients": i % 2 == 0,
        }
        for i in range(services)
    ]
    cls = [
        {"name": client_name(j), "invokers": [f"group:team-{j:02d}@example.com"]}
        for j in range(clients)
    ]
    return {"gcp:project": PROJECT, "cloudrun-mesh:services": svcs, "cloudrun-mesh:clients": cls}


def expected_resources(services: int, clients: int = CLIENTS, deploy_sample: bool = False) -> int:
    """Registrations other than the stack for a generated ``dev``-based stack.

    dev: zone component + managed zone + wildcard record, mesh discovery component + its read;
    per service: component + VirtualService (+ Deployment + Service with the sample);
    per client: component + service account + IAM member + Cloud Run service + one invoker.
    """
    return 3 + 2 + services * (4 if deploy_sample else 2) + clients * 5


# --------------------------------------------------------------------------------------------
# Child processes: each prints one JSON object on stdout.
# --------------------------------------------------------------------------------------------

CHILD = r"""
import time
T0 = time.perf_counter()
import json, os, resource, sys
job = json.loads(sys.stdin.read())
sys.path.insert(0, job["root"])

def sdk_modules():
    return sorted(
        name for name, mod in list(sys.modules.items())
        if name.split(".")[0] in job["sdks"] and mod is not None and type(mod).__name__ != job["lazy_type"]
    )

out = {}
if job["kind"] == "floor":
    import importlib
    import pulumi
    for name in job["modules"]:
        # A lazy stub loads on first access to anything but its introspection attributes.
        getattr(importlib.import_module(name), "__all__", None)
    out["seconds"] = time.perf_counter() - T0
    out["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["missing"] = sorted(set(job["modules"]) - set(sdk_modules()))
else:
    from cloudrun_mesh.offline import harness
    from cloudrun_mesh.config import engine
    engine.REFUSE_EXAMPLES_AT_UP = False  # an `up` of the shipped stacks' examples
    run = harness.run_program(job["stack"], config=job["config"])
    out["seconds"] = time.perf_counter() - T0
    out["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["error"] = None if run.error is None else f"{type(run.error).__name__}: {run.error}"
    from cloudrun_mesh.offline import graph
    resources = run.resources()
    out["resources"] = len(resources)
    out["virtual_services"] = sum(1 for r in resources if r.type == job["vs_type"])
    out["critical_path"] = graph.critical_path(run.registrations)
    out["modules"] = sdk_modules()
out["bookkeeping"] = time.perf_counter() - T0 - out["seconds"]
sys.stdout.write("\n" + json.dumps(out) + "\n")
"""


def child_env(pycache: str) -> dict[str, str]:
    """The children's environment: the project's bytecode cached (outside the tree), as the SDKs' is.

    Site-packages come compiled at install time; without this, a ``PYTHONDONTWRITEBYTECODE``
    environment would charge compiling the project's own modules to every evaluation.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def run_child(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One fresh interpreter; adds its wall time as seen from here, less the child's bookkeeping."""
    payload = json.dumps({"root": str(ROOT), "vs_type": VIRTUAL_SERVICE, "sdks": SDKS, "lazy_type": LAZY_MODULE_TYPE, **job})
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], input=payload, capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {job['kind']} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = wall - result["bookkeeping"]
    return result


def run_suite() -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - start
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    return {"wall": wall, "ok": proc.returncode == 0, "summary": summary}


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------

REAL_CHAIN = (
    "gcp:serviceaccount/account:Account",
    "gcp:projects/iAMMember:IAMMember",
    "gcp:cloudrunv2/service:Service",
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
)


class Row:
    def __init__(self, key: str, label: str, job: dict[str, Any], services: int = 0, sample: bool = False):
        self.key, self.label, self.job, self.services, self.sample = key, label, job, services, sample
        self.kind = ("sample" if sample else "VS-only") if services else key
        self.floor: Optional[Row] = None
        self.results: list[dict[str, Any]] = []

    def median(self, field: str) -> float:
        return statistics.median(r[field] for r in self.results)

    @property
    def wall(self) -> float:
        return self.median("wall")

    @property
    def seconds(self) -> float:
        return self.median("seconds")

    @property
    def mb(self) -> float:
        return self.median("rss_kb") / 1024

    def last(self, field: str) -> Any:
        return self.results[-1].get(field)


def eval_rows(sizes: list[int], doubling: int, sample: bool) -> list[Row]:
    rows = [Row("dev", "dev stack", {"kind": "eval", "stack": "dev", "config": {"gcp:project": PROJECT}})]
    for n in sorted(set(sizes + ([doubling] if doubling else []))):
        rows.append(Row(f"vs-{n}", f"{n} svc, VS only", {"kind": "eval", "stack": "dev", "config": generate_stack(n)}, n))
    if sample:
        for n in sizes:
            job = {"kind": "eval", "stack": "dev", "config": generate_stack(n, deploy_sample=True)}
            rows.append(Row(f"sample-{n}", f"{n} svc + sample", job, n, True))
    return rows


def type_of(urn: str) -> str:
    return urn.split("::")[2].rsplit("$", 1)[-1]


def short(urn: str) -> str:
    """`<type>::<name>` of a URN, without the parent types."""
    return f"{type_of(urn)}::{urn.split('::', 3)[3]}"


def packages(modules: list[str]) -> str:
    """The SDK subpackages among loaded modules, for the legend."""
    return ", ".join(sorted({m for m in modules if m.count(".") == 1 and not m.rsplit(".", 1)[1].startswith("_")
                             and m.rsplit(".", 1)[1] != "provider" and not m.endswith("_id") and not m.endswith("_zone")}))


def render(table: list[list[str]], markdown: bool) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = []
    for k, r in enumerate(table):
        cells = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))]
        lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(cells))
        if k == 0:
            lines.append(("|" + "|".join("-" * (w + 2) for w in widths) + "|") if markdown else "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def progress(text: str) -> None:
    print(f"\r  {text:<60}", end="", file=sys.stderr, flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh-process runs per figure; the median is shown (default 5)")
    ap.add_argument("--pairs", type=int, default=3, help="floor and dev runs per round (default 3)")
    ap.add_argument("--sizes", default="10,100,1000", help="exported services of the generated stacks (default 10,100,1000)")
    ap.add_argument("--doubling", type=int, default=2 * BIG_SERVICES,
                    help=f"extra VS-only size for the doubling target, compared with {BIG_SERVICES} (0: skip)")
    ap.add_argument("--no-sample", action="store_true", help="skip the rows with the sample Deployment and Service")
    ap.add_argument("--no-suite", action="store_true", help="skip timing the unit test suite")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--json", type=Path, help="also write every raw measurement to this file")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.pairs < 1:
        ap.error("--runs and --pairs must be at least 1")
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})

    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    pycache = tempfile.TemporaryDirectory(prefix="cloudrun-mesh-bench-")
    env = child_env(pycache.name)
    rows = eval_rows(sizes, args.doubling, not args.no_sample)
    dev = rows[0]

    # Warm-up (not counted): fills the OS and bytecode caches, and tells which SDK modules each kind
    # of stack loads. Every row is compared with the floor of exactly the modules it loads.
    floors: dict[tuple[str, ...], Row] = {}
    for row in rows:
        same_kind = next(r for r in rows if r.kind == row.kind)
        if same_kind is not row:  # a larger stack of a kind loads the same modules (checked below)
            row.floor = same_kind.floor
            continue
        progress(f"warm-up: {row.label}")
        warm = run_child(row.job, env)
        if warm["error"]:
            print(f"\n{row.label}: evaluation failed: {warm['error']}", file=sys.stderr)
            return 2
        modules = tuple(warm["modules"])
        if modules not in floors:
            label = "import floor" if not floors else f"import floor ({row.kind})"
            floors[modules] = Row(f"floor-{len(floors)}", label, {"kind": "floor", "modules": list(modules)})
        row.floor = floors[modules]

    # Each round: the dev floor and dev alternately (their ratio is the finest target, so they get
    # more runs), the other floors, then every other row once.
    others = [f for f in floors.values() if f is not dev.floor]
    schedule = [dev.floor, dev] * args.pairs + others * args.pairs + rows[1:]
    for i in range(args.runs):
        for row in schedule:
            progress(f"run {i + 1}/{args.runs}: {row.label}")
            result = run_child(row.job, env)
            if result.get("error"):
                print(f"\n{row.label}: evaluation failed: {result['error']}", file=sys.stderr)
                return 2
            if result.get("missing"):
                print(f"\n{row.label} did not load {result['missing']}", file=sys.stderr)
                return 2
            if "modules" in result and result["modules"] != row.floor.job["modules"]:
                print(f"\n{row.label} loaded other SDK modules than its floor imports", file=sys.stderr)
                return 2
            row.results.append(result)
    suite: list[dict[str, Any]] = []
    for i in range(0 if args.no_suite else args.runs):
        progress(f"run {i + 1}/{args.runs}: unit test suite")
        suite.append(run_suite())
    progress("")
    print("\r", end="", file=sys.stderr, flush=True)

    # Table
    header = ["row", "wall s", "in-process s", "x floor", "growth", "peak MB", "resources", "ms/resource", "critical path"]
    table = [header]
    for f in floors.values():
        table.append([f.label, f"{f.wall:.3f}", f"{f.seconds:.3f}", "", "", f"{f.mb:.0f}", "", "", ""])
    previous: dict[bool, Row] = {}
    for row in rows:
        growth = ""
        prev = previous.get(row.sample) if row.services else None
        if prev is not None:
            growth = f"{row.wall / prev.wall:.2f}x for {row.services / prev.services:g}x"
        if row.services:
            previous[row.sample] = row
        n_res = row.last("resources")
        table.append([
            row.label, f"{row.wall:.3f}", f"{row.seconds:.3f}", f"{row.wall / row.floor.wall:.2f}", growth,
            f"{row.mb:.0f}", str(n_res), f"{(row.wall - row.floor.wall) / n_res * 1000:.2f}",
            str(len(row.last("critical_path"))),
        ])
    if suite:
        table.append(["unit test suite", f"{statistics.median(s['wall'] for s in suite):.3f}", "", "", "", "", "", "", ""])

    print(f"cloudrun-mesh benchmark: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, median of {args.runs} fresh processes per figure "
          f"({args.runs * args.pairs} for floors and dev), load average {load_start:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end, {time.perf_counter() - started:.0f} s in all")
    print(render(table, args.markdown))
    print()
    print("wall s: process wall time seen by the parent (interpreter start to exit, less the child's bookkeeping "
          "after the evaluation); in-process s: from the child's first statement to the end of the evaluation, "
          "imports included; x floor: wall / wall of the floor of the same SDK modules; growth: wall-time ratio to "
          "the previous size; ms/resource: (wall - floor) / resources; critical path: resources in the longest "
          "chain the engine must create one after another.")
    for modules, f in floors.items():
        users = sorted({r.kind for r in rows if r.floor is f})
        print(f"{f.label}: pulumi + the {len(modules)} SDK modules the {' and '.join(users)} stacks load, "
              f"of {packages(list(modules))}")
    print("dev critical path: " + " -> ".join(short(u) for u in dev.last("critical_path")))
    generated = [r for r in rows if r.services]
    if generated:
        print(f"generated critical path ({generated[-1].label}): " + " -> ".join(short(u) for u in generated[-1].last("critical_path")))
    print()

    # Targets
    checks: list[tuple[str, bool, str]] = []
    ratio = dev.wall / dev.floor.wall
    checks.append((f"dev evaluation <= {DEV_RATIO_MAX}x import floor", ratio <= DEV_RATIO_MAX, f"{ratio:.2f}x"))
    rows_by_key = {r.key: r for r in rows}
    big, doubled = rows_by_key.get(f"vs-{BIG_SERVICES}"), rows_by_key.get(f"vs-{2 * BIG_SERVICES}")
    if big is not None:
        checks.append((f"{BIG_SERVICES} services, {CLIENTS} clients <= {BIG_SECONDS_MAX:g} s", big.wall <= BIG_SECONDS_MAX, f"{big.wall:.2f} s"))
        checks.append((f"{BIG_SERVICES} services, {CLIENTS} clients <= {BIG_MB_MAX:g} MB peak", big.mb <= BIG_MB_MAX, f"{big.mb:.0f} MB"))
    if big is not None and doubled is not None:
        g = doubled.wall / big.wall
        checks.append((f"doubling services ({BIG_SERVICES} -> {2 * BIG_SERVICES}) grows time <= {DOUBLING_MAX}x", g <= DOUBLING_MAX, f"{g:.2f}x"))
    if generated:
        lengths = [len(r.last("critical_path")) for r in generated]
        chains_ok = all(tuple(type_of(u) for u in r.last("critical_path")) == REAL_CHAIN for r in generated)
        checks.append((f"critical path independent of size, the real chain of {len(REAL_CHAIN)}",
                       chains_ok and len(set(lengths)) == 1 and max(lengths) <= CRITICAL_PATH_MAX,
                       ", ".join(str(n) for n in lengths)))
    for r in generated:
        if r.last("virtual_services") != r.services or r.last("resources") != expected_resources(r.services, deploy_sample=r.sample):
            checks.append((f"{r.label}: resources as generated", False,
                           f"{r.last('resources')} resources, {r.last('virtual_services')} VirtualServices"))
    if suite:
        s_wall = statistics.median(s["wall"] for s in suite)
        checks.append((f"unit test suite <= {SUITE_SECONDS_MAX:g} s", all(s["ok"] for s in suite) and s_wall <= SUITE_SECONDS_MAX,
                       f"{s_wall:.1f} s ({suite[-1]['summary']})"))
    width = max(len(c[0]) for c in checks)
    for name, ok, value in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name:<{width}}  {value}")

    if args.json:
        args.json.write_text(json.dumps({
            "runs": args.runs, "pairs": args.pairs, "load_average": [load_start, os.getloadavg()[0]],
            "rows": {r.key: r.results for r in [*floors.values(), *rows]}, "suite": suite,
        }, indent=1))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark's generated stacks: valid, scaling as intended, with a size-independent critical path.

Structure only; the benchmark itself (bench/bench.py) measures time, never the test suite.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from pathlib import Path

import pulumi
import pytest
from testkit import evaluate

from cloudrun_mesh import config
from cloudrun_mesh.offline import graph

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("cloudrun_mesh_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
REAL_CHAIN = [
    "gcp:serviceaccount/account:Account",
    "gcp:projects/iAMMember:IAMMember",
    "gcp:cloudrunv2/service:Service",
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
]


def _raw(overrides: dict) -> dict:
    return {k.split(":", 1)[1]: v for k, v in overrides.items() if k.startswith("cloudrun-mesh:")}


@pytest.mark.parametrize("services", [1, 10, 1000])
@pytest.mark.parametrize("sample", [False, True])
def test_generated_config_passes_validation(services, sample):
    overrides = bench.generate_stack(services, deploy_sample=sample)
    cfg = config.parse(_raw(overrides), overrides["gcp:project"], "us-central1")
    assert len(cfg.services) == services
    assert len({s.name for s in cfg.services}) == services
    assert len({s.namespace for s in cfg.services}) == min(services, len(bench.NAMESPACES))
    assert all(s.deploy_sample is sample for s in cfg.services)
    assert len(cfg.clients) == bench.CLIENTS
    assert all(len(c.invokers) == 1 for c in cfg.clients)


@pytest.fixture(scope="module")
def runs():
    return {
        (n, sample): evaluate("dev", bench.generate_stack(n, deploy_sample=sample))
        for n, sample in [(10, False), (100, False), (10, True)]
    }


@pytest.mark.parametrize("services, sample", [(10, False), (100, False), (10, True)])
def test_resources_scale_with_services(runs, services, sample):
    run = runs[(services, sample)]
    assert len(run.resources(VIRTUAL_SERVICE)) == services
    assert len(run.resources("kubernetes:apps/v1:Deployment")) == (services if sample else 0)
    assert len(run.resources("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")) == bench.CLIENTS
    assert len(run.resources()) == bench.expected_resources(services, deploy_sample=sample)


def test_critical_path_is_the_real_chain_whatever_the_size(runs):
    paths = {key: graph.critical_path(run.registrations) for key, run in runs.items()}
    lengths = {len(p) for p in paths.values()}
    assert lengths == {len(REAL_CHAIN)}, paths
    for key, path in paths.items():
        assert [runs[key].by_urn(u).type for u in path] == REAL_CHAIN


def test_dev_evaluation_leaves_unused_sdk_modules_unloaded(dev_run):
    # The import floor imports the SDK modules an evaluation loaded, told apart from the SDKs'
    # lazy stubs by type: if that stopped working, the floor would import every cloud service.
    modules = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in bench.SDKS}
    lazy = {name for name, mod in modules.items() if type(mod).__name__ == bench.LAZY_MODULE_TYPE}
    assert "pulumi_gcp.cloudrunv2" in modules and "pulumi_gcp.cloudrunv2" not in lazy
    assert len(lazy) > 50


# -- the performance fixes keep behaviour -------------------------------------------------------


def test_gc_settings_return_after_an_evaluation(run_stack):
    # The harness tunes the collector while the engine works through registrations, and only then.
    before = (gc.get_threshold(), gc.get_freeze_count())
    run_stack("dev")
    failing = lambda: pulumi.export("broken", pulumi.Output.from_input(1).apply(lambda _: 1 / 0))  # noqa: E731
    assert isinstance(run_stack(program=failing, expect_error=True).error, ZeroDivisionError)
    assert (gc.get_threshold(), gc.get_freeze_count()) == before

"""Fixtures and hooks; the machinery they use lives in tests/testkit.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from testkit import evaluate, share_program_runs, shared_evaluation

from cloudrun_mesh.config import engine as config_engine
from cloudrun_mesh.offline import harness

# The shipped stacks' invokers are example principals, which an evaluation outside a preview (an
# `up` under the mock engine) refuses; the suite's evaluations keep them (tests/test_config_load.py
# turns the refusal back on).
config_engine.REFUSE_EXAMPLES_AT_UP = False


@pytest.fixture
def shared_program_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests of the commands (plan, policy): see ``testkit.share_program_runs``."""
    share_program_runs(monkeypatch)


@pytest.fixture
def run_stack() -> Callable[..., harness.ProgramRun]:
    return evaluate


@pytest.fixture(scope="session")
def dev_run() -> harness.ProgramRun:
    return shared_evaluation("dev")


@pytest.fixture(scope="session")
def prod_run() -> harness.ProgramRun:
    return shared_evaluation("prod")


def pytest_addoption(parser):
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        help="rewrite tests/snapshots/*.json from the current program (review the diff: URN changes replace resources)",
    )


@pytest.fixture
def update_snapshots(request) -> bool:
    return bool(request.config.getoption("--update-snapshots"))


# Each test module's layer (pyproject.toml lists the markers): the first prefix that matches wins;
# a module not listed is a unit test.
LAYERS = (
    ("test_verify_", "verify"),
    (("test_workflow", "test_readme", "test_docs", "test_packaging", "test_lint"), "repository"),
    (("test_exported_gke_service", "test_kubernetes_target", "test_mesh_", "test_private_mesh_zone",
      "test_uptime"), "components"),
    (("test_program", "test_plan", "test_policy", "test_environments", "test_adopt", "test_bad_input",
      "test_outputs", "test_bench", "test_stacks", "test_monitoring"), "program"),
)


def layer_of(module_name: str) -> str:
    for prefixes, layer in LAYERS:
        if module_name.startswith(prefixes):
            return layer
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(layer_of(item.path.stem))

"""Fixtures and hooks; the machinery they use lives in tests/testkit.py."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from cloudrun_mesh.offline import harness
from testkit import evaluate, share_program_runs, shared_evaluation


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

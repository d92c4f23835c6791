"""Shared test machinery: every evaluation goes through cloudrun_mesh.harness (the same code the
offline plan uses), in a fresh thread with its own event loop, mock engine and config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cloudrun_mesh import harness  # noqa: E402

PROJECT = "my-project"
BASE = {"gcp:project": PROJECT}


def evaluate(
    stack: Optional[str] = "dev",
    config: Optional[Mapping[str, Any]] = None,
    *,
    preview: bool = False,
    program: Optional[Callable[[], Any]] = None,
    expect_error: bool = False,
) -> harness.ProgramRun:
    """Evaluate the program (or a component program) and fail loudly on an unexpected error."""
    run = harness.run_program(stack, config={**BASE, **(config or {})}, preview=preview, program=program)
    if expect_error:
        assert run.error is not None, "expected the evaluation to fail"
    elif run.error is not None:
        raise run.error
    return run


def component_program(build: Callable[[], Any], **exports: str) -> Callable[[], None]:
    """A program that builds one component and exports its attributes (export name=attribute)."""

    def program():
        import pulumi

        component = build()
        for name, attribute in exports.items():
            pulumi.export(name, getattr(component, attribute))

    return program


@pytest.fixture
def run_stack() -> Callable[..., harness.ProgramRun]:
    return evaluate


@pytest.fixture(scope="session")
def dev_run() -> harness.ProgramRun:
    return evaluate("dev")


@pytest.fixture(scope="session")
def prod_run() -> harness.ProgramRun:
    return evaluate("prod")


def pytest_addoption(parser):
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        help="rewrite tests/snapshots/*.json from the current program (review the diff: URN changes replace resources)",
    )


@pytest.fixture
def update_snapshots(request) -> bool:
    return bool(request.config.getoption("--update-snapshots"))

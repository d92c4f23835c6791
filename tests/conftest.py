"""Shared test machinery: every evaluation goes through cloudrun_mesh.harness (the same code the
offline plan uses), in a fresh thread with its own event loop, mock engine and config."""

from __future__ import annotations

import copy
import json
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


_SHARED: dict[str, harness.ProgramRun] = {}
_run_program = harness.run_program  # the real one, even while shared_program_runs patches it


def _shared_run(stack: Optional[str], config: Mapping[str, Any], preview: bool) -> harness.ProgramRun:
    """One evaluation of the project's program per (stack, config, preview) and session; each caller
    gets its own deep copy, so what one test does to its run cannot reach another's. A failed
    evaluation is not kept: it is run again, and its error is the caller's."""
    key = json.dumps([stack, config, preview], sort_keys=True)
    run = _SHARED.get(key)
    if run is None:
        run = _run_program(stack, config=config, preview=preview)
        if run.error is not None:
            return run
        _SHARED[key] = run
    return copy.deepcopy(run)


def shared_evaluation(
    stack: str = "dev", config: Optional[Mapping[str, Any]] = None, *, preview: bool = False
) -> harness.ProgramRun:
    """``evaluate()`` for tests that read the result of a successful evaluation of the program.

    Many tests read the same evaluation (the dev and prod previews above all): it runs once. Tests
    about evaluations themselves (state leaking from one to the next, errors, the collector, a
    component program) call ``evaluate()``, which always runs the program.
    """
    return _shared_run(stack, {**BASE, **(config or {})}, preview).raise_error()


@pytest.fixture
def shared_program_runs(monkeypatch) -> None:
    """For tests of the commands (plan, policy): their evaluations of the project's own program go
    through ``_shared_run``, so the dev preview the command tests all start from runs once. The
    command's own work (project resolution, files, diffs, exit codes) runs every time; any other
    evaluation (another project directory, a program of the test's own) runs as usual."""

    def run_program(stack="dev", *, config=None, preview=False, program=None, project_dir=harness.PROJECT_DIR, **kwargs):
        if program is not None or kwargs or Path(project_dir).resolve() != harness.PROJECT_DIR:
            return _run_program(stack, config=config, preview=preview, program=program, project_dir=project_dir, **kwargs)
        return _shared_run(stack, dict(config or {}), preview)

    monkeypatch.setattr(harness, "run_program", run_program)


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

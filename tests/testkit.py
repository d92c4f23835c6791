"""Shared test machinery (imported by the tests; conftest.py holds only fixtures and hooks): every evaluation goes through cloudrun_mesh.offline.harness (the same code the
offline plan uses), in a fresh thread with its own event loop, mock engine and config."""

from __future__ import annotations

import copy
import gc
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional

import pytest

from cloudrun_mesh.offline import harness

ROOT = Path(__file__).resolve().parent.parent

PROJECT = "my-project"
BASE = {"gcp:project": PROJECT}

# Each evaluation allocates and drops hundreds of thousands of SDK objects (Outputs, tasks,
# coroutines): with the default young-generation threshold (700) the suite ran over 2,000
# collections and spent 3.3-4 s in the collector; with 10,000, under 200 collections and 2.3-2.7 s.
# Everything is still collected (pytest's own final collection included), only less often. The
# harness tunes the older generations itself during an evaluation and restores what it found.
_young, *_older = gc.get_threshold()
gc.set_threshold(max(_young, 10_000), *_older)


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


def share_program_runs(monkeypatch: pytest.MonkeyPatch) -> None:
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

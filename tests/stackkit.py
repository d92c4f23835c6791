"""Stacks the tests write themselves, in a scratch copy of the project.

The shipped stack files are examples the users edit on day one: a test that needs particular values
(a prod-like stack with two regions, the guide's defaults, a docs example pasted into a stack file)
writes them into a scratch project (``Pulumi.yaml`` and ``__main__.py`` copied, its own
``Pulumi.<stack>.yaml`` files) and evaluates the program there, exactly as for a stack file of the
repository. Tests of the shipped stacks assert only what holds for any valid stack file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import yaml
from testkit import PROJECT, ROOT

from cloudrun_mesh.offline import harness

# What a scratch project needs of the repository: the project file and the program's entry point
# (the program's packages are imported from the installed project, as for the repository's stacks).
PROJECT_FILES = ("Pulumi.yaml", "__main__.py")

# Prod-like: a reserved address, a short TTL, two services (one the sample in a namespace it owns,
# one existing), two pinned clients in two regions, protected. Written here, not read from
# Pulumi.prod.yaml, so that the tests hold whatever a team writes there.
PROD_LIKE: dict[str, Any] = {
    "gcp:region": "us-central1",
    "cloudrun-mesh:network": "default",
    "cloudrun-mesh:dns": {"zone": "prod", "suffix": "mesh.private", "address": "reserve", "ttl": 300},
    "cloudrun-mesh:services": [
        {"name": "ads", "namespace": "ads", "createNamespace": True, "port": 9999, "targetPort": 8000, "deploySample": True},
        {"name": "payments", "namespace": "payments", "port": 8080, "gkeClients": True},
    ],
    "cloudrun-mesh:clients": [
        {"name": "mesh-svc", "image": "fortio/fortio:1.75.2",
         "invokers": ["group:platform-oncall@example.com", "serviceAccount:verify-prod@example-ci.iam.gserviceaccount.com"]},
        {"name": "checkout-web", "image": "fortio/fortio:1.75.2", "region": "europe-west1",
         "invokers": ["group:platform-oncall@example.com",
                      "serviceAccount:checkout-ci@example-ci.iam.gserviceaccount.com",
                      "serviceAccount:verify-prod@example-ci.iam.gserviceaccount.com"]},
    ],
    "cloudrun-mesh:protect": True,
}

# Dev-like: the guide's setup under its own names, the guide's untagged fortio image, unprotected.
DEV_LIKE: dict[str, Any] = {
    "gcp:region": "us-central1",
    "cloudrun-mesh:dns": {"zone": "mesh-dev", "suffix": "mesh-dev.private"},
    "cloudrun-mesh:clients": [
        {"name": "mesh-svc-dev", "invokers": ["serviceAccount:verify-dev@example-ci.iam.gserviceaccount.com"]},
    ],
    "cloudrun-mesh:protect": False,
}


def scratch_project(directory: Path, stacks: Mapping[str, Mapping[str, Any]] = {}, *, copy_stacks: bool = False) -> Path:
    """A project in ``directory``: the repository's project file and program, the repository's stack
    files when ``copy_stacks``, and a ``Pulumi.<name>.yaml`` per entry of ``stacks`` (its ``config:``)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, directory / name)
    if copy_stacks:
        for path in ROOT.glob("Pulumi.*.yaml"):
            shutil.copy2(path, directory / path.name)
    for name, config in stacks.items():
        write_stack(directory, name, config)
    return directory


def write_stack(directory: Path, name: str, config: Mapping[str, Any]) -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    # Plain data through JSON first: YAML anchors or Python tags never reach the file.
    path.write_text(yaml.safe_dump({"config": json.loads(json.dumps(config))}, sort_keys=False), encoding="utf-8")
    return path


def evaluate_stack(
    directory: Path, stack: str, config: Optional[Mapping[str, Any]] = None, *, preview: bool = False
) -> harness.ProgramRun:
    """The program for ``stack`` of the scratch project; ``gcp:project`` is the tests' own unless the
    stack file or ``config`` sets it. Fails loudly on an evaluation error."""
    file_config = harness.stack_config(stack, None, directory)
    base = {} if "gcp:project" in file_config else {"gcp:project": PROJECT}
    run = harness.run_program(stack, config={**base, **(config or {})}, preview=preview, project_dir=directory)
    return run.raise_error()


# -- the example stacks, for tests about the program rather than about a stack file -----------------

EXAMPLES: dict[str, dict[str, Any]] = {"dev": DEV_LIKE, "prod": PROD_LIKE}
_EXAMPLE_RUNS: dict[str, harness.ProgramRun] = {}
_example_dir: Optional[Path] = None


def _examples_project() -> Path:
    global _example_dir
    if _example_dir is None:
        import atexit
        import tempfile

        _example_dir = scratch_project(Path(tempfile.mkdtemp(prefix="cloudrun-mesh-examples-")), EXAMPLES)
        atexit.register(shutil.rmtree, _example_dir, True)
    return _example_dir


def examples_project() -> Path:
    """The scratch project holding the example stacks (``EXAMPLES``), written once per test session."""
    return _examples_project()


def example_evaluation(stack: str = "dev", config: Optional[Mapping[str, Any]] = None, *, preview: bool = False) -> harness.ProgramRun:
    """``testkit.shared_evaluation`` for the example stacks (``EXAMPLES``: dev-like and prod-like, written
    here), evaluated once per (stack, config, preview) and handed out as deep copies; any other stack
    name is the repository's stack file, as ``shared_evaluation`` reads it."""
    import copy

    if stack not in EXAMPLES:
        from testkit import shared_evaluation

        return shared_evaluation(stack, config, preview=preview)
    key = json.dumps([stack, config, preview], sort_keys=True, default=str)
    if key not in _EXAMPLE_RUNS:
        _EXAMPLE_RUNS[key] = evaluate_stack(_examples_project(), stack, config, preview=preview)
    return copy.deepcopy(_EXAMPLE_RUNS[key])


def example_value(stack: str, key: str) -> Any:
    """A config value of an example stack (or of the repository's stack file for another name)."""
    if stack in EXAMPLES:
        return json.loads(json.dumps(EXAMPLES[stack][key]))
    return json.loads(harness.stack_config(stack)[key])

"""``load``: the stack's configuration from the engine, validated, with problems located in the file.

This is the only module that reads ``pulumi.Config``. Under a real `pulumi up` the engine hands the
values without positions; when the project directory holds `Pulumi.<stack>.yaml`, each problem is
located in it (``stackfile.locations``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import pulumi

from cloudrun_mesh.config import keys
from cloudrun_mesh.config.model import NS, OBJECT_KEYS, StackConfig
from cloudrun_mesh.config.problems import ConfigError, Problem, Where, show
from cloudrun_mesh.config.rules import parse

# A real `pulumi up` refuses example principals: IAM rejects principals that do not exist, halfway
# through the update. Only code that imports this module can turn it off (the test suite and the
# benchmark, whose non-preview evaluations under the mock engine use the shipped examples); there is
# deliberately no environment variable or config key for it.
REFUSE_EXAMPLES_AT_UP = True


def _where(project_dir: Optional[Path]) -> Optional[Where]:
    from cloudrun_mesh import stackfile

    if project_dir is None:
        # The language host sets the root directory (where Pulumi.yaml is) and runs the program there.
        candidates = [Path(pulumi.runtime.get_root_directory() or "."), Path.cwd()]
        project_dir = next((d for d in candidates if (d / "Pulumi.yaml").is_file()), None)
        if project_dir is None:
            return None
    path = project_dir / f"Pulumi.{pulumi.get_stack()}.yaml"
    if not path.is_file():
        return None
    return Where(path.name, stackfile.locations(path))


def _decode(key: str, value: str, problems: list[Problem]) -> Any:
    """Pulumi hands every value to the program as text: objects and lists as JSON."""
    if key in OBJECT_KEYS:
        try:
            return json.loads(value)
        except ValueError:
            hint = " (an empty key; write `[]` for none)" if value == "" and key in ("services", "clients") else ""
            problems.append(Problem(f"{NS}:{key}", f"must be a YAML object or list in the stack file; got the text {show(value)}{hint}"))
            return None
    return value  # booleans as text are read by parse, which also takes values from tests and tools


def load(env_get: Callable[[str], Optional[str]] = os.environ.get, project_dir: Optional[Path] = None) -> StackConfig:
    """Read the stack's configuration from the engine and validate it; before `pulumi up` (not a
    preview) refuse example principals, so nothing is registered with them."""
    # The language host installs config into the runtime's map; older hosts use the environment.
    # Both are read so that a typo in any key is reported, not ignored.
    config_env = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    raw: dict[str, Any] = {}
    problems: list[Problem] = []
    prefix = f"{NS}:"
    for full_key, value in sorted(config_env.items()):
        full_key = keys.normalise(full_key)
        if full_key.startswith(prefix):
            key = full_key[len(prefix):]
            decoded = _decode(key, value, problems)
            if decoded is not None:
                raw[key] = decoded
        else:
            problems.extend(keys.check_keys([full_key]))
    gcp = pulumi.Config("gcp")
    project = gcp.get("project") or env_get("GOOGLE_PROJECT") or env_get("GOOGLE_CLOUD_PROJECT")
    region = gcp.get("region") or env_get("GOOGLE_REGION") or env_get("CLOUDSDK_COMPUTE_REGION")
    where = _where(project_dir)
    try:
        cfg = parse(raw, project, region)
    except ConfigError as exc:
        raise ConfigError(problems + exc.items, where) from None
    if problems:
        raise ConfigError(problems, where)

    def located(key: str) -> str:
        return f"{where.of(key)}: " if where is not None else ""

    if cfg.placeholders and not pulumi.runtime.is_dry_run() and REFUSE_EXAMPLES_AT_UP:
        raise ConfigError([Problem(p.key, f"is the example principal {show(p.value)} ({p.reason}): replace it with a "
                                   "real principal before `pulumi up`; a preview accepts it, IAM does not")
                           for p in cfg.placeholders], where)
    for p in cfg.placeholders:
        pulumi.log.warn(f"{located(p.key)}`{p.key}` is the example principal {show(p.value)} ({p.reason}): "
                        "replace it before `pulumi up`, which refuses it.")
    for warning in cfg.warnings:
        pulumi.log.warn(warning)
    return cfg

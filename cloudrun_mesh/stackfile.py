"""Where each configuration key sits in a stack file, for messages that name file, line and column.

``locations`` is the interface the config module uses; how the file is read (bounds, duplicate keys,
YAML 1.2 scalars as the Pulumi CLI reads them) lives here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def _walk(node: Any, path: str, out: dict[str, tuple[int, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value)
            sub = f"{path}.{name}" if path else name
            out.setdefault(sub, (key.start_mark.line + 1, key.start_mark.column + 1))
            _walk(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = f"{path}[{i}]"
            out.setdefault(sub, (item.start_mark.line + 1, item.start_mark.column + 1))
            _walk(item, sub, out)


def locations(path: Path) -> dict[str, tuple[int, int]]:
    """Key path under ``config:`` (``cloudrun-mesh:services[0].name``, ``gcp:project``) -> (line, column),
    both 1-based; empty when the file cannot be read (its own errors are reported elsewhere)."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    out: dict[str, tuple[int, int]] = {}
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "config":
                _walk(value, "", out)
    return out

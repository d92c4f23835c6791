"""Config problems: each names its key path and the rule it breaks, and, when the stack file is
known, the file, line and column of the key. ``ConfigError`` reports every problem at once."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from cloudrun_mesh.text import terminal

DOCS = "docs/configuration.md"


@dataclass(frozen=True)
class Problem:
    key: str  # config key path: cloudrun-mesh:services[0].name, gcp:region
    rule: str  # what the value must be, and what it was

    def text(self) -> str:
        return f"`{self.key}` {self.rule}."


@dataclass(frozen=True)
class Where:
    """Where the stack's keys are: the file name and {key path: (line, column)}."""

    file: str
    positions: Mapping[str, tuple[int, int]]

    def of(self, key: str) -> str:
        """`file:line:col` of the key, or of its nearest enclosing key written in the file."""
        probe = key
        while probe:
            pos = self.positions.get(probe)
            if pos is not None:
                return f"{self.file}:{pos[0]}:{pos[1]}"
            cut = max(probe.rfind("."), probe.rfind("["))
            if cut <= probe.find(":"):
                break
            probe = probe[:cut]
        return self.file


class ConfigError(pulumi.RunError):
    """Bad stack configuration. A ``RunError`` so the CLI prints the message without a traceback."""

    def __init__(self, problems: Sequence[Problem | str], where: Optional[Where] = None):
        items = [p if isinstance(p, Problem) else Problem("", p) for p in problems]
        self.items = items
        self.problems = [p.text() if p.key else p.rule for p in items]
        self.where = where
        lines = []
        for p, plain in zip(items, self.problems, strict=True):
            # One problem per line, values neutralised for a terminal or CI log (no control
            # characters, no line starting with `::`).
            prefix = f"{where.of(p.key)}: " if where is not None else ""
            lines.append(f"  {terminal(prefix + plain)}")
        if where is not None:
            lines.sort(key=_line_order)
        count = f"{len(items)} problem{'s' if len(items) != 1 else ''}"
        super().__init__(f"Invalid stack configuration ({count}; see {DOCS}):\n" + "\n".join(lines))


def _line_order(line: str) -> tuple[int, int]:
    """Problems in the order of the file (those without a line last, in their own order)."""
    parts = line.strip().split(":", 3)
    try:
        return int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return (1 << 30, 0)


def show(value: Any) -> str:
    """A value as the message quotes it: strings with repr, the rest as JSON, long ones cut."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def did_you_mean(value: Any, choices: Iterable[str], fmt: str = "`{}`", cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=cutoff)
    return f" (did you mean {fmt.format(close[0])}?)" if close else ""

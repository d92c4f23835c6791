"""What `verify` adds to cloudrun_mesh.text for its door: a JSON shape check that never recurses and
stays fast at the outputs' size limit, a CI-log line guard, and a redactor for partial tokens that
skips the spaces and controls an echo may split a token with.

Limits are in docs/verify-limits.md; each has a test in tests/test_verify_hostile.py.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Iterable
from typing import Optional

from cloudrun_mesh import text as shared

# --------------------------------------------------------------------------------------------
# Reading: the shared bounded reader (cloudrun_mesh.text.read_regular_file) reads the file; the JSON
# shape is checked here, at C speed, before the parser sees it
# --------------------------------------------------------------------------------------------

# JSON's escapes are all backslash + one character: dropping escaped backslashes, then escaped quotes,
# leaves every string as `"[^"]*"`. Outside strings a backslash is invalid JSON, and the parser stops
# there: the brackets it could reach before it are counted the same way here.
_JSON_STRING = re.compile(rb'"[^"]*(?:"|\Z)')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_shape_problem(data: bytes, max_depth: int, max_containers: int) -> Optional[str]:
    """Why ``data`` is refused before parsing, or None: more than ``max_containers`` arrays and objects,
    brackets that do not pair up, or nesting deeper than ``max_depth``. Nothing here recurses (the
    standard library's parser recurses once per level) and each step is a C-level pass over the bytes."""
    flat = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", flat))
    opens = brackets.count(b"[") + brackets.count(b"{")
    if opens > max_containers:
        return f"they hold {opens:,} arrays and objects, more than the limit of {max_containers:,}"
    if 2 * opens != len(brackets):
        return "they are not valid JSON (their brackets do not pair up)"
    # Opening brackets weigh 2 and closing ones 0: after i brackets the depth is the running sum minus i.
    running = itertools.accumulate(brackets.translate(_WEIGHTS))
    depth = max(map(operator.sub, running, itertools.count(1)), default=0)
    if depth > max_depth:
        return f"they nest {depth:,} levels deep, more than the limit of {max_depth}"
    return None


# --------------------------------------------------------------------------------------------
# Printing: one line, no control character, no workflow command
# --------------------------------------------------------------------------------------------

# GitHub's runner reads a line as a workflow command when, after its leading whitespace, it starts with
# `::`, and, in the legacy form, when `##[` appears anywhere in it (actions/runner
# src/Runner.Common/ActionCommand.cs, TryParseV2 and TryParse, commit 079cdb1d05fe0ec50f8c51de5a4fa51d0eb189b0;
# ActionCommandManager.TryProcessCommand tries both).
_LEGACY_COMMAND = "##["
_SAFE_LEGACY = "##\\x5b"


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def for_log(text: str) -> str:
    """``text`` as one printable line: ``text.terminal`` (controls, ANSI escapes and line breaks made
    visible), then every other character Python does not call printable (bidirectional overrides and
    other format characters, unassigned code points) as an escape too, and the legacy workflow-command
    prefix broken wherever it is."""
    out = shared.terminal(text)
    if not out.isprintable():
        out = "".join(ch if ch.isprintable() else _escape_char(ch) for ch in out)
    return out.replace(_LEGACY_COMMAND, _SAFE_LEGACY)


def log_line(text: str) -> str:
    """A whole output line: escaped by ``for_log`` and never starting with `::`, even after spaces
    (the runner trims leading whitespace before it looks)."""
    out = for_log(text)
    return "| " + out if out.lstrip().startswith("::") else out


# --------------------------------------------------------------------------------------------
# Secrets: any run of RUN or more of a secret's characters, even split by spaces or controls
# --------------------------------------------------------------------------------------------

RUN = shared.SECRET_RUN
REDACTED = shared.REDACTED


class Redactor:
    """Replaces every stretch of text that holds a run of ``RUN`` or more consecutive characters of a
    secret, where whitespace and unprintable characters between them are skipped (an echo split by
    spaces is still the secret). Every RUN-character window of each secret is kept in a set, and each
    window of the text, with those characters skipped, is looked up once: linear in the text."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: list[str] = []
        self._windows: set[str] = set()
        self._runs = re.compile(r"(?!)")
        for s in secrets:
            self.add(s)

    def add(self, secret: str) -> None:
        secret = "".join(ch for ch in secret if ch.isprintable() and not ch.isspace())
        if not secret or secret in self._secrets:
            return
        self._secrets.append(secret)
        self._windows.update(secret[i:i + RUN] for i in range(len(secret) - RUN + 1))
        # Only stretches of the secrets' own characters can hold a window: the rest is skipped at C speed.
        alphabet = "".join(sorted({ch for s in self._secrets for ch in s}))
        self._runs = re.compile(f"[{re.escape(alphabet)}]{{{RUN},}}")

    def __call__(self, text: str) -> str:
        if not self._secrets:
            return text
        for secret in sorted((s for s in self._secrets if len(s) < RUN), key=len, reverse=True):
            text = text.replace(secret, REDACTED)  # a secret shorter than a run: whole only
        if not self._windows:
            return text
        skipped = {ord(ch): None for ch in set(text) if not ch.isprintable() or ch.isspace()}
        compact = text.translate(skipped) if skipped else text
        hits = [j for m in self._runs.finditer(compact) for j in range(m.start(), m.end() - RUN + 1)
                if compact[j:j + RUN] in self._windows]
        if not hits:
            return text
        kept = [i for i, ch in enumerate(text) if ord(ch) not in skipped]  # compact index -> text index
        spans: list[list[int]] = []
        for j in hits:  # window j covers compact[j : j + RUN]; merge overlapping windows
            start, end = kept[j], kept[j + RUN - 1] + 1
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        out, pos = [], 0
        for start, end in spans:
            out += [text[pos:start], REDACTED]
            pos = end
        out.append(text[pos:])
        return "".join(out)

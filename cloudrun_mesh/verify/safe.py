"""What the check needs to read hostile input and print it safely: a bounded regular-file reader, a
JSON nesting check that never recurses, a terminal/CI-log escaper, and a redactor for partial tokens.

Limits are in docs/verify-limits.md; each has a test in tests/test_verify_hostile.py.
"""

from __future__ import annotations

import itertools
import operator
import os
import re
import stat
from typing import Iterable, Optional

# --------------------------------------------------------------------------------------------
# Reading: only a regular file, never more than a limit, never blocking on a FIFO or a device
# --------------------------------------------------------------------------------------------


class UnsafeInput(Exception):
    """The input cannot be read safely; the message says why in a few words."""


def read_regular_file(path: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file; anything else (FIFO, device, directory, socket) is refused
    before a byte is read. O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer;
    ``fstat`` on the open descriptor then tells what it is (no race between a check and the open)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeInput(f"it is {_kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise UnsafeInput(f"it is larger than the limit of {limit:,} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


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
    """``text`` as one printable line: every character Python does not call printable (C0 and C1 controls,
    ESC and so every ANSI sequence, line and paragraph separators, bidirectional overrides, other
    format characters) becomes a visible escape, and the legacy workflow-command prefix is broken."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)
    return text.replace(_LEGACY_COMMAND, _SAFE_LEGACY)


def log_line(text: str) -> str:
    """A whole output line: escaped by ``for_log`` and never starting (after spaces) with `::`."""
    text = for_log(text)
    return "| " + text if text.lstrip().startswith("::") else text


# --------------------------------------------------------------------------------------------
# Secrets: any run of RUN or more of a secret's characters, even split by spaces or controls
# --------------------------------------------------------------------------------------------

RUN = 8
REDACTED = "[redacted]"


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

"""Untrusted text on its way out, and untrusted files on their way in.

Every value that came from a stack file, a base plan, an outputs file or a server is hostile until it
is escaped for where it goes: GitHub-flavoured Markdown, a Mermaid label, a terminal or CI log, a
command to paste into a shell. Every file we read is bounded before it is parsed. One module, so that
each rule is written once and tested once (tests/test_text.py, with hypothesis).
"""

from __future__ import annotations

import errno
import itertools
import json
import operator
import os
import re
import shlex
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

REDACTED = "[redacted]"
# A run this long of a secret's characters is redacted wherever it appears: a token cut at 120
# characters, split by a space or quoted in part still leaks nothing longer than this.
SECRET_RUN = 8

# CommonMark: any ASCII punctuation may be backslash-escaped
# (https://spec.commonmark.org/0.31.2/#backslash-escapes); these start markup, and `:`, `.` and `@`
# also keep GFM's autolinks (bare URLs, www., e-mail addresses) from forming.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:@])")


class InputFileError(Exception):
    """A file that cannot be read safely: not a regular file, too large, too deep. One paragraph."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {message}")


def _visible(ch: str) -> str:
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


# GitHub's runner reads a line as a workflow command when, after its leading whitespace, it starts with
# `::`, and, in the legacy form, when `##[` appears anywhere in it (actions/runner
# src/Runner.Common/ActionCommand.cs, TryParseV2 and TryParse, commit 079cdb1d05fe0ec50f8c51de5a4fa51d0eb189b0;
# ActionCommandManager.TryProcessCommand tries both).
_LEGACY_COMMAND = "##["
_SAFE_LEGACY = "##\\x5b"


def terminal(value: object) -> str:
    """One printable line for a terminal or a CI log: controls (ANSI escapes, line breaks), bidirectional
    overrides and every other character Python does not call printable shown as escapes (`\\x1b`,
    `\\n`, `\\u202e`), the legacy workflow-command prefix `##[` broken wherever it is, and no `::` at
    the start even after spaces (https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions)."""
    text = str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else _visible(ch) for ch in text)
    text = text.replace(_LEGACY_COMMAND, _SAFE_LEGACY)
    stripped = text.lstrip()
    if stripped.startswith("::"):
        at = len(text) - len(stripped)
        text = text[:at] + "\\x3a" + text[at + 1:]
    return text


def kind_of(value: object) -> str:
    """What a parsed value is, for a message that says what was found instead of what was expected
    (a date is what YAML's timestamp resolution leaves; anything else unknown is an object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    import datetime

    return "a date" if isinstance(value, (datetime.date, datetime.datetime)) else "an object"


def markdown(value: object) -> str:
    """Inline GitHub-flavoured Markdown text: markup characters backslash-escaped, HTML's `<`, `>` and
    `&` as entities (a raw `<img>` would render), line breaks and controls made visible."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", terminal(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_span(value: object, *, in_table: bool = False) -> str:
    """A Markdown code span that shows `value` verbatim, whatever backticks it holds: the fence is one
    backtick longer than the longest run inside (https://spec.commonmark.org/0.31.2/#code-spans), and
    in a table cell `|` is escaped, which GFM requires even inside code spans there
    (https://github.github.com/gfm/#tables-extension-). A leading or trailing backtick or space is
    padded with one space, which CommonMark strips again."""
    text = terminal(value)
    if in_table:
        text = text.replace("|", "\\|")
    if not text:
        return markdown("(empty)")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips no space from a span of spaces only: pad only text with something else in it.
    pad = " " if text.strip(" ") and (text.startswith(("`", " ")) or text.endswith(("`", " "))) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def mermaid_label(value: object) -> str:
    """Text for a quoted Mermaid label (`id["..."]`): every character outside a small safe set as an
    entity code `#<decimal>;`, Mermaid's own escape (https://mermaid.js.org/syntax/flowchart.html,
    "Entity codes to escape characters")."""
    return "".join(ch if re.fullmatch(r"[A-Za-z0-9 _.,:/=@+-]", ch) else f"#{ord(ch)};" for ch in str(value))


def shell_command(args: Sequence[str]) -> str:
    """A command to paste into a POSIX shell, each argument quoted (`shlex.join`), on one line."""
    return terminal(shlex.join(args))


class Redactor:
    """Replaces every stretch of text that holds a run of ``SECRET_RUN`` or more consecutive characters of a
    secret, where whitespace and unprintable characters between them are skipped (an echo split by
    spaces is still the secret). Every SECRET_RUN-character window of each secret is kept in a set, and each
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
        self._windows.update(secret[i:i + SECRET_RUN] for i in range(len(secret) - SECRET_RUN + 1))
        # Only stretches of the secrets' own characters can hold a window: the rest is skipped at C speed.
        alphabet = "".join(sorted({ch for s in self._secrets for ch in s}))
        self._runs = re.compile(f"[{re.escape(alphabet)}]{{{SECRET_RUN},}}")

    def __call__(self, text: str) -> str:
        if not self._secrets:
            return text
        for secret in sorted((s for s in self._secrets if len(s) < SECRET_RUN), key=len, reverse=True):
            text = text.replace(secret, REDACTED)  # a secret shorter than a run: whole only
        if not self._windows:
            return text
        skipped = {ord(ch): None for ch in set(text) if not ch.isprintable() or ch.isspace()}
        compact = text.translate(skipped) if skipped else text
        hits = [j for m in self._runs.finditer(compact) for j in range(m.start(), m.end() - SECRET_RUN + 1)
                if compact[j:j + SECRET_RUN] in self._windows]
        if not hits:
            return text
        kept = [i for i, ch in enumerate(text) if ord(ch) not in skipped]  # compact index -> text index
        spans: list[list[int]] = []
        for j in hits:  # window j covers compact[j : j + SECRET_RUN]; merge overlapping windows
            start, end = kept[j], kept[j + SECRET_RUN - 1] + 1
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


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every stretch holding a run of `SECRET_RUN` or more characters of any secret
    replaced (see ``Redactor``)."""
    return Redactor(secrets)(text)


def read_regular_file(path: Path | str, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes. A FIFO, device, socket or directory is
    refused at once (opened non-blocking, checked with fstat before any read), and so is a larger file
    (it may grow while read: at most `limit` + 1 bytes are read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise InputFileError(path, f"the {what} is a directory, not a regular file.") from None
        raise InputFileError(path, f"the {what} cannot be read: {exc.strerror}.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(path, f"the {what} is not a regular file (a FIFO, device, socket or directory); "
                                 "give the path of a file.")
        if info.st_size > limit:
            raise InputFileError(path, f"the {what} is {info.st_size:,} bytes; at most {limit:,} are read.")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputFileError(path, f"the {what} is over {limit:,} bytes; at most {limit:,} are read.")
        return b"".join(chunks)
    finally:
        os.close(fd)


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


def load_json(path: Path | str, *, limit: int, max_depth: int, max_containers: int = 1_000_000, what: str = "file") -> Any:
    """JSON from a bounded regular file: size checked before parsing, and its shape (nesting, number
    of containers, paired brackets) before the recursive parser sees it, so neither a huge nor a deep
    file costs more than `limit` bytes of work."""
    raw = read_regular_file(path, limit, what)
    problem = json_shape_problem(raw, max_depth, max_containers)
    if problem is not None:
        raise InputFileError(path, f"the {what} is refused: {problem}.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"the {what} is not UTF-8 text (byte {exc.start}).") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputFileError(path, f"the {what} is not JSON: {terminal(exc)}.") from None

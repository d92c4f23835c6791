"""Untrusted text on its way out, and untrusted files on their way in.

Every value that came from a stack file, a base plan, an outputs file or a server is hostile until it
is escaped for where it goes: GitHub-flavoured Markdown, a Mermaid label, a terminal or CI log, a
command to paste into a shell. Every file we read is bounded before it is parsed. One module, so that
each rule is written once and tested once (tests/test_text.py, with hypothesis).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REDACTED = "[redacted]"
# A run this long of a secret's characters is redacted wherever it appears: a token cut at 120
# characters, split by a space or quoted in part still leaks nothing longer than this.
SECRET_RUN = 8

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators (a terminal, GitHub's log
# viewer or a Markdown renderer may each treat one of them as a line break or an escape sequence).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
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
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(value: object) -> str:
    """One line for a terminal or a CI log: controls (ANSI escapes, line breaks) shown as `\\x1b`,
    `\\n`..., and never a leading `::`, which GitHub Actions reads as a workflow command
    (https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions)."""
    text = _CONTROL.sub(lambda m: _visible(m.group()), str(value))
    if text.startswith("::"):
        text = "\\x3a" + text[1:]
    return text


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


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every run of `SECRET_RUN` or more characters of any secret replaced (a shorter
    secret only where it appears whole). Linear in the text for each secret."""
    for secret in secrets:
        if not secret:
            continue
        if len(secret) < SECRET_RUN:
            text = text.replace(secret, REDACTED)
            continue
        windows = {secret[i:i + SECRET_RUN] for i in range(len(secret) - SECRET_RUN + 1)}
        covered = [False] * len(text)
        for i in range(len(text) - SECRET_RUN + 1):
            if text[i:i + SECRET_RUN] in windows:
                covered[i:i + SECRET_RUN] = [True] * SECRET_RUN
        if not any(covered):
            continue
        out: list[str] = []
        i = 0
        while i < len(text):
            if covered[i]:
                while i < len(text) and covered[i]:
                    i += 1
                out.append(REDACTED)
            else:
                out.append(text[i])
                i += 1
        text = "".join(out)
    return text


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


def nesting_depth(text: str) -> int:
    """How deeply `[`/`{` nest in JSON text, outside strings, counted without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def load_json(path: Path | str, *, limit: int, max_depth: int, what: str = "file") -> Any:
    """JSON from a bounded regular file: size checked before parsing, nesting before the (recursive)
    parser sees it, so neither a huge nor a deep file costs more than `limit` bytes of work."""
    raw = read_regular_file(path, limit, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"the {what} is not UTF-8 text (byte {exc.start}).") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise InputFileError(path, f"the {what} nests {depth} levels deep; at most {max_depth} are read.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputFileError(path, f"the {what} is not JSON: {terminal(exc)}.") from None

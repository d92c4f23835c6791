"""What every part of the check shares: its error type, its one clock, bounded calls, and output
that never shows a token."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional, TextIO

EXCERPT = 160


class VerifyError(Exception):
    """A problem with the input or the environment: printed as one paragraph, exit code 2."""


class Budget:
    """One clock for the whole run, so that it always ends within deadline + one request timeout.

    No request starts after ``end``; nothing runs after ``hard_end``.
    """

    def __init__(self, deadline: float, timeout: float, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.deadline = deadline
        self.timeout = timeout
        self.start = clock()
        self.end = self.start + deadline
        self.hard_end = self.end + timeout

    def left(self) -> float:
        return self.end - self.clock()

    def hard_left(self) -> float:
        return self.hard_end - self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start


def bounded(fn: Callable[[], Any], limit: float) -> tuple[bool, Any]:
    """Run ``fn`` in a daemon thread for at most ``limit`` seconds: (finished, result or exception).

    A call that does not finish is abandoned; being a daemon, its thread never delays the exit.
    """
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    worker = threading.Thread(target=target, name="cloudrun-mesh-verify", daemon=True)
    worker.start()
    worker.join(max(limit, 0.0))
    return (True, box[0]) if box else (False, None)


def run_command(cmd: Sequence[str], limit: float, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """A subprocess that, with everything it started, is killed when ``limit`` passes."""
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=max(limit, 0.01))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (OSError, AttributeError):  # already gone, or no process groups on this system
            proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def whole_reason(text: str) -> str:
    """All of a tool's message on one line: gcloud and pulumi explain over several lines, and the
    cause is rarely the last one ("There was a problem refreshing your current auth tokens: ...",
    then "Please run: gcloud auth login")."""
    return " ".join(line.strip() for line in (text or "").splitlines() if line.strip())


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """Printable one-line evidence from a body: HTML tags and control characters dropped."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Output: one lock, and no token ever leaves through it.
# --------------------------------------------------------------------------------------------

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
REDACTED = "[redacted]"


class Printer:
    def __init__(self, out: TextIO, err: TextIO):
        self.out, self.err = out, err
        self.secrets: set[str] = set()
        self._lock = threading.Lock()

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, REDACTED)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, _JWT.sub(REDACTED, text))

    def line(self, text: str = "") -> None:
        self._write(self.out, text)

    def error(self, text: str) -> None:
        self._write(self.err, text)

    def _write(self, stream: TextIO, text: str) -> None:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        text = self.redact(text).encode(encoding, "replace").decode(encoding)
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

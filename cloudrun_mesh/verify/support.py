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
from typing import Any, Optional, TextIO, TypeVar

from cloudrun_mesh import text as safe

EXCERPT = 160

T = TypeVar("T")


class VerifyError(Exception):
    """A problem with the input or the environment: printed as one paragraph, exit code 2."""


class Budget:
    """One clock for the whole run, so that it always ends within deadline + one request timeout.

    No request starts after ``end``; nothing runs after ``hard_end``. The clock is injectable: a clock
    with a ``skip_to(t)`` method (tests/verify_support.py ``SkippingClock``) lets the scheduler jump over
    back-off waits when no request is in flight, so tests do not sleep through them.
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

    def skip_to(self, t: float) -> bool:
        """Move the clock to ``t`` without waiting, when the clock can (a test clock); else False."""
        skip = getattr(self.clock, "skip_to", None)
        if skip is None:
            return False
        skip(t)
        return True


def bounded(fn: Callable[[], T], limit: float,
            slots: Optional[threading.BoundedSemaphore] = None) -> tuple[bool, T | BaseException | None]:
    """Run ``fn`` in a daemon thread for at most ``limit`` seconds: (finished, result or exception), or
    (False, None) when it did not finish.

    A call that does not finish is abandoned; being a daemon, its thread never delays the exit. With
    ``slots``, the thread holds one slot until ``fn`` really returns (abandoned or not), and no thread
    starts without one: the number of such threads alive at once never exceeds the semaphore's size.
    """
    box: list[T | BaseException] = []
    start = time.monotonic()
    if slots is not None and not slots.acquire(timeout=max(limit, 0.0)):
        return False, None

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)
        finally:
            if slots is not None:
                slots.release()

    worker = threading.Thread(target=target, name="cloudrun-mesh-verify", daemon=True)
    try:
        worker.start()
    except BaseException:
        if slots is not None:
            slots.release()
        raise
    worker.join(max(limit - (time.monotonic() - start), 0.0))
    return (True, box[0]) if box else (False, None)


# What a CLI (pulumi, gcloud) may print before it is stopped: the outputs file's own limit.
MAX_COMMAND_OUTPUT = 8 * 1024 * 1024


class OutputTooLarge(Exception):
    """A command printed more than ``MAX_COMMAND_OUTPUT`` bytes on one stream; it was killed."""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):  # already gone, or no process groups on this system
        try:
            proc.kill()
        except OSError:
            pass


def run_command(cmd: Sequence[str], limit: float, cwd: Optional[Path] = None,
                max_output: Optional[int] = None) -> subprocess.CompletedProcess[str]:
    """A subprocess that, with everything it started, is killed when ``limit`` passes or when it prints
    more than ``max_output`` bytes (default ``MAX_COMMAND_OUTPUT``) on either stream."""
    cap = MAX_COMMAND_OUTPUT if max_output is None else max_output
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    boxes: dict[str, bytes] = {}
    over = threading.Event()

    def drain(name: str, stream: Any) -> None:
        try:
            data = stream.read(cap + 1)
        except (OSError, ValueError):  # closed under it: the command was stopped
            data = b""
        if len(data) > cap:
            over.set()
            _kill_group(proc)
        boxes[name] = data[:cap]

    readers = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    try:
        proc.wait(timeout=max(limit, 0.01))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        for r in readers:
            r.join(1.0)
        if any(r.is_alive() for r in readers):  # a child of the command still holds the pipes
            _kill_group(proc)
            for r in readers:
                r.join(1.0)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    if over.is_set():
        raise OutputTooLarge(f"it printed more than {cap:,} bytes")
    out, err = (boxes.get(k, b"").decode("utf-8", "replace") for k in ("out", "err"))
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
REDACTED = safe.REDACTED


class Printer:
    """Every line goes out redacted (any run of 8 or more characters of a known token, anything shaped
    like a JWT or following "Bearer"), then escaped for a terminal or CI log (``cloudrun_mesh.text.terminal``)."""

    def __init__(self, out: TextIO, err: TextIO):
        self.out, self.err = out, err
        self.secrets: set[str] = set()
        self._lock = threading.Lock()
        self._redactor = safe.Redactor()
        self._known: frozenset[str] = frozenset()

    def redact(self, text: str) -> str:
        if self._known != self.secrets:  # ``secrets`` is a plain set that callers add to
            self._known = frozenset(self.secrets)
            self._redactor = safe.Redactor(s for s in self._known if s)
        text = self._redactor(text)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, _JWT.sub(REDACTED, text))

    def line(self, text: str = "") -> None:
        self._write(self.out, text)

    def error(self, text: str) -> None:
        self._write(self.err, text)

    def _write(self, stream: TextIO, text: str) -> None:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        text = safe.terminal(self.redact(text)).encode(encoding, "replace").decode(encoding)
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

"""The command line of `python -m cloudrun_mesh verify`: flags, exit codes, and the run."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Optional, TextIO

from cloudrun_mesh import exit_codes
from cloudrun_mesh.verify import check as checking
from cloudrun_mesh.verify.support import Budget, Printer, VerifyError
from cloudrun_mesh.verify.targets import load_outputs, read_targets, source
from cloudrun_mesh.verify.tokens import TOKEN_ENV, Tokens

# The deadline covers IAM propagation after `pulumi up`: allow-policy changes such as the client's
# roles/trafficdirector.client grant "typically propagate in 2 minutes, but could potentially take
# 7 minutes or longer" (https://cloud.google.com/iam/docs/access-change-propagation).
DEFAULT_DEADLINE = 420.0
DEFAULT_TIMEOUT = 10.0
EXIT_INPUT = exit_codes.USAGE

DESCRIPTION = """\
For every client x exported service pair in the stack output `fetchUrls` it asks the Cloud Run
client's fortio to fetch the service through the mesh, exactly as the guide's final curl does, with
an identity token for the caller. It retries with exponential backoff and jitter until the deadline
(a new revision's sidecar needs a moment to receive its configuration, and IAM grants minutes to
propagate), prints one line per attempt and a summary. A pair that never answered 200 is asked once
through fortio's /fortio/fetch2/, which names the error fortio met, and each distinct cause gets one
diagnosis with the pairs it affects and the next commands filled in with the stack's values."""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds; got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400 seconds; got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "verify",
        help="check that every Cloud Run client reaches every exported service through the mesh",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Exit status: 0 every pair answered 200; 1 at least one did not (diagnosis printed); "
            "2 bad input, unreadable outputs or no credentials; 130 interrupted.\n"
            f"Token order: --token, ${TOKEN_ENV}, google-auth (an ID token for each Cloud Run URL), "
            "`gcloud auth print-identity-token`."
        ),
    )
    p.add_argument("--stack", help="stack whose outputs `pulumi stack output` reads (default: the selected stack)")
    p.add_argument("--outputs", metavar="FILE",
                   help="JSON of `pulumi stack output --json --show-secrets` ('-' for stdin) instead of the CLI")
    p.add_argument("--token", help=f"identity token to send (prefer ${TOKEN_ENV}: arguments are visible to other users)")
    p.add_argument("--deadline", type=_seconds, default=DEFAULT_DEADLINE, metavar="SECONDS",
                   help=f"keep retrying until this many seconds after the start (default {DEFAULT_DEADLINE:g}, "
                        "the documented upper IAM propagation time)")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"limit for each request (default {DEFAULT_TIMEOUT:g}); the run ends within deadline + timeout")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None,
        clock: Optional[Callable[[], float]] = None) -> int:
    """The command; ``out``/``err`` default to the process's streams (tests pass their own to run several at
    once), ``clock`` to ``time.monotonic`` (tests pass one that skips back-off waits)."""
    printer = Printer(out or sys.stdout, err or sys.stderr)
    budget = Budget(args.deadline, args.timeout, clock) if clock else Budget(args.deadline, args.timeout)
    for given in (args.token, os.environ.get(TOKEN_ENV)):
        if given and given.strip():
            printer.secrets.add(given.strip())  # redacted from the first line on, even in an input error
    try:
        raw = load_outputs(args.outputs, args.stack, budget)
        targets = read_targets(raw, f"the stack outputs from {source(args.outputs)}")
        tokens = Tokens(args.token, os.environ.get(TOKEN_ENV), budget, args.timeout)
        for client in targets.clients.values():
            printer.secrets.add(tokens.get(client.base_url))
        return checking.check(targets, tokens, budget, printer)
    except VerifyError as exc:
        printer.error(f"error: {exc}")
        return EXIT_INPUT
    except KeyboardInterrupt:
        printer.error("interrupted")
        return checking.EXIT_INTERRUPTED

"""Which stacks the workflows work on, and in which order a push to main deploys them.

    python3 .github/scripts/stacks.py [--root DIR]

Stacks are discovered from the stack files `Pulumi.<stack>.yaml` in DIR (default: the repository).
The promotion order is read from `.github/promotion` (one stack per line, `#` comments): a push to
main deploys the stacks no line names first (in name order), then the named ones in their order.

Prints, and appends to $GITHUB_OUTPUT when the variable is set, two JSON lists for the workflows'
matrices:

    stacks=["dev","prod","staging"]      every stack, in name order
    promotion=["dev","staging","prod"]   the deploy order

A stack file whose name is not a valid stack name, a stack name that would share a GitHub environment
with another stack, or a promotion order that names a stack without a file (or twice), fails with one
line, as a GitHub error annotation, and exit status 1. File names and lines come from the pull
request: they are shown escaped (Python's repr, then GitHub's workflow-command escaping), so none can
end the annotation or start a workflow command of its own.

Only the standard library: the workflows run it before installing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
from pathlib import Path

# Pulumi's own rule for a stack name (pulumi/pulumi pkg/backend/diy/backend.go, validateStackName:
# `^[A-Za-z0-9_.-]{1,100}$`), matched whole: `$` alone would let a final newline through.
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
STACK_FILE = re.compile(r"Pulumi\.(.*)\.yaml", re.DOTALL)
# Each stack has two GitHub environments, `<stack>` (deploys) and `<stack>-preview` (previews), and
# GitHub compares environment names without regard to case: a stack named `dev-preview` (or
# `Dev-Preview`) would deploy with the secrets of dev's preview environment, and `Dev` would share
# `dev`'s environment. Both are refused.
PREVIEW_SUFFIX = "-preview"
PROMOTION = Path(".github") / "promotion"
# A matrix has at most 256 jobs per workflow run (docs.github.com, workflow syntax,
# jobs.<job_id>.strategy.matrix); the promotion file is a few lines.
MAX_STACKS = 256
MAX_PROMOTION_BYTES = 64 * 1024


class DiscoveryError(Exception):
    """One line saying what is wrong and where."""


def shown(value: object) -> str:
    """A value from the repository as it may appear in a log line: repr() escapes line breaks, ANSI
    escapes and every other non-printable character, so nothing in it can start a line of its own."""
    return repr(str(value))


def command_data(message: str) -> str:
    """GitHub's escaping of a workflow command's message (actions/toolkit packages/core/src/command.ts,
    escapeData): `%`, CR and LF."""
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def discover(root: Path) -> list[str]:
    stacks: list[str] = []
    environments: dict[str, str] = {}
    for path in sorted(root.glob("Pulumi.*.yaml")):
        match = STACK_FILE.fullmatch(path.name)
        name = match.group(1) if match else ""
        if not STACK_NAME.fullmatch(name):
            raise DiscoveryError(
                f"{shown(path.name)}: {shown(name)} is not a valid stack name (Pulumi allows 1-100 letters, "
                "digits, hyphens, underscores and periods); rename the file Pulumi.<stack>.yaml."
            )
        if not path.is_file():
            raise DiscoveryError(f"{shown(path.name)} is not a regular file; a stack file is a YAML file.")
        if name.lower().endswith(PREVIEW_SUFFIX):
            raise DiscoveryError(
                f"{shown(path.name)}: a stack name must not end in {PREVIEW_SUFFIX!r}: {shown(name)} would deploy "
                f"in the GitHub environment that previews the stack {shown(name[: -len(PREVIEW_SUFFIX)])}; rename the file."
            )
        other = environments.get(name.lower())
        if other is not None:
            raise DiscoveryError(
                f"{shown(path.name)}: the stacks {shown(other)} and {shown(name)} differ only in case, and GitHub "
                "environment names ignore case, so both would deploy with the same secrets; rename one."
            )
        environments[name.lower()] = name
        stacks.append(name)
        if len(stacks) > MAX_STACKS:
            raise DiscoveryError(f"more than {MAX_STACKS} stack files: a GitHub matrix runs at most {MAX_STACKS} jobs.")
    if not stacks:
        raise DiscoveryError(f"no stack files (Pulumi.<stack>.yaml) in {shown(root)}.")
    return stacks


def read_promotion(path: Path) -> str:
    """The promotion file, bounded: a regular file of at most MAX_PROMOTION_BYTES of UTF-8 (a FIFO or a
    link to a device would never end), or no file at all."""
    # Opened without blocking and checked on the open descriptor, as cloudrun_mesh/text.py's
    # read_regular_file does (this script cannot import the package: it runs before anything is
    # installed, with the runner's python3).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    except IsADirectoryError:
        raise DiscoveryError(f"{PROMOTION} is not a regular file; write one stack name per line.") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise DiscoveryError(f"{PROMOTION} is not a regular file; write one stack name per line.")
        data = fh.read(MAX_PROMOTION_BYTES + 1)
    if len(data) > MAX_PROMOTION_BYTES:
        raise DiscoveryError(f"{PROMOTION} is larger than {MAX_PROMOTION_BYTES} bytes; write one stack name per line.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DiscoveryError(f"{PROMOTION}: not UTF-8 text (byte {exc.start}); write one stack name per line.") from None


def promotion(root: Path, stacks: list[str]) -> list[str]:
    text = read_promotion(root / PROMOTION)
    listed: list[str] = []
    # Only LF ends a line here; splitlines() would also split on characters a stack name cannot hold,
    # which then fail the name check below with the line they are on.
    for number, line in enumerate(text.split("\n"), 1):
        name = line.split("#", 1)[0].strip(" \t\r")
        if not name:
            continue
        where = f"{PROMOTION}:{number}"
        if not STACK_NAME.fullmatch(name):
            raise DiscoveryError(f"{where}: {shown(name)} is not a valid stack name; write one stack name per line.")
        if name not in stacks:
            raise DiscoveryError(
                f"{where}: the promotion order names {shown(name)}, which has no Pulumi.{name}.yaml "
                f"(stacks: {', '.join(stacks)})."
            )
        if name in listed:
            raise DiscoveryError(f"{where}: {shown(name)} is already in the promotion order; name each stack once.")
        listed.append(name)
    return [s for s in stacks if s not in listed] + listed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2], help="repository root")
    args = parser.parse_args(argv)
    try:
        stacks = discover(args.root)
        order = promotion(args.root, stacks)
    except DiscoveryError as exc:
        print(f"::error::{command_data(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:  # an unreadable root or promotion file: still one line, never a traceback
        print(f"::error::{command_data(f'cannot read the stacks: {exc.strerror or exc}')}", file=sys.stderr)
        return 1
    # Every name passed STACK_NAME, so the JSON lists hold nothing to escape.
    lines = [f"stacks={json.dumps(stacks, separators=(',', ':'))}", f"promotion={json.dumps(order, separators=(',', ':'))}"]
    print("\n".join(lines))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

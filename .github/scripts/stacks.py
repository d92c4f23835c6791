"""Which stacks the workflows work on, and in which order a push to main deploys them.

    python3 .github/scripts/stacks.py [--root DIR]

Stacks are discovered from the stack files `Pulumi.<stack>.yaml` in DIR (default: the repository).
The promotion order is read from `.github/promotion` (one stack per line, `#` comments): a push to
main deploys the stacks no line names first (in name order), then the named ones in their order.

Prints, and appends to $GITHUB_OUTPUT when the variable is set, two JSON lists for the workflows'
matrices:

    stacks=["dev","prod","staging"]      every stack, in name order
    promotion=["dev","staging","prod"]   the deploy order

A stack file whose name is not a valid stack name, or a promotion order that names a stack without a
file (or twice), fails with one line, as a GitHub error annotation, and exit status 1.

Only the standard library: the workflows run it before installing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

# Pulumi's own rule for a stack name (pulumi/pulumi pkg/backend/diy/backend.go, validateStackName:
# `^[A-Za-z0-9_.-]{1,100}$`); the same name is used for the stack's GitHub environment.
STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
STACK_FILE = re.compile(r"^Pulumi\.(.*)\.yaml$")
PROMOTION = Path(".github") / "promotion"


class DiscoveryError(Exception):
    """One line saying what is wrong and where."""


def discover(root: Path) -> list[str]:
    stacks = []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        name = STACK_FILE.match(path.name).group(1)
        if not STACK_NAME.match(name):
            raise DiscoveryError(
                f"{path.name}: {name!r} is not a valid stack name (Pulumi allows 1-100 letters, digits, "
                "hyphens, underscores and periods); rename the file Pulumi.<stack>.yaml."
            )
        stacks.append(name)
    if not stacks:
        raise DiscoveryError(f"no stack files (Pulumi.<stack>.yaml) in {root}.")
    return stacks


def promotion(root: Path, stacks: list[str]) -> list[str]:
    path = root / PROMOTION
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    listed: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        where = f"{PROMOTION}:{number}"
        if name not in stacks:
            raise DiscoveryError(
                f"{where}: the promotion order names {name!r}, which has no Pulumi.{name}.yaml "
                f"(stacks: {', '.join(stacks)})."
            )
        if name in listed:
            raise DiscoveryError(f"{where}: {name!r} is already in the promotion order; name each stack once.")
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
        print(f"::error::{exc}", file=sys.stderr)
        return 1
    lines = [f"stacks={json.dumps(stacks, separators=(',', ':'))}", f"promotion={json.dumps(order, separators=(',', ':'))}"]
    print("\n".join(lines))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

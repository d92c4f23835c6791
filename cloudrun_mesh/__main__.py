"""Command line: `python -m cloudrun_mesh <command> ...`.

Commands live in their own modules and register here: each module exposes ``add_parser(sub)``
which adds its sub-parser and sets ``func`` (a callable taking the parsed args, returning an exit
code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("plan", "verify", "policy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloudrun_mesh", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cloudrun_mesh.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cloudrun_mesh.{name}":
                raise
            continue
        module.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

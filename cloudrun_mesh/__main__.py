"""Command line: `python -m cloudrun_mesh <command> ...`.

Commands live in their own modules and register here: each module exposes ``add_parser(sub)``
which adds its sub-parser and sets ``func`` (a callable taking the parsed args, returning an exit
code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> module that registers it
COMMANDS = {"plan": "cloudrun_mesh.offline.plan", "verify": "cloudrun_mesh.verify", "policy": "cloudrun_mesh.offline.policy"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloudrun_mesh", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The ``jaxcodec`` command line.

Sub-commands are plugins registered under the ``jaxcodec.commands`` entry-point group
(see pyproject.toml), so `runtime` never imports `proxy` or `wrappers`. An entry named
``encode`` adds ``jaxcodec encode``; a dotted name such as ``train.proxy`` adds
``jaxcodec train proxy``. Each entry point is a function ``register(subparsers)`` that adds
its parser and sets ``func=handler(args) -> int``.

Register functions and module top levels must not import JAX: ``jaxcodec decode`` pins
itself to one CPU core before JAX (and XLA's thread pools) start.

User mistakes raise `jaxcodec.errors.JaxcodecError`; they are printed as one line and the
process exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from jaxcodec.errors import JaxcodecError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxcodec", description="JAX video coding toolkit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    groups: dict[str, argparse._SubParsersAction] = {}
    eps = sorted(entry_points(group="jaxcodec.commands"), key=lambda e: e.name)
    for ep in eps:
        target = sub
        if "." in ep.name:
            group, _ = ep.name.split(".", 1)
            if group not in groups:
                gp = sub.add_parser(group, help=f"{group} sub-commands")
                groups[group] = gp.add_subparsers(dest=f"{group}_command", metavar="WHAT", parser_class=_Parser)
                groups[group].required = True
            target = groups[group]
        ep.load()(target)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except JaxcodecError as e:
        print(f"jaxcodec: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("jaxcodec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

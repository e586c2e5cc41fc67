"""The ``ddpm-course`` entry point: one parser with a subcommand per module, and one-line errors.

Each subcommand is one ``add_<name>_parser(subparsers, parents)`` function that registers its
options (``parents`` brings ``--debug``) and sets ``func`` to its ``_run_<name>(args, argv)``;
:data:`COMMANDS` lists them and :func:`main` parses and dispatches. A ``_run_<name>`` checks
every argument and the output location before any long work, and raises ``CLIError`` (or
ValueError/TypeError/OSError) for the user's mistakes: each failure is one line
``ddpm-course: error: ...`` and a non-zero exit status (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from .._commands import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, PROG, _one_line, _Parser
from ..grade import add_grade_parser
from .make import add_make_parser
from .sample import add_evaluate_parser, add_sample_parser
from .train import add_train_parser

__all__ = ["main", "build_parser", "COMMANDS"]

# one entry per subcommand, in the order ``ddpm-course --help`` lists them
COMMANDS = (add_train_parser, add_sample_parser, add_evaluate_parser, add_grade_parser, add_make_parser)




def build_parser() -> argparse.ArgumentParser:
    """The ``ddpm-course`` parser with one subparser per command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser = _Parser(prog=PROG, description="Train and use the DDPM course's models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in COMMANDS:
        add_parser(subparsers, parents=[common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddpm-course`` script; returns the exit status (0 on success,
    1 for an error, 2 for a bad command line, 130 when interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return args.func(args, argv)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # every failure is one line; --debug shows where it came from
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ERROR


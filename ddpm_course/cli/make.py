"""``ddpm-course make NAME``: remake a shipped model with the very command that made it.

Every shipped model (``shipped.SHIPPED``) was made by one command, recorded in its JSON
(``record.command``: the maker, its recipe, its thread count); the registry's ``command`` stands
in for the one file without a JSON, the digit classifier. ``make`` looks that command up and runs
it in this process, so there is one way to make any shipped model, whichever maker it uses:

| the recorded command                 | run as                                              |
|--------------------------------------|-----------------------------------------------------|
| ``ddpm-course train ...``            | ``python -m ddpm_course.cli train ...``             |
| ``python -m ddpm_course.<module> ...`` | that module's ``__main__`` (``runpy.run_module``) |

Options change only where the result goes and whether it may replace a file: ``--out`` replaces
the command's output path (by default the shipped folder of this installation), ``--overwrite``
lets it replace an existing checkpoint (refused otherwise, as by every maker), ``--print`` shows
the command instead of running it, and ``--args '...'`` appends arguments (a shorter
``--steps`` for a trial run: argparse keeps the last value given).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import runpy
import shlex
import sys
import warnings
from collections.abc import Iterator, Sequence

from .. import shipped
from .._commands import CLIError

__all__ = ["add_make_parser", "recorded_command", "make_argv"]

_SHIPPED_PREFIX = "ddpm_course/pretrained/"


def recorded_command(name: str) -> list[str]:
    """The command that made the shipped model ``name``, as argv words: its JSON record's
    ``command`` when it has one, else the registry's."""
    entry = shipped.SHIPPED.get(name)
    if entry is None:
        raise ValueError(f"name must be one of {sorted(shipped.SHIPPED)}; got {name!r}")
    meta = shipped.folder() / f"{entry.file or name}"
    meta = meta.with_suffix(".json") if entry.file else meta.with_name(meta.name + ".json")
    command = entry.command
    if meta.is_file():
        command = json.loads(meta.read_text()).get("record", {}).get("command") or command
    return shlex.split(command)


def _with_option(words: list[str], option: str, value: str | None) -> list[str]:
    """``words`` with ``option value`` set (replaced where present, else appended); a flag when value is None."""
    words = list(words)
    if option in words:
        i = words.index(option)
        if value is not None:
            words[i + 1] = value
        return words
    return words + ([option] if value is None else [option, value])


def make_argv(name: str, out: str | None = None, overwrite: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """The command ``make`` runs for ``name``: the recorded one with its output path made absolute
    (``out``, or this installation's shipped folder), ``--overwrite`` when asked, ``extra`` appended."""
    words = [w for w in recorded_command(name) if w != "--overwrite"]  # replacing is asked for here, never inherited
    if "--out" in words:
        default = words[words.index("--out") + 1]
        if default.startswith(_SHIPPED_PREFIX):
            default = str(shipped.folder() / default[len(_SHIPPED_PREFIX):])
        words = _with_option(words, "--out", out or default)
    elif out is not None:
        if words[:2] == ["python", "-m"] and words[2] == "ddpm_course.metrics":
            raise CLIError(f"{name} is written to the shipped folder {shipped.folder()} only; --out does not apply")
        words = _with_option(words, "--out", out)
    if overwrite:
        words = _with_option(words, "--overwrite", None)
    return words + list(extra)


@contextlib.contextmanager
def _argv(words: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = words
    try:
        yield
    finally:
        sys.argv = saved


def _exit_status(exit_: SystemExit) -> int:
    if exit_.code is None or isinstance(exit_.code, int):
        return exit_.code or 0
    print(f"ddpm-course: error: {exit_.code}", file=sys.stderr)  # a maker's message ("... exists; pass --overwrite")
    return 1


def run(words: list[str]) -> int:
    """Run one maker command (argv words) in this process; returns its exit status."""
    if words[0] == "ddpm-course":  # the command line itself, as `python -m ddpm_course.cli` runs it
        words = ["python", "-m", "ddpm_course.cli", *words[1:]]
    try:
        if words[:2] == ["python", "-m"]:
            with _argv([words[2], *words[3:]]), warnings.catch_warnings():
                # runpy warns that the package already imported the module; running it as __main__ is the point
                warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
                runpy.run_module(words[2], run_name="__main__", alter_sys=True)
        else:
            raise CLIError(f"do not know how to run the recorded command {shlex.join(words)!r}")
    except SystemExit as exit_:
        return _exit_status(exit_)
    return 0


def add_make_parser(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()):
    parser = subparsers.add_parser(
        "make",
        parents=list(parents),
        help="remake a shipped model with the command recorded in it",
        description="Run the command that made a shipped model (its JSON record's command): the same recipe, "
        "seed and thread count. Example: ddpm-course make digits-flow --out runs/digits-flow",
    )
    add = parser.add_argument
    add("name", choices=sorted(shipped.SHIPPED), metavar="NAME", help=f"one of {', '.join(sorted(shipped.SHIPPED))}")
    add("--out", default=None, help="where to write it (default: the shipped folder of this installation)")
    add("--overwrite", action="store_true", help="replace an existing checkpoint there (refused otherwise)")
    add("--print", dest="print_only", action="store_true", help="print the command instead of running it")
    add("--args", dest="extra", type=shlex.split, default=[], metavar="'ARGS'",
        help="more arguments for the maker, in one quoted string, appended (e.g. --args '--steps 10')")
    parser.set_defaults(func=_run_make)
    return parser


def _run_make(args: argparse.Namespace, argv: Sequence[str]) -> int:
    words = make_argv(args.name, args.out, args.overwrite, args.extra)
    if args.print_only:
        print(shlex.join(words))
        return 0
    print(f"making {args.name}: {shlex.join(words)}", flush=True)
    return run(words)

"""What every ``ddpm-course`` command shares: the one-line error, the parser, the argument types,
the device and thread options, and the checks of an output location before any long work.

``cli`` (train, sample, evaluate) and ``grade`` both build on it, so neither imports the other's
internals.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

import torch

from ._checks import device_or_none
from .timing import hardware_description  # noqa: F401 - cli.hardware_description, as before

PROG = "ddpm-course"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class CLIError(Exception):
    """A problem with what the user asked for; printed as one line, never with a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``ddpm-course: error: <subcommand>: <message>``."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog.removeprefix(PROG).strip()
        self.exit(EXIT_USAGE, f"{PROG}: error: {where + ': ' if where else ''}{message} (see {self.prog} --help)\n")


def _one_line(err: BaseException) -> str:
    """An error as the one line a command prints: the message alone for the user's mistakes
    (CLIError, ValueError, TypeError, OSError), with its type and a --debug hint otherwise."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, (CLIError, ValueError, TypeError, OSError)):
        return text
    return f"{type(err).__name__}: {text} (run with --debug for the traceback)"


# ----------------------------------------------------------------------------- argument types


def _int_in(low: int, high: int):
    span = f"in [{low}, {high}]" if high < 2**31 - 1 else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {span}; got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer {span}; got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def _finite(low: float, high: float = math.inf, low_open: bool = False):
    span = f"{'(' if low_open else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}; got {text!r}") from None
        inside = (value > low if low_open else value >= low) and value <= high
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}; got {text}")
        return value

    parse.__name__ = "number"
    return parse


_positive_int = _int_in(1, 2**31 - 1)
_seed = _int_in(0, 2**63 - 1)
_threads = _int_in(1, 1024)


def _device(text: str) -> torch.device:
    """``auto`` (cuda > mps > cpu) or a torch device that exists on this machine."""
    from . import pick_device

    if text == "auto":
        return pick_device()
    allowed = f"must be auto, cpu, cuda, cuda:N or mps; got {text!r}"
    try:
        device = device_or_none("--device", text, hint="try auto or cpu")
    except ValueError as err:  # the one device check, in the CLI's words
        message = str(err).removeprefix("--device ")
        raise argparse.ArgumentTypeError(allowed if message.startswith("must be") else message) from None
    if device.type == "meta":
        raise argparse.ArgumentTypeError(allowed)
    return device


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=_device, default="auto",
                        help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--threads", type=_threads, default=None,
                        help="CPU threads for torch, for runs on the CPU (default: torch's choice)")


def _set_threads(args: argparse.Namespace) -> None:
    """--threads sets torch's CPU threads, on a CPU run only (a GPU run keeps torch's choice)."""
    if args.threads is None:
        return
    if args.device.type == "cpu":
        torch.set_num_threads(args.threads)
    else:
        print(f"note: --threads {args.threads} ignored: this run is on {args.device}, not the CPU", file=sys.stderr)


# ----------------------------------------------------------------------------- output locations


def check_output(path: Path, overwrite: bool, what: str = "--out") -> Path:
    """Check that ``path`` can be written: its folder exists and is writable, it is not a
    folder itself, and it does not exist unless ``overwrite``. Returns it; CLIError otherwise."""
    folder = path.parent
    if path.is_dir():
        raise CLIError(f"{what} {path} is a folder; give a file name inside it")
    if not folder.is_dir():
        raise CLIError(f"the folder {folder} of {what} {path} does not exist; create it first")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise CLIError(f"{path} already exists; pass --overwrite to replace it, or choose another {what}")
        if not path.is_file():
            raise CLIError(f"{path} exists and is not a regular file; refusing to replace it")
    try:  # the only reliable test of writability (permissions, read-only file systems, quotas)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ddpm-course-probe-"):
            pass
    except OSError as err:
        raise CLIError(f"cannot write in the folder {folder} of {what} {path}: {err.strerror or err}") from None
    return path


def _write_atomically(path: Path, overwrite: bool, write) -> None:
    """Call ``write(temporary_path)``, then move the file into place: no half-written ``path``, and
    without ``overwrite`` an existing ``path`` (even one created meanwhile) is never replaced."""
    from .checkpoint import _usual_permissions

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    _usual_permissions(fd)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with FileExistsError instead of replacing
    except FileExistsError:
        raise CLIError(f"{path} appeared while this command ran; nothing was replaced (pass --overwrite)") from None
    finally:
        tmp.unlink(missing_ok=True)

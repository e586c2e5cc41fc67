"""What every maker of a shipped model shares: its command line's common options and its run record.

| function         | gives                                                                  |
|------------------|------------------------------------------------------------------------|
| ``maker_parser`` | --out, --seed, --threads, --overwrite (--no-progress), one option per recipe default |
| ``run_record``   | a checkpoint's ``record``: the fields given, the command, the hardware, the date |

``ddpm-course make NAME`` (``cli/make.py``) reruns the command a record holds.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any

import torch

from .timing import hardware_description

__all__ = ["maker_parser", "run_record"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}")
    return value


def maker_parser(prog: str, description: str | None, *, progress: bool = True,
                 **recipe: int | float) -> argparse.ArgumentParser:
    """The maker's parser: ``--out`` (required, a checkpoint path without suffix), one option per
    ``recipe`` default (``warmup_steps=50`` gives ``--warmup-steps``, typed like its default),
    ``--seed``, ``--threads`` (>= 1), ``--overwrite`` and, when ``progress``, ``--no-progress``.
    The maker adds its own options to it before parsing."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", required=True, help="checkpoint path without suffix")
    for name, default in recipe.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default,
                            help=f"default {default}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=_positive, default=1, help="torch threads (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    if progress:
        parser.add_argument("--no-progress", action="store_true")
    return parser


def run_record(prog: str, argv: list[str] | None, **fields: Any) -> dict[str, Any]:
    """``fields`` plus ``command`` (``prog`` and the arguments as given), ``hardware`` (this CPU,
    the torch threads) and ``date_utc``: what a shipped checkpoint's JSON records."""
    args = sys.argv[1:] if argv is None else argv
    return {**fields, "command": " ".join([prog, *args]), "hardware": hardware_description(torch.device("cpu")),
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")}

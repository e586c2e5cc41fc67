"""``ddpm-course train``: train a preset recipe (``train.PRESETS``) and save a checkpoint.

Every argument and the output location are checked before any long work (``_plan_train``); the
run is ``train.train`` on the preset's model, schedule and data; ``_Saver`` writes the checkpoint
(periodically with ``--save-every``, and at the end, falling back rather than lose the run).
SIGINT, SIGTERM and SIGHUP stop training after the current step and never cut a save short.
The command also runs unchanged under ``torchrun --nproc_per_node N`` (data-parallel training,
see :mod:`ddpm_course.distributed`): rank 0 prints and saves, every rank ends with the same weights.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._commands import (
    EXIT_ERROR,
    PROG,
    CLIError,
    _add_device_options,
    _finite,
    _int_in,
    _one_line,
    _positive_int,
    _seed,
    _set_threads,
    check_output,
    hardware_description,
)

__all__ = ["add_train_parser"]

MAX_BATCH = 2**16  # _checks.MAX_BATCH: images per training step


def add_train_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    from ..train import PRECISIONS, PRESETS

    presets = "\n".join(
        textwrap.fill(p.description, width=88, initial_indent=f"  {name:15s} ", subsequent_indent=" " * 18)
        for name, p in PRESETS.items()
    )
    parser = subparsers.add_parser(
        "train",
        parents=list(parents),
        help="train a preset recipe and save a checkpoint",
        description=textwrap.fill(
            "Train a noise predictor with one of the preset recipes and save it as a checkpoint "
            "(NAME.safetensors + NAME.json). The EMA weights are saved when the recipe keeps an EMA, "
            "the raw weights otherwise. Ctrl-C finishes the current step, saves what was learned "
            "(resumable with --resume) and exits with status 130.", width=88,
        ) + "\n\nPresets:\n" + presets,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--preset", choices=sorted(PRESETS), default=None,
        help="the recipe: data, model, schedule and optimiser settings (required unless --resume)")
    add("--data-root", default="data", metavar="DIR",
        help="the folder of the mnist and cifar10 presets' files, in torchvision's layout (default ./data)")
    add("--download", action="store_true",
        help="download the mnist or cifar10 files into --data-root if they are missing (off by default)")
    add("--seed", type=_seed, default=None,
        help="seeds the model's initialisation and every random draw of training (default 0)")
    add("--steps", type=_positive_int, default=None,
        help="optimiser steps to run (default: the preset's; reproducible)")
    add("--batch-size", type=_int_in(1, MAX_BATCH), default=None,
        help="images per step (and per process under torchrun; default: the preset's); lower it when a GPU "
        "runs out of memory")
    add("--minutes", type=_finite(0, low_open=True), default=None,
        help="wall-clock budget in minutes instead of steps (not reproducible: depends on the machine)")
    add("--out", default=None,
        help="checkpoint path without extension (default: ./PRESET, or the --resume path); "
        "writes OUT.safetensors and OUT.json")
    add("--overwrite", action="store_true", help="replace an existing checkpoint at --out (refused otherwise)")
    add("--save-every", type=_finite(0, low_open=True), default=None, metavar="MINUTES",
        help="keep the latest state at --out every so many minutes (atomically), so that --resume can continue it")
    add("--resume", default=None, metavar="PATH",
        help="continue the run saved at PATH (by --save-every or Ctrl-C): preset, seed and budget come from it")
    _add_device_options(parser)
    add("--precision", choices=PRECISIONS, default=None,
        help="fp32 (default), bf16 autocast, or fp16 autocast with a gradient scaler (CUDA only)")
    add("--bf16", action="store_true", help="the same as --precision bf16 (helps on CPUs with AMX and on GPUs)")
    add("--fp16-weights", action="store_true",
        help="store the weights as float16 (half the file; loading casts back to float32)")
    add("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_run_train)
    return parser


@dataclass
class _TrainPlan:
    """A training run as checked before it starts."""

    preset: str
    seed: int
    steps: int | None
    minutes: float | None
    precision: str
    out: Path
    overwrite: bool
    batch_size: int | None = None  # None: the preset's
    resume: object = None  # the Checkpoint to continue, or None
    commands: list = field(default_factory=list)


def _same(option: str, given, saved) -> None:
    if given is not None and given != saved:
        raise CLIError(
            f"{option} {given} differs from the resumed run's {saved}; a resumed run keeps its settings (drop "
            f"{option})"
        )


def _plan_resume(args: argparse.Namespace, argv: Sequence[str]) -> _TrainPlan:
    from ..checkpoint import checkpoint_paths, load_checkpoint
    from ..train import PRESETS

    ckpt = load_checkpoint(args.resume)
    if ckpt.train_state is None:
        raise CLIError(
            f"{args.resume} holds no training state to resume (a finished run, or one saved without --save-every)"
        )
    record, settings = ckpt.record, ckpt.train_state.scalars.get("settings")
    if not isinstance(settings, dict):
        raise CLIError(f"{args.resume}: its training state has no settings; it was not saved by {PROG} train")
    if record.get("preset") not in PRESETS:
        raise CLIError(f"{args.resume} does not name a preset in its record; it was not saved by {PROG} train")
    _same("--preset", args.preset, record["preset"])
    _same("--seed", args.seed, record.get("seed"))
    _same("--steps", args.steps, settings.get("steps"))
    _same("--minutes", args.minutes, settings.get("minutes"))
    _same("--precision", _precision(args), settings.get("precision"))
    _same("--batch-size", args.batch_size, settings.get("batch_size"))
    options = record.get("cli_options") if isinstance(record.get("cli_options"), dict) else {}
    saved_threads = options.get("threads")
    if saved_threads is not None and args.device.type == "cpu":
        _same("--threads", args.threads, saved_threads)
        args.threads = saved_threads  # the thread count changes the float sums: the run continues with its own
    saved_fp16 = options.get("fp16_weights")
    if saved_fp16 is not None:
        if args.fp16_weights and not saved_fp16:
            raise CLIError("--fp16-weights differs from the resumed run, which saves float32 weights; a resumed run "
                           "keeps its settings (drop --fp16-weights)")
        args.fp16_weights = bool(saved_fp16)
    same_place = args.out is None or checkpoint_paths(args.out) == checkpoint_paths(args.resume)
    return _TrainPlan(
        preset=record["preset"], seed=int(record.get("seed", 0)),
        steps=settings.get("steps"), minutes=settings.get("minutes"),
        precision=settings.get("precision", "fp32"), out=Path(args.resume if args.out is None else args.out),
        batch_size=settings.get("batch_size"),
        overwrite=args.overwrite or same_place, resume=ckpt,
        commands=[*record.get("commands", [record.get("command")]), f"{PROG} " + " ".join(argv)],
    )


def _precision(args: argparse.Namespace) -> str | None:
    if args.bf16:
        if args.precision not in (None, "bf16"):
            raise CLIError(f"--bf16 and --precision {args.precision} contradict each other; give one")
        return "bf16"
    return args.precision


def _plan_train(args: argparse.Namespace, argv: Sequence[str]) -> _TrainPlan:
    """Everything a training run needs, checked before it starts: the arguments, the run to
    resume, the output files (folder, permissions, no overwriting unless asked)."""
    from ..checkpoint import checkpoint_paths

    if args.resume is not None:
        plan = _plan_resume(args, argv)
    elif args.preset is None:
        raise CLIError("give --preset (one of the recipes in ddpm-course train --help), or --resume PATH")
    else:
        plan = _TrainPlan(preset=args.preset, seed=0 if args.seed is None else args.seed, steps=args.steps,
                          minutes=args.minutes, precision=_precision(args) or "fp32",
                          out=Path(args.out if args.out is not None else args.preset), overwrite=args.overwrite,
                          batch_size=args.batch_size, commands=[f"{PROG} " + " ".join(argv)])
    if plan.out.is_dir():
        raise CLIError(f"--out {plan.out} is a folder; give a checkpoint name inside it, e.g. {plan.out / plan.preset}")
    if plan.precision == "fp16" and args.device.type != "cuda":
        raise CLIError(f"--precision fp16 needs a CUDA GPU; this run is on {args.device} (use bf16 or fp32)")
    if args.ranks is not None and (plan.resume is not None or plan.minutes is not None or args.save_every):
        raise CLIError("under torchrun give a step budget and drop --resume, --minutes and --save-every: every "
                       "rank must stop at the same step, and one rank's state cannot continue the run")
    for p in checkpoint_paths(plan.out):
        check_output(p, plan.overwrite)
    _report_stale_temporaries(plan.out)
    _set_threads(args)
    return plan


def _report_stale_temporaries(out: Path) -> None:
    """Temporary files an earlier save at ``out`` left when it was killed: removed when their
    process is gone, named otherwise."""
    from ..checkpoint import clean_stale_temporaries

    removed, kept = clean_stale_temporaries(out)
    for tmp in removed:
        print(f"note: removed {tmp}, left by an earlier save that was killed", file=sys.stderr)
    for tmp in kept:
        print(f"note: {tmp} is a temporary file of another save (under way, or from an older version); "
              "remove it by hand if no other save is running", file=sys.stderr)


def _train_record(args: argparse.Namespace, plan: _TrainPlan, preset, result, status: str) -> dict:
    tail = result.losses[-100:]
    record = {
        "preset": plan.preset,
        "seed": plan.seed,
        "command": plan.commands[0],
        "weights": "ema" if result.ema_model is not None else "raw",
        "status": status,
        "steps": result.steps,
        "batch_size": _train_kwargs(plan, preset)["batch_size"],
        "train_seconds": round(result.seconds, 1),
        "images_per_second": round(result.images_per_second, 1) if result.steps else 0.0,
        "final_loss": round(sum(tail) / len(tail), 5) if tail else None,
        "hardware": hardware_description(args.device),
        "bf16_autocast": plan.precision == "bf16",
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "train_settings": _train_kwargs(plan, preset),
        # what a --resume restores besides the training state (the thread count changes the float sums)
        "cli_options": {"threads": torch.get_num_threads() if args.device.type == "cpu" else None,
                        "fp16_weights": bool(args.fp16_weights)},
    }
    if plan.precision != "fp32":
        record["precision"] = plan.precision
    if args.ranks is not None:
        record["processes"] = args.ranks.world_size  # torchrun: batch_size images per process and step
    if len(plan.commands) > 1:
        record["commands"] = plan.commands
    if status == "interrupted":
        record["interrupted_at_step"] = result.steps
    return record


def _train_kwargs(plan: _TrainPlan, preset) -> dict:
    """The preset's optimisation settings, with --batch-size when given."""
    kwargs = preset.train_kwargs()
    if plan.batch_size is not None:
        kwargs["batch_size"] = plan.batch_size
    return kwargs


def _load_preset(plan: _TrainPlan, args: argparse.Namespace):
    from ..distributed import main_rank_first
    from ..train import build_preset

    run = build_preset(plan.preset, seed=plan.seed, data_root=args.data_root, download=args.download)
    try:
        with main_rank_first(args.ranks):  # under torchrun, rank 0 downloads before the others read
            run.data  # noqa: B018 -- read the files now, before any long work
        return run
    except FileNotFoundError:
        folder = {"mnist": "MNIST/raw", "cifar10": "cifar-10-batches-py"}.get(plan.preset, plan.preset)
        raise CLIError(
            f"the {plan.preset} files are not in --data-root {args.data_root}; pass --download to fetch them "
            f"there (torchvision, needs a network), or copy torchvision's {folder} folder into it"
        ) from None


def _run_train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``ddpm-course train``; under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) one rank of a DDP run."""
    from .. import distributed

    args.ranks = distributed.from_env()
    plan = _plan_train(args, argv)  # every argument is checked before a process group is joined
    if args.ranks is None:
        return _train(args, plan)
    args.device = distributed.start(args.ranks, args.device)  # waits distributed.join_timeout() s at most
    try:
        return _train(args, plan)
    finally:
        distributed.stop()


def _train(args: argparse.Namespace, plan: _TrainPlan) -> int:
    from .._signals import DeferredSignals, exit_status, signal_name
    from ..distributed import rank_seed
    from ..models import count_parameters
    from ..train import train

    run = _load_preset(plan, args)
    preset = run.preset
    main_rank = args.ranks is None or args.ranks.is_main
    say = print if main_rank else (lambda *a, **k: None)
    steps, minutes = plan.steps, plan.minutes
    if steps is None and minutes is None:
        steps, minutes = preset.steps, preset.minutes
    budget = " or ".join(b for b in (f"{steps} steps" if steps else "", f"{minutes} min" if minutes else "") if b)
    ranks = f"; {args.ranks.world_size} processes (torchrun)" if args.ranks else ""
    say(f"preset {plan.preset}: {preset.arch}, {count_parameters(run.model):,} parameters, "
        f"{preset.schedule} schedule T={preset.T}; budget {budget}; {hardware_description(args.device)}{ranks}")
    saver = _Saver(args, plan, run)
    # From here to the end of the last save, SIGINT, SIGTERM and SIGHUP never cut a save short: during
    # training they stop the loop after the step (train's own guard), during a save they wait for its end.
    with DeferredSignals(deliver=False) as held:
        result = train(
            run.model, run.schedule, run.data, steps=steps, minutes=minutes,
            generator=torch.Generator().manual_seed(rank_seed(plan.seed, args.ranks)), device=args.device,
            precision=plan.precision, progress=main_rank and not args.no_progress,
            resume=plan.resume.train_state if plan.resume else None, distributed=args.ranks is not None,
            checkpoint_every=args.save_every, on_checkpoint=saver.periodic if args.save_every else None,
            **_train_kwargs(plan, preset),
        )
        if not main_rank:
            return exit_status(result.stop_signal) if result.interrupted else 0
        status = "interrupted" if result.interrupted else "finished"
        written = saver.final(result, status)
    signals = [s for s in (result.stop_signal, *held.pending) if s is not None]
    if written is None:
        return EXIT_ERROR
    weights, meta, complete = written
    if result.interrupted:
        resumable = f"; continue with: {_continue_command(args, plan)}" if complete and result.state else ""
        print(f"interrupted at step {result.steps} ({signal_name(signals[0])}); saved {weights} and {meta}"
              f"{resumable}", file=sys.stderr)
        return exit_status(signals[0])
    loss = _train_record(args, plan, preset, result, "finished")["final_loss"]
    print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min ({result.images_per_second:.0f} images/s), "
          f"final loss {loss:.4f}; saved {weights} and {meta}")
    if signals:
        print(f"{signal_name(signals[0])} arrived at the end of the run; the checkpoint above was saved whole first",
              file=sys.stderr)
        return exit_status(signals[0])
    return 0 if complete else EXIT_ERROR


def _continue_command(args: argparse.Namespace, plan: _TrainPlan) -> str:
    """The command that continues this run: --resume restores the preset, seed, budget, batch size,
    precision, threads and weights dtype; the options below are not saved, so they are repeated."""
    parts = [PROG, "train", "--resume", str(plan.out)]
    parts += ["--device", str(args.device)]  # "auto" might pick another device, and another device other sums
    if args.data_root != "data":
        parts += ["--data-root", args.data_root]
    if args.save_every:
        parts += ["--save-every", f"{args.save_every:g}"]
    if args.no_progress:
        parts.append("--no-progress")
    return " ".join(shlex.quote(p) for p in parts)


class _Saver:
    """The saves of one ``ddpm-course train`` run: periodic ones that may fail without ending the
    run, and a last one that falls back rather than lose the run."""

    def __init__(self, args: argparse.Namespace, plan: _TrainPlan, run):
        self.args, self.plan, self.run = args, plan, run

    def save(self, result, status: str, out: Path, with_state: bool, fp16: bool, overwrite: bool):
        from ..checkpoint import save_checkpoint

        record = _train_record(self.args, self.plan, self.run.preset, result, status)
        if status != "finished" and not with_state:
            record["note"] = "saved without its training state (the full save failed): it cannot be resumed"
        paths = save_checkpoint(
            out, result.final_model, self.run.schedule, sample_shape=self.run.sample_shape, record=record,
            weights_dtype=torch.float16 if fp16 else torch.float32, overwrite=overwrite,
            train_state=result.state if with_state else None,
        )
        if out == self.plan.out:
            self.plan.overwrite = True  # from now on the files at --out are this run's own
        return paths

    def periodic(self, result) -> None:
        """A --save-every save; a failure is reported and training goes on (the previous save stays)."""
        try:
            self.save(result, "running", self.plan.out, True, self.args.fp16_weights, self.plan.overwrite)
        except (OSError, ValueError) as err:
            print(f"warning: the periodic save at step {result.steps} failed ({_one_line(err)}); the previous "
                  f"save at {self.plan.out} is kept and training goes on", file=sys.stderr)

    def final(self, result, status: str) -> tuple[Path, Path, bool] | None:
        """The last save, trying in turn: everything at --out; the weights alone (no training state);
        the weights alone as float16; then the same beside --out under another name. Returns
        (weights, json, complete) or None (after saying what was lost) when nothing could be written."""
        out, fp16 = self.plan.out, self.args.fp16_weights
        state = status != "finished" and result.state is not None
        rescue = out.with_name(f"{out.name}-rescued-{os.getpid()}")
        tries = list(dict.fromkeys([
            (out, state, fp16), (out, False, fp16), (out, False, True), (rescue, state, fp16), (rescue, False, True),
        ]))
        errors: list[str] = []
        for where, with_state, half in tries:
            try:
                weights, meta = self.save(result, status, where, with_state, half,
                                          self.plan.overwrite if where == out else False)
            except ValueError as err:  # non-finite weights, an unstorable record: another name will not help
                errors.append(_one_line(err))
                break
            except OSError as err:
                errors.append(_one_line(err))
                continue
            complete = (where, with_state, half) == tries[0]
            if not complete:
                lost = [w for w, gone in (("its training state (it cannot be resumed)", state and not with_state),
                                          ("float32 precision (saved as float16)", half and not fp16)) if gone]
                lost = " and ".join(lost) or "nothing"
                print(f"warning: the save to {out} failed ({errors[0]}); saved the "
                      f"{'EMA ' if result.ema_model is not None else ''}weights at {where} instead, losing {lost}",
                      file=sys.stderr)
            return weights, meta, complete
        print(f"{PROG}: error: could not save the run at step {result.steps} ({'; '.join(dict.fromkeys(errors))}); "
              f"tried {out} and {rescue}. The trained weights were only in memory and are lost now: free "
              "space or fix the folder, then train again", file=sys.stderr)
        return None


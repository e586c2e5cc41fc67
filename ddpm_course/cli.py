"""The ``ddpm-course`` command line.

| command               | does                                                              |
|-----------------------|-------------------------------------------------------------------|
| ``ddpm-course train`` | trains a preset recipe (see ``train.PRESETS``) and saves a checkpoint |
| ``ddpm-course sample`` | draws samples from a shipped model or a checkpoint into an image  |
| ``ddpm-course evaluate`` | scores a model's digits: FD, FD_inf, precision, recall, KID, floors; memorisation |
| ``ddpm-course grade`` | grades learners' notebooks in fresh kernels (see :mod:`ddpm_course.grade`) |
| ``ddpm-course make``  | remakes a shipped model with the command recorded in it (:mod:`ddpm_course.make`) |

``ddpm-course train`` also runs unchanged under ``torchrun --nproc_per_node N`` (data-parallel
training with DistributedDataParallel, see :mod:`ddpm_course.distributed`): rank 0 prints
and saves, every rank ends with the same weights.

Each subcommand is one ``add_<name>_parser(subparsers, parents)`` function that registers its
options (``parents`` brings ``--debug``) and sets ``func`` to its ``_run_<name>(args, argv)``,
listed in :data:`COMMANDS`; :func:`main` parses and dispatches. A ``_run_<name>`` checks every
argument and the output location (:func:`check_output`) before any long work, and raises
:class:`CLIError` (or ValueError/TypeError/OSError) for the user's mistakes: each failure is one
line ``ddpm-course: error: ...`` and a non-zero exit status (``--debug`` shows the traceback).
Every shipped model is remade by ``ddpm-course make NAME``, which runs the command recorded in
its JSON (with its training time and hardware); ``digits`` and ``toy2d`` were made by
``ddpm-course train --preset digits`` / ``--preset toy2d``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import textwrap
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._commands import (  # noqa: F401 - the shared pieces, also reachable as cli.<name>
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    CLIError,
    _add_device_options,
    _device,
    _finite,
    _int_in,
    _Parser,
    _positive_int,
    _seed,
    _set_threads,
    _threads,
    _write_atomically,
    check_output,
    hardware_description,
)
from ._model import num_classes as _num_classes

__all__ = [
    "main", "build_parser", "add_train_parser", "add_sample_parser", "add_evaluate_parser", "hardware_description",
    "CLIError",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
MAX_SAMPLES = 4096
MAX_BATCH = 2**16  # _checks.MAX_BATCH: images per training step
MAX_GUIDANCE = 100.0  # classifier-free guidance scales in use are below 20; far above, the samples overflow


# ----------------------------------------------------------------------------- train


def add_train_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    from .train import PRECISIONS, PRESETS

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
    from .checkpoint import checkpoint_paths, load_checkpoint
    from .train import PRESETS

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
    from .checkpoint import checkpoint_paths

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
    from .checkpoint import clean_stale_temporaries

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
    from .distributed import main_rank_first
    from .train import build_preset

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
    from . import distributed

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
    from ._signals import DeferredSignals, exit_status, signal_name
    from .distributed import rank_seed
    from .models import count_parameters
    from .train import train

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
    import shlex

    return " ".join(shlex.quote(p) for p in parts)


class _Saver:
    """The saves of one ``ddpm-course train`` run: periodic ones that may fail without ending the
    run, and a last one that falls back rather than lose the run."""

    def __init__(self, args: argparse.Namespace, plan: _TrainPlan, run):
        self.args, self.plan, self.run = args, plan, run

    def save(self, result, status: str, out: Path, with_state: bool, fp16: bool, overwrite: bool):
        from .checkpoint import save_checkpoint

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


# ----------------------------------------------------------------------------- sample

# the sampler options the command line offers; which sampler takes which comes from samplers.SAMPLERS
SAMPLER_FLAGS = ("steps", "spacing", "eta", "variance", "order")


def add_sample_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    from .samplers import SAMPLERS, SPACINGS, VARIANCES

    parser = subparsers.add_parser(
        "sample",
        parents=list(parents),
        help="draw samples from a model into an image",
        description="Draw --n samples with one of the course's samplers and save them as an image "
        f"({', '.join(IMAGE_EXTENSIONS)}): an image grid for image models, a scatter plot for 2-D "
        "models. Example: ddpm-course sample --model digits --sampler dpm_solver --steps 20 --n 64 --seed 0 "
        "--out grid.png",
    )
    add = parser.add_argument
    add("--model", default="digits",
        help="a shipped noise predictor (digits, toy2d, digits-cond, digits-prompt), the latent model digits-latent "
        "(its samples are decoded by its VAE), or a checkpoint path (default digits)")
    add("--sampler", default="dpm_solver", choices=sorted(SAMPLERS), help="default dpm_solver")
    add("--steps", type=_positive_int, default=None,
        help="network evaluations, for ddim, euler and dpm_solver (default: the sampler's; ddpm runs all T steps)")
    add("--spacing", default=None, choices=SPACINGS,
        help="where the steps sit (default: the sampler's, as in diffusers)")
    add("--eta", type=_finite(0.0, 1.0), default=None,
        help="DDIM's noise knob in [0, 1] (1: DDPM's noise), for --sampler ddim only (default 0)")
    add("--variance", default=None, choices=VARIANCES,
        help="DDPM's sigma_t^2: beta or posterior, for --sampler ddpm only")
    add("--order", type=_int_in(1, 2), default=None, help="DPM-Solver++'s order, 1 or 2, for --sampler dpm_solver only")
    add("--label", type=_int_in(0, 2**31 - 1), default=None,
        help="the class to draw, for a class-conditional model such as digits-cond (default: none, the null label)")
    add("--prompt", default=None,
        help="the words to draw, for a prompt model such as digits-prompt, e.g. 'thin seven' (default: none)")
    add("--guidance", type=_finite(0.0, MAX_GUIDANCE), default=None,
        help=f"classifier-free guidance scale s in [0, {MAX_GUIDANCE:g}] with --label or --prompt: 0 unconditional, "
        "1 conditional (default), above 1 guided")
    add("--n", type=_int_in(1, MAX_SAMPLES), default=64, help=f"how many samples, at most {MAX_SAMPLES} (default 64)")
    add("--seed", type=_seed, default=0, help="seed of the generator that draws all noise (default 0)")
    add("--out", required=True,
        help=f"the image file to write; its extension says the format ({', '.join(IMAGE_EXTENSIONS)})")
    add("--overwrite", action="store_true", help="replace an existing --out (refused otherwise)")
    _add_device_options(parser)
    parser.set_defaults(func=_run_sample)
    return parser


def _sampler_options(args: argparse.Namespace) -> dict:
    """The sampler options given on the command line; refuses those the chosen sampler does not take."""
    from .samplers import SAMPLERS

    takes = SAMPLERS[args.sampler].options
    given = {name: getattr(args, name) for name in SAMPLER_FLAGS if getattr(args, name) is not None}
    wrong = [name for name in given if name not in takes]
    if wrong:
        flags = ", ".join(f"--{a}" for a in SAMPLER_FLAGS if a in takes) or "none of the sampler options"
        verb = "does" if len(wrong) == 1 else "do"
        raise CLIError(
            f"{', '.join('--' + w for w in wrong)} {verb} not apply to --sampler {args.sampler}, which takes {flags}"
        )
    return given


def _check_sample_args(args: argparse.Namespace) -> Path:
    out = check_output(Path(args.out), args.overwrite)
    if out.suffix.lower() not in IMAGE_EXTENSIONS:
        raise CLIError(f"--out {out} must end in one of {', '.join(IMAGE_EXTENSIONS)} (the extension names the format)")
    _sampler_options(args)
    if args.label is not None and args.prompt is not None:
        raise CLIError("--label and --prompt exclude each other: a model reads labels or prompts")
    if args.guidance is not None and args.label is None and args.prompt is None:
        raise CLIError("--guidance needs --label or --prompt: guidance steers towards a condition")
    _set_threads(args)
    return out


@dataclass
class _Loaded:
    """A model ready for the DDPM samplers: a noise predictor, its schedule, the shape it samples,
    and for a latent model the decoder that turns its samples into images."""

    model: torch.nn.Module
    schedule: object
    sample_shape: tuple[int, ...]
    decode: object = None  # latents (B, c, h, w) -> images, or None
    image_shape: tuple[int, ...] = ()


def _load_model(name: str, device: torch.device, command: str = "sample") -> _Loaded:
    """A shipped model or a checkpoint, sampled the way its kind needs (``shipped.KINDS``): a
    noise predictor as it is, a latent model with its VAE (the samples are decoded); a velocity
    model, a VAE or the classifier is refused, naming what samples it."""
    from . import shipped
    from .checkpoint import load_checkpoint
    from .shipped import pretrained

    ckpt = None
    if name in shipped.SHIPPED:
        kind = shipped.SHIPPED[name].kind
    else:
        ckpt = load_checkpoint(name, device=device)
        kind = ckpt.kind
    if kind not in shipped.SAMPLER_KINDS:
        raise CLIError(f"--model {name} is {shipped.KINDS[kind]}; {PROG} {command} runs noise predictors (eps) "
                       "and latent models only")
    if kind == "latent":
        from .autoencoder import load_latent

        pipe = load_latent(str(shipped.path(name) if ckpt is None else name), device)
        return _Loaded(pipe.unet, pipe.schedule, pipe.latent_shape, pipe.vae.decode_scaled, pipe.image_shape)
    ckpt = ckpt if ckpt is not None else pretrained(name, device=device)
    return _Loaded(ckpt.model, ckpt.schedule, ckpt.sample_shape, None, ckpt.sample_shape)


def _condition(args: argparse.Namespace, model) -> torch.Tensor | None:
    """The labels (n,) that --label or --prompt ask for, checked against the model; the null
    label for a conditional model given neither (``evaluate`` has neither); None for an unconditional model."""
    from .models.text import PromptUNet, prompt_ids

    label, prompt = getattr(args, "label", None), getattr(args, "prompt", None)
    num_classes = _num_classes(model)
    is_prompt = isinstance(model, PromptUNet)
    if prompt is not None and not is_prompt:
        takes = "labels (--label)" if num_classes is not None else "no condition"
        raise CLIError(f"--prompt needs a prompt model such as digits-prompt; {args.model} takes {takes}")
    if label is not None and (is_prompt or num_classes is None):
        takes = "prompts (--prompt 'thin seven')" if is_prompt else "no condition (it is unconditional)"
        raise CLIError(f"--label needs a class-conditional model such as digits-cond; {args.model} takes {takes}")
    if num_classes is None:
        return None
    if prompt is not None:
        try:
            return prompt_ids([prompt]).expand(args.n)
        except ValueError as err:
            raise CLIError(f"--prompt: {err}") from None
    if label is not None and label >= num_classes:
        raise CLIError(f"--label must be a class in [0, {num_classes - 1}] for {args.model}; got {label}")
    return torch.full((args.n,), num_classes if label is None else label)


def _draw(args: argparse.Namespace, loaded) -> torch.Tensor:
    from . import samplers
    from .guidance import cfg

    model, schedule = loaded.model.eval(), loaded.schedule
    y = _condition(args, model)
    if y is not None:  # the guided model carries its labels: the samplers see the plain contract
        scale = getattr(args, "guidance", None)
        model = cfg(model, 1.0 if scale is None else scale, y=y)
    shape = (args.n, *loaded.sample_shape)
    gen = torch.Generator().manual_seed(args.seed)
    options = _sampler_options(args)
    try:
        x = samplers.SAMPLERS[args.sampler](model, schedule, shape, generator=gen, **options)
    except samplers.NonFiniteSampleError as err:
        scale = getattr(args, "guidance", None)
        hint = f"--guidance {scale:g} may be too strong (try 1 to 10); " if scale is not None and scale > 1 else ""
        raise CLIError(f"--model {args.model} with --sampler {args.sampler}: {hint}{err}") from None
    if loaded.decode is not None:  # a latent model: its samples are latents, the images come from its VAE
        with torch.no_grad():
            x = loaded.decode(x)
    return x.detach().cpu().float()


def _save_figure(x: torch.Tensor, args: argparse.Namespace, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import viz

    fmt = out.suffix.lower().lstrip(".")
    if x.ndim == 4:
        grid = viz.image_grid(x.clamp(-1, 1), nrow=max(1, round(args.n**0.5))).numpy()
        _write_atomically(out, args.overwrite, lambda tmp: plt.imsave(tmp, grid, format=fmt))
    else:
        fig = viz.plot_points(x.reshape(args.n, -1)[:, :2], title=f"{args.model}: {args.sampler}")
        try:
            _write_atomically(out, args.overwrite, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt))
        finally:
            plt.close(fig)


def _run_sample(args: argparse.Namespace, argv: Sequence[str]) -> int:
    out = _check_sample_args(args)
    loaded = _load_model(args.model, args.device)
    x = _draw(args, loaded)
    if not torch.isfinite(x).all():
        raise CLIError(f"the samples contain NaN or infinite values; {args.model} may be damaged. Nothing was written")
    _save_figure(x, args, out)
    steps = f", {args.steps} steps" if args.steps else ""
    asked = f"label {args.label}" if args.label is not None else ""
    asked = f"prompt '{args.prompt}'" if args.prompt is not None else asked
    guided = f", guidance {args.guidance:g}" if args.guidance is not None else ""
    condition = f" for {asked}{guided}" if asked else ""
    print(f"wrote {args.n} samples{condition} from {args.model} ({args.sampler}{steps}, seed {args.seed}) to {out}")
    return 0


# ----------------------------------------------------------------------------- evaluate

MAX_EVALUATE = 1433  # the floors draw as many real digits as there are samples (the train split's size)


def add_evaluate_parser(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()):
    from .samplers import SAMPLERS, SPACINGS, VARIANCES

    parser = subparsers.add_parser(
        "evaluate",
        parents=list(parents),
        help="score a model's samples: Frechet distance, precision, recall, with their floors",
        description="Draw --n digits with one of the course's samplers and score them against the 364 held-out "
        "digits on digit-classifier features (metrics.evaluate): the Frechet distance, its extrapolation to "
        "infinitely many samples, precision, recall, density, coverage and KID, each beside what --n real train "
        "digits score (the floor), and a memorisation check (distance to the nearest training digit). "
        "Example: ddpm-course evaluate --model digits --sampler ddim --steps 50 --n 1000",
    )
    add = parser.add_argument
    add("--model", default="digits", help="a shipped model (digits) or a checkpoint path of a 1-channel image "
        "model (default digits)")
    add("--sampler", default="dpm_solver", choices=sorted(SAMPLERS), help="default dpm_solver")
    add("--steps", type=_positive_int, default=None,
        help="network evaluations, for ddim, euler and dpm_solver (default: the sampler's; ddpm runs all T steps)")
    add("--spacing", default=None, choices=SPACINGS, help="where the steps sit (default: the sampler's)")
    add("--eta", type=_finite(0.0, 1.0), default=None,
        help="DDIM's noise knob in [0, 1], for --sampler ddim only (default 0)")
    add("--variance", default=None, choices=VARIANCES, help="DDPM's sigma_t^2, for --sampler ddpm only")
    add("--order", type=_int_in(1, 2), default=None, help="DPM-Solver++'s order, for --sampler dpm_solver only")
    add("--n", type=_int_in(10, MAX_EVALUATE), default=1000,
        help=f"samples to score, 10 to {MAX_EVALUATE} (default 1000)")
    add("--k", type=_int_in(1, 9), default=3, help="neighbours of the precision/recall balls (default 3)")
    add("--n-real", type=_int_in(2, 100), default=5, help="draws of real digits for each floor (default 5)")
    add("--seed", type=_seed, default=0, help="seed of the sampler's noise; the floors' draws use seed + 1 (default 0)")
    _add_device_options(parser)
    parser.set_defaults(func=_run_evaluate)
    return parser


def _run_evaluate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import time

    from .metrics import evaluate

    _sampler_options(args)  # an option the sampler does not take fails here, before any work
    _set_threads(args)
    loaded = _load_model(args.model, args.device, "evaluate")
    if len(loaded.image_shape) != 3 or loaded.image_shape[0] != 1:
        raise CLIError(f"evaluate scores grey images (1, H, W) on digit-classifier features; {args.model} makes "
                       f"samples of shape {tuple(loaded.image_shape)}")
    start = time.perf_counter()
    with torch.no_grad():
        x = _draw(args, loaded)
    seconds = time.perf_counter() - start
    if not torch.isfinite(x).all():
        raise CLIError(f"the samples contain NaN or infinite values; {args.model} may be damaged")
    floors = torch.Generator().manual_seed(args.seed + 1)
    result = evaluate(x.clamp(-1, 1), k=args.k, n_real=args.n_real, generator=floors)
    steps = f", {args.steps} steps" if args.steps else ""
    print(f"{args.model}: {args.sampler}{steps}, seed {args.seed}; sampled in {seconds:.1f} s on "
          f"{hardware_description(args.device)}")
    print(result)
    return 0


# ----------------------------------------------------------------------------- entry point


from .grade import add_grade_parser  # noqa: E402 - grade.py holds the grading command whole
from .make import add_make_parser  # noqa: E402 - make.py holds the command that remakes a shipped model

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


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, (CLIError, ValueError, TypeError, OSError)):
        return text
    return f"{type(err).__name__}: {text} (run with --debug for the traceback)"


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


if __name__ == "__main__":
    raise SystemExit(main())

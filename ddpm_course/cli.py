"""The ``ddpm-course`` command line.

| command               | does                                                              |
|-----------------------|-------------------------------------------------------------------|
| ``ddpm-course train`` | trains a preset recipe (see ``train.PRESETS``) and saves a checkpoint |
| ``ddpm-course sample`` | draws samples from a shipped model or a checkpoint into a PNG      |

Each subcommand is one ``add_<name>_parser(subparsers)`` function that registers its options
and sets ``func``; :func:`main` parses and dispatches. The shipped models are made by

    ddpm-course train --preset digits --threads 1 --fp16-weights --out ddpm_course/pretrained/digits
    ddpm-course train --preset toy2d --threads 1 --out ddpm_course/pretrained/toy2d --no-progress

(each checkpoint's JSON record holds its command, training time and hardware).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from collections.abc import Sequence

import torch

__all__ = ["main", "build_parser", "add_train_parser", "add_sample_parser", "hardware_description"]


def hardware_description(device: torch.device) -> str:
    """A one-line description of where a run happened: CPU model and threads, or the GPU."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads of {os.cpu_count()} CPUs, torch {torch.__version__}"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text}")
    return value


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .train import PRESETS

    presets = "\n".join(f"  {name:15s} {p.description}" for name, p in PRESETS.items())
    parser = subparsers.add_parser(
        "train",
        help="train a preset recipe and save a checkpoint",
        description="Train a noise predictor with one of the preset recipes and save it as a "
        "checkpoint (NAME.safetensors + NAME.json). The EMA weights are saved when the recipe "
        "keeps an EMA, the raw weights otherwise. Presets:\n" + presets,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS), help="the recipe: data, model, schedule and optimiser settings")
    parser.add_argument("--seed", type=int, default=0, help="seeds the model's initialisation and every random draw of training (default 0)")
    parser.add_argument("--steps", type=_positive_int, default=None, help="optimiser steps to run (default: the preset's; reproducible)")
    parser.add_argument("--minutes", type=_positive_float, default=None, help="wall-clock budget in minutes instead of steps (not reproducible: depends on the machine)")
    parser.add_argument("--out", default=None, help="checkpoint path without extension (default: ./PRESET); writes OUT.safetensors and OUT.json")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out (refused otherwise)")
    parser.add_argument("--device", default="cpu", help="torch device to train on, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (helps on CPUs with AMX and on GPUs)")
    parser.add_argument("--fp16-weights", action="store_true", help="store the weights as float16 (half the file; loading casts back to float32)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_run_train)
    return parser


def _run_train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .checkpoint import checkpoint_paths, save_checkpoint
    from .models import count_parameters
    from .train import build_preset, train

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = args.out if args.out is not None else args.preset
    if not args.overwrite:  # fail before training, not after
        for p in checkpoint_paths(out):
            if p.exists():
                raise SystemExit(f"error: {p} already exists; pass --overwrite to replace it, or choose another --out")
    run = build_preset(args.preset, seed=args.seed)
    preset = run.preset
    steps, minutes = args.steps, args.minutes
    if steps is None and minutes is None:
        steps, minutes = preset.steps, preset.minutes
    print(f"preset {args.preset}: {preset.arch}, {count_parameters(run.model):,} parameters, {preset.schedule} schedule T={preset.T}; "
          f"budget {f'{steps} steps' if steps else ''}{' or ' if steps and minutes else ''}{f'{minutes} min' if minutes else ''}; "
          f"{hardware_description(device)}")
    result = train(
        run.model, run.schedule, run.data, steps=steps, minutes=minutes,
        generator=torch.Generator().manual_seed(args.seed), device=device,
        autocast_bf16=args.bf16, progress=not args.no_progress, **preset.train_kwargs(),
    )
    tail = result.losses[-100:]
    record = {
        "preset": args.preset,
        "seed": args.seed,
        "command": "ddpm-course " + " ".join(argv),
        "weights": "ema" if result.ema_model is not None else "raw",
        "steps": result.steps,
        "batch_size": preset.batch_size,
        "train_seconds": round(result.seconds, 1),
        "images_per_second": round(result.images_per_second, 1),
        "final_loss": round(sum(tail) / len(tail), 5),
        "hardware": hardware_description(device),
        "bf16_autocast": bool(args.bf16),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "train_settings": preset.train_kwargs(),
    }
    weights, meta = save_checkpoint(
        out, result.final_model, run.schedule, sample_shape=run.sample_shape, record=record,
        weights_dtype=torch.float16 if args.fp16_weights else torch.float32, overwrite=args.overwrite,
    )
    print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min ({result.images_per_second:.0f} images/s), "
          f"final loss {record['final_loss']:.4f}; saved {weights} and {meta}")
    return 0


SAMPLERS = ("ddpm", "ddim", "euler", "dpm_solver")


def add_sample_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .samplers import SPACINGS

    parser = subparsers.add_parser(
        "sample",
        help="draw samples from a model into a PNG",
        description="Draw --n samples with one of the course's samplers and save them as a PNG: an "
        "image grid for image models, a scatter plot for 2-D models. Example: ddpm-course sample "
        "--model digits --sampler dpm_solver --steps 20 --n 64 --seed 0 --out grid.png",
    )
    parser.add_argument("--model", default="digits", help="a shipped model (digits, toy2d) or a checkpoint path (default digits)")
    parser.add_argument("--sampler", default="dpm_solver", choices=SAMPLERS, help="default dpm_solver")
    parser.add_argument("--steps", type=_positive_int, default=None, help="network evaluations (default: the sampler's; ddpm always runs all T steps)")
    parser.add_argument("--spacing", default=None, choices=SPACINGS, help="where the steps sit (default: the sampler's, as in diffusers)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM's noise knob (default 0)")
    parser.add_argument("--n", type=_positive_int, default=64, help="how many samples (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator that draws all noise (default 0)")
    parser.add_argument("--out", required=True, help="the PNG file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out (refused otherwise)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.set_defaults(func=_run_sample)
    return parser


def _run_sample(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import samplers, viz
    from .checkpoint import PRETRAINED, load_checkpoint, pretrained

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SystemExit(f"error: {out} already exists; pass --overwrite to replace it, or choose another --out")
    if args.sampler == "ddpm" and args.steps is not None:
        raise SystemExit("error: --steps does not apply to --sampler ddpm, which runs all T steps")
    loaded = pretrained(args.model, device=args.device) if args.model in PRETRAINED else load_checkpoint(args.model, device=args.device)
    model, schedule = loaded.model.eval(), loaded.schedule
    shape = (args.n, *loaded.sample_shape)
    gen = torch.Generator().manual_seed(args.seed)
    options: dict = {}
    if args.steps is not None:
        options["steps"] = args.steps
    if args.spacing is not None:
        options["spacing"] = args.spacing
    if args.sampler == "ddpm":
        x = samplers.ddpm_sample(model, schedule, shape, generator=gen)
    elif args.sampler == "ddim":
        x = samplers.ddim_sample(model, schedule, shape, eta=args.eta, generator=gen, **options)
    elif args.sampler == "euler":
        x = samplers.euler_sample(model, schedule, shape, generator=gen, **options)
    else:
        x = samplers.dpm_solver_sample(model, schedule, shape, generator=gen, **options)
    x = x.detach().cpu().float()
    if x.ndim == 4:
        plt.imsave(out, viz.image_grid(x.clamp(-1, 1), nrow=max(1, round(args.n**0.5))).numpy())
    else:
        fig = viz.plot_points(x.reshape(args.n, -1)[:, :2], title=f"{args.model}: {args.sampler}")
        fig.savefig(out, dpi=100)
        plt.close(fig)
    print(f"wrote {args.n} samples from {args.model} ({args.sampler}{', ' + str(args.steps) + ' steps' if args.steps else ''}, seed {args.seed}) to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``ddpm-course`` parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="ddpm-course", description="Train and use the DDPM course's models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(subparsers)
    add_sample_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddpm-course`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return args.func(args, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the two shipped conditional models of lesson 08, one command each, on one CPU thread.

    python benchmarks/train_guided.py digits-cond     # labels: UNet(num_classes=10), null label dropped in
    python benchmarks/train_guided.py digits-prompt   # prompts ("thin seven") through cross-attention

Both use ``train.train`` with ``p_uncond``: each step replaces a condition by the null one
(the null label, or the empty prompt) with that probability, so one network learns the
conditional and the unconditional noise predictor that classifier-free guidance combines.
The prompt model's condition is the prompt's index in ``models.text.PROMPTS``: the tiny
language has 33 sentences, so its sentences can be numbered, and ``train`` (which speaks
labels) needs no change; the model turns the number back into tokens and reads them with
cross-attention.

The models are small (base width 16) and the runs short enough for one CPU thread (5000 steps
of 64, EMA decay 0.999), so that anyone can remake them. The first shipped versions had 700
steps of 64 (EMA 0.995) and were undertrained: their deterministic (ODE) samples were
speckled at every guidance scale. That run is kept as ``digits-cond-short``
(``--steps 700 --ema-decay 0.995``) so that lesson 08 can show the difference.
Each checkpoint's JSON record holds the command, the settings, the wall time and the hardware.
``--out`` defaults to ``ddpm_course/pretrained/NAME``; an existing checkpoint is replaced
only with ``--overwrite``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import time

import torch

from ddpm_course.checkpoint import save_checkpoint
from ddpm_course.cli import hardware_description
from ddpm_course.data import ImageData, digits
from ddpm_course.models import UNet, UNetConfig, count_parameters
from ddpm_course.models.text import PromptUNet, PromptUNetConfig, caption_data
from ddpm_course.schedules import linear_schedule
from ddpm_course.train import train

MODELS = ("digits-cond", "digits-prompt")
UNET = {"in_channels": 1, "base_channels": 16, "channel_mults": (1, 2, 2), "num_res_blocks": 1, "dropout": 0.1,
        "groups": 8, "time_dim": None}
SETTINGS = {"batch_size": 64, "lr": 2e-3, "warmup_steps": 50, "lr_decay": True, "weight_decay": 0.0, "grad_clip": 1.0,
            "ema_decay": 0.999, "optimizer": "adamw", "p_uncond": 0.15}
STEPS = 5000


def build(name: str, seed: int):
    """(model, training data) for one of :data:`MODELS`, the model initialised from ``seed``."""
    data = digits(16, split="train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "digits-cond":
            model = UNet(UNetConfig(attention_levels=(2,), num_classes=10, **UNET))
            return model, data
        model = PromptUNet(PromptUNetConfig(base_channels=16, attention_levels=(1, 2)))
    images, ids = caption_data(data.images, data.labels, generator=torch.Generator().manual_seed(seed + 1))
    return model, ImageData(images, ids)


def _command(args: argparse.Namespace) -> str:
    """The command that remakes this model wherever it is written: settings that change the weights, not --out."""
    extra = [f"--{name.replace('_', '-')} {getattr(args, name)}"
             for name, default in (("steps", STEPS), ("ema_decay", SETTINGS["ema_decay"]), ("seed", 0), ("threads", 1))
             if getattr(args, name) != default]
    return " ".join(["python benchmarks/train_guided.py", args.model, *extra])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--steps", type=int, default=STEPS, help=f"optimiser steps (default {STEPS})")
    parser.add_argument("--ema-decay", type=float, default=SETTINGS["ema_decay"],
                        help=f"EMA decay (default {SETTINGS['ema_decay']}; the first shipped models used 0.995)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--out", default=None,
                        help="checkpoint path without extension (default ddpm_course/pretrained/MODEL)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or f"ddpm_course/pretrained/{args.model}"
    model, data = build(args.model, args.seed)
    schedule = linear_schedule(1000)
    hardware = hardware_description(torch.device("cpu"))
    print(f"{args.model}: {count_parameters(model):,} parameters, {args.steps} steps, {hardware}")
    settings = {**SETTINGS, "ema_decay": args.ema_decay}
    result = train(model, schedule, data, steps=args.steps, generator=torch.Generator().manual_seed(args.seed),
                   progress=False, **settings)
    tail = result.losses[-100:]
    record = {
        "command": _command(args),
        "weights": "ema",
        "seed": args.seed,
        "steps": result.steps,
        "train_seconds": round(result.seconds, 1),
        "images_per_second": round(result.images_per_second, 1),
        "final_loss": round(sum(tail) / len(tail), 5),
        "train_settings": settings,
        "hardware": hardware,
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "note": "trained on a shared 2-CPU machine (other jobs running): the wall time is inflated",
    }
    save_checkpoint(out, result.final_model, schedule, sample_shape=(1, 16, 16), record=record,
                    weights_dtype=torch.float16, overwrite=args.overwrite)
    print(f"wrote {out}: {result.steps} steps in {result.seconds / 60:.1f} min, final loss {record['final_loss']}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")

"""Same CPU budget, two recipes: the article's against the course's, on 16x16 digits.

    python benchmarks/train_budget.py                     # 4 minutes each on 2 threads, 300 samples
    python benchmarks/train_budget.py --minutes 2 --n-samples 200
    python benchmarks/train_budget.py --checkpoint ddpm_course/pretrained/digits   # score a checkpoint only

Each recipe (``train.PRESETS``: "article-digits" = SimpleUNet, linear schedule, plain Adam,
no warm-up, clipping or EMA; "digits" = the course U-Net with AdamW, warm-up, cosine decay
over the budget, clipping and EMA) trains from the same seed on the same train split for the
same wall-clock budget, then draws ``--n-samples`` digits with all 1000 DDPM steps
(``samplers.ddpm_sample``, sigma_t^2 = beta_t). Each is scored by ``metrics.digits_fd``:
the Frechet distance of digit-classifier features to the held-out split, next to the
real-vs-real floor at the same sizes. A ratio near 1 is as good as real data.

A few minutes on a CPU buy only a few hundred steps, fewer than the course preset's
200-step warm-up of the learning rate, so for a minutes budget the course recipe warms up
over ``--warmup`` steps (default 20); everything else is the preset, EMA included (its decay
warms up as min(0.999, (1 + k) / (10 + k)), so a short run averages about the last ninth of its
steps). The article's recipe has no warm-up, so it is unchanged.
"""
from __future__ import annotations

import argparse
import time

import torch

from ddpm_course import samplers
from ddpm_course.metrics import DigitsFD, digits_fd
from ddpm_course.train import build_preset, train


@torch.no_grad()
def score(model: torch.nn.Module, schedule, n: int, seed: int, batch: int = 100) -> tuple[DigitsFD, float]:
    """1000-step DDPM samples from ``model``, scored; returns the score and the sampling seconds."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    chunks = [
        samplers.ddpm_sample(model, schedule, (min(batch, n - i), 1, 16, 16), generator=g) for i in range(0, n, batch)
    ]
    seconds = time.perf_counter() - start
    return digits_fd(torch.cat(chunks).clamp(-1, 1), generator=torch.Generator().manual_seed(seed + 1)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per recipe in minutes (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for each run (default 2)")
    parser.add_argument("--n-samples", type=int, default=300, help="DDPM samples scored per recipe (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, training and sampling (default 0)")
    parser.add_argument("--recipes", nargs="+", default=["article-digits", "digits"], help="presets to compare")
    parser.add_argument("--checkpoint", default=None, help="only score this checkpoint (no training)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up steps of recipes that warm up (default 20)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.checkpoint is not None:
        from ddpm_course.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        s, secs = score(ckpt.model, ckpt.schedule, args.n_samples, args.seed)
        print(f"{args.checkpoint}: {args.n_samples} samples, 1000 DDPM steps ({secs / 60:.1f} min): "
              f"FD {s.fd:.2f}, floor {s.floor:.2f} (sd {s.floor_std:.2f}), ratio {s.ratio:.2f}")
        return

    print(f"budget {args.minutes} min on {args.threads} threads per recipe, seed {args.seed}, "
          f"{args.n_samples} samples with 1000 DDPM steps")
    print(f"{'recipe':16s} {'steps':>6s} {'img/s':>6s} {'loss':>7s} {'FD':>8s} {'floor':>7s} {'ratio':>6s} "
          f"{'sample min':>10s}")
    for name in args.recipes:
        run = build_preset(name, seed=args.seed)
        settings = run.preset.train_kwargs()
        if settings["warmup_steps"] > 0:
            settings["warmup_steps"] = args.warmup
        result = train(run.model, run.schedule, run.data, minutes=args.minutes,
                       generator=torch.Generator().manual_seed(args.seed), progress=False, **settings)
        s, secs = score(result.final_model, run.schedule, args.n_samples, args.seed)
        tail = result.losses[-100:]
        print(f"{name:16s} {result.steps:>6d} {result.images_per_second:>6.0f} {sum(tail) / len(tail):>7.4f} "
              f"{s.fd:>8.2f} {s.floor:>7.2f} {s.ratio:>6.2f} {secs / 60:>10.1f}", flush=True)


if __name__ == "__main__":
    main()

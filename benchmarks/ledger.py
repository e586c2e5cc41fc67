"""The results ledger: every shipped image model x sampler x steps, scored one way.

    python benchmarks/ledger.py                 # the README table (about 10 minutes on one quiet core)
    python benchmarks/ledger.py --n-ddpm 0      # without the slow DDPM-1000 row
    python benchmarks/ledger.py --n 500 --rows ddim:50 dpm_solver:20

Each row draws ``--n`` digits (``--n-ddpm`` for DDPM with all 1000 steps, which costs 50 times
a 20-step sampler) from ``dc.pretrained(MODEL)`` with one seed and scores them with
``metrics.evaluate`` against the 364 held-out test digits:

| column       | meaning                                                                           |
|--------------|-----------------------------------------------------------------------------------|
| FD           | Frechet distance on digit-classifier features at this n (biased upwards by ~c/n)  |
| FD real      | the same for n real train digits (mean of 5 draws): the floor at this n           |
| FD_inf       | FD extrapolated to infinitely many samples (fit against 1/n, Chong & Forsyth 2020) |
| FD_inf real  | the same for real digits: about 0 up to its noise                                 |
| P, R         | improved precision and recall, k = 3 (Kynkaanniemi et al. 2019); real data's beside |
| s            | seconds of sampling (not scoring) on the hardware printed above the table         |

FD and P/R depend on n, so compare a row with its own "real" columns; FD_inf is the column
that compares rows of different n. One seed per row: lesson 10 measures the spread over seeds.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

import ddpm_course as dc
from ddpm_course import samplers
from ddpm_course.cli import hardware_description
from ddpm_course.metrics import evaluate

SAMPLERS: dict[str, Callable] = {
    "ddpm": lambda m, s, shape, steps, g: samplers.ddpm_sample(m, s, shape, generator=g),
    "ddim": lambda m, s, shape, steps, g: samplers.ddim_sample(m, s, shape, steps=steps, generator=g),
    "euler": lambda m, s, shape, steps, g: samplers.euler_sample(m, s, shape, steps=steps, generator=g),
    "dpm_solver": lambda m, s, shape, steps, g: samplers.dpm_solver_sample(m, s, shape, steps=steps, generator=g),
}
DEFAULT_ROWS = ["ddpm:1000", "ddim:20", "ddim:50", "euler:20", "dpm_solver:10", "dpm_solver:20"]


def parse_row(text: str) -> tuple[str, int]:
    """"sampler:steps" -> (sampler, steps); DDPM takes all the schedule's steps."""
    name, _, steps = text.partition(":")
    if name not in SAMPLERS or not steps.isdigit() or int(steps) < 1:
        raise argparse.ArgumentTypeError(f"rows are SAMPLER:STEPS with SAMPLER one of {sorted(SAMPLERS)}; got {text!r}")
    return name, int(steps)


def ledger_row(model_name: str, name: str, steps: int, n: int, seed: int) -> str:
    ckpt = dc.pretrained(model_name)
    start = time.perf_counter()
    x = SAMPLERS[name](ckpt.model, ckpt.schedule, (n, *ckpt.sample_shape), steps, torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    e = evaluate(x.clamp(-1, 1).cpu(), generator=torch.Generator().manual_seed(seed + 1))
    fd_inf = e.fd_unbiased
    return (f"| {model_name} | {name} | {steps} | {n} | {e.fd.value:.2f} | {e.fd.real:.2f} | {fd_inf.value:.2f} "
            f"| {fd_inf.real:.2f} +- {fd_inf.real_std:.2f} | {e.precision.value:.3f} ({e.precision.real:.3f}) "
            f"| {e.recall.value:.3f} ({e.recall.real:.3f}) | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="digits", help="a shipped image model (default digits)")
    parser.add_argument("--rows", type=parse_row, nargs="+", default=[parse_row(r) for r in DEFAULT_ROWS],
                        help=f"SAMPLER:STEPS rows (default {' '.join(DEFAULT_ROWS)})")
    parser.add_argument("--n", type=int, default=1000, help="samples per row, at most 1433 (default 1000)")
    parser.add_argument("--n-ddpm", type=int, default=250, help="samples for the DDPM row; 0 skips it (default 250)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    for flag, value, low in (("--n", args.n, 10), ("--n-ddpm", args.n_ddpm, 0), ("--threads", args.threads, 1)):
        if not low <= value <= 1433:
            parser.error(f"{flag} must be in [{low}, 1433]; got {value}")
    T = dc.pretrained(args.model).schedule.T  # a missing or unknown model fails here, before any sampling
    if any(name == "ddpm" and steps != T for name, steps in args.rows):
        parser.error(f"ddpm runs all {T} steps of the model's schedule: write ddpm:{T}")
    torch.set_num_threads(args.threads)
    print(f"hardware: {hardware_description(torch.device('cpu'))}")
    print(f"reference: the 364 held-out test digits; real columns: n train digits, mean of 5 draws; seed {args.seed}\n")
    print("| model | sampler | steps | n | FD | FD real | FD_inf | FD_inf real | precision (real) | recall (real) "
          "| s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with torch.no_grad():
        for name, steps in args.rows:
            n = args.n_ddpm if name == "ddpm" else args.n
            if n == 0:
                continue
            print(ledger_row(args.model, name, steps, n, args.seed), flush=True)


if __name__ == "__main__":
    main()

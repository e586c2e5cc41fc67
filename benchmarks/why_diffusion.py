"""Lesson 11's comparison of a GAN, a VAE and a DDPM on 2-D Gaussian mixtures, printed for the README.

    python benchmarks/why_diffusion.py --threads 1

Runs what notebooks/11_why_diffusion.py runs, at the same budgets and seeds (so on one machine
the numbers are the lesson's): the head-to-head run on the 8-Gaussian ring, the stability
sweep (three seeds x two learning rates, shorter runs), the 5x5 grid, and the trained DDPM
sampled again with DPM-Solver++ at 20 steps. Prints each table as Markdown, then the wall time.
"""
from __future__ import annotations

import argparse
import time

import torch

from ddpm_course import compare, samplers
from ddpm_course.metrics import precision_recall
from ddpm_course.oracle import ring_mixture
from ddpm_course.schedules import linear_schedule

# the lesson's budgets (notebooks/11_why_diffusion.py, parameters cell)
MAIN = compare.Budget(steps=2000, batch_size=1024, n_samples=1000, n_likelihood=256)
SWEEP = compare.Budget(steps=1000, batch_size=256, n_samples=500, n_likelihood=16, seeds=(0, 1, 2), lrs=(1e-3, 3e-3))
GRID = compare.Budget(steps=2000, batch_size=256, n_samples=1000, n_likelihood=16)


def markdown(result: compare.Comparison) -> str:
    """The comparison's text table as a Markdown table."""
    lines = result.table().splitlines()
    rows = [lines[0]] + lines[2:]
    out = []
    for i, line in enumerate(rows):
        label, cells = line[:40].strip(), line[40:].split()
        if i == 0:
            cells = [*cells[:-2], "real data"]
        out.append("| " + " | ".join([label, *cells]) + " |")
        if i == 0:
            out.append("|---" + "|---:" * len(cells) + "|")
    return "\n".join(out)


def sweep_runs(result: compare.Comparison) -> str:
    out = ["| model | seed | lr | modes covered | precision | recall | loss roughness |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in result.models.items():
        for r in m.runs:
            out.append(f"| {name} | {r.seed} | {r.lr:g} | {r.modes_covered} | {r.precision:.3f} | {r.recall:.3f} "
                       f"| {r.roughness:.3f} |")
    return "\n".join(out)


def fast_sampler_row(result: compare.Comparison) -> str:
    """The head-to-head DDPM sampled with DPM-Solver++ (20 steps, log-SNR spacing, lesson 07)."""
    ring = result.mixture
    real = ring.sample(MAIN.n_samples, generator=torch.Generator().manual_seed(10_001))
    schedule = linear_schedule(MAIN.T)
    start = time.perf_counter()
    x = samplers.dpm_solver_sample(result.models["DDPM"].network, schedule, (MAIN.n_samples, 2), steps=20,
                                   spacing="logsnr", generator=torch.Generator().manual_seed(1)).double()
    seconds = time.perf_counter() - start
    counts = compare.mode_counts(x, ring)
    pr = precision_recall(real, x)
    return (f"DDPM network, DPM-Solver++ 20 steps: modes {compare.modes_covered(counts, ring.weights, x.shape[0])}, "
            f"precision {pr.precision:.3f}, recall {pr.recall:.3f}, "
            f"distance {ring.nearest_mean_distance(x).mean():.4f}, {1000 * seconds / MAIN.n_samples:.3f} s per 1000")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the lesson)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    ring = ring_mixture()
    head = compare.compare(ring, MAIN, dataset="ring")
    print(f"## 8-Gaussian ring, {MAIN.steps} steps of {MAIN.batch_size}, lr {MAIN.lrs[0]:g}\n")
    print(markdown(head), "\n")
    print(fast_sampler_row(head), "\n", flush=True)
    sweep = compare.compare(ring, SWEEP, dataset="ring sweep")
    print(f"## Stability: ring, {SWEEP.steps} steps of {SWEEP.batch_size}, seeds {SWEEP.seeds} x lrs {SWEEP.lrs}\n")
    print(sweep_runs(sweep), "\n")
    print(markdown(sweep), "\n", flush=True)
    grid = compare.compare(compare.grid_mixture(), GRID, dataset="5x5 grid")
    print(f"## 5x5 grid, {GRID.steps} steps of {GRID.batch_size}\n")
    print(markdown(grid), "\n")
    print(f"total {time.perf_counter() - start:.0f} s on {args.threads} thread(s)")


if __name__ == "__main__":
    main()

"""Sample quality against network evaluations, for every sampler.

    python benchmarks/samplers.py                       # the README table (a few CPU minutes)
    python benchmarks/samplers.py --n-digits 512        # tighter Frechet distances, slower
    python benchmarks/samplers.py --table sharp-ring    # the sharp-ring study of notebook 07

Default table: each sampler (DDPM with all 1000 steps; DDIM, Euler and DPM-Solver++ with
10/20/50/100 steps) draws
- ``--n-oracle`` points driven by the exact Gaussian-mixture oracle (the 8-Gaussian ring):
  sliced W2 to fresh mixture samples, next to the real-vs-real level at the same size;
- ``--n-digits`` digits from the shipped model (``dc.pretrained("digits")``): Frechet distance
  on digit-classifier features to the held-out split, and its ratio to the real-vs-real floor.
Every row reports the network evaluations and the seconds taken. All settings are the
samplers' defaults, which match diffusers' schedulers.

``--table sharp-ring``: mean distance of each sample to the nearest mode, divided by the
truth's, for rings of decreasing width and DPM-Solver++ settings (1.0 = right spread).
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, NamedTuple

import torch

import ddpm_course as dc
from ddpm_course import samplers
from ddpm_course.metrics import sliced_wasserstein
from ddpm_course.oracle import ring_mixture


class Run(NamedTuple):
    samples: torch.Tensor
    evals: int
    seconds: float


# Table rows: a registry name and its options (``steps`` is added where the sampler takes it).
RUNS: dict[str, tuple[str, dict]] = {
    "ddpm": ("ddpm", {}),
    "ddim": ("ddim", {}),
    "euler": ("euler", {}),
    "dpm_solver": ("dpm_solver", {}),
    "dpm_solver_logsnr": ("dpm_solver", {"spacing": "logsnr"}),
}


def run(name: str, steps: int, model: Callable, schedule: dc.Schedule, shape, seed: int) -> Run:
    sampler, options = RUNS[name]
    spec = samplers.SAMPLERS[sampler]
    if "steps" in spec.options:
        options = {**options, "steps": steps}
    counted = dc.timing.Counted(model)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    x = spec(counted, schedule, shape, generator=gen, **options)
    return Run(x, counted.calls, time.perf_counter() - start)


def sw(a: torch.Tensor, b: torch.Tensor) -> float:
    return sliced_wasserstein(a, b, n_projections=256, generator=torch.Generator().manual_seed(0))


def main_table(args: argparse.Namespace) -> None:
    schedule = dc.linear_schedule()
    mixture = ring_mixture()  # 8 Gaussians, radius 1, std 0.1
    oracle = mixture.as_model(schedule)
    x_T = torch.randn(args.n_oracle, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(args.seed))
    fresh = mixture.sample(args.n_oracle, torch.Generator().manual_seed(args.seed + 1))
    floors = torch.tensor([
        sw(mixture.sample(args.n_oracle, torch.Generator().manual_seed(1000 + 2 * i)),
           mixture.sample(args.n_oracle, torch.Generator().manual_seed(1001 + 2 * i)))
        for i in range(10)
    ])

    digits = None
    if args.n_digits > 0:
        try:
            digits = dc.pretrained("digits")
        except FileNotFoundError:
            digits = None
    digits_note = "" if digits is not None else "n/a (no shipped model)"
    if args.n_digits == 0:
        digits_note = "skipped (--n-digits 0)"

    print(f"oracle: 8-Gaussian ring (std 0.1), {args.n_oracle} points, float64; real-vs-real sliced W2 "
          f"{floors.mean():.4f} +- {floors.std():.4f} (10 pairs)")
    if digits is not None:
        print(f"digits: shipped model, {args.n_digits} samples, Frechet distance on classifier features "
              f"to the held-out split")
    print(f"device cpu, {torch.get_num_threads()} torch threads\n")
    header = (f"{'sampler':18s} {'steps':>5s} {'evals':>5s} | {'oracle SW2':>10s} {'s':>6s} | "
              f"{'digits FD':>9s} {'/floor':>7s} {'s':>7s}")
    print(header)
    print("-" * len(header))
    plan = [("ddpm", 1000)] + [(name, n) for name in args.samplers for n in args.steps]
    floor = None
    for name, steps in plan:
        o = run(name, steps, oracle, schedule, x_T, args.seed)
        line = f"{name:18s} {steps:5d} {o.evals:5d} | {sw(o.samples, fresh):10.4f} {o.seconds:6.1f} | "
        if digits is not None:
            d = run(name, steps, digits.model, digits.schedule, (args.n_digits, *digits.sample_shape), args.seed)
            fd = dc.metrics.digits_fd(d.samples.clamp(-1, 1), generator=torch.Generator().manual_seed(0))
            line += f"{fd.fd:9.2f} {fd.ratio:7.2f} {d.seconds:7.1f}"
            floor = fd
        else:
            line += digits_note
        print(line, flush=True)
    if floor is not None:
        print(f"\ndigits real-vs-real floor at {args.n_digits} images: {floor.floor:.2f} +- {floor.floor_std:.2f} "
              f"(one draw of a Frechet distance at this size varies about that much)")


def sharp_ring_table(args: argparse.Namespace) -> None:
    schedule = dc.linear_schedule()
    settings: dict[str, tuple[str, dict]] = {  # label: (registry name, options)
        "ddim (leading)": ("ddim", {}),
        "euler (linspace)": ("euler", {}),
        "dpm++ diffusers": ("dpm_solver", {}),
        "dpm++ order 1": ("dpm_solver", {"order": 1}),
        "dpm++ lower_order_final=3": ("dpm_solver", {"lower_order_final": 3}),
        "dpm++ keep t=0 (lof=1)": ("dpm_solver", {"drop_t0": False}),
        "dpm++ keep t=0, lof=2": ("dpm_solver", {"drop_t0": False, "lower_order_final": 2}),
        "dpm++ karras": ("dpm_solver", {"spacing": "karras"}),
        "dpm++ logsnr": ("dpm_solver", {"spacing": "logsnr"}),
        "ddim logsnr": ("ddim", {"spacing": "logsnr"}),
    }
    x_T = torch.randn(args.n_oracle, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(args.seed))
    print(f"distance to the nearest mode, samples / truth (1.000 = right spread): median (the typical sample) and mean "
          f"(also counts stragglers between modes); 8-Gaussian ring of radius 1, {args.n_oracle} points, exact eps, "
          f"linear schedule T=1000\n")
    for std in args.stds:
        mixture = ring_mixture(8, 1.0, std)
        model = mixture.as_model(schedule)
        truth_points = mixture.sample(20 * args.n_oracle, torch.Generator().manual_seed(args.seed + 1))
        truth = mixture.nearest_mean_distance(truth_points)
        print(f"ring std {std}: truth median {truth.median():.4f}, mean {truth.mean():.4f}; "
              f"each cell: median ratio / mean ratio")
        print(f"  {'setting':28s}" + "".join(f"{n:>14d}" for n in args.steps))
        for label, (name, options) in settings.items():
            cells = []
            for n in args.steps:
                d = mixture.nearest_mean_distance(samplers.SAMPLERS[name](model, schedule, x_T, steps=n, **options))
                cells.append(f"{(d.median() / truth.median()).item():.3f} / {(d.mean() / truth.mean()).item():.3f}")
            print(f"  {label:28s}" + "".join(f"{c:>14s}" for c in cells), flush=True)
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=["main", "sharp-ring"], default="main")
    parser.add_argument("--n-oracle", type=int, default=2000, help="points per oracle run (default 2000)")
    parser.add_argument("--n-digits", type=int, default=128,
                        help="digits per run; 0 skips the digits columns (default 128)")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--samplers", nargs="+", default=["ddim", "euler", "dpm_solver", "dpm_solver_logsnr"],
                        choices=[name for name in RUNS if name != "ddpm"])
    parser.add_argument("--stds", type=float, nargs="+", default=[0.1, 0.05, 0.02],
                        help="ring widths for --table sharp-ring")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: these tensors are small, "
                             "and extra threads slow down on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with torch.no_grad():
        (main_table if args.table == "main" else sharp_ring_table)(args)


if __name__ == "__main__":
    main()

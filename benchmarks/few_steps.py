"""Quality at 1, 2, 4 and 10 network evaluations: training-free solvers against a distilled student.

    python benchmarks/few_steps.py                  # the README table (digits and the ring)
    python benchmarks/few_steps.py --n-digits 256   # quicker, noisier

Digits: every row draws ``--n-digits`` samples from the same x_T (seed ``--seed``) and scores them
with ``metrics.evaluate`` against the 364 held-out digits, next to what as many real train digits
score ("real"). The solvers run the shipped teacher ``digits``; the student is the shipped
``digits-fast`` (``python -m ddpm_course.distill``), sampled by the multistep consistency
sampler (fresh noise between jumps) and, as a control, by DDIM on the same trailing grid. The
teacher's best is the best of its reference rows (DPM-Solver++ 2M with 20 and 50 log-SNR steps).

Ring: the same solvers driven by the exact eps of the 8-Gaussian ring (so only the solver errs),
a student distilled here from that oracle (an MLP in EDM's preconditioning, fitted to the ends of
the oracle's ODE paths, seconds), and reflow: a flow network fitted to the straight lines between
noise and where the exact flow ODE carries it (Liu et al. 2023), sampled with Euler.
Metrics: sliced W2 to fresh mixture samples (real-vs-real level beside it), the total-variation
distance of the mode shares to uniform, and the share of samples more than 4 std from every mode.

The seconds are wall time per sample on a shared CPU: compare rows of one run only.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import NamedTuple

import torch

import ddpm_course as dc
from ddpm_course import distill, flow, samplers
from ddpm_course.metrics import evaluate, sliced_wasserstein
from ddpm_course.models import EDMPrecond, MLPConfig, MLPDenoiser
from ddpm_course.oracle import ring_mixture

BUDGETS = (1, 2, 4, 10)


class Row(NamedTuple):
    method: str
    budget: int
    run: Callable  # (model, x_T) -> samples


def heun_levels(budget: int) -> int:
    """The most noise levels n whose 2n - 1 evaluations fit the budget."""
    return max(1, (budget + 1) // 2)


def plan(schedule: dc.Schedule) -> list[Row]:
    """The training-free rows, each a sampler of the registry at its defaults (diffusers' grids)."""
    rows = []
    for k in BUDGETS:
        rows.append(Row("DDIM, trailing", k, lambda m, x, k=k: samplers.ddim_sample(m, schedule, x, steps=k,
                                                                                   spacing="trailing")))
    for k in BUDGETS:
        rows.append(Row("DPM-Solver++ 2M", k, lambda m, x, k=k: samplers.dpm_solver_sample(m, schedule, x, steps=k)))
    for k in BUDGETS:
        rows.append(Row("DPM-Solver++ 2M, log-SNR", k, lambda m, x, k=k: samplers.dpm_solver_sample(
            m, schedule, x, steps=k, spacing="logsnr")))
    for k in BUDGETS:
        rows.append(Row("DPM-Solver++ 3M", k, lambda m, x, k=k: samplers.dpm_solver_3m_sample(m, schedule, x, steps=k)))
    for k in (1, 4, 6, 10):  # 1, 3, 5 and 9 evaluations
        rows.append(Row("Heun, Karras", k, lambda m, x, k=k: samplers.heun_sample(m, schedule, x,
                                                                                 steps=heun_levels(k))))
    return rows


def reference_rows(schedule: dc.Schedule) -> list[Row]:
    return [Row("teacher reference: DPM-Solver++ 2M, log-SNR", k, lambda m, x, k=k: samplers.dpm_solver_sample(
        m, schedule, x, steps=k, spacing="logsnr")) for k in (20, 50)]


def student_rows(schedule: dc.Schedule) -> list[Row]:
    rows = [Row("student, consistency sampler", k, lambda m, x, k=k: distill.student_sample(
        m, schedule, x, steps=k, generator=torch.Generator().manual_seed(7))) for k in BUDGETS]
    rows += [Row("student, DDIM trailing (control)", k, lambda m, x, k=k: samplers.ddim_sample(
        m, schedule, x, steps=k, spacing="trailing")) for k in BUDGETS[1:]]
    return rows


def timed(row: Row, model: Callable, x_T: torch.Tensor) -> tuple[torch.Tensor, int, float]:
    counted = dc.timing.Counted(model)
    start = time.perf_counter()
    with torch.no_grad():
        out = row.run(counted, x_T)
    return out, counted.calls, time.perf_counter() - start


# ----------------------------------------------------------------------------- digits


def digits_table(args: argparse.Namespace) -> None:
    teacher = dc.pretrained("digits")
    try:
        student = dc.pretrained("digits-fast")
    except FileNotFoundError:
        student = None
    schedule = teacher.schedule
    x_T = torch.randn(args.n_digits, *teacher.sample_shape, generator=torch.Generator().manual_seed(args.seed))
    print(f"## digits: {args.n_digits} samples vs the 364 held-out digits; real = {args.n_digits} real train digits "
          f"(mean +- sd of 5 draws)\n")
    print("| method | NFE | FD | FD, real | FD_inf | FD_inf, real | precision (real) | recall (real) | ms / sample |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    results = {}
    rows = [(r, teacher.model) for r in reference_rows(schedule) + plan(schedule)]
    if student is not None:
        rows += [(r, student.model) for r in student_rows(schedule)]
    for row, model in rows:
        out, nfe, seconds = timed(row, model, x_T)
        ev = evaluate(out.clamp(-1, 1), generator=torch.Generator().manual_seed(0))
        results[(row.method, row.budget)] = (nfe, ev.fd.value)
        print(f"| {row.method} | {nfe} | {ev.fd.value:.2f} | {ev.fd.real:.2f} | {ev.fd_unbiased.value:.2f} | "
              f"{ev.fd_unbiased.real:.2f} ± {ev.fd_unbiased.real_std:.2f} | {ev.precision.value:.3f} "
              f"({ev.precision.real:.3f}) | {ev.recall.value:.3f} ({ev.recall.real:.3f}) | "
              f"{1000 * seconds / args.n_digits:.1f} |", flush=True)
    best = min(fd for (m, _), (_, fd) in results.items() if m.startswith("teacher reference"))
    print(f"\nteacher's best FD (reference rows): {best:.2f}")
    free = [(fd, m, nfe) for (m, k), (nfe, fd) in results.items()
            if not m.startswith(("teacher", "student")) and nfe <= 10]
    at10 = min((fd, m, nfe) for fd, m, nfe in free if nfe >= 9)
    print(f"best training-free solver at <= 10 NFE: {at10[1]} ({at10[2]} NFE), FD {at10[0]:.2f} = "
          f"{at10[0] / best:.2f}x the teacher's best (goal <= 1.10x)")
    if student is not None:
        for k, goal in ((1, None), (2, 1.5), (4, 1.2), (10, None)):
            nfe, fd = results[("student, consistency sampler", k)]
            note = f" (goal <= {goal}x)" if goal else ""
            print(f"student at {nfe} NFE: FD {fd:.2f} = {fd / best:.2f}x the teacher's best{note}")
    print()


# ----------------------------------------------------------------------------- ring


def ring_scores(x: torch.Tensor, mixture, fresh: torch.Tensor) -> tuple[float, float, float]:
    x = x.double()
    d = torch.cdist(x, mixture.means)  # (n, 8)
    nearest = d.argmin(1)
    shares = torch.bincount(nearest, minlength=mixture.means.shape[0]).double() / x.shape[0]
    tv = 0.5 * (shares - 1 / mixture.means.shape[0]).abs().sum().item()
    off = (d.min(1).values > 0.4).double().mean().item()  # more than 4 std from every mode
    return sw(x, fresh), tv, off


def sw(a: torch.Tensor, b: torch.Tensor) -> float:
    return sliced_wasserstein(a.float(), b.float(), n_projections=256, generator=torch.Generator().manual_seed(0))


def ring_student(mixture, schedule: dc.Schedule, seed: int) -> tuple[EDMPrecond, float]:
    """An MLP consistency student of the exact oracle: 8192 ODE paths, 1500 steps of 256."""
    start = time.perf_counter()
    paths = distill.teacher_paths(mixture.as_model(schedule), schedule, 8192, (2,), steps=20,
                                  generator=torch.Generator().manual_seed(seed + 10))
    torch.manual_seed(seed)
    student = EDMPrecond(MLPDenoiser(MLPConfig(hidden=128, depth=3, time_dim=64)), schedule.alpha_bars)
    result = distill.distill(student, schedule, paths, steps=1500, batch_size=256, lr=2e-3, warmup_steps=50,
                             ema_decay=0.99, generator=torch.Generator().manual_seed(seed + 11))
    return result.student.double(), time.perf_counter() - start  # the ring runs in float64


def ring_reflow(mixture, seed: int) -> tuple[torch.nn.Module, float]:
    """Reflow of the exact flow: 8192 (noise, data) pairs from its ODE (Heun, 30 steps), 1500 steps of 256."""
    start = time.perf_counter()
    x1 = torch.randn(8192, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 20))
    x0 = distill.reflow_pairs(flow.VelocityOracle(mixture), x1, steps=30)
    torch.manual_seed(seed)
    net = MLPDenoiser(MLPConfig(hidden=128, depth=3, time_dim=64)).double()
    distill.train_reflow(net, x0, x1, steps=1500, generator=torch.Generator().manual_seed(seed + 21))
    return net, time.perf_counter() - start


def ring_table(args: argparse.Namespace) -> None:
    schedule = dc.linear_schedule()
    mixture = ring_mixture()  # 8 Gaussians, radius 1, std 0.1
    oracle = mixture.as_model(schedule)
    n = args.n_ring
    x_T = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(args.seed))
    fresh = mixture.sample(n, torch.Generator().manual_seed(args.seed + 1))
    floors = torch.tensor([ring_scores(mixture.sample(n, torch.Generator().manual_seed(1000 + i)), mixture, fresh)
                           for i in range(10)])  # (10, 3)
    student, s_seconds = ring_student(mixture, schedule, args.seed)
    reflow, r_seconds = ring_reflow(mixture, args.seed)
    print(f"## ring: {n} points from the 8-Gaussian ring (radius 1, std 0.1); real data: sliced W2 "
          f"{floors[:, 0].mean():.3f} ± {floors[:, 0].std():.3f}, mode-share TV {floors[:, 1].mean():.3f}, "
          f"off-mode {100 * floors[:, 2].mean():.2f}% (10 draws)")
    print(f"student distilled from the oracle in {s_seconds:.0f} s, reflow trained in {r_seconds:.0f} s\n")
    print("| method | NFE | sliced W2 | mode-share TV | off-mode % | ms / 1000 samples |")
    print("|---|--:|--:|--:|--:|--:|")
    rows = [(r, oracle) for r in plan(schedule)] + [(r, student) for r in student_rows(schedule)]
    rows += [(Row("flow (exact velocity), Euler", k, lambda m, x, k=k: flow.flow_sample(m, x, steps=k)),
              flow.VelocityOracle(mixture)) for k in BUDGETS]
    rows += [(Row("reflow, Euler", k, lambda m, x, k=k: flow.flow_sample(m, x, steps=k)), reflow) for k in BUDGETS]
    for row, model in rows:
        out, nfe, seconds = timed(row, model, x_T)
        w2, tv, off = ring_scores(out, mixture, fresh)
        print(f"| {row.method} | {nfe} | {w2:.3f} | {tv:.3f} | {100 * off:.2f} | {1e6 * seconds / n:.1f} |",
              flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-digits", type=int, default=512)
    parser.add_argument("--n-ring", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=("digits", "ring"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{dc.timing.hardware_description(torch.device('cpu'))}\n")
    if args.only != "digits":
        ring_table(args)
    if args.only != "ring":
        digits_table(args)


if __name__ == "__main__":
    main()

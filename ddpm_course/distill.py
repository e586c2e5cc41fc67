"""Distillation into a few-step student: the teacher's ODE, solved once, taught to a network that jumps.

A deterministic sampler of the teacher (the probability-flow ODE) maps each x_T to one image
x_0 = Phi(x_T), and every point x_t on that path to the same image. A *consistency function*
(Song et al. 2023, "Consistency models") is a network f(x_t, t) ~ Phi(x_t, t -> 0): one
evaluation at t = T - 1 is a one-step generator. Its multistep sampler alternates "jump to
the data" and "re-noise with fresh noise to a lower t", so more evaluations buy quality.

The target of f at (x_t, t) can be had two ways:

| target                          | code                    | cost per training example          |
|---------------------------------|-------------------------|------------------------------------|
| exact: the teacher's ODE end    | :func:`teacher_paths`   | a full teacher solve (~30 passes), |
|   Phi(x_t), stored once         |                         | once, before training              |
| bootstrapped (consistency       | :func:`consistency_target` | one teacher step t -> t_next and |
|   distillation): f_ema(x_{t_next}) |                     | one EMA-student pass, every step   |

Consistency distillation needs hundreds of thousands of steps for the bootstrapped targets to
agree; a CPU budget has a thousand, so ``digits-fast`` uses the exact targets: 4,096 teacher
paths (x_T drawn from a seed), each solved by DPM-Solver++ 2M on a log-SNR grid merged with
the student's times, and the states at the student's times stored with the path's end. That
is Luhman & Luhman's (2021) knowledge distillation extended from t = T - 1 to every time a
few-step sampler visits. (Progressive distillation, Salimans & Ho 2022, the other classic route,
halves the steps round by round and gives one student per step count.)

Notation (0-based steps as in ``schedules.py``):

| math                  | code          | shape / meaning                                            |
|-----------------------|---------------|------------------------------------------------------------|
| t_1 > ... > t_k       | ``times``     | (K,) long, the steps a student sampler visits             |
| x_{t_j} on path n     | ``states``    | (K, N, C, H, W), the teacher's states at those steps      |
| Phi(x_T)              | ``ends``      | (N, C, H, W), where each teacher path lands               |
| D(x_t, t)             | ``denoise``   | the student's clean-image estimate (``EDMUNet.denoise``)  |
| c_out                 | ``c_out``     | EDM's output scale: the loss is |(D - x0*) / c_out|^2     |

:func:`student_sample` is the multistep consistency sampler; :func:`student_times` the
"trailing" grids it runs on (999 | 999, 499 | 999, 749, 499, 249 for 1 | 2 | 4 evaluations),
which nest, so one set of stored times serves 1, 2, 4 and 10 evaluations.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._checks import generator_or_none, int_at_least, int_in_range, same_shape
from ._compat import renamed_arguments
from .models.edm import EDMPrecond, EDMUNet, EDMUNetConfig, edm_coefficients
from .samplers import Step, dpm_solver_step, sample, timesteps
from .schedules import Schedule, check_step
from .steps import _check_state, _no_history, _x0_hat
from .train import Examples, Objective, fit

__all__ = [
    "STUDENT_STEPS", "Paths", "DistillResult", "EndpointRegression", "StraightPaths", "student_times",
    "teacher_paths", "endpoint_loss",
    "consistency_target", "consistency_step", "student_sample", "student_from_teacher", "distill",
    "reflow_pairs", "train_reflow", "straightness",
]

STUDENT_STEPS = (1, 2, 4, 10)
Denoiser = Callable[[Tensor, Tensor], Tensor]


def student_times(schedule: Schedule, steps: Sequence[int] = STUDENT_STEPS) -> Tensor:
    """Every step that a "trailing" grid of one of ``steps`` evaluations visits, noisiest first: (K,) long."""
    ts = torch.cat([timesteps(schedule, int_in_range("steps", k, 1, schedule.T), "trailing") for k in steps])
    return torch.unique(ts).flip(0)


@dataclass
class Paths:
    """Teacher ODE paths: ``states[j]`` (N, ...) is every path at step ``times[j]``; ``ends`` (N, ...) their images."""

    times: Tensor  # (K,) long, decreasing
    states: Tensor  # (K, N, ...)
    ends: Tensor  # (N, ...)
    teacher_steps: int  # network evaluations per path

    def __post_init__(self) -> None:
        k, n = self.states.shape[:2]
        if self.times.shape != (k,) or self.ends.shape != self.states.shape[1:]:
            raise ValueError(
                f"times (K,), states (K, N, ...) and ends (N, ...) must agree; got {tuple(self.times.shape)}, "
                f"{tuple(self.states.shape)}, {tuple(self.ends.shape)}")


def _teacher_grid(schedule: Schedule, times: Tensor, steps: int) -> Tensor:
    """A log-SNR grid of ``steps`` evaluations merged with ``times``: (n,) long, decreasing, ending at 0."""
    zero = torch.zeros(1, dtype=torch.long)
    return torch.unique(torch.cat([timesteps(schedule, steps, "logsnr"), times, zero])).flip(0)


@torch.no_grad()
def teacher_paths(
    teacher: Callable,
    schedule: Schedule,
    n: int,
    shape: tuple[int, ...],
    *,
    times: Tensor | None = None,
    steps: int = 20,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> Paths:
    """Solve the teacher's probability-flow ODE from ``n`` draws x_T ~ N(0, I) of ``shape`` (C, H, W).

    The solver is DPM-Solver++ 2M on a log-SNR grid of ``steps`` points merged with ``times``
    (default :func:`student_times`), so that the states at ``times`` are exact solver states.
    The teacher is any eps-model (a network, the Gaussian-mixture oracle).
    """
    n = int_at_least("n", n, 1)
    batch_size = int_at_least("batch_size", batch_size, 1)
    generator = generator_or_none("generator", generator, cpu=True)
    times = student_times(schedule) if times is None else times.long()
    if int(times.max()) != schedule.T - 1:
        raise ValueError(f"times must start at the noisiest step T - 1 = {schedule.T - 1} (x_T is a path's start)")
    grid = _teacher_grid(schedule, times, steps)
    wanted = {int(t): j for j, t in enumerate(times)}
    states, ends = [], []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        x_T = torch.randn((b, *shape), generator=generator)  # (b, C, H, W)
        seen: dict[int, Tensor] = {}

        def keep(i: int, t: int, x_t: Tensor, x0_hat: Tensor, seen: dict[int, Tensor] = seen) -> None:
            if t in wanted:
                seen[t] = x_t.detach().clone()

        ends.append(sample(teacher, schedule, x_T, dpm_solver_step, grid, memory=1, lower_order_final=1,
                           callback=keep))
        states.append(torch.stack([seen[int(t)] for t in times]))  # (K, b, ...)
    return Paths(times, torch.cat(states, 1), torch.cat(ends), len(grid))


def _c_out(schedule_abar: Tensor, t: Tensor, sigma_data: float, like: Tensor) -> Tensor:
    abar = schedule_abar.to(like.device, torch.float64)[t.long()]  # (B,)
    sigma = ((1 - abar) / abar).sqrt()
    return edm_coefficients(sigma, sigma_data)[1].reshape(-1, *([1] * (like.ndim - 1)))  # (B, 1, ...)


def endpoint_loss(
    denoise: Denoiser, schedule: Schedule, x_t: Tensor, t: Tensor, target: Tensor, sigma_data: float = 0.5,
) -> Tensor:
    """mean |(D(x_t, t) - target) / c_out(t)|^2: EDM's weighting, a unit-scale loss at every t.

    x_t, target: (B, ...); t: (B,) long. ``denoise`` returns D (B, ...), e.g. ``EDMUNet.denoise``.
    """
    same_shape("target", target, x_t)
    d = denoise(x_t, t)
    c_out = _c_out(schedule.alpha_bars, t, sigma_data, x_t).to(d.dtype)
    return ((d - target) / c_out).square().mean()


@torch.no_grad()
def consistency_target(
    teacher: Callable, denoise_ema: Denoiser, schedule: Schedule, x_t: Tensor, t: int, t_next: int,
) -> Tensor:
    """The consistency-distillation target at (x_t, t): one teacher DDIM step to t_next, then the
    EMA student's clean image there, f_ema(x_{t_next}, t_next) (Song et al. 2023, Algorithm 2).

    At t_next = -1 (the data) the teacher's step itself is the target. x_t: (B, ...) -> (B, ...).
    """
    t = check_step(schedule, t)
    t_next = check_step(schedule, t_next, "t_next", low=-1, high=t - 1)
    tb = torch.full((x_t.shape[0],), t, dtype=torch.long)
    eps = teacher(x_t, tb).to(x_t.dtype)
    abar = float(schedule.alpha_bars[t])
    abar_next = 1.0 if t_next < 0 else float(schedule.alpha_bars[t_next])
    x0_hat = _x0_hat(x_t, eps, abar)
    x_next = math.sqrt(abar_next) * x0_hat + math.sqrt(1 - abar_next) * eps
    if t_next < 0:
        return x_next
    return denoise_ema(x_next, torch.full_like(tb, t_next))


def consistency_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    noise: Tensor | None = None,
    *,
    t_prev: int | None = None,
    history: Sequence = (),
) -> Step:
    """One step of the multistep consistency sampler: jump to x0_hat, re-noise with *fresh* noise.

    x_{t_prev} = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) z, so x_{t_prev} has the marginal
    q(x_{t_prev}) whenever x0_hat has the data's distribution (DDIM would reuse the model's eps,
    which is tied to x0_hat). x_t, eps, noise: (B, ...); ``noise`` required unless t_prev = -1.
    """
    t, t_prev = _check_state(schedule, x_t, t, eps, noise, t_prev)
    _no_history("consistency_step", history)
    x0_hat = _x0_hat(x_t, eps, float(schedule.alpha_bars[t]))
    if t_prev < 0:
        return Step(x0_hat, x0_hat)
    if noise is None:
        raise ValueError("consistency_step needs noise (B, ...) for every step but the last (t_prev = -1)")
    abar_prev = float(schedule.alpha_bars[t_prev])
    return Step(math.sqrt(abar_prev) * x0_hat + math.sqrt(1 - abar_prev) * noise, x0_hat)


def student_sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    *,
    steps: int = 2,
    generator: torch.Generator | None = None,
    y: Tensor | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """The multistep consistency sampler with ``steps`` network evaluations on the "trailing" grid.

    ``model`` is an eps-model (a student's ``forward``): x0_hat is recovered from its eps. Returns x_0 (B, ...).
    """
    ts = timesteps(schedule, steps, "trailing")
    return sample(model, schedule, shape, consistency_step, ts, noisy=True, generator=generator, y=y, device=device)


def student_from_teacher(teacher: nn.Module, schedule: Schedule, sigma_data: float = 0.5) -> EDMUNet:
    """An :class:`EDMUNet` with the teacher U-Net's configuration (dropout off) and its weights as the start."""
    cfg = teacher.config
    fields = {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}
    student = EDMUNet(EDMUNetConfig(**{**fields, "dropout": 0.0}, sigma_data=sigma_data, T=schedule.T))
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or set(missing) != {"alpha_bars"}:
        raise ValueError(f"the teacher's weights do not fit the student: missing {missing}, unexpected {unexpected}")
    return student.set_schedule(schedule.alpha_bars.float())


@dataclass
class DistillResult:
    """What :func:`distill` returns: the EMA student (eval mode), the loss per step, the seconds."""

    student: EDMUNet | EDMPrecond
    losses: list[float]
    seconds: float


class EndpointRegression(Objective):
    """Distillation for ``train.fit``: :func:`endpoint_loss` of ``student.denoise`` at (time, path)
    pairs of the teacher's :class:`Paths`. The K * N pairs are the examples (pair m is path m % N at
    time m // N), so each pass over the data sees every stored state once.

    Its one piece of state is ``paths``: the examples are only the pair indices, so
    ``examples(paths, model)`` binds the :class:`Paths` they index (``None`` before), and ``loss``
    reads each pair's state, time and end from it, in the dtype they were stored in. One objective
    trains on one ``Paths`` at a time; :func:`distill` makes a fresh one per run. ``loss`` draws
    nothing from the generator.
    """

    name = "endpoint_regression"

    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.paths: Paths | None = None  # bound by examples(): what the pair indices point into

    def examples(self, data: Paths, model: nn.Module) -> Examples:
        if not isinstance(data, Paths):
            raise TypeError(f"paths must be a distill.Paths (distill.teacher_paths(...)); got {type(data).__name__}")
        self.paths = data
        return Examples(torch.arange(data.states.shape[0] * data.states.shape[1]))  # (K * N,)

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator) -> Tensor:
        if self.paths is None:
            raise RuntimeError("EndpointRegression.loss needs the paths: call examples(paths, model) first "
                               "(train.fit does)")
        (pair,) = batch
        paths, n = self.paths, self.paths.states.shape[1]
        j, i = (pair // n).cpu(), (pair % n).cpu()  # (B,) which time, which path
        device = next(net.parameters()).device
        return endpoint_loss(net.denoise, self.schedule, paths.states[j, i].to(device), paths.times[j],
                             paths.ends[i].to(device), net.sigma_data)


def distill(
    student: EDMUNet | EDMPrecond,
    schedule: Schedule,
    paths: Paths,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    warmup_steps: int = 50,
    ema_decay: float = 0.995,
    grad_clip: float = 1.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> DistillResult:
    """Fit ``student.denoise`` to the teacher's path ends at the stored states (:func:`endpoint_loss`).

    ``train.fit`` with :class:`EndpointRegression`: batches of ``batch_size`` (path, time) pairs,
    AdamW with linear warm-up and a half-cosine decay, gradient clipping and an EMA. Returns the
    EMA student.
    """
    run = fit(student, EndpointRegression(schedule), paths, steps=steps, batch_size=batch_size, lr=lr,
              warmup_steps=warmup_steps, grad_clip=grad_clip, ema_decay=ema_decay, generator=generator,
              progress=progress)
    return DistillResult(run.ema_model, run.losses, run.seconds)


# ----------------------------------------------------------------------------- reflow (Liu et al. 2023)


@renamed_arguments(velocity="model")
@torch.no_grad()
def reflow_pairs(model: Callable, x1: Tensor, steps: int = 50) -> Tensor:
    """Where the flow ODE dx/dt = model(x, t) carries each x1 (B, ...) from t = 1 to t = 0 (Heun).

    The velocity ``model`` has the contract of ``flow.flow_sample`` (a network fed t * 999, or a
    ``flow.VelocityOracle``). The pairs (x0, x1) are a deterministic coupling of noise and data:
    training a new flow on the straight lines between them is *reflow*. Returns x0: (B, ...).
    """
    from .flow import flow_sample

    return flow_sample(model, x1, steps=int_at_least("steps", steps, 1), method="heun")


class StraightPaths(Objective):
    """Reflow for ``train.fit``: the flow-matching loss on the straight line between paired x0 and
    x1 (``flow.flow_matching_loss(..., noise=x1)``), t ~ U(0, 1) from the generator. Examples: the pairs."""

    name = "reflow"

    def examples(self, data: tuple[Tensor, Tensor], model: nn.Module) -> Examples:
        x0, x1 = data
        same_shape("x1", x1, x0, "x0")
        return Examples(x0, x1)

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator) -> Tensor:
        from .flow import flow_matching_loss

        x0, x1 = batch
        t = torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
        return flow_matching_loss(net, x0, t=t, noise=x1)


def train_reflow(
    model: nn.Module,
    x0: Tensor,
    x1: Tensor,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    warmup_steps: int = 20,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Fit ``model`` (a velocity net, fed t * 999) to the straight paths between paired x0, x1 (N, ...).

    The flow-matching loss with the noise *given*: target x1 - x0 along x_t = (1 - t) x0 + t x1.
    A flow fitted to a deterministic coupling has straighter paths than the one that made it, so
    few Euler steps follow it well. ``train.fit`` with :class:`StraightPaths`: AdamW, warm-up and
    half-cosine decay, no clipping, no EMA; trains in place, returns the losses.
    """
    run = fit(model, StraightPaths(), (x0, x1), steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
              grad_clip=None, ema_decay=None, generator=generator, progress=False)
    return run.losses


@renamed_arguments(velocity="model")
def straightness(model: Callable, x1: Tensor, steps: int = 50) -> float:
    """How far the paths of the velocity ``model`` (a flow) bend: mean over the path of
    |(x1 - x0) - u(x_t, t)|^2, 0 for straight lines.

    Liu et al.'s S(Z): the ODE is solved from x1 with ``steps`` Euler steps, and each step's
    velocity is compared with the chord x1 - x0 of its own path. x1: (B, ...).
    """
    from .flow import _predict, flow_timesteps

    ts = flow_timesteps(int_at_least("steps", steps, 1)).tolist()
    x, us = x1.clone(), []
    with torch.no_grad():
        for t, t_next in zip(ts, ts[1:]):
            u = _predict(model, x, torch.full((x.shape[0],), t, dtype=torch.float64))
            us.append(u)
            x = x + (t_next - t) * u
        chord = x1 - x
        return float(torch.stack([(chord - u).square().flatten(1).sum(1) for u in us]).mean())


def _main(argv: list[str] | None = None) -> None:
    """python -m ddpm_course.distill: distil the shipped ``digits-fast`` student from ``digits``."""
    from ._records import maker_parser, run_record
    from .checkpoint import save_checkpoint
    from .shipped import pretrained

    prog = "python -m ddpm_course.distill"
    parser = maker_parser(prog, _main.__doc__, steps=1000, batch_size=64, lr=5e-4, warmup_steps=50, ema_decay=0.995)
    parser.add_argument("--paths", type=int, default=4096, help="teacher ODE paths to solve")
    parser.add_argument("--teacher-steps", type=int, default=20, help="log-SNR grid of the teacher's solver")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    teacher = pretrained("digits")
    schedule = teacher.schedule
    paths = teacher_paths(teacher.model, schedule, args.paths, teacher.sample_shape,
                          steps=args.teacher_steps, generator=torch.Generator().manual_seed(args.seed))
    path_seconds = time.perf_counter() - t0
    if not args.no_progress:
        print(f"{args.paths} teacher paths, {paths.teacher_steps} evaluations each, in {path_seconds:.0f} s",
              flush=True)
    student = student_from_teacher(teacher.model, schedule)
    result = distill(student, schedule, paths, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                     warmup_steps=args.warmup_steps, ema_decay=args.ema_decay,
                     generator=torch.Generator().manual_seed(args.seed + 1), progress=not args.no_progress)
    tail = result.losses[-50:]
    total = time.perf_counter() - t0
    record = run_record(
        prog, argv,
        objective="distillation of the probability-flow ODE into a consistency function: the EDM-preconditioned "
                  "student's clean image D(x_t, t) regressed on the end of the teacher's DPM-Solver++ 2M path "
                  "through x_t, at the steps of the trailing grids of 1, 2, 4 and 10 evaluations; loss "
                  "|(D - x0*) / c_out|^2; sample with ddpm_course.distill.student_sample",
        teacher="digits (" + teacher.record.get("command", "") + ")",
        weights="ema",
        teacher_paths=args.paths, teacher_evaluations_per_path=paths.teacher_steps,
        times=[int(t) for t in paths.times],
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay, sigma_data=student.config.sigma_data, seed=args.seed,
        path_seconds=round(path_seconds, 1), train_seconds=round(result.seconds, 1),
        total_seconds=round(total, 1), final_loss=round(sum(tail) / len(tail), 5),
    )
    out = save_checkpoint(args.out, result.student, schedule, sample_shape=teacher.sample_shape, record=record,
                          weights_dtype=torch.float32, overwrite=args.overwrite)
    print(f"wrote {out[0]} and {out[1]}: {args.paths} paths in {path_seconds:.0f} s, {args.steps} steps in "
          f"{result.seconds:.0f} s (total {total / 60:.1f} min), final loss {record['final_loss']}")


if __name__ == "__main__":
    _main()

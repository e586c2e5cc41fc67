"""Lesson 02 (the forward chain): walk the chain, jump with q_sample, the posterior mean, one number.

| exercise                | the learner writes                                          | reference              |
|-------------------------|-------------------------------------------------------------|------------------------|
| ``02.walk``             | ``my_walk(x0, noises, schedule) -> x_K``                    | ``q_step``, K times    |
| ``02.q_sample``         | ``my_q_sample(x0, t, noise, schedule) -> x_t``              | ``q_sample``           |
| ``02.posterior_mean``   | ``my_posterior_mean(x0, x_t, t, schedule) -> mean``         | ``q_posterior``        |
| ``02.beta_tilde``       | the number beta-tilde_t at math step t = 10                  | ``posterior_variance`` |

Steps are 0-based in code: ``t`` (B,) holds values in 0..T-1 and ``schedule.alpha_bars[t]`` is the
math's alpha-bar_{t+1}. The cases mix a batch of different t with the edges t = 0 and t = T-1.
The hidden cases (``ddpm-course grade --hidden``) use other schedules (cosine, a shorter linear
one), other step counts and shapes, with the same edges.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..forward import q_posterior, q_sample, q_step
from ..schedules import Schedule, cosine_schedule, linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register

SCHEDULE = linear_schedule(1000)
HIDDEN_SCHEDULES = (cosine_schedule(500), linear_schedule(200, 1e-3, 0.05))


def _col(values: Tensor, x: Tensor) -> Tensor:
    """values (B,) -> (B, 1, ..., 1), to broadcast over x (B, ...)."""
    return values.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


# ----------------------------------------------------------------------------------------------
# 02.walk: apply the one-step chain K times, with fresh noise each time


def _walk(x0: Tensor, noises: Tensor, schedule: Schedule) -> Tensor:
    x = x0
    for k in range(noises.shape[0]):
        x = q_step(schedule, x, k, noise=noises[k])
    return x


def _walk_with(x0: Tensor, noises: Tensor, schedule: Schedule, step) -> Tensor:
    x = x0
    for k in range(noises.shape[0]):
        x = step(x, k, noises)
    return x


WALKS = ((1, (3, 2)), (2, (3, 2)), (7, (2, 1, 4, 4)), (50, (4, 2)))
HIDDEN_WALKS = ((1, (2, 5)), (3, (4, 3)), (12, (3, 2, 3, 3)), (120, (2, 2)))


def _walk_cases(generator: torch.Generator, walks=WALKS, schedules=(SCHEDULE,)) -> list[Case]:
    cases = []
    for i, (k_steps, shape) in enumerate(walks):
        schedule = schedules[i % len(schedules)]
        x0 = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
        noises = torch.randn((k_steps, *shape), generator=generator, dtype=torch.float64)
        where = "" if schedule is SCHEDULE else f" ({schedule.name} schedule, T = {schedule.T})"
        cases.append(Case((x0, noises, schedule), {}, f"{k_steps} step(s) from x0 of shape {shape}{where}"))
    return cases


def _a(s: Schedule, k: int) -> float:
    return s.alphas[k].item()


register(FunctionExercise(
    name="02.walk",
    reference=_walk,
    cases=_walk_cases,
    hidden_cases=lambda g: _walk_cases(g, HIDDEN_WALKS, HIDDEN_SCHEDULES),
    mistakes=(
        Mistake("the same noise is reused at every step: each step draws a fresh, independent eps_t "
                "(use noises[k] at step k); reused noise adds up instead of merging into a smaller total",
                lambda x0, n, s: _walk_with(
                    x0, n, s, lambda x, k, ns: _a(s, k) ** 0.5 * x + (1 - _a(s, k)) ** 0.5 * ns[0])),
        Mistake("the square roots are missing: one step is sqrt(alpha_t) x + sqrt(beta_t) eps",
                lambda x0, n, s: _walk_with(x0, n, s, lambda x, k, ns: _a(s, k) * x + (1 - _a(s, k)) * ns[k])),
        Mistake("the noise is scaled by its variance beta_t; scale it by the standard deviation sqrt(beta_t)",
                lambda x0, n, s: _walk_with(x0, n, s, lambda x, k, ns: _a(s, k) ** 0.5 * x + (1 - _a(s, k)) * ns[k])),
        Mistake("one step too far along the schedule: the first step (noises[0]) uses betas[0], the code's "
                "t = 0 (the math's beta_1)", lambda x0, n, s: _walk_with(
                    x0, n, s, lambda x, k, ns: _a(s, k + 1) ** 0.5 * x + (1 - _a(s, k + 1)) ** 0.5 * ns[k])),
        Mistake("each step multiplies by sqrt(alpha_t) of that step only, not by sqrt(alpha_bar_t): the "
                "product builds up by itself along the chain", lambda x0, n, s: _walk_with(
                    x0, n, s, lambda x, k, ns: s.alpha_bars[k].sqrt().item() * x
                    + (1 - s.alpha_bars[k].item()) ** 0.5 * ns[k])),
    ),
))

# ----------------------------------------------------------------------------------------------
# 02.q_sample: the jump


def _q_sample(x0: Tensor, t: Tensor, noise: Tensor, schedule: Schedule) -> Tensor:
    return q_sample(schedule, x0, t, noise=noise)[0]


def _batch_specs(generator: torch.Generator, schedule: Schedule) -> tuple:
    T = schedule.T
    return (
        (torch.tensor([0, 1, 499, 998, 999]), (5, 1, 4, 6)),
        (torch.randint(0, T, (6,), generator=generator), (6, 3, 2, 2)),
        (torch.tensor([0, T - 1, 9]), (3, 2)),
        (torch.tensor([250]), (1, 2)),
    )


def _hidden_batch_specs(generator: torch.Generator, schedule: Schedule) -> tuple:
    T = schedule.T
    return (
        (torch.tensor([T - 1, 0, 2, T // 2]), (4, 2, 3, 3)),
        (torch.randint(0, T, (7,), generator=generator), (7, 1, 2, 5)),
        (torch.tensor([0, T - 1]), (2, 6)),
        (torch.randint(0, T, (1,), generator=generator), (1, 3, 1, 1)),
    )


def _batch_cases(generator: torch.Generator, with_x_t: bool = False, specs=_batch_specs,
                 schedules=(SCHEDULE,)) -> list[Case]:
    """Batches of different t, the edges t = 0 and t = T-1, images and points."""
    cases = []
    for schedule in schedules:
        where = "" if schedule is SCHEDULE else f" ({schedule.name} schedule, T = {schedule.T})"
        for t, shape in specs(generator, schedule):
            x0 = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
            other = torch.randn(shape, generator=generator, dtype=torch.float64)
            label = f"t = {t.tolist()}, shape {shape}{where}"
            args = (x0, other, t, schedule) if with_x_t else (x0, t, other, schedule)
            cases.append(Case(args, {}, label))
    return cases


def _hidden_batch_cases(generator: torch.Generator, with_x_t: bool = False) -> list[Case]:
    return _batch_cases(generator, with_x_t, _hidden_batch_specs, HIDDEN_SCHEDULES)


def _jump(abar: Tensor, x0: Tensor, noise: Tensor, signal=lambda a: a.sqrt(), noise_scale=lambda a: (1 - a).sqrt()):
    a = _col(abar, x0)
    return signal(a) * x0 + noise_scale(a) * noise


register(FunctionExercise(
    name="02.q_sample",
    reference=_q_sample,
    cases=_batch_cases,
    hidden_cases=_hidden_batch_cases,
    mistakes=(
        Mistake("off by one step: alpha_bars[t - 1] is the math's alpha-bar_t only if t is 1-based; the code's "
                "t is 0-based, so use alpha_bars[t] (at t = 0, alpha_bars[-1] silently wraps to the last step)",
                lambda x0, t, n, s: _jump(s.alpha_bars[t - 1], x0, n)),
        Mistake("off by one step: alpha_bars[t] is already alpha-bar of code step t (alpha_bars_prev[t] is "
                "the step before)", lambda x0, t, n, s: _jump(s.alpha_bars_prev[t], x0, n)),
        Mistake("the square roots are missing: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps",
                lambda x0, t, n, s: _jump(s.alpha_bars[t], x0, n, lambda a: a, lambda a: 1 - a)),
        Mistake("the noise is scaled by its variance 1 - alpha_bar_t; scale it by the standard deviation",
                lambda x0, t, n, s: _jump(s.alpha_bars[t], x0, n, noise_scale=lambda a: 1 - a)),
        Mistake("alphas[t] is one step's alpha; the jump needs the product alpha_bars[t]",
                lambda x0, t, n, s: _jump(s.alphas[t], x0, n)),
        Mistake("broadcasting over the batch is lost: every sample has its own t, so pick alpha_bars[t] (B,) "
                "and reshape it to (B, 1, ..., 1) before multiplying",
                lambda x0, t, n, s: s.alpha_bars[t].sqrt() * x0 + (1 - s.alpha_bars[t]).sqrt() * n),
        Mistake("one t is used for the whole batch: each sample has its own step t[i]",
                lambda x0, t, n, s: _jump(s.alpha_bars[t[:1]].expand(len(t)), x0, n)),
    ),
))

# ----------------------------------------------------------------------------------------------
# 02.posterior_mean


def _posterior_mean(x0: Tensor, x_t: Tensor, t: Tensor, schedule: Schedule) -> Tensor:
    return q_posterior(schedule, x0, x_t, t)[0]


def _mean_with(x0, x_t, t, s, abar_prev=None, sqrt_alpha=None, swap=False):
    abar = s.alpha_bars[t]
    abar_prev = s.alpha_bars_prev[t] if abar_prev is None else abar_prev
    sqrt_alpha = s.alphas[t].sqrt() if sqrt_alpha is None else sqrt_alpha
    c0 = s.betas[t] * abar_prev.sqrt() / (1 - abar)
    ct = (1 - abar_prev) * sqrt_alpha / (1 - abar)
    if swap:
        c0, ct = ct, c0
    return _col(c0, x0) * x0 + _col(ct, x_t) * x_t


register(FunctionExercise(
    name="02.posterior_mean",
    reference=_posterior_mean,
    cases=lambda g: _batch_cases(g, with_x_t=True),
    hidden_cases=lambda g: _hidden_batch_cases(g, with_x_t=True),
    mistakes=(
        Mistake("at t = 0 the step before is the data: alpha-bar_{t-1} is 1 there (schedule.alpha_bars_prev[0]); "
                "alpha_bars[t - 1] wraps to the last entry at t = 0",
                lambda x0, xt, t, s: _mean_with(x0, xt, t, s, abar_prev=s.alpha_bars[t - 1])),
        Mistake("alpha-bar_{t-1} is the previous step's, schedule.alpha_bars_prev[t], not alpha_bars[t]",
                lambda x0, xt, t, s: _mean_with(x0, xt, t, s, abar_prev=s.alpha_bars[t])),
        Mistake("the weight of x_t has sqrt(alpha_t), not alpha_t",
                lambda x0, xt, t, s: _mean_with(x0, xt, t, s, sqrt_alpha=s.alphas[t])),
        Mistake("the two weights are swapped: x0 gets beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t)",
                lambda x0, xt, t, s: _mean_with(x0, xt, t, s, swap=True)),
        Mistake("broadcasting over the batch is lost: reshape the (B,) coefficients to (B, 1, ..., 1)",
                lambda x0, xt, t, s: (s.betas[t] * s.alpha_bars_prev[t].sqrt() / (1 - s.alpha_bars[t])) * x0
                + ((1 - s.alpha_bars_prev[t]) * s.alphas[t].sqrt() / (1 - s.alpha_bars[t])) * xt),
    ),
))

# ----------------------------------------------------------------------------------------------
# 02.beta_tilde: a number


register(NumberExercise(
    name="02.beta_tilde",
    answer=lambda: SCHEDULE.posterior_variance[9].item(),
    mistakes=(
        Mistake("that is beta-tilde at math step 11: the math's step t = 10 is the code's index 9",
                lambda: SCHEDULE.posterior_variance[10].item()),
        Mistake("that is the standard deviation; the question asks for the variance beta-tilde_t",
                lambda: SCHEDULE.posterior_variance[9].sqrt().item()),
        Mistake("that is the forward step's beta_t; the posterior's variance is beta_t (1 - alpha_bar_{t-1}) "
                "/ (1 - alpha_bar_t)", lambda: SCHEDULE.betas[9].item()),
        Mistake("that is beta_t at math step 11; the posterior variance at step 10 is "
                "beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)", lambda: SCHEDULE.betas[10].item()),
    ),
    rtol=1e-3,
))

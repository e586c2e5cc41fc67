"""Lesson 06 (DDPM sampling): one reverse step, the whole loop, and one number.

| exercise           | the learner writes                                      | reference                          |
|--------------------|---------------------------------------------------------|------------------------------------|
| ``06.ddpm_step``   | ``my_ddpm_step(x_t, t, eps, z, schedule) -> x_{t-1}``   | ``predict_x0`` + ``q_posterior``   |
| ``06.ddpm_loop``   | ``my_ddpm_loop(model, x_T, noises, schedule) -> x_0``   | the step above, t = T-1 .. 0       |
| ``06.std_ratio``   | sqrt(beta_t / beta-tilde_t) at math step t = 2          | ``posterior_variance``             |

The step uses sigma_t^2 = beta_t and adds no noise at the last step (t = 0). Its reference
writes the mean as the posterior mean at x0_hat (lesson 06 shows that this equals the
eps form), so it does not depend on the signature of ``samplers.ddpm_step``. ``t`` is a (B,)
tensor of 0-based steps, one per sample. The hidden cases (``ddpm-course grade --hidden``) use
other linear schedules (other T and betas), other steps and shapes, and another short chain.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..forward import predict_x0, q_posterior
from ..schedules import Schedule, linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register

SCHEDULE = linear_schedule(1000)
SHORT = linear_schedule(20, 5e-3, 0.5)  # a short chain for the loop: 20 steps that still end in noise
HIDDEN_SCHEDULES = (linear_schedule(250, 2e-4, 0.04), linear_schedule(600))
HIDDEN_SHORT = linear_schedule(13, 1e-2, 0.6)


def _col(values: Tensor, x: Tensor) -> Tensor:
    return values.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)  # (B, 1, ..., 1)


def _ddpm_step(x_t: Tensor, t: Tensor, eps: Tensor, z: Tensor, schedule: Schedule) -> Tensor:
    mean, _ = q_posterior(schedule, predict_x0(schedule, x_t, t, eps), x_t, t)
    sigma = _col(schedule.betas[t].sqrt() * (t > 0), x_t)  # no noise at the last step
    return mean + sigma * z


def _step_with(x_t, t, eps, z, s, sign=-1.0, coef=None, scale=None, noise_at_0=False, var=None, abar=None):
    beta, alpha = s.betas[t], s.alphas[t]
    abar = s.alpha_bars[t] if abar is None else abar
    c = beta / (1 - abar).sqrt() if coef is None else coef(beta, abar)
    mean = (x_t + sign * _col(c, x_t) * eps) / _col(alpha.sqrt() if scale is None else scale(alpha), x_t)
    sd = (beta.sqrt() if var is None else var(beta)) * (1.0 if noise_at_0 else (t > 0))
    return mean + _col(sd, x_t) * z


def _step_cases(generator: torch.Generator) -> list[Case]:
    specs = ((torch.tensor([0, 1, 2, 500, 998, 999]), (6, 2)),
             (torch.randint(0, 1000, (4,), generator=generator), (4, 1, 3, 3)),
             (torch.tensor([0, 0, 999]), (3, 2)))
    cases = []
    for t, shape in specs:
        x_t, eps, z = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))
        cases.append(Case((x_t, t, eps, z, SCHEDULE), {}, f"t = {t.tolist()}, shape {shape}"))
    return cases


def _hidden_step_cases(generator: torch.Generator) -> list[Case]:
    cases = []
    for schedule in HIDDEN_SCHEDULES:
        T = schedule.T
        specs = ((torch.tensor([T - 1, 0, 1, T // 3]), (4, 3)),
                 (torch.randint(0, T, (5,), generator=generator), (5, 2, 2, 2)),
                 (torch.tensor([0, T - 1]), (2, 1, 1, 4)))
        for t, shape in specs:
            x_t, eps, z = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))
            cases.append(Case((x_t, t, eps, z, schedule), {}, f"t = {t.tolist()}, shape {shape}, T = {T}"))
    return cases


register(FunctionExercise(
    name="06.ddpm_step",
    reference=_ddpm_step,
    cases=_step_cases,
    hidden_cases=_hidden_step_cases,
    mistakes=(
        Mistake("the last step (t = 0) adds no noise: it returns the mean, the sample",
                lambda *a: _step_with(*a, noise_at_0=True)),
        Mistake("sigma_t^2 = beta_t is a variance: the noise is scaled by sqrt(beta_t)",
                lambda *a: _step_with(*a, var=lambda b: b)),
        Mistake("wrong sign: the predicted noise is removed, x_t - beta_t / sqrt(1 - alpha_bar_t) eps",
                lambda *a: _step_with(*a, sign=1.0)),
        Mistake("divide by sqrt(alpha_t), not alpha_t", lambda *a: _step_with(*a, scale=lambda a: a)),
        Mistake("the eps coefficient is beta_t / sqrt(1 - alpha_bar_t): the square root is missing",
                lambda *a: _step_with(*a, coef=lambda b, ab: b / (1 - ab))),
        Mistake("off by one step: alpha_bars[t] is code step t's own (t - 1 wraps around at t = 0)",
                lambda x_t, t, e, z, s: _step_with(x_t, t, e, z, s, abar=s.alpha_bars[t - 1])),
        Mistake("broadcasting over the batch is lost: reshape the (B,) coefficients to (B, 1, ..., 1)",
                lambda x_t, t, e, z, s: (x_t - s.betas[t] / (1 - s.alpha_bars[t]).sqrt() * e) / s.alphas[t].sqrt()
                + s.betas[t].sqrt() * (t > 0) * z),
    ),
    rtol=1e-9,
    atol=1e-12,
))


def loop_model(x_t: Tensor, t: Tensor) -> Tensor:
    """A fixed "network" for the loop's cases: eps_hat = tanh(x_t) * (0.3 + t / T_short)."""
    return torch.tanh(x_t) * _col(0.3 + t.to(x_t.dtype) / SHORT.T, x_t)


def _loop_with(model, x_T, noises, schedule, step=_ddpm_step, noise_index=None, t_model=None, order="down"):
    x = x_T
    T = schedule.T
    steps = range(T - 1, -1, -1) if order == "down" else range(T)
    for t in steps:
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        eps = model(x, tt if t_model is None else t_model(tt))
        k = T - 1 - t if noise_index is None else noise_index(t)  # noises[0] serves t = T-1
        z = noises[min(k, noises.shape[0] - 1)] if t > 0 else torch.zeros_like(x)
        x = step(x, tt, eps, z, schedule)
    return x


def _loop(model, x_T: Tensor, noises: Tensor, schedule: Schedule) -> Tensor:
    return _loop_with(model, x_T, noises, schedule)


def _loop_cases(generator: torch.Generator, schedule: Schedule = SHORT, shapes=((5, 2), (2, 1, 3, 3))) -> list[Case]:
    cases = []
    for shape in shapes:
        x_T = torch.randn(shape, generator=generator, dtype=torch.float64)
        noises = torch.randn((schedule.T - 1, *shape), generator=generator, dtype=torch.float64)
        cases.append(Case((loop_model, x_T, noises, schedule), {}, f"T = {schedule.T}, x_T of shape {shape}"))
    return cases


register(FunctionExercise(
    name="06.ddpm_loop",
    reference=_loop,
    cases=_loop_cases,
    hidden_cases=lambda g: _loop_cases(g, HIDDEN_SHORT, ((3, 4), (1, 2, 2, 2), (4, 3, 1, 1))),
    mistakes=(
        Mistake("the same noise is reused at every step: use noises[k] for the k-th step (a fresh draw each time)",
                lambda m, x, n, s: _loop_with(m, x, n, s, noise_index=lambda t: 0)),
        Mistake("the loop runs the wrong way: sampling starts at t = T-1 (pure noise) and ends at t = 0",
                lambda m, x, n, s: _loop_with(m, x, n, s, order="up")),
        Mistake("the network gets the 0-based step t itself, the one whose alpha_bar the step uses, not t + 1",
                lambda m, x, n, s: _loop_with(m, x, n, s, t_model=lambda t: t + 1)),
        Mistake("the noises are used in reverse: noises[0] belongs to the first step, t = T-1",
                lambda m, x, n, s: _loop_with(m, x, n, s, noise_index=lambda t: t - 1)),
    ),
    rtol=1e-9,
    atol=1e-12,
))


def _ratio(code_t: int) -> float:
    return (SCHEDULE.betas[code_t] / SCHEDULE.posterior_variance[code_t]).sqrt().item()


register(NumberExercise(
    name="06.std_ratio",
    answer=lambda: _ratio(1),
    mistakes=(
        Mistake("that is the ratio of the variances; the question asks for the standard deviations (its square root)",
                lambda: _ratio(1) ** 2),
        Mistake("that is the ratio at math step 3: the math's step t = 2 is the code's index 1", lambda: _ratio(2)),
        Mistake("upside down: beta_t is the larger of the two, so the ratio is above 1", lambda: 1 / _ratio(1)),
    ),
    rtol=1e-3,
))

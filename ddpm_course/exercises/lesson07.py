"""Lesson 07 (fast samplers): one DDIM step, one DPM-Solver++(2M) update, and one number.

| exercise          | the learner writes                                                     | reference        |
|-------------------|------------------------------------------------------------------------|------------------|
| ``07.ddim_step``  | ``my_ddim_step(x_t, t, t_prev, eps, eta, z, schedule) -> x_{t_prev}``  | ``ddim_step``    |
| ``07.dpm2m_step`` | ``my_dpm2m_step(x_t, t, t_prev, eps, t_last, x0_last, schedule)``      | ``dpm_solver_step`` |
| ``07.shrink``     | s / sqrt(s^2 + sigma_t^2) for s = 0.05 at the code's t = 50            | ``alpha_bars``   |

Steps are the code's, 0-based ints; ``t_prev = -1`` means the data (alpha-bar 1). The
package's step functions are called only through the two small adapters below
(``samplers.ddim_step`` and ``samplers.dpm_solver_step`` with ``history``), so a change of their
keyword arguments is fixed in one place. The hidden cases (``ddpm-course grade --hidden``) use
another linear schedule (T = 500), other steps, etas and shapes.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import samplers
from ..schedules import Schedule, linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register

SCHEDULE = linear_schedule(1000)
HIDDEN_SCHEDULE = linear_schedule(500, 2e-4, 0.03)


def _ddim_reference(x_t, t, t_prev, eps, eta, z, schedule) -> Tensor:
    return samplers.ddim_step(schedule, x_t, t, eps, z, t_prev=t_prev, eta=eta).x_prev


def _dpm_reference(x_t, t, t_prev, eps, t_last, x0_last, schedule) -> Tensor:
    return samplers.dpm_solver_step(schedule, x_t, t, eps, t_prev=t_prev, history=((t_last, x0_last),)).x_prev


def _abar(s: Schedule, t: int) -> float:
    return 1.0 if t < 0 else s.alpha_bars[t].item()


def _ddim_with(x_t, t, t_prev, eps, eta, z, s, s_power=2, eps_reduced=True, sign=-1.0, sqrt_prev=True, abar_t=None):
    a = _abar(s, t) if abar_t is None else abar_t
    ap = _abar(s, t_prev)
    x0 = (x_t + sign * math.sqrt(1 - a) * eps) / math.sqrt(a)
    s2 = eta**s_power * (1 - ap) / (1 - a) * (1 - a / ap)
    keep = max(1 - ap - s2, 0.0) if eps_reduced else 1 - ap
    return (math.sqrt(ap) if sqrt_prev else ap) * x0 + math.sqrt(keep) * eps + math.sqrt(s2) * z


DDIM_STEPS = ((600, 550, 0.0, (6, 2)), (999, 949, 1.0, (3, 1, 4, 4)), (40, -1, 0.0, (4, 2)),
              (300, 100, 0.5, (5, 2)), (1, 0, 1.0, (4, 2)))
HIDDEN_DDIM_STEPS = ((499, 449, 0.0, (3, 5)), (250, 200, 1.0, (2, 2, 3, 3)), (30, -1, 0.3, (4, 1)),
                     (2, 0, 0.7, (5, 3)), (120, 60, 0.5, (1, 4)), (0, -1, 1.0, (3, 2)))


def _ddim_cases(generator: torch.Generator, steps=DDIM_STEPS, schedule: Schedule = SCHEDULE) -> list[Case]:
    cases = []
    where = "" if schedule is SCHEDULE else f", T = {schedule.T}"
    for t, t_prev, eta, shape in steps:
        x_t, eps, z = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))
        cases.append(Case((x_t, t, t_prev, eps, eta, z, schedule), {},
                          f"t = {t}, t_prev = {t_prev}, eta = {eta}{where}"))
    return cases


register(FunctionExercise(
    name="07.ddim_step",
    reference=_ddim_reference,
    cases=_ddim_cases,
    hidden_cases=lambda g: _ddim_cases(g, HIDDEN_DDIM_STEPS, HIDDEN_SCHEDULE),
    mistakes=(
        Mistake("eta scales the standard deviation s: s^2 = eta^2 * ..., so the variance grows with eta squared",
                lambda *a: _ddim_with(*a, s_power=1)),
        Mistake("the eps term keeps only what the fresh noise leaves: sqrt(1 - alpha_bar_prev - s^2), or the "
                "variance of x_prev is too large when eta > 0", lambda *a: _ddim_with(*a, eps_reduced=False)),
        Mistake("wrong sign in x0_hat: the noise is removed, "
                "x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)",
                lambda *a: _ddim_with(*a, sign=1.0)),
        Mistake("x0_hat is scaled by sqrt(alpha_bar_prev), an amplitude, not by alpha_bar_prev",
                lambda *a: _ddim_with(*a, sqrt_prev=False)),
        Mistake("off by one step: t is 0-based, alpha_bars[t] is its own alpha-bar",
                lambda x, t, tp, e, eta, z, s: _ddim_with(x, t, tp, e, eta, z, s, abar_t=s.alpha_bars[t - 1].item())),
    ),
    rtol=1e-9,
    atol=1e-12,
))


def _dpm_with(x_t, t, t_prev, eps, t_last, x0_last, s, order=2, r_inverted=False, sign=1.0, half=True, log_snr=False):
    def lam(k):
        a = _abar(s, k)
        return (1.0 if log_snr else 0.5) * (math.log(a) - math.log1p(-a))

    a, ap = _abar(s, t), _abar(s, t_prev)
    x0 = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    h = lam(t_prev) - lam(t)
    r = (lam(t) - lam(t_last)) / h
    if r_inverted:
        r = 1 / r
    d = x0 if order == 1 else x0 + sign * (x0 - x0_last) / ((2 if half else 1) * r)
    return math.sqrt((1 - ap) / (1 - a)) * x_t - math.sqrt(ap) * math.expm1(-h) * d


DPM_STEPS = ((650, 600, 550, (6, 2)), (999, 949, 899, (3, 1, 4, 4)), (50, 20, 5, (4, 2)),
             (30, 10, 0, (5, 2)), (400, 300, 100, (4, 2)))
HIDDEN_DPM_STEPS = ((499, 449, 399, (3, 5)), (300, 240, 100, (2, 2, 3, 3)), (12, 6, 0, (4, 1)),
                    (100, 50, 49, (1, 4)), (80, 79, 20, (5, 3)))


def _dpm_cases(generator: torch.Generator, steps=DPM_STEPS, schedule: Schedule = SCHEDULE) -> list[Case]:
    cases = []
    where = "" if schedule is SCHEDULE else f", T = {schedule.T}"
    for t_last, t, t_prev, shape in steps:
        x_t, eps, x0_last = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))
        cases.append(Case((x_t, t, t_prev, eps, t_last, x0_last, schedule), {},
                          f"t_last = {t_last}, t = {t}, t_prev = {t_prev}{where}"))
    return cases


register(FunctionExercise(
    name="07.dpm2m_step",
    reference=_dpm_reference,
    cases=_dpm_cases,
    hidden_cases=lambda g: _dpm_cases(g, HIDDEN_DPM_STEPS, HIDDEN_SCHEDULE),
    mistakes=(
        Mistake("that is the first-order update (DDIM): 2M also uses the previous x0_hat, "
                "D = x0_hat + (x0_hat - x0_last) / (2r)", lambda *a: _dpm_with(*a, order=1)),
        Mistake("r is the previous step's length over this one's: r = (lambda_t - lambda_last) / h",
                lambda *a: _dpm_with(*a, r_inverted=True)),
        Mistake("the correction extrapolates forward: + (x0_hat - x0_last) / (2r), from the older value to the newer",
                lambda *a: _dpm_with(*a, sign=-1.0)),
        Mistake("the correction has a factor 1/2: D = x0_hat + (x0_hat - x0_last) / (2r)",
                lambda *a: _dpm_with(*a, half=False)),
        Mistake("lambda is half the log-SNR, log(sqrt(alpha_bar) / sqrt(1 - alpha_bar)), not the whole",
                lambda *a: _dpm_with(*a, log_snr=True)),
    ),
    rtol=1e-9,
    atol=1e-12,
))


def _shrink(code_t: int, sigma=lambda a: math.sqrt((1 - a) / a), s: float = 0.05) -> float:
    a = SCHEDULE.alpha_bars[code_t].item()
    return s / math.sqrt(s**2 + sigma(a) ** 2)


register(NumberExercise(
    name="07.shrink",
    answer=lambda: _shrink(50),
    mistakes=(
        Mistake("the lesson's t = 50 is already the code's 0-based step: use alpha_bars[50]", lambda: _shrink(49)),
        Mistake("sigma_t here is the noise level of z = x_t / sqrt(alpha_bar_t): sqrt((1 - alpha_bar) / alpha_bar), "
                "not sqrt(1 - alpha_bar)", lambda: _shrink(50, sigma=lambda a: math.sqrt(1 - a))),
        Mistake("sigma_t is a standard deviation: it enters squared, s / sqrt(s^2 + sigma_t^2)",
                lambda: _shrink(50, sigma=lambda a: ((1 - a) / a) ** 0.25)),
    ),
    rtol=1e-3,
))

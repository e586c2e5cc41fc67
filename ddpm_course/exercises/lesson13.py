"""Lesson 13 (few steps): a Heun step with Karras sigmas, a consistency target, one number.

| exercise                  | the learner writes                                     | reference                      |
|---------------------------|--------------------------------------------------------|--------------------------------|
| ``13.heun_step``          | ``my_heun_step(z, sigma, sigma_next, denoise)``        | EDM's Algorithm 1              |
| ``13.consistency_target`` | ``my_consistency_target(teacher, student_ema,``        | ``distill.consistency_target`` |
|                           | ``schedule, x_t, t, t_next)``                          |                                |
| ``13.multistep_evals``    | evaluations of a third-order multistep solver, 10 steps | ``samplers.multistep_orders`` |

``13.heun_step`` works in EDM's variable z = x0 + sigma n, with ``denoise(z, sigma) -> D`` the
clean-data estimate, so that dz/dsigma = (z - D) / sigma; the cases step between Karras sigmas
(``samplers.karras_sigmas``), the last one to sigma = 0. tests/test_exercises_13.py checks
that this reference equals ``samplers.heun_step`` on the VP variable x = z / sqrt(1 + sigma^2).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import distill, samplers
from ..schedules import linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register

SCHEDULE = linear_schedule(1000)


# ----------------------------------------------------------------------------------------------
# 13.heun_step: d = (z - D(z, s)) / s; z_e = z + (s' - s) d; d' = (z_e - D(z_e, s')) / s'; z + (s' - s)(d + d') / 2


def heun_step(z: Tensor, sigma: float, sigma_next: float, denoise) -> Tensor:
    """One Heun step of dz/dsigma = (z - D(z, sigma)) / sigma from sigma to sigma_next (Euler when sigma_next = 0)."""
    d = (z - denoise(z, sigma)) / sigma
    z_euler = z + (sigma_next - sigma) * d
    if sigma_next == 0:
        return z_euler
    d_next = (z_euler - denoise(z_euler, sigma_next)) / sigma_next
    return z + (sigma_next - sigma) * 0.5 * (d + d_next)


def _gaussian_denoiser(m: Tensor, s: float):
    """The exact D for data N(m, s^2 I): m + s^2 / (s^2 + sigma^2) (z - m)."""
    return lambda z, sigma: m + s**2 / (s**2 + sigma**2) * (z - m)


def _heun_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    levels, shape, s = (9, (3, 5), 0.6) if hidden else (6, (4, 2), 0.3)
    sig = samplers.karras_sigmas(SCHEDULE, levels).tolist()  # 156.4 ... 0.01
    pairs = [(sig[0], sig[1]), (sig[2], sig[3]), (sig[4], sig[5]), (sig[5], 0.0), (2.0, 1.0)]
    if hidden:
        pairs = [(sig[1], sig[2]), (sig[3], sig[4]), (sig[6], sig[7]), (sig[8], 0.0), (0.5, 0.2)]
    cases = []
    for a, b in pairs:
        m = torch.randn(1, shape[1], generator=generator, dtype=torch.float64)
        z = m + a * torch.randn(shape, generator=generator, dtype=torch.float64)
        cases.append(Case((z, a, b, _gaussian_denoiser(m, s)), {}, f"sigma {a:.4g} -> {b:.4g}, shape {shape}"))
    return cases


def _euler_only(z, s, sn, denoise):
    return z + (sn - s) * (z - denoise(z, s)) / s


def _corrector_only(z, s, sn, denoise):
    if sn == 0:
        return _euler_only(z, s, sn, denoise)
    z_e = _euler_only(z, s, sn, denoise)
    return z + (sn - s) * (z_e - denoise(z_e, sn)) / sn


def _corrector_at_sigma(z, s, sn, denoise):
    if sn == 0:
        return _euler_only(z, s, sn, denoise)
    z_e = _euler_only(z, s, sn, denoise)
    return z + (sn - s) * 0.5 * ((z - denoise(z, s)) / s + (z_e - denoise(z_e, s)) / s)


register(FunctionExercise(
    name="13.heun_step",
    reference=heun_step,
    cases=_heun_cases,
    hidden_cases=lambda g: _heun_cases(g, hidden=True),
    mistakes=(
        Mistake("this is Euler's step: evaluate the slope again at the predicted point z_e (at sigma_next) and "
                "step with the average of the two slopes", _euler_only),
        Mistake("average the two slopes, (d + d_next) / 2: the second slope alone is the backward Euler guess",
                _corrector_only),
        Mistake("the second slope is taken at the new noise level: d_next = (z_e - D(z_e, sigma_next)) / "
                "sigma_next", _corrector_at_sigma),
        Mistake("the step h = sigma_next - sigma is negative (the noise shrinks): z + h d",
                lambda z, s, sn, d: heun_step(z, sn, s, d) if sn > 0 else z - (sn - s) * (z - d(z, s)) / s),
    ),
))

# ----------------------------------------------------------------------------------------------
# 13.consistency_target: one teacher DDIM step t -> t_next, then the EMA student's jump to the data


def _linear_student(x: Tensor, t: Tensor) -> Tensor:
    """A stand-in EMA student: some smooth map, deliberately not the teacher's ODE end."""
    abar = SCHEDULE.alpha_bars[t].reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return 0.8 * x / abar.sqrt() * abar + 0.1


def _gaussian_teacher(x: Tensor, t: Tensor) -> Tensor:
    """The exact eps for data N(0.4, 0.2^2 I)."""
    abar = SCHEDULE.alpha_bars[t].reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return (1 - abar).sqrt() * (x - abar.sqrt() * 0.4) / (abar * 0.04 + 1 - abar)


def _target_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    steps = ((999, 899, (4, 2)), (500, 450, (3, 1, 4, 4)), (100, 50, (5, 2)), (60, -1, (2, 3)))
    if hidden:
        steps = ((980, 960, (2, 6)), (700, 500, (1, 2, 3, 3)), (301, 300, (6, 1)), (20, 0, (3, 2)), (0, -1, (2, 2)))
    cases = []
    for t, t_next, shape in steps:
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        cases.append(Case((_gaussian_teacher, _linear_student, SCHEDULE, x, t, t_next), {}, f"t = {t} -> {t_next}"))
    return cases


def _ddim_next(teacher, schedule, x, t, t_next, shift=0):
    tb = torch.full((x.shape[0],), t, dtype=torch.long)
    eps = teacher(x, tb)
    a = schedule.alpha_bars[t - shift].item()
    a_next = 1.0 if t_next < 0 else schedule.alpha_bars[t_next - shift].item()
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    return math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * eps, x0


def _no_student(teacher, student, schedule, x, t, t_next):
    return _ddim_next(teacher, schedule, x, t, t_next)[0]


def _student_at_t(teacher, student, schedule, x, t, t_next):
    if t_next < 0:
        return _ddim_next(teacher, schedule, x, t, t_next)[0]
    return student(x, torch.full((x.shape[0],), t, dtype=torch.long))


def _teacher_x0(teacher, student, schedule, x, t, t_next):
    return _ddim_next(teacher, schedule, x, t, t_next)[1]


def _student_at_wrong_time(teacher, student, schedule, x, t, t_next):
    x_next = _ddim_next(teacher, schedule, x, t, t_next)[0]
    if t_next < 0:
        return x_next
    return student(x_next, torch.full((x.shape[0],), t, dtype=torch.long))


def _one_based(teacher, student, schedule, x, t, t_next):
    x_next = _ddim_next(teacher, schedule, x, t, t_next, shift=1)[0]
    if t_next < 0:
        return x_next
    return student(x_next, torch.full((x.shape[0],), t_next, dtype=torch.long))


register(FunctionExercise(
    name="13.consistency_target",
    reference=distill.consistency_target,
    cases=_target_cases,
    hidden_cases=lambda g: _target_cases(g, hidden=True),
    mistakes=(
        Mistake("this is the teacher's state at t_next; the target is where the EMA student jumps from it: "
                "student_ema(x_next, t_next)", _no_student),
        Mistake("the student's own output at (x_t, t) is what is being trained; the target comes from one teacher "
                "step first, then the EMA student at (x_next, t_next)", _student_at_t),
        Mistake("the teacher's x0_hat at t is a one-step guess of the data, far from the ODE's end at high noise; "
                "take one small teacher step to t_next and let the EMA student jump from there", _teacher_x0),
        Mistake("call the EMA student at the new time t_next, where x_next lives", _student_at_wrong_time),
        Mistake("t is already the code's 0-based step: use alpha_bars[t] and alpha_bars[t_next]", _one_based),
    ),
))

# ----------------------------------------------------------------------------------------------
# 13.multistep_evals: one evaluation per step, whatever the order


register(NumberExercise(
    name="13.multistep_evals",
    answer=lambda: float(len(samplers.multistep_orders(10, 3))),
    mistakes=(
        Mistake("that is a single-step third-order method (Runge-Kutta), three evaluations per step; a multistep "
                "method reuses its last two evaluations and spends one per step", lambda: 30.0),
        Mistake("the warm-up costs no extra evaluations: the first two steps are simply of lower order",
                lambda: 12.0),
        Mistake("that is Heun's count, 2 n - 1: a second evaluation per step but the last", lambda: 19.0),
        Mistake("the first step is not free: it evaluates the network at x_T (first order)", lambda: 9.0),
    ),
    rtol=1e-9,
))

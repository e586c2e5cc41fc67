"""Lesson 12 (score and flow): read a noise prediction as a score and as a velocity, step the flow ODE, one number.

| exercise                | the learner writes                          | reference                                   |
|-------------------------|---------------------------------------------|---------------------------------------------|
| ``12.eps_to_score``     | ``my_eps_to_score(eps, t, schedule)``       | ``parametrization.from_eps("score", ...)``  |
| ``12.eps_to_velocity``  | ``my_eps_to_velocity(x_t, eps, t)``         | ``from_eps("velocity", ...)``, straight path |
| ``12.euler_step``       | ``my_euler_step(x, t, t_next, u)``          | ``flow.euler_step``                         |
| ``12.flow_time``        | the flow time with the SNR of step 500      | ``flow.flow_time``                          |

In ``12.eps_to_score`` the steps are the code's 0-based DDPM steps (``schedule.alpha_bars[t]``);
in the flow exercises t is the straight path's time in [0, 1] (0 = data, 1 = noise). The hidden
cases (``ddpm-course grade --hidden``) use a cosine schedule, other times, steps and shapes.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import flow
from ..parametrization import from_eps, linear, vp
from ..schedules import Schedule, cosine_schedule, linear_schedule
from . import Case, FunctionExercise, Mistake, NumberExercise, register

SCHEDULE = linear_schedule(1000)
HIDDEN_SCHEDULE = cosine_schedule(400)


def _col(values: Tensor, x: Tensor) -> Tensor:
    """values (B,) -> (B, 1, ..., 1), to broadcast over x (B, ...)."""
    return values.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


# ----------------------------------------------------------------------------------------------
# 12.eps_to_score: score = -eps / sqrt(1 - abar_t)


def _eps_to_score(eps: Tensor, t: Tensor, schedule: Schedule) -> Tensor:
    abar = _col(schedule.alpha_bars[t], eps)
    return from_eps("score", eps, torch.zeros_like(eps), *vp(abar))  # the score reading needs no x_t


def _score_with(eps: Tensor, t: Tensor, schedule: Schedule, scale) -> Tensor:
    return scale(_col(schedule.alpha_bars[t], eps)) * eps


def _score_cases(generator: torch.Generator, schedule: Schedule = SCHEDULE) -> list[Case]:
    cases = []
    T = schedule.T
    if schedule is SCHEDULE:
        specs = ((torch.tensor([0, 1, 500, 998, 999]), (5, 2)),
                 (torch.randint(0, 1000, (4,), generator=generator), (4, 1, 4, 4)),
                 (torch.tensor([250, 750, 20]), (3, 3)))
    else:
        specs = ((torch.tensor([T - 1, 0, 2, T // 2]), (4, 3)),
                 (torch.randint(0, T, (6,), generator=generator), (6, 2, 2, 3)),
                 (torch.tensor([1]), (1, 5)))
    where = "" if schedule is SCHEDULE else f" ({schedule.name} schedule, T = {T})"
    for t, shape in specs:
        eps = torch.randn(shape, generator=generator, dtype=torch.float64)
        cases.append(Case((eps, t, schedule), {}, f"t = {t.tolist()}, shape {shape}{where}"))
    return cases


register(FunctionExercise(
    name="12.eps_to_score",
    reference=_eps_to_score,
    cases=_score_cases,
    hidden_cases=lambda g: _score_cases(g, HIDDEN_SCHEDULE),
    mistakes=(
        Mistake("the sign: the noise points away from the data and the score towards it, "
                "score = -eps / sqrt(1 - abar_t)",
                lambda e, t, s: _score_with(e, t, s, lambda a: 1 / (1 - a).sqrt())),
        Mistake("divide by the noise's standard deviation sqrt(1 - abar_t), not by its variance 1 - abar_t",
                lambda e, t, s: _score_with(e, t, s, lambda a: -1 / (1 - a))),
        Mistake("divide by sqrt(1 - abar_t), do not multiply: eps = -sqrt(1 - abar_t) score, "
                "so score = -eps / sqrt(1 - abar_t)",
                lambda e, t, s: _score_with(e, t, s, lambda a: -(1 - a).sqrt())),
        Mistake("use the noise scale sqrt(1 - abar_t), not the signal scale sqrt(abar_t)",
                lambda e, t, s: _score_with(e, t, s, lambda a: -1 / a.sqrt())),
        Mistake("t is already the code's 0-based step: use alpha_bars[t], not alpha_bars[t - 1]",
                lambda e, t, s: -e / _col(1 - s.alpha_bars[(t - 1).clamp(min=0)], e).sqrt()),
    ),
))

# ----------------------------------------------------------------------------------------------
# 12.eps_to_velocity: u = eps - x0 with x0 = (x_t - t eps) / (1 - t), i.e. (eps - x_t) / (1 - t)


def _eps_to_velocity(x_t: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    return from_eps("velocity", eps, x_t, *linear(_col(t, x_t)))


def _flow_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    cases = []
    times = ((torch.tensor([0.999, 0.001, 0.6, 0.4], dtype=torch.float64), (4, 3)),
             (torch.rand(5, generator=generator, dtype=torch.float64) * 0.98 + 0.01, (5, 2, 3, 3)),
             (torch.tensor([0.85, 0.15], dtype=torch.float64), (2, 1, 1, 6))) if hidden else \
        ((torch.tensor([0.01, 0.25, 0.5, 0.75, 0.99], dtype=torch.float64), (5, 2)),
         (torch.rand(4, generator=generator, dtype=torch.float64) * 0.9 + 0.05, (4, 1, 4, 4)),
         (torch.tensor([0.3], dtype=torch.float64), (1, 3)))
    for t, shape in times:
        x_t, eps = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(2))
        cases.append(Case((x_t, eps, t), {}, f"t = {[round(v, 3) for v in t.tolist()]}, shape {shape}"))
    return cases


register(FunctionExercise(
    name="12.eps_to_velocity",
    reference=_eps_to_velocity,
    cases=_flow_cases,
    hidden_cases=lambda g: _flow_cases(g, hidden=True),
    mistakes=(
        Mistake("the sign: the velocity points from data to noise, u = eps - x0, not x0 - eps",
                lambda x, e, t: -_eps_to_velocity(x, e, t)),
        Mistake("x0 = (x_t - t eps) / (1 - t): the division by 1 - t is missing",
                lambda x, e, t: e - (x - _col(t, x) * e)),
        Mistake("on the straight path the noise enters with weight t, not sqrt(1 - abar) or sqrt(t): "
                "x0 = (x_t - t eps) / (1 - t)",
                lambda x, e, t: e - (x - _col(t, x).sqrt() * e) / (1 - _col(t, x).sqrt())),
        Mistake("this is x0, the data estimate; the velocity is eps - x0",
                lambda x, e, t: (x - _col(t, x) * e) / (1 - _col(t, x))),
    ),
))

# ----------------------------------------------------------------------------------------------
# 12.euler_step: x + (t_next - t) u


EULER_STEPS = ((1.0, 0.9, (4, 2)), (0.5, 0.25, (3, 1, 4, 4)), (0.1, 0.0, (5, 2)), (0.73, 0.7, (2, 3)))
HIDDEN_EULER_STEPS = ((0.8, 0.6, (3, 5)), (1.0, 0.98, (2, 2, 3, 3)), (0.3, 0.05, (6, 1)), (0.05, 0.0, (1, 4)),
                      (0.62, 0.41, (4, 2)))


def _euler_cases(generator: torch.Generator, steps=EULER_STEPS) -> list[Case]:
    cases = []
    for t, t_next, shape in steps:
        x, u = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(2))
        cases.append(Case((x, t, t_next, u), {}, f"t = {t} -> {t_next}, shape {shape}"))
    return cases


register(FunctionExercise(
    name="12.euler_step",
    reference=flow.euler_step,
    cases=_euler_cases,
    hidden_cases=lambda g: _euler_cases(g, HIDDEN_EULER_STEPS),
    mistakes=(
        Mistake("the direction: time runs from 1 down to 0, so the step h = t_next - t is negative and x moves "
                "by h u (against the velocity)", lambda x, t, tn, u: x + (t - tn) * u),
        Mistake("the step is the time difference t_next - t, not t_next", lambda x, t, tn, u: x + tn * u),
        Mistake("scale the velocity by the step h = t_next - t", lambda x, t, tn, u: x - u),
    ),
))

# ----------------------------------------------------------------------------------------------
# 12.flow_time: sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar)) at the code's step 500


def _flow_time(step: int, root=math.sqrt) -> float:
    abar = SCHEDULE.alpha_bars[step].item()
    return root(1 - abar) / (root(abar) + root(1 - abar))


register(NumberExercise(
    name="12.flow_time",
    answer=lambda: flow.flow_time(SCHEDULE.alpha_bars[500].item()),
    mistakes=(
        Mistake("the times of the two paths are not proportional: t / T = 0.5 ignores the schedule; match the "
                "signal-to-noise ratio, ((1 - t) / t)^2 = abar / (1 - abar)", lambda: 0.5),
        Mistake("match the scales, not the variances: (1 - t) / t = sqrt(abar) / sqrt(1 - abar), so "
                "t = sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar))", lambda: _flow_time(500, root=lambda v: v)),
        Mistake("500 is already the code's 0-based step: use alpha_bars[500]", lambda: _flow_time(499)),
        Mistake("this is 1 - t, the signal's weight; t is the noise's", lambda: 1 - _flow_time(500)),
    ),
    rtol=1e-4,
))

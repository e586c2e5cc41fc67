"""Lesson 12 (score and flow): read a noise prediction as a score and as a velocity, the flow-matching loss, one number.

| exercise                | the learner writes                          | reference                                   |
|-------------------------|---------------------------------------------|---------------------------------------------|
| ``12.eps_to_score``     | ``my_eps_to_score(eps, t, schedule)``       | ``parametrization.from_eps("score", ...)``  |
| ``12.eps_to_velocity``  | ``my_eps_to_velocity(x_t, eps, t)``         | ``from_eps("velocity", ...)``, straight path |
| ``12.flow_matching_loss`` | ``my_flow_matching_loss(model, x0, t, noise)`` | ``flow.flow_matching_loss``            |
| ``12.flow_time``        | the flow time with the SNR of step 500      | ``flow.flow_time``                          |

In ``12.eps_to_score`` the steps are the code's 0-based DDPM steps (``schedule.alpha_bars[t]``);
in the flow exercises t is the straight path's time in [0, 1] (0 = data, 1 = noise). The hidden
cases (``ddpm-course grade --hidden``) use a cosine schedule, other times, steps and shapes.

Float32 answers. ``12.eps_to_score`` compares at rtol 1e-5, which a float32 computation cannot
reach near t = 0: there 1 - abar_t = 1e-4 is the difference of two numbers near 1, and float32
keeps about 7 significant digits of each, so 1 - abar_t (and the score) keeps only about 3 or 4.
A float32 answer that agrees to that precision (rtol 2e-3) is accepted, and the message says why
its last digits differ. The other exercises compare at float32's precision already.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import flow
from ..parametrization import from_eps, linear, vp
from ..schedules import Schedule, cosine_schedule, linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, Verdict, register

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


@dataclass(frozen=True)
class _Float32Aware(FunctionExercise):
    """Accepts a float32 answer that agrees with the float64 reference to float32's precision,
    ``float32_rtol``, and says why its last digits differ."""

    float32_rtol: float = 2e-3
    float32_note: str = ""

    def verdict(self, answer):
        result = super().verdict(answer)
        if result.status != "wrong" or not callable(answer):
            return result
        cases = list(self.cases(torch.Generator().manual_seed(self.seed)))
        try:
            got = [answer(*c.args, **c.kwargs) for c in cases]
        except Exception:  # the first pass already reported how the answer fails
            return result
        if not all(isinstance(g, Tensor) and g.dtype == torch.float32 for g in got):
            return result
        expected = [self.reference(*c.args, **c.kwargs) for c in cases]
        if all(g.shape == e.shape and torch.allclose(g.double(), e.double(), rtol=self.float32_rtol, atol=1e-6)
               for g, e in zip(got, expected)):
            worst = max(((g.double() - e.double()).abs() / e.double().abs().clamp(min=1e-12)).max().item()
                        for g, e in zip(got, expected))
            return Verdict(self.name, "correct", f"correct in float32 (largest relative difference {worst:.1e}): "
                           f"{self.float32_note}")
        return result


_FLOAT32_NOTE = ("near t = 0, 1 - abar_t = 1e-4 is the difference of two numbers near 1 and float32 keeps about 7 "
                 "digits of each, so the score keeps only 3 or 4 there; in float64 (the schedule's dtype) all stay")

register(_Float32Aware(
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
    float32_note=_FLOAT32_NOTE,
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
# 12.flow_matching_loss: mean |eps - x0 - u_theta((1 - t) x0 + t eps, 999 t)|^2


def _fm_loss(model, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    return flow.flow_matching_loss(model, x0, t=t, noise=noise)


def _fm_with(model, x0, t, noise, *, path="straight", target="velocity", scale=flow.TIME_SCALE, reduce="mean"):
    tc = _col(t, x0)
    x_t = (1 - tc) * x0 + tc * noise if path == "straight" else tc * x0 + (1 - tc) * noise
    goal = {"velocity": noise - x0, "reversed": x0 - noise, "noise": noise}[target]
    err = (goal - model(x_t, t.to(x0.dtype) * scale)).pow(2)
    return err.mean() if reduce == "mean" else err.sum()


class _TimeLinear(torch.nn.Module):
    """u(x, s) = a x + b s / 999 with fixed a, b: a model whose answer depends on the time it is fed."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        return self.a * x + self.b * _col(s, x) / 999.0


def _fm_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    from ..models import MLPConfig, MLPDenoiser

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
        mlp = MLPDenoiser(MLPConfig(dim=2, hidden=24 if hidden else 32, depth=3 if hidden else 2)).double().eval()
    visible = ((mlp, (64, 2), "a small MLP on 64 points"),
               (_TimeLinear(0.3, 2.0), (5, 1, 4, 4), "u = 0.3 x + 2 t on 5 images"),
               (_TimeLinear(-0.5, 1.0), (3, 3), "u = -0.5 x + t on 3 points"))
    others = ((mlp, (17, 2), "a deeper MLP on 17 points"),
              (_TimeLinear(1.5, -0.7), (2, 3, 2, 5), "u = 1.5 x - 0.7 t on 2 images of 3 channels"),
              (_TimeLinear(0.1, 4.0), (1, 6), "u = 0.1 x + 4 t on 1 point of 6 coordinates"))
    cases = []
    for model, shape, label in others if hidden else visible:
        x0, noise = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(2))
        t = torch.rand(shape[0], generator=generator, dtype=torch.float64)
        cases.append(Case((model, x0, t, noise), {}, label))
    x0, noise = (torch.randn(2, 2, generator=generator, dtype=torch.float64) for _ in range(2))
    cases.append(Case((_TimeLinear(0.7, -1.0), x0, torch.tensor([0.0, 1.0], dtype=torch.float64), noise), {},
                      "t = 0 and t = 1: the data and pure noise"))
    return cases


register(FunctionExercise(
    name="12.flow_matching_loss",
    reference=_fm_loss,
    cases=_fm_cases,
    hidden_cases=lambda g: _fm_cases(g, hidden=True),
    mistakes=(
        Mistake("the path runs from data at t = 0 to noise at t = 1: x_t = (1 - t) x0 + t eps, not t x0 + (1 - t) eps",
                lambda m, x, t, e: _fm_with(m, x, t, e, path="reversed")),
        Mistake("the target is the path's velocity dx_t/dt = eps - x0, not x0 - eps",
                lambda m, x, t, e: _fm_with(m, x, t, e, target="reversed")),
        Mistake("the target is the velocity eps - x0; eps alone is the noise-prediction target",
                lambda m, x, t, e: _fm_with(m, x, t, e, target="noise")),
        Mistake("the course's networks embed steps 0..999: feed them t * flow.TIME_SCALE (999 t), not t",
                lambda m, x, t, e: _fm_with(m, x, t, e, scale=1.0)),
        Mistake("average the squared error over the batch and every coordinate (mean), not the sum",
                lambda m, x, t, e: _fm_with(m, x, t, e, reduce="sum")),
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

"""Lesson 03 (noise schedules): the cosine schedule's alpha-bar, the SNR, and two numbers.

| exercise                  | the learner writes                                        | reference                    |
|---------------------------|-----------------------------------------------------------|------------------------------|
| ``03.cosine_alpha_bar``   | ``my_cosine_alpha_bar(t, T, s) -> alpha_bar`` (B,)        | ``cosine_schedule(T, s)``    |
| ``03.snr``                | ``my_snr(t, schedule) -> SNR`` (B,)                       | ``schedule.snr``             |
| ``03.linear_snr_step``    | the first math step with SNR_t < 0.01 (linear, T = 1000)  | ``linear_schedule().snr``    |
| ``03.cosine_snr_500``     | SNR at math step 500 of the cosine schedule, exactly      | ``cosine_schedule().snr``    |

Code steps are 0-based (t in 0..T-1 is the math's step t+1). The cosine exercise leaves out the
last step t = T-1, whose beta the schedule clips at 0.999. The hidden cases (``ddpm-course grade
--hidden``) use other T and s, and other schedules for the SNR.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..schedules import Schedule, cosine_schedule, linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register


def _cosine_alpha_bar(t: Tensor, T: int, s: float) -> Tensor:
    return cosine_schedule(T, s).alpha_bars[t]


def _f(u: Tensor, s: float) -> Tensor:
    return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def _cosine_cases(generator: torch.Generator, settings=((1000, 0.008), (100, 0.008), (50, 0.1))) -> list[Case]:
    cases = []
    for T, s in settings:
        t = torch.cat([torch.tensor([0, T - 2]), torch.randint(1, T - 2, (4,), generator=generator)])
        cases.append(Case((t, T, s), {}, f"T = {T}, s = {s}, t = {t.tolist()}"))
    return cases


register(FunctionExercise(
    name="03.cosine_alpha_bar",
    reference=_cosine_alpha_bar,
    cases=_cosine_cases,
    hidden_cases=lambda g: _cosine_cases(g, ((400, 0.008), (25, 0.02), (1000, 0.05), (8, 0.008))),
    mistakes=(
        Mistake("off by one step: the code's t is the math's step t + 1, so u = (t + 1) / T "
                "(at t = 0 the answer is f(1/T)/f(0), just below 1, not exactly 1)",
                lambda t, T, s: _f(t.double() / T, s) / _f(torch.tensor(0.0, dtype=torch.float64), s)),
        Mistake("divide by f(0): without it alpha_bar does not start at 1 when s > 0",
                lambda t, T, s: _f((t.double() + 1) / T, s)),
        Mistake("f is cos squared: alpha_bar is a share of the variance, the square of the signal's amplitude",
                lambda t, T, s: torch.cos(((t.double() + 1) / T + s) / (1 + s) * math.pi / 2)
                / math.cos(s / (1 + s) * math.pi / 2)),
        Mistake("the offset s is missing: f(u) = cos^2(pi/2 * (u + s) / (1 + s))",
                lambda t, T, s: torch.cos((t.double() + 1) / T * math.pi / 2) ** 2),
    ),
    rtol=1e-7,
    atol=1e-12,
))


def _snr(t: Tensor, schedule: Schedule) -> Tensor:
    return schedule.snr[t]


def _snr_cases(generator: torch.Generator, schedules=None) -> list[Case]:
    cases = []
    schedules = (linear_schedule(1000), cosine_schedule(1000), linear_schedule(100, 1e-3, 0.2)) if schedules is None \
        else schedules
    for schedule in schedules:
        T = schedule.T
        t = torch.cat([torch.tensor([0, T - 1]), torch.randint(1, T - 1, (4,), generator=generator)])
        cases.append(Case((t, schedule), {}, f"{schedule.name} schedule with T = {T}, t = {t.tolist()}"))
    return cases


register(FunctionExercise(
    name="03.snr",
    reference=_snr,
    cases=_snr_cases,
    hidden_cases=lambda g: _snr_cases(g, (cosine_schedule(250), linear_schedule(500, 5e-4, 0.03),
                                          cosine_schedule(40, s=0.02))),
    mistakes=(
        Mistake("that is sqrt(SNR), a ratio of amplitudes; the SNR compares variances: alpha_bar / (1 - alpha_bar)",
                lambda t, s: (s.alpha_bars[t] / (1 - s.alpha_bars[t])).sqrt()),
        Mistake("upside down: the signal's variance alpha_bar goes on top",
                lambda t, s: (1 - s.alpha_bars[t]) / s.alpha_bars[t]),
        Mistake("off by one step: alpha_bars[t] is already the code step t's alpha-bar (t - 1 wraps at t = 0)",
                lambda t, s: s.alpha_bars[t - 1] / (1 - s.alpha_bars[t - 1])),
        Mistake("alphas[t] is one step's alpha; the SNR uses the product alpha_bars[t]",
                lambda t, s: s.alphas[t] / (1 - s.alphas[t])),
    ),
    rtol=1e-9,
    atol=0.0,
))


def _first_below(level: float) -> int:
    """The first code step with SNR below ``level``, under the linear schedule."""
    return int((linear_schedule(1000).snr < level).nonzero()[0].item())


register(NumberExercise(
    name="03.linear_snr_step",
    answer=lambda: _first_below(0.01) + 1,
    mistakes=(
        Mistake("that is the code's 0-based index; the question asks for the math step, one more",
                lambda: _first_below(0.01)),
        Mistake("that is where sqrt(SNR), not the SNR, falls below 0.01",
                lambda: int((linear_schedule(1000).snr.sqrt() < 0.01).nonzero()[0].item()) + 1),
    ),
    rtol=1e-4,
))


def _cot2(u: float, s: float = 0.008) -> float:
    return 1 / math.tan(math.pi / 2 * (u + s) / (1 + s)) ** 2


register(NumberExercise(
    name="03.cosine_snr_500",
    answer=lambda: cosine_schedule(1000).snr[499].item(),
    mistakes=(
        Mistake("that is the cot^2 approximation, which takes f(0) = 1; the schedule divides by f(0), so use "
                "alpha_bar / (1 - alpha_bar) with alpha_bar = f(u) / f(0)", lambda: _cot2(0.5)),
        Mistake("that is the SNR at math step 501: the math's step 500 is the code's index 499",
                lambda: cosine_schedule(1000).snr[500].item()),
        Mistake("that is sqrt(SNR); the SNR is alpha_bar / (1 - alpha_bar)",
                lambda: cosine_schedule(1000).snr[499].sqrt().item()),
    ),
    rtol=2e-5,
))

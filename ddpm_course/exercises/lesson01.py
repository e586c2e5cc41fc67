"""Lesson 01 (the fog): add noise at a level, undo it with the true noise, and one number.

| exercise            | the learner writes                                   | reference                      |
|---------------------|------------------------------------------------------|--------------------------------|
| ``01.add_noise``    | ``my_add_noise(x0, alpha_bar, noise) -> x_t``        | ``q_sample`` on a one-step schedule |
| ``01.recover_x0``   | ``my_recover_x0(x_t, alpha_bar, noise) -> x0``       | ``predict_x0`` on a one-step schedule |
| ``01.amplification``| the number 1/sqrt(SNR_t) at math step t = 500        | ``linear_schedule().snr``      |

``alpha_bar`` is the math's alpha-bar_t, a float strictly inside (0, 1): the share of the
variance that survives. A schedule with the single beta ``1 - alpha_bar`` has exactly that
alpha-bar at its only step, so the package's ``q_sample``/``predict_x0`` are the references.
The hidden cases (``ddpm-course grade --hidden``) use other levels and other shapes.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..forward import predict_x0, q_sample
from ..schedules import Schedule, linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register

# Levels from the first to the last step of the linear schedule, and two in between.
LEVELS = (0.9999, 0.95, 0.5, 0.078, 4.04e-5)
SHAPES = ((2, 3, 4, 4), (5, 2))  # an image batch and a batch of 2-D points
# The hidden cases: levels of the cosine schedule's first, middle and late steps, and other shapes.
HIDDEN_LEVELS = (0.99997, 0.81, 0.3, 0.02, 1e-3, 0.6)
HIDDEN_SHAPES = ((3, 1, 5, 5), (7, 3), (1, 2, 2, 6))


def _one_step(alpha_bar: float) -> Schedule:
    return Schedule.from_betas(torch.tensor([1.0 - alpha_bar], dtype=torch.float64), name="one level")


def _add_noise(x0: Tensor, alpha_bar: float, noise: Tensor) -> Tensor:
    return q_sample(_one_step(alpha_bar), x0, 0, noise=noise)[0]


def _recover_x0(x_t: Tensor, alpha_bar: float, noise: Tensor) -> Tensor:
    return predict_x0(_one_step(alpha_bar), x_t, 0, noise)


def _cases(generator: torch.Generator, levels=LEVELS, shapes=SHAPES) -> list[Case]:
    cases = []
    for i, level in enumerate(levels):
        shape = shapes[i % len(shapes)]
        x = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        cases.append(Case((x, level, noise), {}, f"alpha_bar = {level:g}, shape {shape}"))
    return cases


register(FunctionExercise(
    name="01.add_noise",
    reference=_add_noise,
    cases=_cases,
    hidden_cases=lambda g: _cases(g, HIDDEN_LEVELS, HIDDEN_SHAPES),
    mistakes=(
        Mistake("the square roots are missing: the image is scaled by sqrt(alpha_bar) and the noise by "
                "sqrt(1 - alpha_bar), so that their variances (the squares) add to one",
                lambda x, a, n: a * x + (1 - a) * n),
        Mistake("the noise is scaled by its variance 1 - alpha_bar; scale it by the standard deviation "
                "sqrt(1 - alpha_bar)", lambda x, a, n: math.sqrt(a) * x + (1 - a) * n),
        Mistake("signal and noise are swapped: alpha_bar is the share of the image that survives, so the "
                "image gets sqrt(alpha_bar)", lambda x, a, n: math.sqrt(1 - a) * x + math.sqrt(a) * n),
        Mistake("the image must shrink too: x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise, otherwise "
                "the variance grows instead of staying near one", lambda x, a, n: x + math.sqrt(1 - a) * n),
    ),
))

register(FunctionExercise(
    name="01.recover_x0",
    reference=_recover_x0,
    cases=_cases,
    hidden_cases=lambda g: _cases(g, HIDDEN_LEVELS, HIDDEN_SHAPES),
    mistakes=(
        Mistake("wrong sign: the noise was added, so subtract sqrt(1 - alpha_bar) * noise",
                lambda x, a, n: (x + math.sqrt(1 - a) * n) / math.sqrt(a)),
        Mistake("after removing the noise, divide by sqrt(alpha_bar) to undo the shrinking of the image",
                lambda x, a, n: x - math.sqrt(1 - a) * n),
        Mistake("the square roots are missing: the forward formula uses sqrt(alpha_bar) and sqrt(1 - alpha_bar)",
                lambda x, a, n: (x - (1 - a) * n) / a),
        Mistake("divide by sqrt(alpha_bar), not multiply", lambda x, a, n: (x - math.sqrt(1 - a) * n) * math.sqrt(a)),
    ),
))


def _amplification(code_t: int) -> float:
    return 1.0 / linear_schedule(1000).snr[code_t].sqrt().item()


register(NumberExercise(
    name="01.amplification",
    answer=lambda: _amplification(499),
    mistakes=(
        Mistake("that is the factor at math step 501: the math's step t is the code's t - 1, so use "
                "schedule.snr[499] (or alpha_bars[499])", lambda: _amplification(500)),
        Mistake("that is 1/SNR; the error in x0_hat grows by 1/sqrt(SNR) (a standard deviation, not a variance)",
                lambda: 1.0 / linear_schedule(1000).snr[499].item()),
        Mistake("that is sqrt(SNR); the factor is its inverse, sqrt((1 - alpha_bar) / alpha_bar)",
                lambda: linear_schedule(1000).snr[499].sqrt().item()),
    ),
    rtol=1e-3,
))

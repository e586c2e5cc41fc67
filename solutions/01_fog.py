"""Reference answers to lesson 01's exercises ("Your turn" in notebooks/01_fog.ipynb).

Try the exercises first: the checker tells you "correct" or gives a hint.
"""
from __future__ import annotations

import math

from torch import Tensor

import ddpm_course as dc


def add_noise(x0: Tensor, alpha_bar: float, noise: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise: signal and noise variances add to one."""
    return math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * noise


def recover_x0(x_t: Tensor, alpha_bar: float, noise: Tensor) -> Tensor:
    """Solve the line above for x0."""
    return (x_t - math.sqrt(1 - alpha_bar) * noise) / math.sqrt(alpha_bar)


def amplification() -> float:
    """1 / sqrt(SNR) at the math's step 500, the code's index 499."""
    schedule = dc.linear_schedule(1000)
    abar = schedule.alpha_bars[499].item()
    return math.sqrt((1 - abar) / abar)


ANSWERS = {"01.add_noise": add_noise, "01.recover_x0": recover_x0, "01.amplification": amplification()}

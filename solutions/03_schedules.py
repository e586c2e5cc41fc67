"""Reference answers to lesson 03's exercises ("Your turn" in notebooks/03_schedules.ipynb)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

import ddpm_course as dc


def cosine_alpha_bar(t: Tensor, T: int, s: float) -> Tensor:
    """alpha_bar at code step t = f((t + 1) / T) / f(0) with f(u) = cos^2(pi/2 (u + s) / (1 + s))."""
    def f(u):
        return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    return f((t.double() + 1) / T) / f(torch.tensor(0.0, dtype=torch.float64))


def snr(t: Tensor, schedule: dc.Schedule) -> Tensor:
    abar = schedule.alpha_bars[t]
    return abar / (1 - abar)


def linear_snr_step() -> int:
    """The first math step (1-based) with SNR < 0.01 under the linear schedule."""
    s = dc.linear_schedule(1000)
    code_t = int((s.alpha_bars / (1 - s.alpha_bars) < 0.01).nonzero()[0].item())
    return code_t + 1


def cosine_snr_500() -> float:
    """Exact SNR at the math's step 500 (u = 1/2): alpha_bar = f(1/2) / f(0)."""
    abar = cosine_alpha_bar(torch.tensor([499]), 1000, 0.008).item()
    return abar / (1 - abar)


ANSWERS = {
    "03.cosine_alpha_bar": cosine_alpha_bar, "03.snr": snr,
    "03.linear_snr_step": linear_snr_step(), "03.cosine_snr_500": cosine_snr_500(),
}

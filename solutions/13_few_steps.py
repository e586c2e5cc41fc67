"""Reference answers to lesson 13's exercises ("Your turn" in notebooks/13_few_steps.ipynb)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

import ddpm_course as dc


def heun_step(z: Tensor, sigma: float, sigma_next: float, denoise) -> Tensor:
    """EDM's Algorithm 1: Euler's predictor, then the average of the slopes at both ends (Euler to sigma = 0)."""
    d = (z - denoise(z, sigma)) / sigma  # dz/dsigma at the start
    z_euler = z + (sigma_next - sigma) * d
    if sigma_next == 0:
        return z_euler
    d_next = (z_euler - denoise(z_euler, sigma_next)) / sigma_next  # the slope where Euler lands
    return z + (sigma_next - sigma) * (d + d_next) / 2


def consistency_target(teacher, student_ema, schedule: dc.Schedule, x_t: Tensor, t: int, t_next: int) -> Tensor:
    """One DDIM step of the teacher from t to t_next, then the EMA student's clean image at (x_next, t_next)."""
    eps = teacher(x_t, torch.full((x_t.shape[0],), t, dtype=torch.long))
    abar = schedule.alpha_bars[t].item()
    abar_next = 1.0 if t_next < 0 else schedule.alpha_bars[t_next].item()
    x0_hat = (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    x_next = math.sqrt(abar_next) * x0_hat + math.sqrt(1 - abar_next) * eps
    if t_next < 0:
        return x_next
    return student_ema(x_next, torch.full((x_t.shape[0],), t_next, dtype=torch.long))


# A multistep method of order 3 reuses its two previous evaluations: one evaluation per step.
ANSWERS = {
    "13.heun_step": heun_step,
    "13.consistency_target": consistency_target,
    "13.multistep_evals": 10,
}

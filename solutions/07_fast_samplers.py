"""Reference answers to lesson 07's exercises ("Your turn" in notebooks/07_fast_samplers.ipynb)."""
from __future__ import annotations

import math

from torch import Tensor

import ddpm_course as dc


def _abar(schedule: dc.Schedule, t: int) -> float:
    return 1.0 if t < 0 else schedule.alpha_bars[t].item()  # t = -1 is the data


def ddim_step(x_t: Tensor, t: int, t_prev: int, eps: Tensor, eta: float, z: Tensor, schedule: dc.Schedule) -> Tensor:
    """x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps + s z, s = eta * sigma-tilde."""
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    x0_hat = (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    s2 = eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
    return math.sqrt(abar_prev) * x0_hat + math.sqrt(max(1 - abar_prev - s2, 0.0)) * eps + math.sqrt(s2) * z


def dpm2m_step(x_t: Tensor, t: int, t_prev: int, eps: Tensor, t_last: int, x0_last: Tensor,
               schedule: dc.Schedule) -> Tensor:
    """DPM-Solver++(2M): exact linear part, x0_hat extrapolated linearly in lambda = log(alpha / sigma)."""
    def lam(k):
        a = _abar(schedule, k)
        return 0.5 * (math.log(a) - math.log1p(-a))

    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    x0_hat = (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    h = lam(t_prev) - lam(t)
    r = (lam(t) - lam(t_last)) / h
    d = x0_hat + (x0_hat - x0_last) / (2 * r)
    return math.sqrt((1 - abar_prev) / (1 - abar)) * x_t - math.sqrt(abar_prev) * math.expm1(-h) * d


def shrink() -> float:
    """s / sqrt(s^2 + sigma_t^2) with s = 0.05 and sigma_t^2 = (1 - abar_t) / abar_t at the code's t = 50."""
    abar = dc.linear_schedule(1000).alpha_bars[50].item()
    return 0.05 / math.sqrt(0.05**2 + (1 - abar) / abar)


ANSWERS = {"07.ddim_step": ddim_step, "07.dpm2m_step": dpm2m_step, "07.shrink": shrink()}

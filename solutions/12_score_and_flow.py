"""Reference answers to lesson 12's exercises ("Your turn" in notebooks/12_score_and_flow.ipynb)."""
from __future__ import annotations

import math

from torch import Tensor

import ddpm_course as dc


def eps_to_score(eps: Tensor, t: Tensor, schedule: dc.Schedule) -> Tensor:
    """score = -eps / sqrt(1 - abar_t), with abar_t = schedule.alpha_bars[t] (0-based t, (B,))."""
    abar = schedule.alpha_bars[t].reshape(-1, *([1] * (eps.ndim - 1))).to(eps.dtype)  # (B, 1, ..., 1)
    return -eps / (1 - abar).sqrt()


def eps_to_velocity(x_t: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """On x_t = (1 - t) x0 + t eps: x0 = (x_t - t eps) / (1 - t) and u = eps - x0 = (eps - x_t) / (1 - t)."""
    t = t.reshape(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype)  # (B, 1, ..., 1)
    return (eps - x_t) / (1 - t)


def flow_matching_loss(model, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = (1 - t) x0 + t eps on the straight path; regress the network, fed 999 t, on eps - x0."""
    tc = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)  # (B, 1, ..., 1)
    x_t = (1 - tc) * x0 + tc * noise
    return ((noise - x0) - model(x_t, t.to(x0.dtype) * 999)).pow(2).mean()


def flow_time() -> float:
    """((1 - t) / t)^2 = abar / (1 - abar) at the code's step 500."""
    abar = dc.linear_schedule(1000).alpha_bars[500].item()
    return math.sqrt(1 - abar) / (math.sqrt(abar) + math.sqrt(1 - abar))


ANSWERS = {
    "12.eps_to_score": eps_to_score,
    "12.eps_to_velocity": eps_to_velocity,
    "12.flow_matching_loss": flow_matching_loss,
    "12.flow_time": flow_time(),
}

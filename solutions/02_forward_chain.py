"""Reference answers to lesson 02's exercises ("Your turn" in notebooks/02_forward_chain.ipynb)."""
from __future__ import annotations

import math

from torch import Tensor

import ddpm_course as dc


def walk(x0: Tensor, noises: Tensor, schedule: dc.Schedule) -> Tensor:
    """Apply the one-step chain for the code steps 0, 1, ..., K-1, with noises[k] at step k."""
    x = x0
    for k in range(noises.shape[0]):
        beta = schedule.betas[k].item()
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * noises[k]
    return x


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, schedule: dc.Schedule) -> Tensor:
    """The jump to code step t (B,), one step per sample, broadcast over the other dimensions."""
    abar = schedule.alpha_bars[t].reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)  # (B, 1, ..., 1)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def posterior_mean(x0: Tensor, x_t: Tensor, t: Tensor, schedule: dc.Schedule) -> Tensor:
    """mu-tilde = beta_t sqrt(abar_{t-1}) / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t."""
    shape = (-1, *([1] * (x0.ndim - 1)))
    abar, abar_prev = schedule.alpha_bars[t], schedule.alpha_bars_prev[t]  # alpha_bars_prev[0] == 1
    c0 = schedule.betas[t] * abar_prev.sqrt() / (1 - abar)
    ct = schedule.alphas[t].sqrt() * (1 - abar_prev) / (1 - abar)
    return c0.reshape(shape).to(x0.dtype) * x0 + ct.reshape(shape).to(x0.dtype) * x_t


def beta_tilde_10() -> float:
    """beta-tilde at the math's step 10: code index 9, alpha-bar_{t-1} is alpha_bars[8]."""
    s = dc.linear_schedule(1000)
    return (s.betas[9] * (1 - s.alpha_bars[8]) / (1 - s.alpha_bars[9])).item()


ANSWERS = {
    "02.walk": walk, "02.q_sample": q_sample, "02.posterior_mean": posterior_mean, "02.beta_tilde": beta_tilde_10(),
}

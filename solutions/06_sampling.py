"""Reference answers to lesson 06's exercises ("Your turn" in notebooks/06_sampling.ipynb)."""
from __future__ import annotations

import torch
from torch import Tensor

import ddpm_course as dc


def ddpm_step(x_t: Tensor, t: Tensor, eps: Tensor, z: Tensor, schedule: dc.Schedule) -> Tensor:
    """x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z, no noise at t = 0."""
    shape = (-1, *([1] * (x_t.ndim - 1)))
    beta, alpha, abar = (v[t].reshape(shape).to(x_t.dtype)
                         for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))  # (B, 1, ..., 1) each
    mean = (x_t - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()
    sigma = beta.sqrt() * (t > 0).reshape(shape)  # (B, 1, ..., 1), zero at the last step
    return mean + sigma * z


def ddpm_loop(model, x_T: Tensor, noises: Tensor, schedule: dc.Schedule) -> Tensor:
    """t = T-1, ..., 0; noises[k] is the k-th step's z (the last step needs none)."""
    x = x_T
    for k, t in enumerate(range(schedule.T - 1, -1, -1)):
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        z = noises[k] if t > 0 else torch.zeros_like(x)
        x = ddpm_step(x, tt, model(x, tt), z, schedule)
    return x


def std_ratio() -> float:
    """sqrt(beta_t / beta_tilde_t) at the math's step 2, the code's index 1."""
    s = dc.linear_schedule(1000)
    return (s.betas[1] / s.posterior_variance[1]).sqrt().item()


ANSWERS = {"06.ddpm_step": ddpm_step, "06.ddpm_loop": ddpm_loop, "06.std_ratio": std_ratio()}

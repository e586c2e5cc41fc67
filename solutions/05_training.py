"""Reference answers to lesson 05's exercises ("Your turn" in notebooks/05_training.ipynb)."""
from __future__ import annotations

from torch import Tensor

import ddpm_course as dc


def l_simple(model, x0: Tensor, t: Tensor, noise: Tensor, schedule: dc.Schedule) -> Tensor:
    """Noise x0 to x_t with the given t and noise, ask the model for the noise, mean squared error."""
    abar = schedule.alpha_bars[t].reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)  # (B, 1, ..., 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    return (noise - model(x_t, t)).pow(2).mean()


def elbo_weight(t: Tensor, schedule: dc.Schedule) -> Tensor:
    """lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)) with sigma_t^2 = beta-tilde_t (t >= 1)."""
    s = schedule
    return s.betas[t] ** 2 / (2 * s.posterior_variance[t] * s.alphas[t] * (1 - s.alpha_bars[t]))


def ema_start() -> float:
    """The first update copies the start; each of the 499 averaging updates keeps d of it."""
    return 0.995**499


ANSWERS = {"05.l_simple": l_simple, "05.elbo_weight": elbo_weight, "05.ema_start": ema_start()}

"""The forward (noising) process q of DDPM: one Markov step, the closed-form jump, the posterior.

Notation (Ho et al. 2020, eqs. 2, 4, 6-7), 0-based steps as in ``schedules.py``:

| math                                               | code                              |
|----------------------------------------------------|-----------------------------------|
| q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I) | ``q_step(schedule, x_prev, t)``  |
| q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)  | ``q_sample(schedule, x0, t)``     |
| q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I)   | ``q_posterior(schedule, x0, x_t, t)`` |
| eps ~ N(0, I)                                      | ``noise``                         |

``q_step(schedule, x, t)`` applies the code's step ``t`` (the math's step t+1), so applying it
for t = 0, 1, ..., k to data gives the same distribution as ``q_sample(schedule, x0, k)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._checks import batch_tensor, generator_or_none, same_shape
from .schedules import Schedule, broadcast, check_timesteps

__all__ = ["noise_like", "q_step", "q_sample", "q_posterior", "predict_x0"]


def noise_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard Gaussian noise with x's shape, dtype and device.

    Drawn on the CPU from ``generator`` and then moved, so a seed gives the same noise on
    every device. Half-precision noise (float16, bfloat16) is the float32 draw rounded;
    float64 noise is drawn in float64.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor whose shape the noise takes; got {type(x).__name__}")
    generator_or_none("generator", generator, cpu=True)
    draw = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    out = x.dtype if x.dtype.is_floating_point else torch.float32
    return torch.randn(x.shape, generator=generator, dtype=draw).to(device=x.device, dtype=out)


def _steps_and_noise(
    schedule: Schedule, x: Tensor, name: str, t: Tensor | int, noise: Tensor | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """What q_step and q_sample check: x (B, ...) finite, t as (B,) long steps, noise of x's shape (drawn if None)."""
    batch_tensor(name, x, finite=True)
    t = check_timesteps(schedule, t, batch=x.shape[0])
    noise = noise_like(x, generator) if noise is None else same_shape("noise", noise, x, name)
    return t, noise


def q_step(
    schedule: Schedule,
    x_prev: Tensor,
    t: Tensor | int,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One Markov step: x_t = sqrt(alpha_t) x_prev + sqrt(beta_t) eps.

    x_prev: (B, ...); t: (B,) 0-based steps or an int; returns x_t: (B, ...).
    """
    t, noise = _steps_and_noise(schedule, x_prev, "x_prev", t, noise, generator)
    return broadcast(schedule.alphas.sqrt(), t, x_prev) * x_prev + broadcast(schedule.betas.sqrt(), t, x_prev) * noise


def q_sample(
    schedule: Schedule,
    x0: Tensor,
    t: Tensor | int,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Jump straight to step t: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.

    x0: (B, ...); t: (B,) 0-based steps or an int. Returns ``(x_t, noise)``, both (B, ...):
    the noise is what a noise-predicting network is trained to recover.
    """
    t, noise = _steps_and_noise(schedule, x0, "x0", t, noise, generator)
    abar = broadcast(schedule.alpha_bars, t, x0)  # (B, 1, ..., 1)
    return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise, noise


def q_posterior(schedule: Schedule, x0: Tensor, x_t: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
    """The reverse step when x_0 is known: q(x_{t-1} | x_t, x_0) = N(mean, variance I).

    mean = beta_t sqrt(abar_{t-1}) / (1 - abar_t) x0 + (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t) x_t
    variance = beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)

    x0, x_t: (B, ...); t: (B,) or int. Returns mean (B, ...) and variance (B, 1, ..., 1).
    At t = 0 the "previous state" is the data itself: mean = x0 and variance = 0.
    """
    batch_tensor("x0", x0, finite=True)
    batch_tensor("x_t", x_t, finite=True)
    same_shape("x_t", x_t, x0, "x0")
    t = check_timesteps(schedule, t, batch=x0.shape[0])
    coef_x0 = broadcast(schedule.posterior_mean_coef_x0, t, x0)  # (B, 1, ..., 1)
    coef_xt = broadcast(schedule.posterior_mean_coef_xt, t, x_t)
    mean = coef_x0 * x0 + coef_xt * x_t
    return mean, broadcast(schedule.posterior_variance, t, x0)


def predict_x0(schedule: Schedule, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
    """Invert the jump for x_0 given a noise estimate: x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).

    x_t, eps: (B, ...); t: (B,) or int; returns x0_hat (B, ...).
    """
    batch_tensor("x_t", x_t)
    same_shape("eps", eps, x_t)
    t = check_timesteps(schedule, t, batch=x_t.shape[0])
    abar = broadcast(schedule.alpha_bars, t, x_t)
    return (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()

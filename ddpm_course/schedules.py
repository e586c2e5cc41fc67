"""Noise schedules: how much Gaussian noise the forward process adds at each step.

Notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"; cosine schedule from
Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models"):

| symbol            | code                   | meaning                                              |
|-------------------|------------------------|------------------------------------------------------|
| T                 | ``schedule.T``         | number of diffusion steps                            |
| beta_t            | ``betas[t]``           | variance of the noise added by step t                |
| alpha_t           | ``alphas[t]``          | 1 - beta_t, the signal kept by step t                |
| alpha_bar_t       | ``alpha_bars[t]``      | prod_{s<=t} alpha_s, the signal left after t steps   |
| beta_tilde_t      | ``posterior_variance`` | variance of q(x_{t-1} | x_t, x_0)                    |
| SNR_t             | ``snr[t]``             | alpha_bar_t / (1 - alpha_bar_t)                      |

**Timesteps in code are 0-based.** ``t`` runs over ``0, ..., T-1`` and ``alpha_bars[t]`` is
the math's alpha-bar at step t+1: the paper's x_1 is the code's ``t = 0`` and the paper's
x_T is the code's ``t = T-1``. The data x_0 has no index in code; where a formula needs
alpha-bar of the step before the first, it is 1 (``alpha_bars_prev[0] == 1``).

Every table is computed in float64 on the CPU; :meth:`Schedule.to` moves or casts a copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["Schedule", "linear_schedule", "cosine_schedule", "broadcast", "check_timesteps"]


@dataclass(frozen=True)
class Schedule:
    """All per-step constants of a DDPM forward process, each a (T,) tensor.

    Build one with :func:`linear_schedule`, :func:`cosine_schedule` or
    :meth:`Schedule.from_betas`; the derived tables are filled in from ``betas``.
    """

    name: str
    betas: Tensor  # (T,)
    alphas: Tensor  # (T,)
    alpha_bars: Tensor  # (T,)
    alpha_bars_prev: Tensor  # (T,), alpha_bar of the previous step, 1 before the first
    posterior_variance: Tensor  # (T,), beta_tilde_t; 0 at t=0 where x_{t-1} is the data
    posterior_mean_coef_x0: Tensor  # (T,), weight of x_0 in the posterior mean
    posterior_mean_coef_xt: Tensor  # (T,), weight of x_t in the posterior mean
    snr: Tensor  # (T,)

    @classmethod
    def from_betas(cls, betas: Tensor, name: str = "custom") -> "Schedule":
        """Derive every table from ``betas``: (T,), each strictly inside (0, 1)."""
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a 1-D tensor with T >= 1 entries; got shape {tuple(betas.shape)}")
        if not torch.all((betas > 0) & (betas < 1)):
            bad = betas[(betas <= 0) | (betas >= 1)][0].item()
            raise ValueError(f"every beta must lie strictly inside (0, 1); got {bad!r}")
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        one_minus = 1.0 - alpha_bars
        return cls(
            name=name,
            betas=betas,
            alphas=alphas,
            alpha_bars=alpha_bars,
            alpha_bars_prev=alpha_bars_prev,
            posterior_variance=betas * (1.0 - alpha_bars_prev) / one_minus,
            posterior_mean_coef_x0=betas * alpha_bars_prev.sqrt() / one_minus,
            posterior_mean_coef_xt=(1.0 - alpha_bars_prev) * alphas.sqrt() / one_minus,
            snr=alpha_bars / one_minus,
        )

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.shape[0]

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Schedule":
        """A new schedule with every table moved to ``device`` and/or cast to ``dtype``."""
        moved = {
            f.name: getattr(self, f.name).to(device=device, dtype=dtype)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return Schedule(name=self.name, **moved)

    def __repr__(self) -> str:
        return (
            f"Schedule(name={self.name!r}, T={self.T}, beta=[{self.betas[0].item():.3g} .. "
            f"{self.betas[-1].item():.3g}], alpha_bar_T={self.alpha_bars[-1].item():.3g})"
        )


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1; got {T!r}")


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Betas spaced evenly from ``beta_start`` to ``beta_end`` (DDPM's default: 1e-4 to 0.02, T=1000)."""
    _check_T(T)
    for arg, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{arg} must lie strictly inside (0, 1); got {value!r}")
    if beta_start > beta_end:
        raise ValueError(f"beta_start must be <= beta_end; got beta_start={beta_start}, beta_end={beta_end}")
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return Schedule.from_betas(betas, name="linear")


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """alpha_bar(t) follows cos^2 of the time fraction; betas are clipped at ``max_beta``.

    alpha_bar(u) = cos^2(pi/2 * (u + s) / (1 + s)) for u = t/T, and
    beta_t = min(1 - alpha_bar((t+1)/T) / alpha_bar(t/T), max_beta), as in improved DDPM
    (diffusers calls it ``squaredcos_cap_v2``).
    """
    _check_T(T)
    if not s >= 0.0:
        raise ValueError(f"s must be >= 0; got {s!r}")
    if not 0.0 < max_beta < 1.0:
        raise ValueError(f"max_beta must lie strictly inside (0, 1); got {max_beta!r}")
    u = torch.arange(T + 1, dtype=torch.float64) / T  # (T+1,)
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1.0 - f[1:] / f[:-1]).clamp(max=max_beta)
    return Schedule.from_betas(betas, name="cosine")


def check_timesteps(schedule: Schedule, t: Tensor | int, batch: int | None = None) -> Tensor:
    """Return ``t`` as a long tensor of shape (B,), checking 0 <= t < T.

    An int is broadcast to ``batch`` entries (or one entry without ``batch``).
    """
    if isinstance(t, bool):
        raise TypeError("t must be an int or an integer tensor of shape (B,); got a bool")
    if isinstance(t, int):
        t = torch.full((batch if batch is not None else 1,), t, dtype=torch.long)
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be an int or an integer tensor of shape (B,); got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"t must hold integer steps; got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.reshape(1).expand(batch if batch is not None else 1)
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,); got {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"t has {t.shape[0]} entries but the batch has {batch}")
    if t.numel() and (t.min() < 0 or t.max() >= schedule.T):
        raise ValueError(
            f"t must lie in [0, T-1] = [0, {schedule.T - 1}] (steps are 0-based); "
            f"got values from {t.min().item()} to {t.max().item()}"
        )
    return t.long()


def broadcast(table: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """Pick ``table[t]`` per batch element, shaped to broadcast against ``x``.

    table: (T,); t: (B,) long; x: (B, ...) -> (B, 1, ..., 1) with x's dtype and device.
    """
    values = table.to(x.device)[t.to(x.device)]  # (B,)
    return values.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)

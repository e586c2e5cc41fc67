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
:func:`broadcast` indexes a table on the CPU and casts it to the data's dtype before moving
it, so a float64 schedule serves a float32 network on any device (Apple's MPS has no float64).
:func:`check_step` (one int step) and :func:`check_timesteps` (a batch of steps) are the
package's one validator of ``t``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ._checks import ArgumentTypeError, _is_int, device_or_none, finite_float, int_at_least, int_in_range

__all__ = ["Schedule", "linear_schedule", "cosine_schedule", "broadcast", "check_step", "check_timesteps"]


def _check_betas(betas: object) -> Tensor:
    """betas as a (T,) float64 CPU tensor, each finite and strictly inside (0, 1)."""
    try:
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ArgumentTypeError(f"betas must be a 1-D tensor of numbers in (0, 1); got {type(betas).__name__}") from err
    if betas.ndim != 1 or betas.numel() < 1:
        raise ValueError(f"betas must be a 1-D tensor with T >= 1 entries; got shape {tuple(betas.shape)}")
    if not torch.isfinite(betas).all():
        i = int((~torch.isfinite(betas)).nonzero()[0])
        raise ValueError(f"every beta must be a finite number strictly inside (0, 1); got {betas[i].item()!r} at t={i}")
    if not torch.all((betas > 0) & (betas < 1)):
        bad = betas[(betas <= 0) | (betas >= 1)][0].item()
        raise ValueError(f"every beta must lie strictly inside (0, 1); got {bad!r}")
    return betas


def _check_alpha_bars(alpha_bars: Tensor, betas: Tensor) -> None:
    """alpha_bar must fall strictly at every step and stay inside (0, 1) in float64.

    A beta below float64's resolution (about 1.1e-16, e.g. 1e-300) leaves 1 - beta == 1, so
    alpha_bar does not move and 1 - alpha_bar can be 0 (divisions by zero in every posterior
    table); many large betas make the product underflow to 0 (x0_hat = x_t / 0).
    """
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    bad = ~((alpha_bars < prev) & (alpha_bars > 0))  # (T,)
    if bad.any():
        i = int(bad.nonzero()[0])
        why = (
            "underflows to 0 (too much noise in total: fewer or smaller betas)"
            if alpha_bars[i] <= 0
            else f"does not fall below the step before (beta = {betas[i].item():.3g} is below float64's resolution, "
            f"about 1.1e-16)"
        )
        raise ValueError(f"alpha_bar must fall strictly at every step and stay inside (0, 1); at t={i} it {why}")


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
        betas = _check_betas(betas)
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        _check_alpha_bars(alpha_bars, betas)
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
        device = device_or_none("device", device)
        if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
            raise ArgumentTypeError(f"dtype must be a floating torch.dtype or None; got {dtype!r}")
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


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Betas spaced evenly from ``beta_start`` to ``beta_end`` (DDPM's default: 1e-4 to 0.02, T=1000)."""
    int_at_least("T", T, 1)
    for arg, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        finite_float(arg, value, 0.0, 1.0, low_open=True, high_open=True)
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
    int_at_least("T", T, 1)
    finite_float("s", s, 0.0)
    finite_float("max_beta", max_beta, 0.0, 1.0, low_open=True, high_open=True)
    u = torch.arange(T + 1, dtype=torch.float64) / T  # (T+1,)
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1.0 - f[1:] / f[:-1]).clamp(max=max_beta)
    return Schedule.from_betas(betas, name="cosine")


def check_step(schedule: Schedule, t: object, name: str = "t", *, low: int = 0, high: int | None = None) -> int:
    """One step as a Python int, checked to lie in [low, high] (default [0, T-1]).

    ``low=-1`` admits the data itself, as a sampler's ``t_prev`` does.
    """
    high = schedule.T - 1 if high is None else high
    hint = "-1 means the data" if low == -1 else "steps are 0-based"
    return int_in_range(name, t, low, high, hint=hint)


def check_timesteps(schedule: Schedule, t: Tensor | int, batch: int | None = None) -> Tensor:
    """Return ``t`` as a long tensor of shape (B,), checking 0 <= t < T.

    An int is broadcast to ``batch`` entries (or one entry without ``batch``).
    """
    if not isinstance(t, Tensor):
        if not _is_int(t):
            raise ArgumentTypeError(f"t must be an int or an integer tensor of shape (B,); got {t!r}")
        t = torch.full((batch if batch is not None else 1,), check_step(schedule, t), dtype=torch.long)
    if t.dtype.is_floating_point or t.is_complex() or t.dtype == torch.bool:
        raise ArgumentTypeError(f"t must hold integer steps; got dtype {t.dtype}")
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
    The table is indexed on the CPU and cast to x's dtype before it moves to x's device.
    """
    values = table.cpu()[t.cpu()].to(x.dtype)  # (B,)
    return values.to(x.device).reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)

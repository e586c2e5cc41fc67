"""Sinusoidal timestep embedding: how a network is told which noise level it is looking at.

A network that predicts eps for every t needs t as an input. A bare integer in 0..999 is a
poor feature (one number, huge range), so t is spread over sines and cosines of many
frequencies, as the Transformer's positional encoding (Vaswani et al. 2017) and DDPM
(Ho et al. 2020, appendix B) do, and a small MLP turns that fixed code into features the
network can learn to use.

| symbol        | code                   | meaning                                                   |
|---------------|------------------------|-----------------------------------------------------------|
| t             | ``t``                  | (B,) timesteps, integer or float (continuous-time samplers)|
| d             | ``dim``                | embedding width, even                                     |
| omega_k       | ``freqs[k]``           | exp(-k / (d/2 - 1) * log(max_period)), k = 0..d/2-1       |
| e(t)          | ``sinusoidal_embedding``| [sin(omega_k t)]_k ++ [cos(omega_k t)]_k, (B, d)         |

The frequencies are log-spaced from 1 down to 1/max_period, i.e. the article's
``exp(-linspace(0, log(10000), d/2))``: the fastest sine separates neighbouring steps, the
slowest one changes monotonically over the whole range of t.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import finite_float, int_at_least

__all__ = ["sinusoidal_embedding", "TimeEmbedding"]


def _check_dim(dim: int, name: str = "dim") -> None:
    int_at_least(name, dim, 2, even=True, hint="half sines, half cosines")


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Embed timesteps as sines and cosines of log-spaced frequencies.

    t: (B,) integer or float timesteps -> (B, dim) float32, ``[sin(t * freqs), cos(t * freqs)]``
    with ``freqs = exp(-linspace(0, log(max_period), dim // 2))``. At t = 0 the sines are 0 and
    the cosines 1.
    """
    _check_dim(dim)
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be a tensor of shape (B,); got {type(t).__name__}")
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,); got {tuple(t.shape)}")
    finite_float("max_period", max_period, 1.0, low_open=True)
    half = dim // 2
    freqs = torch.exp(-torch.linspace(0.0, math.log(max_period), half, device=t.device))  # (half,)
    args = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)  # (B, dim)


class TimeEmbedding(nn.Module):
    """The sinusoid followed by Linear -> SiLU -> Linear: t (B,) -> (B, dim).

    The sinusoid is a fixed code; the MLP lets the network learn which mixture of
    frequencies each layer needs (a per-channel bias for "very noisy" vs "almost clean").
    ``hidden`` is the MLP's width (default ``dim``, as in the article).
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        _check_dim(dim)
        hidden = dim if hidden is None else hidden
        int_at_least("hidden", hidden, 1, hint="or None for dim")
        self.dim = dim
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, t: Tensor) -> Tensor:
        emb = sinusoidal_embedding(t, self.dim).to(self.fc1.weight.dtype)  # (B, dim), float64 for a .double() model
        return self.fc2(nn.functional.silu(self.fc1(emb)))  # (B, dim)

"""Sample-quality metrics.

| name                 | what it measures                                                      |
|----------------------|-----------------------------------------------------------------------|
| sliced W2            | sqrt(E_theta[W2^2(theta . X, theta . Y)]) over random unit directions |

Sliced Wasserstein distance: Rabin, Peyre, Delon & Bernot (2011), "Wasserstein barycenter
and its application to texture mixing". In one dimension the optimal transport between two
equal-size samples matches them in sorted order, so each projection costs one sort.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sliced_wasserstein"]


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance between two point clouds x, y: (n, d), same n.

    Projects both clouds on ``n_projections`` random unit directions (drawn from
    ``generator``), computes each 1-D W2^2 by sorting, and returns the square root of the mean.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must both have shape (n, d) with the same n and d; got {tuple(x.shape)} and {tuple(y.shape)}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1; got {n_projections}")
    x, y = x.detach().cpu().double(), y.detach().cpu().double()
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)  # (d, P) unit columns
    px = torch.sort(x @ theta, dim=0).values  # (n, P)
    py = torch.sort(y @ theta, dim=0).values  # (n, P)
    return ((px - py) ** 2).mean().sqrt().item()

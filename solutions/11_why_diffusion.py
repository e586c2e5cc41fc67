"""Reference answers to lesson 11's exercises ("Your turn" in notebooks/11_why_diffusion.ipynb)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def modes_covered(x: Tensor, means: Tensor, radius: float, min_count: int) -> int:
    """Give each sample to its nearest centre, keep those within radius, count modes with min_count or more."""
    dist = torch.cdist(x.double(), means.double())  # (n, K)
    nearest = dist.min(dim=1)
    close = nearest.values <= radius  # (n,)
    counts = torch.bincount(nearest.indices[close], minlength=means.shape[0])  # (K,)
    return int((counts >= min_count).sum())


def generator_loss(fake_logits: Tensor) -> Tensor:
    """mean -log D(G(z)) with D = sigmoid(l): -log sigmoid(l) = softplus(-l), stable for any logit."""
    return F.softplus(-fake_logits).mean()


def d_loss_equilibrium() -> float:
    """-log(1/2) on the real points plus -log(1 - 1/2) on the generated ones."""
    return 2 * math.log(2)


def core_fractions(x: Tensor, means: Tensor, std: float, weights: Tensor) -> Tensor:
    """Samples within 1 std of their nearest centre, per mode, over real data's n w_k (1 - e^(-1/2))."""
    dist, nearest = torch.cdist(x.double(), means.double()).min(dim=1)  # (n,), (n,)
    counts = torch.bincount(nearest[dist <= std], minlength=means.shape[0]).double()  # (K,)
    return counts / (x.shape[0] * weights.double() * (1 - math.exp(-0.5)))


ANSWERS = {
    "11.modes_covered": modes_covered,
    "11.generator_loss": generator_loss,
    "11.d_loss_equilibrium": d_loss_equilibrium(),
    "11.core_fractions": core_fractions,
}

"""A small residual MLP noise predictor for 2-D toy data: eps_theta(x_t, t) with x_t in R^d.

The same recipe as the article's residual block, with linear layers in place of convs:
each block is Linear -> + embedding bias -> SiLU -> Linear, added back to its input.

| symbol   | code        | shape          |
|----------|-------------|----------------|
| x_t      | ``x``       | (B, dim)       |
| t        | ``t``       | (B,)           |
| y        | ``y``       | (B,) in [0, num_classes]; ``num_classes`` = null label |
| e(t)     | ``emb``     | (B, time_dim)  |
| eps_hat  | output      | (B, dim)       |
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ._inputs import check_labels, check_t, int_at_least
from .embeddings import TimeEmbedding

__all__ = ["MLPConfig", "MLPDenoiser"]


@dataclass(frozen=True)
class MLPConfig:
    """Data dimension, hidden width, number of residual blocks, embedding width, optional labels."""

    dim: int = 2
    hidden: int = 128
    depth: int = 3
    time_dim: int = 64
    num_classes: int | None = None

    def __post_init__(self) -> None:
        int_at_least("dim", self.dim, 1)
        int_at_least("hidden", self.hidden, 1)
        int_at_least("depth", self.depth, 1)
        int_at_least("time_dim", self.time_dim, 2, even=True)
        if self.num_classes is not None:
            int_at_least("num_classes", self.num_classes, 1)


class _Block(nn.Module):
    """h -> h + W2 SiLU(W1 h + P e): (B, hidden), (B, time_dim) -> (B, hidden)."""

    def __init__(self, hidden: int, time_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb_proj = nn.Linear(time_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return h + self.fc2(F.silu(self.fc1(h) + self.emb_proj(emb)))


class MLPDenoiser(nn.Module):
    """model(x_t (B, dim), t (B,), y (B,) | None) -> eps_hat (B, dim)."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        config = MLPConfig() if config is None else config
        if not isinstance(config, MLPConfig):
            raise TypeError(f"config must be an MLPConfig; got {type(config).__name__}")
        self.config = config
        self.time_embed = TimeEmbedding(config.time_dim)
        self.label_embed = (
            nn.Embedding(config.num_classes + 1, config.time_dim) if config.num_classes is not None else None
        )
        self.in_proj = nn.Linear(config.dim, config.hidden)
        self.blocks = nn.ModuleList(_Block(config.hidden, config.time_dim) for _ in range(config.depth))
        self.out = nn.Linear(config.hidden, config.dim)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.config
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a tensor of shape (B, {c.dim}); got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != c.dim:
            raise ValueError(f"x must have shape (B, dim) = (B, {c.dim}); got {tuple(x.shape)}")
        check_t(t, x.shape[0])
        check_labels(y, x.shape[0], c.num_classes, "MLPDenoiser")
        emb = self.time_embed(t)  # (B, time_dim)
        if self.label_embed is not None:
            emb = emb + self.label_embed(y.long())
        emb = F.silu(emb)
        h = self.in_proj(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(h))  # (B, dim)

"""The article's small U-Net, built exactly as it describes it: eps_theta(x_t, t).

One resolution change only: a residual block at full resolution, a max-pool, a residual
block at half resolution, a bottleneck block, nearest upsampling, one skip concatenation
with the full-resolution features, a residual block and an output conv. The timestep enters
every residual block as a per-channel bias added after the first conv. No normalisation,
no attention, no dropout: the course's :class:`~ddpm_course.models.unet.UNet` adds those.

| symbol       | code                 | shape              |
|--------------|----------------------|--------------------|
| x_t          | ``x``                | (B, C, H, W)       |
| t            | ``t``                | (B,)               |
| e(t)         | ``t_emb``            | (B, time_dim)      |
| h1, h2, hb   | encoder / bottleneck | (B, c, H, W), (B, 2c, H/2, W/2), same |
| eps_hat      | output               | (B, C, H, W)       |

with c = ``base_channels``. U-Net: Ronneberger et al. 2015; used for eps_theta by Ho et al. 2020.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._inputs import check_image, check_labels, check_t, int_at_least
from .embeddings import TimeEmbedding

__all__ = ["SimpleUNetConfig", "SimpleUNet", "ResidualBlock"]


@dataclass(frozen=True)
class SimpleUNetConfig:
    """The article's defaults: RGB input, 64 base channels, a 128-wide time embedding."""

    in_channels: int = 3
    base_channels: int = 64
    time_dim: int = 128

    def __post_init__(self) -> None:
        int_at_least("in_channels", self.in_channels, 1)
        int_at_least("base_channels", self.base_channels, 1)
        int_at_least("time_dim", self.time_dim, 2, even=True)

    @property
    def num_classes(self) -> None:
        """Always None: the article's net takes no labels (every config answers this question)."""
        return None


class ResidualBlock(nn.Module):
    """conv3x3 -> + time bias -> SiLU -> conv3x3, plus a skip, then SiLU (the article's block).

    x: (B, in_channels, H, W), t_emb: (B, time_dim) -> (B, out_channels, H, W). The skip is a
    1x1 conv when the channel count changes, the identity otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, time_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, out_channels)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        h = self.conv1(x)
        h = h + self.time_proj(t_emb)[:, :, None, None]  # (B, out, 1, 1): one bias per channel
        h = self.conv2(F.silu(h))
        return F.silu(h + self.skip(x))


class SimpleUNet(nn.Module):
    """The article's U-Net: model(x_t (B, C, H, W), t (B,)) -> eps_hat (B, C, H, W).

    H and W must be even (one 2x2 max-pool). It is unconditional: passing ``y`` is an error.
    """

    def __init__(self, config: SimpleUNetConfig | None = None) -> None:
        super().__init__()
        config = SimpleUNetConfig() if config is None else config
        if not isinstance(config, SimpleUNetConfig):
            raise TypeError(f"config must be a SimpleUNetConfig; got {type(config).__name__}")
        self.config = config
        c, d = config.base_channels, config.time_dim
        self.time_embed = TimeEmbedding(d)
        self.down1 = ResidualBlock(config.in_channels, c, d)
        self.pool = nn.MaxPool2d(2)
        self.down2 = ResidualBlock(c, 2 * c, d)
        self.bottleneck = ResidualBlock(2 * c, 2 * c, d)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.up1 = ResidualBlock(2 * c + c, c, d)
        self.out_conv = nn.Conv2d(c, config.in_channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        check_image(x, self.config.in_channels, 2, "SimpleUNet")
        check_t(t, x.shape[0])
        check_labels(y, x.shape[0], None, "SimpleUNet")
        t_emb = self.time_embed(t)  # (B, time_dim)
        h1 = self.down1(x, t_emb)  # (B, c, H, W)
        h2 = self.down2(self.pool(h1), t_emb)  # (B, 2c, H/2, W/2)
        hb = self.bottleneck(h2, t_emb)  # (B, 2c, H/2, W/2)
        u = torch.cat([self.up(hb), h1], dim=1)  # (B, 3c, H, W)
        return self.out_conv(self.up1(u, t_emb))  # (B, C, H, W)

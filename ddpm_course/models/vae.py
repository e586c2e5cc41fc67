"""The convolutional VAE of latent diffusion (lesson 09): images to a small latent grid and back.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes"; the shape follows Rombach et al.
(2022), "High-Resolution Image Synthesis with Latent Diffusion Models". The loss, the training
objective and the latent pipeline are the lesson's (``ddpm_course.autoencoder``).

| symbol      | code                     | shape / meaning                                             |
|-------------|--------------------------|-------------------------------------------------------------|
| x           | ``x``                    | (B, C, H, W) images in [-1, 1]                              |
| mu, log s^2 | ``encode(x)``            | (B, c, H/f, W/f): q(z \\| x) = N(mu, diag(s^2)), f = factor |
| z           | ``latent(x, generator)`` | mu + s * eps, eps ~ N(0, I), drawn on the CPU                |
| x_hat       | ``decode(z)``            | (B, C, H, W), the reconstruction                            |
| scale       | ``scale_factor``         | a buffer: 1 / std(z) on the training data, 1 until set      |
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import generator_or_none, int_at_least

__all__ = ["VAE", "VAEConfig"]


@dataclass(frozen=True)
class VAEConfig:
    """The VAE's shape. Level i works at H / 2**i with ``base_channels * channel_mults[i]``
    channels; the latent grid is H / factor with factor = 2**(len(channel_mults) - 1)."""

    in_channels: int = 1
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4)
    latent_channels: int = 4
    groups: int = 8

    def __post_init__(self) -> None:
        mults = self.channel_mults
        if not isinstance(mults, (tuple, list)) or not mults or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in mults
        ):
            raise ValueError(f"channel_mults must be a non-empty tuple of positive integers; got {mults!r}")
        object.__setattr__(self, "channel_mults", tuple(mults))
        int_at_least("in_channels", self.in_channels, 1)
        int_at_least("base_channels", self.base_channels, 1)
        int_at_least("latent_channels", self.latent_channels, 1)
        int_at_least("groups", self.groups, 1)
        for m in self.channel_mults:
            if (self.base_channels * m) % self.groups:
                raise ValueError(
                    f"groups={self.groups} must divide every level's channel count "
                    f"base_channels * mult = {self.base_channels * m}"
                )

    @property
    def factor(self) -> int:
        """How much smaller the latent grid is per side: 2**(number of downsamplings)."""
        return 2 ** (len(self.channel_mults) - 1)


class _Block(nn.Module):
    """Pre-activation residual block: (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1),
            nn.GroupNorm(groups, out_ch), nn.SiLU(), nn.Conv2d(out_ch, out_ch, 3, padding=1),
        )
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


class _Up(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class VAE(nn.Module):
    """Convolutional VAE: ``encode(x) -> (mean, logvar)``, ``decode(z) -> x_hat``, ``latent(x, generator)``.

    x: (B, in_channels, H, W) with H, W multiples of ``config.factor``; z: (B, latent_channels,
    H / factor, W / factor). ``scale_factor`` is a buffer (saved with the weights): 1 until
    :func:`estimate_scale_factor` sets it.
    """

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or VAEConfig()
        chans = [config.base_channels * m for m in config.channel_mults]
        g = config.groups
        enc: list[nn.Module] = [nn.Conv2d(config.in_channels, chans[0], 3, padding=1)]
        for i, ch in enumerate(chans):
            enc.append(_Block(chans[max(i - 1, 0)], ch, g))
            if i < len(chans) - 1:
                enc.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        enc += [nn.GroupNorm(g, chans[-1]), nn.SiLU(), nn.Conv2d(chans[-1], 2 * config.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(config.latent_channels, chans[-1], 3, padding=1)]
        for i in reversed(range(len(chans))):
            dec.append(_Block(chans[min(i + 1, len(chans) - 1)], chans[i], g))
            if i > 0:
                dec.append(_Up(chans[i]))
        dec += [nn.GroupNorm(g, chans[0]), nn.SiLU(), nn.Conv2d(chans[0], config.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("scale_factor", torch.tensor(1.0))

    def _check_images(self, x: Tensor, name: str = "x") -> None:
        c, f = self.config.in_channels, self.config.factor
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != c or x.shape[2] % f or x.shape[3] % f:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be images of shape (B, {c}, H, W) with H and W multiples of {f}; "
                             f"got {shape}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite images; it holds NaN or infinite values")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x): x (B, C, H, W) -> mean, logvar, each (B, latent_channels, H/f, W/f)."""
        self._check_images(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)  # keeps exp(logvar) finite in float32

    def decode(self, z: Tensor) -> Tensor:
        """z (B, latent_channels, h, w) -> x_hat (B, C, h*f, w*f), unbounded (clamp to [-1, 1] to show)."""
        k = self.config.latent_channels
        if not isinstance(z, Tensor) or z.ndim != 4 or z.shape[1] != k:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"z must be latents of shape (B, {k}, h, w); got {shape}")
        return self.decoder(z)

    def latent(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised sample z = mean + exp(logvar / 2) * eps of q(z | x), eps drawn on the CPU."""
        generator_or_none("generator", generator)
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator).to(mean.device)
        return mean + (0.5 * logvar).exp() * eps

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """The deterministic round trip x -> decode(mean): (B, C, H, W) -> (B, C, H, W).

        ``t`` is accepted and ignored: it keeps the course's ``model(x, t)`` calling convention,
        through which a checkpoint checks that a model fits its stored sample shape.
        """
        return self.decode(self.encode(x)[0])

    def reconstruct(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruct through a sampled latent (what training sees): x -> (x_hat, mean, logvar)."""
        generator_or_none("generator", generator)
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator).to(mean.device)
        return self.decode(mean + (0.5 * logvar).exp() * eps), mean, logvar

    def scaled_latent(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """What the diffusion model sees: ``latent(x) * scale_factor``, of variance about 1."""
        return self.latent(x, generator) * self.scale_factor

    def decode_scaled(self, z: Tensor) -> Tensor:
        """Decode a diffusion sample: ``decode(z / scale_factor)``."""
        return self.decode(z / self.scale_factor)

"""The small networks on 2-D points that lesson 11 compares diffusion with: a GAN's two players
and a VAE, all built from one MLP.

| symbol   | code                         | shape                                        |
|----------|------------------------------|----------------------------------------------|
| z        | ``z``                        | (B, latent) noise (GAN) or code (VAE)         |
| G(z)     | ``Generator(config)(z)``     | (B, dim) a generated point                   |
| l(x)     | ``Discriminator(config)(x)`` | (B,) the logit "real"                        |
| mu, logv | ``PointVAE.encode(x)``       | (B, latent) each: q(z \\| x) = N(mu, e^logv)  |
| mean     | ``PointVAE.decode(z)``       | (B, dim); the decoder's noise is ``log_sigma`` (dim,) |

The losses and training loops are the lesson's (``ddpm_course.gan``, ``ddpm_course.compare``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import int_at_least

__all__ = ["Discriminator", "GANConfig", "Generator", "PointVAE", "PointVAEConfig", "mlp"]


def mlp(d_in: int, hidden: int, depth: int, d_out: int, act: Callable[[], nn.Module] = nn.SiLU) -> nn.Sequential:
    """Linear -> act, ``depth`` times at width ``hidden``, then a Linear to ``d_out``: (B, d_in) -> (B, d_out)."""
    layers: list[nn.Module] = [nn.Linear(d_in, hidden), act()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), act()]
    layers.append(nn.Linear(hidden, d_out))
    return nn.Sequential(*layers)


def _check_sizes(config: object, names: tuple[str, ...]) -> None:
    for name in names:
        int_at_least(name, getattr(config, name), 1)


# ----------------------------------------------------------------------------- a GAN's two players


@dataclass(frozen=True)
class GANConfig:
    """Data dimension, noise dimension, hidden width and number of hidden layers of G and of D."""

    dim: int = 2
    latent: int = 8
    hidden: int = 64
    depth: int = 3

    def __post_init__(self) -> None:
        _check_sizes(self, ("dim", "latent", "hidden", "depth"))


class Generator(nn.Module):
    """G: z (B, latent) -> x (B, dim), an MLP with ReLU."""

    def __init__(self, config: GANConfig | None = None) -> None:
        super().__init__()
        self.config = GANConfig() if config is None else config
        self.net = mlp(self.config.latent, self.config.hidden, self.config.depth, self.config.dim, nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent:
            raise ValueError(f"z must have shape (B, latent) = (B, {self.config.latent}); got {tuple(z.shape)}")
        return self.net(z)


class Discriminator(nn.Module):
    """D: x (B, dim) -> logits (B,), an MLP with LeakyReLU(0.2) (the DCGAN habit)."""

    def __init__(self, config: GANConfig | None = None) -> None:
        super().__init__()
        self.config = GANConfig() if config is None else config
        self.net = mlp(self.config.dim, self.config.hidden, self.config.depth, 1, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.dim:
            raise ValueError(f"x must have shape (B, dim) = (B, {self.config.dim}); got {tuple(x.shape)}")
        return self.net(x).squeeze(1)  # (B,)


# ----------------------------------------------------------------------------- a VAE on points


@dataclass(frozen=True)
class PointVAEConfig:
    """Data dimension, latent dimension, hidden width and hidden layers of encoder and decoder."""

    dim: int = 2
    latent: int = 2
    hidden: int = 64
    depth: int = 3

    def __post_init__(self) -> None:
        _check_sizes(self, ("dim", "latent", "hidden", "depth"))


class PointVAE(nn.Module):
    """encode: x (B, dim) -> (mu, logvar) (B, latent) each; decode: z (B, latent) -> mean (B, dim).

    ``log_sigma`` (dim,) is the decoder's learned log standard deviation, shared by all z. It
    starts at log 0.1, not 0: with sigma = 1 from the start the decoder can explain the whole
    data as its own noise and the encoder learns to ignore x ("posterior collapse", Bowman et
    al. 2016), which on the ring gives one blob at the centre instead of a VAE worth comparing.
    """

    def __init__(self, config: PointVAEConfig | None = None) -> None:
        super().__init__()
        self.config = PointVAEConfig() if config is None else config
        c = self.config
        self.encoder = mlp(c.dim, c.hidden, c.depth, 2 * c.latent)
        self.decoder = mlp(c.latent, c.hidden, c.depth, c.dim)
        self.log_sigma = nn.Parameter(torch.full((c.dim,), math.log(0.1)))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, latent) each
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

"""Reference answers to lesson 09's exercises ("Your turn" in notebooks/09_latent.ipynb)."""
from __future__ import annotations

from torch import Tensor


def kl_term(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) of every entry, summed per image: (B, ...) -> (B,)."""
    return (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).flatten(1).sum(1)


def scale_factor(latents: Tensor) -> float:
    """The number that gives the latents unit variance: 1 / their standard deviation over every entry."""
    return 1 / latents.std().item()


def latent_pipeline(encode, decode, x: Tensor, eps: Tensor, z_sampled: Tensor, scale: float):
    """Encode and scale for training; unscale and decode for generation."""
    mean, logvar = encode(x)
    z_train = (mean + (logvar / 2).exp() * eps) * scale  # what the diffusion model trains on
    images = decode(z_sampled / scale)  # its samples are scaled latents: undo the scale first
    return z_train, images


def pass_ratio() -> float:
    """A pass costs in proportion to the positions H * W: (512 * 512) / (64 * 64)."""
    return 512 * 512 / (64 * 64)


ANSWERS = {"09.kl_term": kl_term, "09.scale_factor": scale_factor,
           "09.latent_pipeline": latent_pipeline, "09.pass_ratio": pass_ratio()}

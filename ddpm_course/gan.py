"""A small generative adversarial network (GAN) for 2-D points: the rival diffusion is compared with.

Goodfellow et al. (2014), "Generative Adversarial Nets". A generator G maps noise z to a
point; a discriminator D scores points as real (logit > 0) or generated. They play

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))],        D(x) = sigmoid(l(x)).

D's loss is binary cross-entropy: softplus(-l(x)) on real points plus softplus(l(G(z))) on
generated ones; at the game's equilibrium D(x) = 1/2 everywhere and that loss is
2 log 2 = 1.386. For G the paper's own advice is the *non-saturating* loss
-log D(G(z)) = softplus(-l(G(z))) instead of the minimax log(1 - D(G(z))) = -softplus(l(G(z))):
both push l(G(z)) up, but when D easily rejects the fakes (l << 0, the start of training)
the minimax loss is flat (gradient sigmoid(l) ~ 0) while the non-saturating one is steep.

Nothing in the game asks G to cover every part of the data: a G that puts all its points on
a few modes D cannot yet tell from real ones is a fine answer for a while. That is *mode
collapse*, and with the two players chasing each other, the losses oscillate instead of
descending. Lesson 11 measures both against a diffusion model on the same data.

| symbol      | code                     | shape       |
|-------------|--------------------------|-------------|
| z           | ``z``                    | (B, latent) |
| G(z)        | ``generator(z)``         | (B, dim)    |
| l(x)        | ``discriminator(x)``     | (B,) logits |
| L_D         | ``discriminator_loss``   | scalar      |
| L_G         | ``generator_loss``       | scalar      |
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import finite_float, generator_or_none, int_at_least, one_of
from .models.toy import Discriminator, GANConfig, Generator
from .train import NonFiniteLossError

__all__ = [
    "G_LOSSES",
    "Discriminator",
    "GANConfig",
    "GANResult",
    "Generator",
    "discriminator_loss",
    "gan_sample",
    "generator_loss",
    "train_gan",
]

G_LOSSES = ("non_saturating", "minimax")


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Binary cross-entropy of D: mean softplus(-l(real)) + mean softplus(l(fake)); 2 log 2 at D = 1/2."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, kind: str = "non_saturating") -> Tensor:
    """G's loss on D's logits of generated points (B,) -> scalar.

    "non_saturating": mean -log D(G(z)) = mean softplus(-l); "minimax": mean log(1 - D(G(z)))
    = mean -softplus(l), the paper's game value, whose gradient vanishes when D wins.
    """
    one_of("kind", kind, G_LOSSES)
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    return -F.softplus(fake_logits).mean()


@dataclass
class GANResult:
    """What :func:`train_gan` returns: both networks (eval mode), the loss of every step, steps, seconds."""

    generator: Generator
    discriminator: Discriminator
    d_losses: list[float]
    g_losses: list[float]
    steps: int
    seconds: float


def _draw(data: Tensor, batch: int, generator: torch.Generator) -> Tensor:
    return data[torch.randint(0, data.shape[0], (batch,), generator=generator)]  # (B, dim)


def _guard(what: str, loss: Tensor, step: int, lr: float, batch: Tensor) -> None:
    if not math.isfinite(loss.item()):
        raise NonFiniteLossError.at(what, loss.item(), step, lr, batch)


def train_gan(
    data: Tensor,
    *,
    config: GANConfig | None = None,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    g_loss: str = "non_saturating",
    generator: torch.Generator | None = None,
) -> GANResult:
    """Train a GAN on ``data`` (N, dim): one D step then one G step per training step, Adam for both.

    Every random draw (initial weights, batches, z) comes from ``generator`` (seed 0 when None).
    ``betas`` (0.5, 0.999) is the DCGAN setting; ``g_loss`` is one of :data:`G_LOSSES`.
    This is the one loop of the course besides ``train.fit``: two players, two optimisers. Like
    fit it stops on a non-finite loss with ``train.NonFiniteLossError`` before that player's
    weights change.
    """
    if not isinstance(data, Tensor) or data.ndim != 2 or data.shape[0] < 1:
        raise ValueError(f"data must be a tensor of shape (N, dim); got {getattr(data, 'shape', type(data).__name__)}")
    steps = int_at_least("steps", steps, 1)
    batch_size = int_at_least("batch_size", batch_size, 1)
    lr = finite_float("lr", lr, 0, low_open=True)
    one_of("g_loss", g_loss, G_LOSSES)
    generator = generator_or_none("generator", generator) or torch.Generator().manual_seed(0)
    config = GANConfig(dim=data.shape[1]) if config is None else config
    if config.dim != data.shape[1]:
        raise ValueError(f"config.dim must match the data's dimension {data.shape[1]}; got {config.dim}")
    with torch.random.fork_rng(devices=[]):  # initial weights from the generator, global RNG untouched
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        gen, disc = Generator(config), Discriminator(config)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    data = data.float()
    d_losses: list[float] = []
    g_losses: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        real = _draw(data, batch_size, generator)
        fake = gen(torch.randn(batch_size, config.latent, generator=generator))  # (B, dim)
        loss_d = discriminator_loss(disc(real), disc(fake.detach()))
        _guard("the discriminator's loss", loss_d, step, lr, real)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        fake = gen(torch.randn(batch_size, config.latent, generator=generator))
        loss_g = generator_loss(disc(fake), g_loss)
        _guard("the generator's loss", loss_g, step, lr, real)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        d_losses.append(loss_d.item())
        g_losses.append(loss_g.item())
    gen.eval()
    disc.eval()
    return GANResult(gen, disc, d_losses, g_losses, steps, time.perf_counter() - start)


@torch.no_grad()
def gan_sample(gen: Generator, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n points from G: one network pass on z ~ N(0, I) drawn on the CPU. Returns (n, dim)."""
    n = int_at_least("n", n, 1)
    z = torch.randn(n, gen.config.latent, generator=generator_or_none("generator", generator))  # (n, latent)
    device = next(gen.parameters()).device
    return gen(z.to(device))

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
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import finite_float, generator_or_none, int_at_least, one_of
from ._compat import renamed_arguments
from ._model import eval_mode, require_kind
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

    generator: nn.Module
    discriminator: nn.Module
    d_losses: list[float]
    g_losses: list[float]
    steps: int
    seconds: float


def _draw(data: Tensor, batch: int, generator: torch.Generator) -> Tensor:
    return data[torch.randint(0, data.shape[0], (batch,), generator=generator)]  # (B, dim)


def _guard(what: str, loss: Tensor, step: int, lr: float, batch: Tensor) -> None:
    if not math.isfinite(loss.item()):
        raise NonFiniteLossError.at(what, loss.item(), step, lr, batch)


def _players(
    data: Tensor, config: GANConfig | None, networks: Callable[[], tuple[nn.Module, nn.Module]] | None
) -> Callable[[], tuple[nn.Module, nn.Module]]:
    """What builds the two players: ``networks`` itself, or the MLPs of ``config`` for points (N, dim)."""
    if networks is not None:
        if config is not None:
            raise ValueError("config must be None when networks is given (the networks carry their own sizes)")
        if not callable(networks):
            raise TypeError(f"networks must be a callable returning (generator, discriminator); got "
                            f"{type(networks).__name__}")
        if not isinstance(data, Tensor) or data.ndim not in (2, 4) or data.shape[0] < 1:
            raise ValueError("data must be a tensor of shape (N, dim) or (N, C, H, W); got "
                             f"{getattr(data, 'shape', type(data).__name__)}")
        return networks
    if not isinstance(data, Tensor) or data.ndim != 2 or data.shape[0] < 1:
        raise ValueError(f"data must be a tensor of shape (N, dim); got {getattr(data, 'shape', type(data).__name__)}")
    config = GANConfig(dim=data.shape[1]) if config is None else config
    if config.dim != data.shape[1]:
        raise ValueError(f"config.dim must match the data's dimension {data.shape[1]}; got {config.dim}")
    return lambda: (Generator(config), Discriminator(config))


def train_gan(
    data: Tensor,
    *,
    config: GANConfig | None = None,
    networks: Callable[[], tuple[nn.Module, nn.Module]] | None = None,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    g_loss: str = "non_saturating",
    generator: torch.Generator | None = None,
) -> GANResult:
    """Train a GAN on ``data``: one D step then one G step per training step, Adam for both.

    Points (N, dim) get the MLPs of ``config`` (:class:`GANConfig`); any other pair of players
    comes from ``networks``, a callable returning ``(G, D)`` with ``G.config.latent`` the noise
    dimension (e.g. ``models.DCGANGenerator`` and ``models.DCGANDiscriminator`` for images
    (N, C, H, W)); it is called once, its initial weights drawn from the seed below.
    Every random draw (initial weights, batches, z) comes from ``generator`` (seed 0 when None).
    ``betas`` (0.5, 0.999) is the DCGAN setting; ``g_loss`` is one of :data:`G_LOSSES`.
    This is the one loop of the course besides ``train.fit``: two players, two optimisers. Like
    fit it stops on a non-finite loss with ``train.NonFiniteLossError`` before that player's
    weights change.
    """
    build = _players(data, config, networks)
    steps = int_at_least("steps", steps, 1)
    batch_size = int_at_least("batch_size", batch_size, 1)
    lr = finite_float("lr", lr, 0, low_open=True)
    one_of("g_loss", g_loss, G_LOSSES)
    generator = generator_or_none("generator", generator) or torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):  # initial weights from the generator, global RNG untouched
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        gen, disc = build()
    latent = _latent(gen)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    data = data.float()
    d_losses: list[float] = []
    g_losses: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        real = _draw(data, batch_size, generator)
        fake = gen(torch.randn(batch_size, latent, generator=generator))  # (B, dim) or (B, C, H, W)
        loss_d = discriminator_loss(disc(real), disc(fake.detach()))
        _guard("the discriminator's loss", loss_d, step, lr, real)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        fake = gen(torch.randn(batch_size, latent, generator=generator))
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


def _latent(gen: nn.Module) -> int:
    """G's noise dimension, ``gen.config.latent``."""
    latent = getattr(getattr(gen, "config", None), "latent", None)
    if not isinstance(latent, int) or isinstance(latent, bool) or latent < 1:
        raise ValueError(f"the generator must have config.latent, a positive int (its noise dimension); got {latent!r}")
    return latent


@renamed_arguments(gen="model")
@torch.no_grad()
def gan_sample(model: nn.Module, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n samples from G: one network pass (eval mode) on z ~ N(0, I) drawn on the CPU. Returns
    (n, dim) for the point GAN, (n, C, H, W) for the DCGAN; a loaded generator of another kind
    (a noise predictor, a VAE) is refused."""
    require_kind(model, ("generator",), "gan_sample", "model")
    n = int_at_least("n", n, 1)
    z = torch.randn(n, _latent(model), generator=generator_or_none("generator", generator))  # (n, latent)
    device = next(model.parameters()).device
    with eval_mode(model):
        return model(z.to(device))


def _main(argv: list[str] | None = None) -> None:
    """python -m ddpm_course.gan: train the shipped ``digits-gan`` DCGAN (see ``shipped.SHIPPED``)."""
    from ._records import maker_parser, run_record
    from .checkpoint import checkpoint_paths, save_checkpoint
    from .data import digits
    from .models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator
    from .schedules import linear_schedule

    prog = "python -m ddpm_course.gan"
    parser = maker_parser(prog, _main.__doc__, progress=False, steps=3000, batch_size=64, lr=2e-4, latent=32,
                          width=32)
    args = parser.parse_args(argv)
    if not args.overwrite and any(p.exists() for p in checkpoint_paths(args.out)):
        parser.error(f"{args.out} already exists; pass --overwrite to replace it")
    torch.set_num_threads(args.threads)
    images = digits(16, split="train").images  # (N, 1, 16, 16) in [-1, 1]
    config = DCGANConfig(image_size=16, channels=1, latent=args.latent, width=args.width)
    result = train_gan(images, networks=lambda: (DCGANGenerator(config), DCGANDiscriminator(config)),
                       steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       generator=torch.Generator().manual_seed(args.seed))
    tail = slice(-100, None)
    record = run_record(
        prog, argv,
        objective="GAN (DCGAN): D's binary cross-entropy, G's non-saturating loss, one D then one G step "
                  "per step, Adam betas (0.5, 0.999); sample with ddpm_course.gan.gan_sample (the schedule is "
                  "unused)",
        weights="generator (raw; the discriminator is not shipped)",
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        train_seconds=round(result.seconds, 1),
        final_d_loss=round(sum(result.d_losses[tail]) / len(result.d_losses[tail]), 4),
        final_g_loss=round(sum(result.g_losses[tail]) / len(result.g_losses[tail]), 4),
    )
    paths = save_checkpoint(args.out, result.generator, linear_schedule(), sample_shape=(1, 16, 16), record=record,
                            weights_dtype=torch.float16, overwrite=args.overwrite, kind="generator")
    print(f"wrote {paths[0]} and {paths[1]}: {args.steps} steps in {result.seconds:.0f} s, "
          f"D loss {record['final_d_loss']}, G loss {record['final_g_loss']}")


if __name__ == "__main__":
    _main()

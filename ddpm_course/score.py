"""Score matching and Langevin dynamics: learn grad log p of noised data, then sample by noisy gradient ascent.

Denoising score matching: Vincent 2011, "A Connection Between Score Matching and Denoising
Autoencoders". Noise-conditional scores and annealed Langevin dynamics: Song & Ermon 2019,
"Generative Modeling by Estimating Gradients of the Data Distribution" (Algorithm 1), with the
final denoising step of Jolicoeur-Martineau et al. 2021. Langevin dynamics: Roberts & Tweedie 1996.

| math                                        | code                                    | shape      |
|---------------------------------------------|-----------------------------------------|------------|
| sigma_1 > ... > sigma_L, the noise levels   | ``sigmas``                              | (L,)       |
| level index i (0-based)                     | ``level``                               | (B,) long  |
| x~ = x + sigma_i z, z ~ N(0, I)             | ``x_noisy``                             | (B, d)     |
| s(x~, sigma) = grad log q_sigma(x~)         | ``score_fn(x, level)``                  | (B, d)     |
| network output z_hat(x~, i) ~ E[z | x~]     | ``model(x_noisy, level)``               | (B, d)     |
| s_theta = -z_hat / sigma_i                  | ``parametrization.convert(..., "eps", "score", x, 1, sigma)`` | (B, d) |

**Why the network predicts z.** Song & Ermon's loss weighs level i by sigma_i^2:
sigma_i^2 E||s_theta + z / sigma_i||^2 = E||sigma_i s_theta + z||^2. With z_hat = -sigma_i s_theta
that is E||z_hat - z||^2: DDPM's L_simple on the variance-exploding path x~ = x + sigma z
(alpha = 1 in ``parametrization``). The network embeds the level index i as a timestep.

**Langevin dynamics** x <- x + (a / 2) s(x) + sqrt(a) z samples p as the step a -> 0 and the
number of steps -> infinity, but only if it can travel: with one small noise level the score
is learned only near the data and modes far apart are hardly ever crossed. Annealing runs it
at every level from the largest down, with a step a_i = a sigma_i^2 / sigma_L^2 that keeps the
signal-to-noise ratio of each update the same (Song & Ermon 2019, section 4.3).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._checks import MAX_STEPS, batch_tensor, finite_float, generator_or_none, int_in_range, same_shape
from ._compat import renamed_arguments
from .forward import noise_like
from .oracle import GaussianMixture
from .parametrization import convert
from .samplers import NonFiniteSampleError
from .schedules import Schedule
from .train import Objective, fit

__all__ = [
    "DenoisingScoreMatching", "annealed_langevin", "dsm_loss", "geometric_sigmas", "langevin", "learned_score",
    "mixture_score", "train_dsm",
]

ScoreFn = Callable[[Tensor, int], Tensor]


def geometric_sigmas(sigma_max: float, sigma_min: float, n: int) -> Tensor:
    """n noise levels from sigma_max down to sigma_min with a constant ratio: (n,) float64."""
    finite_float("sigma_min", sigma_min, 0.0, low_open=True)
    finite_float("sigma_max", sigma_max, sigma_min)
    int_in_range("n", n, 1, MAX_STEPS, hint="the documented bound _checks.MAX_STEPS")
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n, dtype=torch.float64)


def _check_sigmas(sigmas: Tensor) -> Tensor:
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1 or sigmas.numel() < 1 or not torch.all(sigmas > 0):
        got = getattr(sigmas, "shape", sigmas)
        raise ValueError(f"sigmas must be a (L,) tensor of positive noise levels; got {got!r}")
    if sigmas.numel() > 1 and not torch.all(sigmas[1:] < sigmas[:-1]):
        raise ValueError("sigmas must be strictly decreasing (sigma_1 > ... > sigma_L)")
    return sigmas.double().cpu()


def _check_levels(level: object, batch: int, n_levels: int) -> None:
    """level must be a (B,) integer tensor of noise-level indices in [0, L - 1]."""
    if (not isinstance(level, Tensor) or level.dtype.is_floating_point or level.dtype == torch.bool
            or level.shape != (batch,)):
        got = tuple(level.shape) if isinstance(level, Tensor) else type(level).__name__
        raise ValueError(f"level must be a ({batch},) integer tensor of noise-level indices; got {got}")
    if batch and (int(level.min()) < 0 or int(level.max()) >= n_levels):
        raise ValueError(f"level must hold indices in [0, {n_levels - 1}] (one per noise level); "
                         f"got values from {int(level.min())} to {int(level.max())}")


def dsm_loss(
    model: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    sigmas: Tensor,
    *,
    generator: torch.Generator | None = None,
    level: Tensor | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """Denoising score matching over the levels: mean of (z_hat(x0 + sigma_i z, i) - z)^2.

    x0: (B, d); unless given, level (B,) ~ Uniform{0..L-1} and then z (B, d) are drawn from
    ``generator``. Returns a scalar that carries gradients; its minimiser is
    z_hat = E[z | x~] = -sigma_i grad log q_sigma_i(x~).
    """
    sigmas = _check_sigmas(sigmas)
    x0 = batch_tensor("x0", x0, finite=True)
    generator_or_none("generator", generator)
    if level is None:
        level = torch.randint(0, sigmas.numel(), (x0.shape[0],), generator=generator)
    _check_levels(level, x0.shape[0], sigmas.numel())
    noise = noise_like(x0, generator) if noise is None else same_shape("noise", noise, x0, "x0")
    sigma = sigmas[level.cpu()].to(device=x0.device, dtype=x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))  # (B, 1)
    z_hat = model(x0 + sigma * noise, level.to(x0.device))
    if z_hat.shape != x0.shape:
        raise ValueError(f"the model must return z_hat with the shape of x0 {tuple(x0.shape)}; "
                         f"got {tuple(z_hat.shape)}")
    return (z_hat - noise).pow(2).mean()


class DenoisingScoreMatching(Objective):
    """:func:`dsm_loss` over the noise levels ``sigmas`` (L,), for ``train.fit``: a batch of points
    x0, a level and the noise drawn from the generator per point."""

    name = "denoising_score_matching"

    def __init__(self, sigmas: Tensor):
        self.sigmas = _check_sigmas(sigmas)

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator) -> Tensor:
        return dsm_loss(net, batch[0], self.sigmas, generator=generator)


def train_dsm(
    model: nn.Module,
    points: Tensor,
    sigmas: Tensor,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Fit a noise-conditional network with :func:`dsm_loss` on points (N, d); returns the losses.

    ``train.fit`` with :class:`DenoisingScoreMatching` and a short recipe, enough for 2-D toys (a
    few thousand steps of an ``MLPDenoiser`` in seconds): Adam, a half-cosine learning-rate decay,
    no warm-up, no clipping, no EMA; the model ends in eval mode. Randomness (batches, levels,
    noise) from ``generator`` (seed 0 when None).
    """
    run = fit(model, DenoisingScoreMatching(sigmas), points, steps=steps, batch_size=batch_size, lr=lr,
              warmup_steps=0, grad_clip=None, ema_decay=None, optimizer="adam", generator=generator, progress=False)
    return run.losses


def learned_score(model: Callable[[Tensor, Tensor], Tensor], sigmas: Tensor) -> ScoreFn:
    """``score_fn(x, level)`` from a network trained with :func:`dsm_loss`: -z_hat / sigma_level. x: (B, d)."""
    sigmas = _check_sigmas(sigmas)

    @torch.no_grad()
    def score_fn(x: Tensor, level: int) -> Tensor:
        x = batch_tensor("x", x, finite=True)
        level = int_in_range("level", level, 0, sigmas.numel() - 1, hint="one index per noise level")
        levels = torch.full((x.shape[0],), int(level), dtype=torch.long, device=x.device)
        z_hat = model(x.to(next(model.parameters()).dtype) if isinstance(model, nn.Module) else x, levels)
        return convert(z_hat.to(x.dtype), "eps", "score", x, 1.0, float(sigmas[level]))

    return score_fn


def mixture_score(mixture: GaussianMixture, x: Tensor, sigma: float) -> Tensor:
    """The exact score of a Gaussian mixture plus N(0, sigma^2 I) noise at x: (B, d) -> (B, d) float64.

    Uses the oracle: x = x0 + sigma z is sqrt(1 + sigma^2) times the DDPM sample
    x' = sqrt(abar) x0 + sqrt(1 - abar) z with abar = 1 / (1 + sigma^2), so
    grad log q(x) = sqrt(abar) grad log q'(sqrt(abar) x), with q' the oracle's noised law at abar
    (a one-step schedule with beta = 1 - abar).
    """
    sigma = finite_float("sigma", sigma, 0.0, low_open=True)
    x = batch_tensor("x", x, finite=True)
    abar = 1.0 / (1.0 + sigma**2)
    one_step = Schedule.from_betas(torch.tensor([1.0 - abar], dtype=torch.float64))
    score, _ = mixture.score_and_eps(x.double() * math.sqrt(abar), 0, one_step)
    return score * math.sqrt(abar)


@renamed_arguments(score="model", n_steps="steps")
@torch.no_grad()
def langevin(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Unadjusted Langevin dynamics on the score ``model(x)``: ``steps`` of
    x <- x + (a / 2) model(x) + sqrt(a) z. x: (B, d) -> (B, d)."""
    a = finite_float("step_size", step_size, 0.0, low_open=True)
    int_in_range("steps", steps, 1, MAX_STEPS, hint="the documented bound _checks.MAX_STEPS")
    generator_or_none("generator", generator)
    x = batch_tensor("x", x, finite=True).clone()
    for step in range(steps):
        x = x + 0.5 * a * model(x).to(x.dtype) + math.sqrt(a) * noise_like(x, generator)
        if not bool(torch.isfinite(x).all()):
            raise NonFiniteSampleError(
                f"the Langevin state became NaN or infinite at step {step} of {steps} (step_size {a:.4g}); "
                "check the score, or take a smaller step_size"
            )
    return x


@renamed_arguments(score_fn="model", n_steps_each="steps_per_level")
@torch.no_grad()
def annealed_langevin(
    model: ScoreFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    steps_per_level: int = 100,
    step_size: float = 2e-5,
    denoise: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1). x: (B, d) start -> (B, d) samples.

    ``model(x, i)`` is the score at noise level i (a ``score_fn``: :func:`learned_score`, or the
    exact :func:`mixture_score`). For each level i (largest first): ``steps_per_level`` Langevin
    steps with a_i = step_size * sigma_i^2 / sigma_L^2 on ``model(x, i)``; Algorithm 1 returns
    that last state, a sample of the data noised at sigma_L (``denoise=False``). With ``denoise``
    (the default) the result is finally replaced by Tweedie's E[x | x~] = x~ + sigma_L^2
    model(x~, L - 1), removing the last level's noise: the final denoising step that came later
    (Jolicoeur-Martineau et al., arXiv 2020, ICLR 2021), not part of the 2019 algorithm.
    """
    sigmas = _check_sigmas(sigmas)
    finite_float("step_size", step_size, 0.0, low_open=True)
    int_in_range("steps_per_level", steps_per_level, 1, MAX_STEPS, hint="the documented bound _checks.MAX_STEPS")
    last = sigmas.numel() - 1
    for i, sigma in enumerate(sigmas.tolist()):
        a = step_size * sigma**2 / sigmas[last].item() ** 2
        x = langevin(lambda y, i=i: model(y, i), x, step_size=a, steps=steps_per_level, generator=generator)
    if denoise:
        x = x + sigmas[last].item() ** 2 * model(x, last).to(x.dtype)
    return x

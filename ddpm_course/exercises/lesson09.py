"""Lesson 09 (latent diffusion): the VAE's KL term, the reparameterised latent, the scale factor, a cost.

| exercise              | the learner writes                                         | reference                     |
|-----------------------|------------------------------------------------------------|-------------------------------|
| ``09.kl_term``        | ``my_kl(mean, logvar) -> (B,)``                            | ``autoencoder.kl_divergence`` |
| ``09.reparameterise`` | ``my_latent(mean, logvar, eps) -> z``                      | mean + exp(logvar / 2) * eps  |
| ``09.scale_factor``   | ``my_scale_factor(latents) -> float``                      | 1 / std of every entry        |
| ``09.pass_ratio``     | how many times cheaper a U-Net pass is on a 64x64x4 latent | 512 * 512 / (64 * 64) = 64    |
|                       | than on a 512x512x3 image, cost proportional to H * W      |                               |

``mean``, ``logvar`` and ``eps`` are float64 tensors (B, c, h, w); the KL is summed over every
latent entry of an image. The scale factor may be returned as a float or a 0-d tensor. The hidden
cases (``ddpm-course grade --hidden``) use other latent shapes, spreads and means.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..autoencoder import kl_divergence
from . import Case, FunctionExercise, Mistake, NumberExercise, Verdict, register

# ----------------------------------------------------------------------------------------------
# 09.kl_term: KL(N(mean, exp(logvar)) || N(0, I)) per image


LATENTS = (((3, 4, 2, 2), "a batch of 3 latents 4x2x2"), ((1, 2, 8, 8), "one latent 2x8x8"),
           ((5, 1, 1, 1), "five one-number latents"))
HIDDEN_LATENTS = (((2, 3, 4, 4), "a batch of 2 latents 3x4x4"), ((4, 8, 1, 1), "four latents 8x1x1"),
                  ((1, 1, 3, 5), "one latent 1x3x5"), ((6, 2, 2, 1), "a batch of 6 latents 2x2x1"))


def _latent_cases(generator: torch.Generator, with_eps: bool = False, hidden: bool = False) -> list[Case]:
    cases = []
    for shape, label in HIDDEN_LATENTS if hidden else LATENTS:
        mean = torch.randn(shape, generator=generator, dtype=torch.float64)
        logvar = torch.randn(shape, generator=generator, dtype=torch.float64) - (0.5 if hidden else 1.0)
        extra = (torch.randn(shape, generator=generator, dtype=torch.float64),) if with_eps else ()
        cases.append(Case((mean, logvar, *extra), {}, label))
    zeros = torch.zeros((3, 2, 2, 1) if hidden else (2, 3, 1, 1), dtype=torch.float64)
    extra = (torch.ones_like(zeros),) if with_eps else ()
    cases.append(Case((zeros, zeros.clone(), *extra), {}, "q = N(0, 1) exactly (KL = 0)"))
    return cases


def _kl_entries(mean: Tensor, logvar: Tensor) -> Tensor:
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)


register(FunctionExercise(
    name="09.kl_term",
    reference=kl_divergence,
    cases=_latent_cases,
    hidden_cases=lambda g: _latent_cases(g, hidden=True),
    mistakes=(
        Mistake("the KL of two Gaussians has a factor 1/2 in front: (mu^2 + s^2 - 1 - log s^2) / 2",
                lambda m, lv: 2 * kl_divergence(m, lv)),
        Mistake("exp(logvar) is the variance s^2, and the formula needs the variance; you used the std exp(logvar / 2)",
                lambda m, lv: (0.5 * (m.square() + (0.5 * lv).exp() - 1.0 - lv)).flatten(1).sum(1)),
        Mistake("the log term is subtracted: - log s^2 = - logvar (it makes a too-small variance costly)",
                lambda m, lv: (0.5 * (m.square() + lv.exp() - 1.0 + lv)).flatten(1).sum(1)),
        Mistake("the latent entries are independent, so their KLs add: sum over every entry of an image, "
                "do not average",
                lambda m, lv: _kl_entries(m, lv).flatten(1).mean(1)),
        Mistake("one number per image: sum over the latent entries but keep the batch dimension (B,)",
                lambda m, lv: _kl_entries(m, lv).sum()),
    ),
    rtol=1e-8,
    atol=1e-10,
))

# ----------------------------------------------------------------------------------------------
# 09.reparameterise: z = mean + std * eps


register(FunctionExercise(
    name="09.reparameterise",
    reference=lambda m, lv, eps: m + (0.5 * lv).exp() * eps,
    cases=lambda g: _latent_cases(g, with_eps=True),
    hidden_cases=lambda g: _latent_cases(g, with_eps=True, hidden=True),
    mistakes=(
        Mistake("scale eps by the standard deviation exp(logvar / 2), not by the variance exp(logvar)",
                lambda m, lv, eps: m + lv.exp() * eps),
        Mistake("logvar is a log: the standard deviation is exp(logvar / 2), not logvar itself",
                lambda m, lv, eps: m + lv * eps),
        Mistake("the sample is centred on the mean: z = mean + std * eps",
                lambda m, lv, eps: (0.5 * lv).exp() * eps),
    ),
    rtol=1e-8,
    atol=1e-10,
))

# ----------------------------------------------------------------------------------------------
# 09.scale_factor: 1 / std of the latents


class _NumberFunctionExercise(FunctionExercise):
    """A function exercise whose answer is one number (a float or a 0-d tensor)."""

    def verdict(self, answer: Callable) -> Verdict:
        if not callable(answer):
            return super().verdict(answer)
        return super().verdict(lambda *args: float(answer(*args)))


SPREADS = ((5.0, 0.0, (64, 4, 8, 8)), (0.2, 0.3, (32, 4, 8, 8)), (1.0, -1.0, (16, 2, 16, 16)))
HIDDEN_SPREADS = ((3.0, 0.5, (48, 4, 4, 4)), (0.18, 0.0, (40, 3, 8, 8)), (2.0, -2.0, (24, 8, 4, 4)))


def _scale_cases(generator: torch.Generator, spreads=SPREADS, channels=(0.5, 1.0, 2.0, 4.0)) -> list[Case]:
    cases = []
    for scale, shift, shape in spreads:
        z = torch.randn(shape, generator=generator, dtype=torch.float64) * scale + shift
        cases.append(Case((z,), {}, f"latents {shape} with std about {scale:g} and mean about {shift:g}"))
    per_channel = torch.randn(64, len(channels), 8, 8, generator=generator, dtype=torch.float64) * torch.tensor(
        channels, dtype=torch.float64)[:, None, None]
    cases.append(Case((per_channel,), {}, f"latents whose {len(channels)} channels have different spreads"))
    return cases


register(_NumberFunctionExercise(
    name="09.scale_factor",
    reference=lambda z: 1.0 / z.std().item(),
    cases=_scale_cases,
    hidden_cases=lambda g: _scale_cases(g, HIDDEN_SPREADS, channels=(3.0, 0.25, 1.0)),
    mistakes=(
        Mistake("the factor multiplies the latents to give them std 1, so it is 1 / std, not std",
                lambda z: z.std().item()),
        Mistake("1 / variance makes the std 1 / std, not 1; divide by the standard deviation",
                lambda z: 1.0 / z.var().item()),
        Mistake("the spread around the mean is the std; the root mean square includes the mean "
                "(Stable Diffusion's 0.18215 is 1 / std)",
                lambda z: 1.0 / z.square().mean().sqrt().item()),
        Mistake("one factor for all channels, from the std of every entry together, not the mean of per-channel stds",
                lambda z: 1.0 / z.transpose(0, 1).flatten(1).std(1).mean().item()),
    ),
    rtol=1e-3,
    atol=0.0,
))

# ----------------------------------------------------------------------------------------------
# 09.pass_ratio: positions, not values


register(NumberExercise(
    name="09.pass_ratio",
    answer=lambda: (512 * 512) / (64 * 64),
    mistakes=(
        Mistake("a convolution's cost follows the number of positions H * W (its channel counts are the "
                "network's, not the input's); you divided the numbers of values H * W * C",
                lambda: (512 * 512 * 3) / (64 * 64 * 4)),
        Mistake("the side shrinks 8 times, so the number of positions shrinks 8 * 8 times",
                lambda: 512 / 64),
    ),
    rtol=1e-6,
))

"""Lesson 09 (latent diffusion): the VAE's KL term, the scale factor, the whole latent pipeline
(the reparameterised latent included), a cost.

| exercise              | the learner writes                                         | reference                     |
|-----------------------|------------------------------------------------------------|-------------------------------|
| ``09.latent_pipeline``| ``my_pipeline(encode, decode, x, eps, z_sampled, scale)``  | :func:`latent_pipeline`       |
|                       | -> (training latents, generated images)                    |                               |
| ``09.kl_term``        | ``my_kl(mean, logvar) -> (B,)``                            | ``autoencoder.kl_divergence`` |
| ``09.scale_factor``   | ``my_scale_factor(latents) -> float``                      | 1 / std of every entry        |
| ``09.pass_ratio``     | how many times cheaper a U-Net pass is on a 64x64x4 latent | 512 * 512 / (64 * 64) = 64    |
|                       | than on a 512x512x3 image, cost proportional to H * W      |                               |

``mean``, ``logvar`` and ``eps`` are float64 tensors (B, c, h, w); the KL is summed over every
latent entry of an image. The scale factor may be returned as a float or a 0-d tensor. Answers
computed in float32 pass: the tolerances (relative 1e-5) sit above float32's rounding.

In ``09.latent_pipeline``, ``encode(x) -> (mean, logvar)`` and ``decode(z) -> images`` are a
small fixed "VAE" (a linear map and a tanh), ``x`` (B, 1, 4, 4) images, ``eps`` the noise of
the reparameterised latent, ``z_sampled`` latents as a diffusion model trained on scaled
latents returns them (in the scaled space), ``scale`` the VAE's scale factor. The answer
returns the latents the diffusion model trains on, (mean + std * eps) * scale, and the images,
decode(z_sampled / scale); the classic mistake is forgetting to unscale before decoding.
The hidden cases (``ddpm-course grade --hidden``) use other latent shapes, spreads and means.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..autoencoder import kl_divergence
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, Verdict, register

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
    rtol=1e-5,
    atol=1e-6,
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

# ----------------------------------------------------------------------------------------------
# 09.latent_pipeline: encode, scale ... sample, unscale, decode

_ENC = torch.linspace(-1.0, 1.0, 16 * 8, dtype=torch.float64).reshape(8, 16).sin()  # (2 * 4 latent values, 16 px)
_DEC = torch.linspace(-2.0, 2.0, 4 * 16, dtype=torch.float64).reshape(16, 4).cos()  # (16 px, 4 latent values)


def toy_encode(x: Tensor) -> tuple[Tensor, Tensor]:
    """A fixed 'encoder': (B, 1, 4, 4) -> mean, logvar (B, 4, 1, 1)."""
    h = x.flatten(1) @ _ENC.to(x.dtype).T  # (B, 8)
    return h[:, :4].reshape(-1, 4, 1, 1), (h[:, 4:] - 1.0).reshape(-1, 4, 1, 1)


def toy_decode(z: Tensor) -> Tensor:
    """A fixed 'decoder': (B, 4, 1, 1) -> (B, 1, 4, 4) in (-1, 1)."""
    return torch.tanh(z.flatten(1) @ _DEC.to(z.dtype).T).reshape(-1, 1, 4, 4)


def latent_pipeline(encode, decode, x: Tensor, eps: Tensor, z_sampled: Tensor, scale: float,
                    unscale: bool = True) -> tuple[Tensor, Tensor]:
    """(training latents (mean + std eps) * scale, generated images decode(z_sampled / scale))."""
    mean, logvar = encode(x)
    z_train = (mean + (0.5 * logvar).exp() * eps) * scale
    return z_train, decode(z_sampled / scale if unscale else z_sampled)


def _pipeline_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    cases = []
    for b, scale in ((4, 1.3), (1, 0.1), (6, 2.5)) if hidden else ((3, 0.25), (5, 4.0), (2, 0.7)):
        x = torch.rand(b, 1, 4, 4, generator=generator, dtype=torch.float64) * 2 - 1
        eps = torch.randn(b, 4, 1, 1, generator=generator, dtype=torch.float64)
        z_sampled = torch.randn(b, 4, 1, 1, generator=generator, dtype=torch.float64)
        cases.append(Case((toy_encode, toy_decode, x, eps, z_sampled, scale), {}, f"batch {b}, scale {scale:g}"))
    return cases


def _pipeline_with(encode, decode, x, eps, z_sampled, scale, *, train_scale, decode_scale, std_power=0.5):
    mean, logvar = encode(x)
    return (mean + (std_power * logvar).exp() * eps) * train_scale, decode(z_sampled * decode_scale)


register(FunctionExercise(
    name="09.latent_pipeline",
    reference=latent_pipeline,
    cases=_pipeline_cases,
    hidden_cases=lambda g: _pipeline_cases(g, hidden=True),
    mistakes=(
        Mistake("the diffusion model's samples live in the scaled space: divide them by the scale factor "
                "before decoding (the classic forgotten unscale)",
                lambda e, d, x, eps, z, s: latent_pipeline(e, d, x, eps, z, s, unscale=False)),
        Mistake("unscaling divides by the scale factor; you multiplied by it a second time",
                lambda e, d, x, eps, z, s: _pipeline_with(e, d, x, eps, z, s, train_scale=s, decode_scale=s)),
        Mistake("the diffusion model trains on scaled latents: multiply the VAE's latents by the scale factor",
                lambda e, d, x, eps, z, s: _pipeline_with(e, d, x, eps, z, s, train_scale=1.0, decode_scale=1 / s)),
        Mistake("the scale factor multiplies on the way in and divides on the way out; you swapped them",
                lambda e, d, x, eps, z, s: _pipeline_with(e, d, x, eps, z, s, train_scale=1 / s, decode_scale=s)),
        Mistake("the latent's standard deviation is exp(logvar / 2), not exp(logvar)",
                lambda e, d, x, eps, z, s: _pipeline_with(e, d, x, eps, z, s, train_scale=s, decode_scale=1 / s,
                                                          std_power=1.0)),
    ),
    rtol=1e-5,
    atol=1e-6,
))

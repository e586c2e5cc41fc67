"""Lesson 04 (the U-Net): the sinusoidal time embedding, a parameter count, and one number.

| exercise                  | the learner writes                          | reference                              |
|---------------------------|---------------------------------------------|----------------------------------------|
| ``04.sinusoidal``         | ``my_embedding(t, dim) -> (B, dim)``        | ``models.sinusoidal_embedding``        |
| ``04.conv_params``        | ``my_conv_params(c_in, c_out, k) -> int``   | ``count_parameters(nn.Conv2d(...))``   |
| ``04.simple_unet_params`` | the parameter count of a small SimpleUNet   | ``count_parameters``                   |

The embedding is ``[sin(t w_0), ..., sin(t w_{d/2-1}), cos(t w_0), ..., cos(t w_{d/2-1})]`` with
``w_k = exp(-k / (d/2 - 1) * log 10000)``: the fastest frequency is 1 rad/step, the slowest 1e-4.
The reference computes in float32, so the embedding is compared to 1e-4. The hidden cases
(``ddpm-course grade --hidden``) use other dimensions, steps and layer sizes.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..models import SimpleUNet, SimpleUNetConfig, count_parameters, sinusoidal_embedding
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register


def _freqs(half: int, denominator: float) -> Tensor:
    return torch.exp(-torch.arange(half, dtype=torch.float64) / denominator * math.log(10000.0))  # (half,)


def _embed(t: Tensor, dim: int, denominator=None, order="sin-cos", outer=True) -> Tensor:
    half = dim // 2
    w = _freqs(half, half - 1 if denominator is None else denominator(half))
    args = t.double()[:, None] * w[None, :] if outer else t.double() * w  # (B, half)
    sin, cos = torch.sin(args), torch.cos(args)
    if order == "interleaved":
        return torch.stack([sin, cos], dim=-1).reshape(len(t), dim)  # (B, dim): sin, cos, sin, cos, ...
    return torch.cat([cos, sin] if order == "cos-sin" else [sin, cos], dim=-1)  # (B, dim)


def _cases(generator: torch.Generator) -> list[Case]:
    return [
        Case((torch.tensor([0, 1, 10, 500, 999]), 16), {}, "t = [0, 1, 10, 500, 999], dim = 16"),
        Case((torch.randint(0, 1000, (7,), generator=generator), 128), {}, "7 random t, dim = 128"),
        Case((torch.tensor([3, 250]), 4), {}, "t = [3, 250], dim = 4"),
    ]


def _hidden_cases(generator: torch.Generator) -> list[Case]:
    return [
        Case((torch.tensor([999, 0, 2, 77]), 8), {}, "t = [999, 0, 2, 77], dim = 8"),
        Case((torch.randint(0, 1000, (5,), generator=generator), 64), {}, "5 random t, dim = 64"),
        Case((torch.randint(0, 1000, (1,), generator=generator), 6), {}, "one random t, dim = 6"),
        Case((torch.tensor([1, 40, 600]), 32), {}, "t = [1, 40, 600], dim = 32"),
    ]


register(FunctionExercise(
    name="04.sinusoidal",
    reference=sinusoidal_embedding,
    cases=_cases,
    hidden_cases=_hidden_cases,
    mistakes=(
        Mistake("the exponents run k / (d/2), as in the Transformer paper; this lesson spaces them k / (d/2 - 1) "
                "so that the slowest frequency is exactly 1/10000 (torch.linspace(0, log(10000), d/2))",
                lambda t, d: _embed(t, d, denominator=lambda half: half)),
        Mistake("sines first, then cosines: [sin(t w), cos(t w)]", lambda t, d: _embed(t, d, order="cos-sin")),
        Mistake("the sines and cosines are interleaved; put all sines first, then all cosines (torch.cat)",
                lambda t, d: _embed(t, d, order="interleaved")),
        Mistake("broadcasting over the batch is lost: t (B,) times the frequencies (d/2,) needs an outer product, "
                "t[:, None] * w[None, :] of shape (B, d/2)", lambda t, d: _embed(t, d, outer=False)),
    ),
    rtol=1e-4,
    atol=1e-4,
))


def _conv_params(c_in: int, c_out: int, k: int) -> int:
    return count_parameters(nn.Conv2d(c_in, c_out, k))


def _conv_cases(layers) -> list[Case]:
    return [Case((cin, cout, k), {}, f"c_in = {cin}, c_out = {cout}, k = {k}") for cin, cout, k in layers]


register(FunctionExercise(
    name="04.conv_params",
    reference=_conv_params,
    cases=lambda g: _conv_cases(((3, 64, 3), (64, 128, 3), (96, 32, 1), (1, 8, 5))),
    hidden_cases=lambda g: _conv_cases(((4, 16, 3), (32, 32, 1), (2, 5, 7), (128, 64, 3), (1, 1, 2))),
    mistakes=(
        Mistake("the biases are missing: one per output channel", lambda ci, co, k: ci * co * k * k),
        Mistake("a k x k kernel has k^2 weights per input-output pair", lambda ci, co, k: ci * co * k + co),
        Mistake("one bias per output channel, not per input channel", lambda ci, co, k: ci * co * k * k + ci),
    ),
    rtol=0.0,
    atol=0.0,
))


def _simple_unet(**changes) -> int:
    return count_parameters(SimpleUNet(SimpleUNetConfig(in_channels=1, base_channels=32, time_dim=64, **changes)))


def _without(*names: str) -> int:
    model = SimpleUNet(SimpleUNetConfig(in_channels=1, base_channels=32, time_dim=64))
    return count_parameters(model) - sum(count_parameters(getattr(model, n)) for n in names)


def _skip_params() -> int:
    model = SimpleUNet(SimpleUNetConfig(in_channels=1, base_channels=32, time_dim=64))
    return sum(count_parameters(m.skip) for m in (model.down1, model.down2, model.bottleneck, model.up1))


register(NumberExercise(
    name="04.simple_unet_params",
    answer=_simple_unet,
    mistakes=(
        Mistake("the time embedding's MLP (two d x d linear layers) counts too", lambda: _without("time_embed")),
        Mistake("the 1x1 skip convolutions count too, wherever a block changes the channel count",
                lambda: _simple_unet() - _skip_params()),
    ),
    rtol=0.0,
    atol=0.5,
))

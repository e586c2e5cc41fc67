"""Reference answers to lesson 04's exercises ("Your turn" in notebooks/04_unet.ipynb)."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def embedding(t: Tensor, dim: int) -> Tensor:
    """[sin(t w), cos(t w)] with w_k = exp(-k / (dim/2 - 1) * log 10000): (B,) -> (B, dim)."""
    half = dim // 2
    w = torch.exp(-torch.arange(half, dtype=torch.float64) / (half - 1) * math.log(10000.0))  # (half,)
    args = t.double()[:, None] * w[None, :]  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def conv_params(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def simple_unet_params(C: int = 1, c: int = 32, d: int = 64) -> int:
    """Lesson 04's count by hand: time MLP, four residual blocks (1x1 skips where channels change), output conv."""
    def linear(din, dout):
        return din * dout + dout

    def block(cin, cout):
        return conv_params(cin, cout, 3) + conv_params(cout, cout, 3) + linear(d, cout) + (
            conv_params(cin, cout, 1) if cin != cout else 0)

    return (2 * linear(d, d) + block(C, c) + block(c, 2 * c) + block(2 * c, 2 * c) + block(3 * c, c)
            + conv_params(c, C, 3))


ANSWERS = {"04.sinusoidal": embedding, "04.conv_params": conv_params, "04.simple_unet_params": simple_unet_params()}

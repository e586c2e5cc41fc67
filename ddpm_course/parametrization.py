"""One network, five readings: noise, clean image, score, v and velocity are the same information.

Every Gaussian noising path in the course writes a noisy sample as

    x_t = alpha x0 + sigma eps,    eps ~ N(0, I),

with a signal scale ``alpha`` and a noise scale ``sigma``: DDPM's variance-preserving path has
alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t) (:func:`vp`); the flow-matching / rectified-flow
path has alpha = 1 - t, sigma = t for t in [0, 1] (:func:`linear`). Given x_t, one estimate of
any of the quantities below determines all the others, because x_t ties eps and x0 together:

| kind         | math                         | in terms of (eps, x0)          | paper                        |
|--------------|------------------------------|--------------------------------|------------------------------|
| ``eps``      | E[eps | x_t]                 | eps                            | Ho et al. 2020               |
| ``x0``       | E[x0 | x_t]                  | (x_t - sigma eps) / alpha      | Tweedie; Efron 2011          |
| ``score``    | grad log q_t(x_t)            | -eps / sigma                   | Vincent 2011; Song & Ermon 2019 |
| ``v``        | E[alpha eps - sigma x0 | x_t] | alpha eps - sigma x0           | Salimans & Ho 2022           |
| ``velocity`` | E[eps - x0 | x_t]            | eps - x0                       | Lipman et al. 2023; Liu et al. 2023 |

The conversions are linear in the estimate and exact for the *optimal* predictors (each is a
conditional expectation, and expectations are linear). Tweedie's formula is the ``score -> x0``
row: E[x0 | x_t] = (x_t + sigma^2 grad log q_t(x_t)) / alpha. ``v`` is the velocity of the VP
path in the angle phi with alpha = cos phi, sigma = sin phi; ``velocity`` is the velocity
d x_t / dt of the linear path. Both are defined for any (alpha, sigma) here.

| symbol  | code     | shape                                         |
|---------|----------|-----------------------------------------------|
| x_t     | ``x_t``  | (B, ...)                                      |
| alpha   | ``alpha``| float, or a tensor broadcastable to x_t: (B,) |
| sigma   | ``sigma``| same as alpha                                 |

Inputs may be float32 or float64; the result has the estimate's dtype. alpha and sigma must be
> 0 (at alpha = 0 the data is gone and x0 cannot be recovered from eps; at sigma = 0 the
noise is gone and eps cannot be recovered from x0).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["KINDS", "convert", "from_eps", "linear", "to_eps", "tweedie_x0", "vp"]

KINDS = ("eps", "x0", "score", "v", "velocity")

Scale = float | Tensor


def vp(abar: Scale) -> tuple[Scale, Scale]:
    """(alpha, sigma) = (sqrt(abar), sqrt(1 - abar)) of DDPM's path; abar a float or a (B,) tensor."""
    if isinstance(abar, Tensor):
        return abar.sqrt(), (1 - abar).sqrt()
    return math.sqrt(abar), math.sqrt(1 - abar)


def linear(t: Scale) -> tuple[Scale, Scale]:
    """(alpha, sigma) = (1 - t, t) of the flow-matching path x_t = (1 - t) x0 + t eps."""
    return 1 - t, t


def _scale(value: Scale, x_t: Tensor, name: str) -> Scale:
    """A float stays a float; a (B,) or (B, 1, ..., 1) tensor becomes (B, 1, ..., 1) in x_t's dtype."""
    if isinstance(value, Tensor):
        if value.ndim == 0:
            value = value.reshape(1)
        if value.ndim == 1 and value.shape[0] in (1, x_t.shape[0]):
            value = value.reshape(-1, *([1] * (x_t.ndim - 1)))  # (B, 1, ..., 1)
        if torch.any(value <= 0):
            raise ValueError(f"{name} must be > 0 (the path is singular where {name} = 0); "
                             f"got min {value.min().item():.3g}")
        return value.to(device=x_t.device, dtype=x_t.dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0 or a tensor of them; got {value!r}")
    return float(value)


def _check_kind(name: str, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"{name} must be one of {KINDS}; got {kind!r}")


def to_eps(kind: str, value: Tensor, x_t: Tensor, alpha: Scale, sigma: Scale) -> Tensor:
    """The noise estimate eps that ``value`` (an estimate of ``kind``) stands for at x_t. Shapes (B, ...)."""
    _check_kind("kind", kind)
    if not isinstance(value, Tensor) or not isinstance(x_t, Tensor) or value.shape != x_t.shape:
        raise ValueError("value and x_t must be tensors of the same shape (B, ...); "
                         f"got {getattr(value, 'shape', value)!r} "
                         f"and {getattr(x_t, 'shape', x_t)!r}")
    a, s = _scale(alpha, x_t, "alpha"), _scale(sigma, x_t, "sigma")
    if kind == "eps":
        return value
    if kind == "x0":
        return (x_t - a * value) / s
    if kind == "score":
        return -s * value
    if kind == "v":  # alpha v + sigma x_t = (alpha^2 + sigma^2) eps
        return (a * value + s * x_t) / (a * a + s * s)
    return (x_t + a * value) / (a + s)  # velocity u = eps - x0: x_t = alpha (eps - u) + sigma eps


def from_eps(kind: str, eps: Tensor, x_t: Tensor, alpha: Scale, sigma: Scale) -> Tensor:
    """The estimate of ``kind`` that the noise estimate ``eps`` stands for at x_t. Shapes (B, ...)."""
    _check_kind("kind", kind)
    if not isinstance(eps, Tensor) or not isinstance(x_t, Tensor) or eps.shape != x_t.shape:
        raise ValueError(f"eps and x_t must be tensors of the same shape (B, ...); got {getattr(eps, 'shape', eps)!r} "
                         f"and {getattr(x_t, 'shape', x_t)!r}")
    a, s = _scale(alpha, x_t, "alpha"), _scale(sigma, x_t, "sigma")
    if kind == "eps":
        return eps
    if kind == "score":
        return -eps / s
    x0 = (x_t - s * eps) / a
    if kind == "x0":
        return x0
    if kind == "v":
        return a * eps - s * x0
    return eps - x0


def convert(value: Tensor, source: str, target: str, x_t: Tensor, alpha: Scale, sigma: Scale) -> Tensor:
    """Read an estimate of ``source`` as one of ``target`` (both in :data:`KINDS`) at x_t = alpha x0 + sigma eps.

    value, x_t: (B, ...); alpha, sigma: floats or (B,) tensors. ``convert(eps_hat, "eps", "score",
    x_t, *vp(abar))`` is -eps_hat / sqrt(1 - abar), the score a noise predictor implies.
    """
    _check_kind("source", source)
    _check_kind("target", target)
    return from_eps(target, to_eps(source, value, x_t, alpha, sigma), x_t, alpha, sigma)


def tweedie_x0(x_t: Tensor, score: Tensor, alpha: Scale, sigma: Scale) -> Tensor:
    """Tweedie's formula: E[x0 | x_t] = (x_t + sigma^2 grad log q_t(x_t)) / alpha. Shapes (B, ...).

    Written out on its own because it is the bridge between score matching and denoising; it
    equals ``convert(score, "score", "x0", x_t, alpha, sigma)``.
    """
    if not isinstance(score, Tensor) or not isinstance(x_t, Tensor) or score.shape != x_t.shape:
        raise ValueError("score and x_t must be tensors of the same shape (B, ...); "
                         f"got {getattr(score, 'shape', score)!r} "
                         f"and {getattr(x_t, 'shape', x_t)!r}")
    a, s = _scale(alpha, x_t, "alpha"), _scale(sigma, x_t, "sigma")
    return (x_t + s * s * score) / a

"""Input checks shared by the noise predictors: clear errors instead of a shape mismatch deep inside a conv."""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import int_at_least

__all__ = ["check_image", "check_t", "check_labels", "int_at_least"]


def check_image(x: Tensor, in_channels: int, multiple: int, model: str) -> None:
    """x must be (B, in_channels, H, W) with H and W divisible by ``multiple``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor of shape (B, C, H, W); got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, {in_channels}, H, W); got {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(
            f"x has {x.shape[1]} channels but this {model} expects in_channels={in_channels}; "
            f"got shape {tuple(x.shape)}"
        )
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"x's height and width must be divisible by {multiple} for this {model} "
            f"(it halves the resolution {multiple.bit_length() - 1} time(s)); got {h}x{w}. Pad or resize, "
            f"e.g. 28x28 -> 32x32"
        )


def check_t(t: Tensor, batch: int) -> None:
    """t must be a (B,) tensor of integer or float timesteps."""
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be a tensor of shape (B,) = ({batch},); got {type(t).__name__}")
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(f"t must have shape (B,) = ({batch},), one step per sample; got {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"t must hold integer or float timesteps; got dtype {t.dtype}")


def check_labels(y: Tensor | None, batch: int, num_classes: int | None, model: str) -> None:
    """y must be None for an unconditional model, else (B,) integers in [0, num_classes]."""
    if num_classes is None:
        if y is not None:
            raise ValueError(
                f"y must be None: this {model} is unconditional (num_classes=None); "
                f"build it with num_classes set to condition on labels"
            )
        return
    if y is None:
        raise ValueError(
            f"y is required: this {model} is class-conditional (num_classes={num_classes}); "
            f"pass labels in [0, {num_classes - 1}] or the null label {num_classes}"
        )
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be an integer tensor of shape (B,); got {type(y).__name__}")
    if y.dtype.is_floating_point or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer labels; got dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(f"y must have shape (B,) = ({batch},); got {tuple(y.shape)}")
    if y.numel() and (y.min() < 0 or y.max() > num_classes):
        raise ValueError(
            f"y must lie in [0, num_classes] = [0, {num_classes}] ({num_classes} is the null label); "
            f"got values from {y.min().item()} to {y.max().item()}"
        )

"""The feature network behind every Frechet distance of the course: the digit classifier, the
objective it is trained with on ``train.fit``, its training, its shipped weights and its features.

| symbol | code                        | what it is                                                   |
|--------|-----------------------------|--------------------------------------------------------------|
| x, y   | a batch of ``Examples``     | digits (B, 1, 16, 16) in [-1, 1] and their labels (B,)       |
| s(x)   | ``_shift(x, generator)``    | each image translated by up to one pixel (background -1)     |
| L      | ``Classification.loss``     | cross-entropy of the logits of s(x) against y                |
| f(x)   | ``digit_features(images)``  | (N, 32) float64: the classifier's feature layer              |

Inception knows nothing about 16x16 digits, so the Frechet distance, precision and recall of
the course (``sample_metrics``, scored on digits by ``metrics``) compare the 32-d feature layer
of a small CNN (``models.classifier.DigitClassifier``) trained on the digits' train split.
Its weights ship in ``ddpm_course/pretrained/digit_classifier.safetensors`` (written by
``python -m ddpm_course.metrics``), so every machine gets the same features.

:func:`train_digit_classifier` is ``train.fit`` with :class:`Classification` and :data:`RECIPE`:
Adam (lr 2e-3), batch 64, no warm-up, decay, clipping or EMA, and ``batches="passes"`` (each pass over the data
cut into batches of 64, the last one shorter) with ``global_seed=seed``, so the generator's
stream is the batch orders and the shifts alone: the random stream the shipped weights were
trained with.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import int_at_least
from .data import ImageData, digits
from .models.classifier import DigitClassifier
from .sample_metrics import _check_images
from .train import Examples, Objective, fit

__all__ = ["RECIPE", "Classification", "digit_classifier", "digit_features", "train_digit_classifier"]

#: the settings of ``train.fit`` that :func:`train_digit_classifier` trains with (besides the budget,
#: the generator and ``global_seed``): what the shipped weights were trained with
RECIPE: dict[str, Any] = {"batch_size": 64, "lr": 2e-3, "optimizer": "adam", "warmup_steps": 0, "lr_decay": False,
                          "grad_clip": None, "ema_decay": None, "batches": "passes"}


def _shift(x: Tensor, generator: torch.Generator) -> Tensor:
    """Translate each image by up to one pixel (padding with the background, -1)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)  # (B, 1, H+2, W+2)
    dy, dx = torch.randint(0, 3, (2, b), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


class Classification(Objective):
    """Cross-entropy of a classifier's logits ``net(x)`` (B, num_classes) against the labels y (B,);
    with ``shift`` each image is first translated by up to one pixel (drawn from the generator),
    the digit classifier's augmentation. Data: an ImageData of grey images (N, 1, H, W) in
    [-1, 1] and integer labels (N,) in [0, num_classes). Batches are (x, y)."""

    name = "cross_entropy"

    def __init__(self, num_classes: int = 10, shift: bool = True):
        self.num_classes = int_at_least("num_classes", num_classes, 2)
        if not isinstance(shift, bool):
            raise TypeError(f"shift must be True or False; got {shift!r}")
        self.shift = shift

    def examples(self, data: Any, model: nn.Module) -> Examples:
        if not isinstance(data, ImageData):
            raise TypeError(f"data must be an ImageData (images and labels); got {type(data).__name__}")
        images = _check_images("data.images", data.images, min_count=1)
        labels = data.labels
        if not isinstance(labels, Tensor) or labels.shape != images.shape[:1] or labels.is_floating_point():
            got = f"{tuple(labels.shape)}, {labels.dtype}" if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"data.labels must be integers of shape (N,) = ({images.shape[0]},); got {got}")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"data.labels must lie in [0, {self.num_classes - 1}]; got values from "
                             f"{labels.min().item()} to {labels.max().item()}")
        return Examples(images, labels)

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator) -> Tensor:
        x, y = batch
        return F.cross_entropy(net(_shift(x, generator) if self.shift else x), y)


def train_digit_classifier(epochs: int = 20, seed: int = 0) -> DigitClassifier:
    """Train the feature network on ``digits(16, split="train")`` with one-pixel shifts:
    ``train.fit`` with :class:`Classification`, Adam, batch 64, deterministic in ``seed`` (a few
    CPU seconds). Returned in eval mode."""
    epochs = int_at_least("epochs", epochs, 1)
    seed = int_at_least("seed", seed, 0)
    train = digits(16, split="train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier()
    steps = epochs * -(-train.images.shape[0] // RECIPE["batch_size"])  # a pass ends with its shorter batch
    with torch.enable_grad():  # callers may hold torch.no_grad()
        fit(model, Classification(), train, steps=steps, generator=torch.Generator().manual_seed(seed),
            global_seed=seed, progress=False, **RECIPE)
    return model.eval()


@functools.lru_cache(maxsize=1)
def digit_classifier() -> DigitClassifier:
    """The feature network of :func:`digit_features`, in eval mode (cached: do not modify it).

    The weights shipped in ``ddpm_course/pretrained/digit_classifier.safetensors`` (written by
    ``python -m ddpm_course.metrics``; ``shipped.load_classifier``), so every machine gets the same
    features; without that file it trains them with :func:`train_digit_classifier`.
    """
    from .shipped import load_classifier

    try:
        return load_classifier()
    except FileNotFoundError:
        return train_digit_classifier()


@torch.no_grad()
def digit_features(images: Tensor, batch_size: int = 512) -> Tensor:
    """Features of the digit classifier: images (N, 1, H, W) in [-1, 1] -> (N, 32) float64.

    Images of another size are resized to 16x16 first (bilinear, antialiased).
    """
    images = _check_images("images", images, min_count=1)
    batch_size = int_at_least("batch_size", batch_size, 1)
    if images.shape[-2:] != (16, 16):
        images = F.interpolate(images, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    model = digit_classifier()
    feats = [model.features(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(feats).double()

"""Data for the course, offline first.

| function          | returns                                        | source                              |
|-------------------|------------------------------------------------|-------------------------------------|
| ``photo``         | (3, size, size) in [-1, 1]                     | scikit-learn's sample photos        |
| ``digits``        | ``ImageData``: (N, 1, size, size), labels (N,) | scikit-learn's 1,797 8x8 digits     |
| ``toy2d``         | (n, 2) points                                  | generated: mixture, ring, moons, swiss roll |
| ``torchvision_images`` | ``ImageData``: (N, C, 32, 32) by default  | MNIST, Fashion-MNIST, CIFAR-10 (download) |

Images are float32 in [-1, 1] with channels first, the range DDPM assumes: x_T ~ N(0, I)
has about the same scale as the data. ``to_unit`` maps them back to [0, 1] for display.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import generator_or_none, int_at_least, one_of

__all__ = ["ImageData", "PHOTOS", "photo", "digits", "TOY2D", "toy2d", "to_unit", "TORCHVISION", "torchvision_images",
           "load_images"]

PHOTOS = ("flower", "china")
TOY2D = ("mixture", "ring", "moons", "swiss_roll")
DIGITS_TEST_FRACTION = 0.2


class ImageData(NamedTuple):
    """A labelled image set: images (N, C, H, W) in [-1, 1] and labels (N,) long."""

    images: Tensor
    labels: Tensor


def to_unit(x: Tensor) -> Tensor:
    """Map images from [-1, 1] to [0, 1], clamping what a sampler overshoots."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor of images in [-1, 1]; got {type(x).__name__}")
    return ((x + 1) / 2).clamp(0, 1)


def photo(name: str = "flower", size: int = 64) -> Tensor:
    """One of scikit-learn's two sample photos, centre-cropped square and resized.

    name: "flower" or "china" (a landscape); size: output side in pixels.
    Returns (3, size, size) float32 in [-1, 1].
    """
    one_of("name", name, PHOTOS)
    int_at_least("size", size, 1)
    from sklearn.datasets import load_sample_image

    img = torch.from_numpy(load_sample_image(f"{name}.jpg").copy())  # (H, W, 3) uint8
    img = img.permute(2, 0, 1).float() / 127.5 - 1.0  # (3, H, W) in [-1, 1]
    h, w = img.shape[1:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[:, top : top + side, left : left + side]  # (3, side, side)
    img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return img.clamp(-1, 1)


def digits(size: int = 16, split: str = "all") -> ImageData:
    """scikit-learn's handwritten digits, upsampled from 8x8 to ``size`` x ``size``.

    split: "all" (1,797 images), "train" or "test" (a fixed, stratified 80/20 split that
    never changes, so a held-out set stays held out across lessons).
    Returns ImageData(images (N, 1, size, size) float32 in [-1, 1], labels (N,) long).
    """
    one_of("split", split, ("all", "train", "test"))
    int_at_least("size", size, 1)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32))[:, None] / 8.0 - 1.0  # (N, 1, 8, 8), 0..16 -> [-1, 1]
    labels = torch.from_numpy(bunch.target).long()  # (N,)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)
    if split != "all":
        is_test = _digits_test_mask(labels)
        keep = is_test if split == "test" else ~is_test
        images, labels = images[keep], labels[keep]
    return ImageData(images.contiguous(), labels)


def _digits_test_mask(labels: Tensor) -> Tensor:
    """Every (1 / DIGITS_TEST_FRACTION)-th image of each class (in file order, every fifth) is held
    out: deterministic and stratified."""
    every = round(1 / DIGITS_TEST_FRACTION)  # 5
    mask = torch.zeros_like(labels, dtype=torch.bool)
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        mask[idx[::every]] = True
    return mask


def toy2d(name: str = "mixture", n: int = 1000, generator: torch.Generator | None = None) -> Tensor:
    """Points from a 2-D toy distribution, scaled to roughly unit spread.

    name: "mixture" (the course's 8-Gaussian ring with an exact score, see ``oracle.py``),
    "ring" (a thin circle), "moons" (two interleaved half circles) or "swiss_roll".
    Returns (n, 2) float32.
    """
    one_of("name", name, TOY2D)
    int_at_least("n", n, 1)
    generator_or_none("generator", generator, cpu=True)
    if name == "mixture":
        from .oracle import ring_mixture

        return ring_mixture().sample(n, generator=generator).float()
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    if name == "ring":
        angle = 2 * math.pi * u
        pts = torch.stack([angle.cos(), angle.sin()], dim=1) + 0.03 * noise
    elif name == "moons":
        upper = torch.rand(n, generator=generator) < 0.5
        angle = math.pi * u
        x = torch.where(upper, angle.cos(), 1 - angle.cos())
        y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
        pts = torch.stack([x - 0.5, y - 0.25], dim=1) + 0.05 * noise
    else:  # swiss_roll
        angle = 1.5 * math.pi * (1 + 2 * u)
        pts = torch.stack([angle * angle.cos(), angle * angle.sin()], dim=1) / 8.0 + 0.05 * noise
    return pts.float()


# ----------------------------------------------------------------------------------------------
# Bigger data through torchvision, for learners with a network (and ideally a GPU)

TORCHVISION = ("mnist", "fashion_mnist", "cifar10")


def torchvision_images(
    name: str, root: str = "data", train: bool = True, size: int | None = None, download: bool = False
) -> ImageData:
    """MNIST, Fashion-MNIST or CIFAR-10 through torchvision, as an ImageData in [-1, 1].

    name: "mnist", "fashion_mnist" (28x28 grey) or "cifar10" (32x32 colour); root: the folder
    torchvision keeps the files in; train: the training or the test split; download: fetch the
    files when they are missing (otherwise a missing dataset raises torchvision's error).
    The 28x28 sets are padded with background (-1) to 32x32, a size every course U-Net
    accepts (it halves the resolution a few times). ``size`` then resizes (bilinear,
    antialiased) to ``size`` x ``size``; None keeps 32.
    Returns ImageData(images (N, C, S, S) float32 in [-1, 1], labels (N,) long), C = 1 or 3.
    """
    one_of("name", name, TORCHVISION)
    if size is not None:
        int_at_least("size", size, 1, hint="or None for 32")
    one_of("train", train, (True, False))
    one_of("download", download, (True, False))
    from torchvision import datasets

    if name == "cifar10":
        ds = datasets.CIFAR10(root, train=train, download=download)
        images = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2)  # (N, 3, 32, 32) uint8
    else:
        cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
        ds = cls(root, train=train, download=download)
        images = F.pad(torch.as_tensor(ds.data)[:, None], (2, 2, 2, 2))  # (N, 1, 32, 32) uint8, background 0
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    images = images.float() / 127.5 - 1.0  # [0, 255] -> [-1, 1]
    if size is not None and size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        images = images.clamp(-1, 1)
    return ImageData(images.contiguous(), labels)


def load_images(name: str, split: str = "train", root: str = "data", download: bool = False) -> ImageData:
    """A lesson's image set by name: the shipped "digits" (16x16) or a torchvision set (32x32).

    name: "digits" or one of :data:`TORCHVISION`; split: "train" or "test"; root, download:
    where the torchvision files are and whether to fetch them (see :func:`torchvision_images`;
    the digits need neither). Returns ImageData(images (N, C, S, S) in [-1, 1], labels (N,)).
    """
    one_of("name", name, ("digits", *TORCHVISION))
    one_of("split", split, ("train", "test"))
    if name == "digits":
        return digits(16, split=split)
    return torchvision_images(name, root=root, train=split == "train", download=download)

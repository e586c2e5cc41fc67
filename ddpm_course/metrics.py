"""Sample-quality metrics.

| name                 | what it measures                                                      |
|----------------------|-----------------------------------------------------------------------|
| sliced W2            | sqrt(E_theta[W2^2(theta . X, theta . Y)]) over random unit directions |
| Frechet distance     | |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of feature Gaussians |
| digits FD            | Frechet distance of digit-classifier features, samples vs held-out digits |

Sliced Wasserstein distance: Rabin, Peyre, Delon & Bernot (2011), "Wasserstein barycenter
and its application to texture mixing". In one dimension the optimal transport between two
equal-size samples matches them in sorted order, so each projection costs one sort.

Frechet distance: Dowson & Landau (1982) give the 2-Wasserstein distance between two
Gaussians; Heusel et al. (2017), "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium", apply it to Inception features (FID). Here the features come from a
small CNN trained on the digits' train split (``digit_features``), because Inception knows
nothing about 16x16 digits. A Frechet distance from a few hundred samples is biased upwards,
so ``digits_fd`` always reports it next to its floor: the distance between two real sets of
the same sizes, which a perfect generator would reach.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "sliced_wasserstein", "DigitClassifier", "train_digit_classifier", "digit_classifier", "digit_features", "frechet_distance",
    "DigitsFD", "digits_fd",
]


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance between two point clouds x, y: (n, d), same n.

    Projects both clouds on ``n_projections`` random unit directions (drawn from
    ``generator``), computes each 1-D W2^2 by sorting, and returns the square root of the mean.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must both have shape (n, d) with the same n and d; got {tuple(x.shape)} and {tuple(y.shape)}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1; got {n_projections}")
    x, y = x.detach().cpu().double(), y.detach().cpu().double()
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)  # (d, P) unit columns
    px = torch.sort(x @ theta, dim=0).values  # (n, P)
    py = torch.sort(y @ theta, dim=0).values  # (n, P)
    return ((px - py) ** 2).mean().sqrt().item()


# ----------------------------------------------------------------------------------------------
# Frechet distance on digit-classifier features


class DigitClassifier(nn.Module):
    """A small CNN for 16x16 digits: two conv/pool stages, a 32-d feature layer, 10 logits.

    x: (B, 1, 16, 16) in [-1, 1] -> logits (B, 10); ``features(x)`` -> (B, FEATURE_DIM), the
    pre-activation of the feature layer (closer to Gaussian than after the ReLU).
    """

    FEATURE_DIM = 32

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, self.FEATURE_DIM)
        self.head = nn.Linear(self.FEATURE_DIM, 10)

    def features(self, x: Tensor) -> Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 16, 8, 8)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 32, 4, 4)
        return self.fc(h.flatten(1))  # (B, FEATURE_DIM)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.features(x)))


def _shift(x: Tensor, generator: torch.Generator) -> Tensor:
    """Translate each image by up to one pixel (padding with the background, -1)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)  # (B, 1, H+2, W+2)
    dy, dx = torch.randint(0, 3, (2, b), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


CLASSIFIER_FILE = "digit_classifier.safetensors"


def train_digit_classifier(epochs: int = 20, seed: int = 0) -> DigitClassifier:
    """Train the feature network on ``digits(16, split="train")`` with one-pixel shifts:
    Adam, batch 64, deterministic in ``seed`` (a few CPU seconds). Returned in eval mode."""
    from .data import digits

    train = digits(16, split="train")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with torch.enable_grad():  # callers may hold torch.no_grad()
        _fit(model, opt, train.images, train.labels, epochs, generator)
    return model.eval()


@functools.lru_cache(maxsize=1)
def digit_classifier() -> DigitClassifier:
    """The feature network of :func:`digit_features`, in eval mode (cached: do not modify it).

    Loads the weights shipped in ``ddpm_course/pretrained/digit_classifier.safetensors``
    (written by ``python -m ddpm_course.metrics``), so every machine gets the same features;
    without that file it trains them with :func:`train_digit_classifier`.
    """
    from importlib import resources

    from safetensors.torch import load_file

    path = resources.files("ddpm_course") / "pretrained" / CLASSIFIER_FILE
    if not path.is_file():
        return train_digit_classifier()
    model = DigitClassifier()
    with resources.as_file(path) as p:
        model.load_state_dict(load_file(str(p)), strict=True)
    return model.eval()


def _fit(model: nn.Module, opt: torch.optim.Optimizer, images: Tensor, labels: Tensor, epochs: int, generator: torch.Generator) -> None:
    n = images.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, 64):
            idx = order[start : start + 64]
            loss = F.cross_entropy(model(_shift(images[idx], generator)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def _check_digit_images(images: Tensor, name: str) -> Tensor:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be grey images of shape (N, 1, H, W) in [-1, 1]; got {shape}")
    if images.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 images for a covariance; got {images.shape[0]}")
    return images


@torch.no_grad()
def digit_features(images: Tensor, batch_size: int = 512) -> Tensor:
    """Features of the digit classifier: images (N, 1, H, W) in [-1, 1] -> (N, 32) float64.

    Images of another size are resized to 16x16 first (bilinear, antialiased).
    """
    images = _check_digit_images(images, "images").detach().float().cpu()
    if images.shape[-2:] != (16, 16):
        images = F.interpolate(images, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    model = digit_classifier()
    feats = [model.features(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(feats).double()


def _sqrtm_psd(a: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    vals, vecs = torch.linalg.eigh(a)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (n, F) and (m, F).

    FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)). S_a S_b is not
    symmetric, but it is similar to S_a^(1/2) S_b S_a^(1/2), which is: the trace of its square
    root is the sum of the square roots of that symmetric matrix's eigenvalues.
    """
    for name, f in (("feats_a", feats_a), ("feats_b", feats_b)):
        if not isinstance(f, Tensor) or f.ndim != 2 or f.shape[0] < 2:
            shape = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
            raise ValueError(f"{name} must have shape (n, F) with n >= 2; got {shape}")
    if feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same feature dimension; got {feats_a.shape[1]} and {feats_b.shape[1]}")
    a, b = feats_a.detach().cpu().double(), feats_b.detach().cpu().double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (F, F), unbiased
    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    middle = (middle + middle.T) / 2  # symmetric up to rounding; make it exactly so
    tr_sqrt = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    fd = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * tr_sqrt
    return max(fd.item(), 0.0)


class DigitsFD(NamedTuple):
    """Frechet distance of samples to held-out digits; the real-vs-real floor at the same sizes
    (mean over several real sets) and its standard deviation; their ratio fd / floor (about 1
    for samples as good as real data, a few hundred for pure noise)."""

    fd: float
    floor: float
    ratio: float
    floor_std: float


def digits_fd(
    samples: Tensor, n_ref: int | None = None, generator: torch.Generator | None = None, n_floor: int = 10
) -> DigitsFD:
    """Score generated digits: samples (N, 1, H, W) in [-1, 1], 2 <= N <= 1,433.

    The reference is the held-out test split (``n_ref`` of its 364 images, all by default),
    which neither the classifier nor a model trained on the train split has seen. The floor
    is what a generator that reproduced the training distribution perfectly would score: the
    distance of N real train images to the same reference, averaged over ``n_floor`` random
    draws (drawn with ``generator``), because with a few hundred images one draw varies by
    about 30%. The samples' own distance varies as much: compare ratios with that in mind.
    """
    from .data import digits

    samples = _check_digit_images(samples, "samples")
    if isinstance(n_floor, bool) or not isinstance(n_floor, int) or n_floor < 2:
        raise ValueError(f"n_floor must be an integer >= 2; got {n_floor!r}")
    ref = digits(16, split="test").images
    train = digits(16, split="train").images
    if n_ref is not None:
        if isinstance(n_ref, bool) or not isinstance(n_ref, int) or not 2 <= n_ref <= ref.shape[0]:
            raise ValueError(f"n_ref must be an integer in [2, {ref.shape[0]}] or None (all); got {n_ref!r}")
        ref = ref[torch.randperm(ref.shape[0], generator=generator)[:n_ref]]
    n = samples.shape[0]
    if n > train.shape[0]:
        raise ValueError(f"samples can hold at most {train.shape[0]} images (the floor needs as many real ones); got {n}")
    ref_feats = digit_features(ref)
    train_feats = digit_features(train)
    fd = frechet_distance(digit_features(samples), ref_feats)
    floors = torch.tensor([
        frechet_distance(train_feats[torch.randperm(train.shape[0], generator=generator)[:n]], ref_feats)
        for _ in range(n_floor)
    ], dtype=torch.float64)
    floor = floors.mean().item()
    return DigitsFD(fd=fd, floor=floor, ratio=fd / floor, floor_std=floors.std().item())


if __name__ == "__main__":  # python -m ddpm_course.metrics: (re)write the shipped classifier weights
    import sys
    from pathlib import Path

    from safetensors.torch import save_file

    from .data import digits

    out = Path(__file__).parent / "pretrained" / CLASSIFIER_FILE
    if out.exists() and "--overwrite" not in sys.argv:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it")
    model = train_digit_classifier()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    test = digits(16, split="test")
    with torch.no_grad():
        accuracy = (model(test.images).argmax(1) == test.labels).double().mean().item()
    print(f"wrote {out}; test accuracy {accuracy:.4f}")

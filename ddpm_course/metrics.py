"""Sample-quality metrics of generated digits: every metric at once, next to what real images score.

The package's metrics live in one module per concept; this one scores digits with them and
re-exports their names, so ``ddpm_course.metrics.X`` reaches every one:

| module            | holds                                                                     |
|-------------------|---------------------------------------------------------------------------|
| ``sample_metrics``| the math on any features: sliced W2, the Frechet distance and its         |
|                   | extrapolation FD_inf, precision and recall, density and coverage, KID     |
|                   | (MMD^2_u), memorisation (nearest-training-image distances)                |
| ``feature_net``   | the digit classifier whose 32-d features those metrics compare: its       |
|                   | objective (``Classification``) on ``train.fit``, training, weights, features |
| ``metrics``       | ``evaluate`` and ``evaluate_features`` (each metric with its real-image    |
|                   | floor), ``digits_fd``; ``python -m ddpm_course.metrics`` rewrites the      |
|                   | shipped classifier weights                                                |

| symbol | code                     | what it is                                                        |
|--------|--------------------------|-------------------------------------------------------------------|
| N      | ``samples.shape[0]``     | generated images (N, 1, H, W) in [-1, 1]                          |
| M      | ``reference.shape[0]``   | the images they are compared to (the 364 held-out test digits)    |
| R      | ``real.shape[0]``        | real images, not the reference, the floors draw N of (R >= N)     |
| floor  | ``Score.real``           | what N real images score against the same reference (mean, std)  |

Every number depends on the feature extractor and on the sample counts: compare two numbers
only when both are the same. ``evaluate`` therefore reports each metric next to what real
images of the same count score (its *floor*, or ceiling for precision and recall).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import generator_or_none, int_at_least, int_in_range
from .data import digits
from .feature_net import Classification, digit_classifier, digit_features, train_digit_classifier
from .models.classifier import DigitClassifier
from .sample_metrics import (
    KID,
    DensityCoverage,
    FrechetExtrapolation,
    Memorisation,
    PrecisionRecall,
    _check_features,
    _check_images,
    _mmd2,
    _same_dim,
    density_coverage,
    frechet_distance,
    frechet_distance_unbiased,
    kid,
    memorisation,
    mmd2_unbiased,
    nearest_distances,
    polynomial_kernel,
    precision_recall,
    sliced_wasserstein,
)

__all__ = [
    "Classification",
    "DensityCoverage",
    "DigitClassifier",
    "DigitsFD",
    "Evaluation",
    "FrechetExtrapolation",
    "KID",
    "Memorisation",
    "PrecisionRecall",
    "Score",
    "density_coverage",
    "digit_classifier",
    "digit_features",
    "digits_fd",
    "evaluate",
    "evaluate_features",
    "frechet_distance",
    "frechet_distance_unbiased",
    "kid",
    "memorisation",
    "mmd2_unbiased",
    "nearest_distances",
    "polynomial_kernel",
    "precision_recall",
    "sliced_wasserstein",
    "train_digit_classifier",
]


# ----------------------------------------------------------------------------------------------
# Everything at once, next to what real images score


@dataclass(frozen=True)
class Score:
    """One metric: the samples' ``value`` and what real images of the same count score
    against the same reference (``real``, the mean over draws, and ``real_std``, their spread)."""

    value: float
    real: float
    real_std: float

    def __str__(self) -> str:
        return f"{self.value:9.3f}   {self.real:9.3f} +- {self.real_std:.3f}"


@dataclass(frozen=True)
class Evaluation:
    """All metrics of :func:`evaluate` for ``n_samples`` samples against ``n_reference`` images,
    each a :class:`Score` with its floor (``n_real`` draws of real images); ``k`` of the k-NN metrics."""

    n_samples: int
    n_reference: int
    n_real: int
    k: int
    fd: Score
    fd_unbiased: Score
    precision: Score
    recall: Score
    density: Score
    coverage: Score
    kid: Score
    memorisation: Memorisation | None = None

    METRICS = ("fd", "fd_unbiased", "precision", "recall", "density", "coverage", "kid")

    def __str__(self) -> str:
        lines = [f"{self.n_samples} samples vs {self.n_reference} reference images (k = {self.k})",
                 f"{'metric':12s} {'samples':>9s}   {'real images':>9s} (mean +- std of {self.n_real} draws)"]
        lines += [f"{name:12s} {getattr(self, name)}" for name in self.METRICS]
        if self.memorisation is not None:
            lines.append(str(self.memorisation))
        return "\n".join(lines)


def _all_metrics(x: Tensor, ref: Tensor, k: int, generator: torch.Generator | None) -> list[float]:
    pr, dc = precision_recall(ref, x, k), density_coverage(ref, x, k)
    unbiased = frechet_distance_unbiased(x, ref, generator=generator).value
    return [frechet_distance(x, ref), unbiased, pr.precision, pr.recall, dc.density, dc.coverage, _mmd2(x, ref, 3)]


def evaluate_features(
    samples: Tensor,
    reference: Tensor,
    real: Tensor,
    k: int = 3,
    n_real: int = 5,
    generator: torch.Generator | None = None,
) -> Evaluation:
    """Score sample features (N, F) against reference features (M, F); the floors score ``n_real``
    random draws of N rows of ``real`` (R, F), R >= N: real data that is not the reference.

    Metrics: the Frechet distance, its extrapolation to infinitely many samples, precision and
    recall (``reference`` is the real set), density and coverage, and KID (the unbiased MMD^2 of
    the whole sets). Random draws use ``generator``. ``memorisation`` is left None: it needs the
    images (see :func:`evaluate`).
    """
    k = int_at_least("k", k, 1)
    x = _check_features("samples", samples, max(k + 1, 3), f"(for the FD fit and the k-NN balls, k = {k})")
    ref = _check_features("reference", reference, k + 1, f"(for the k-NN balls, k = {k})")
    pool = _check_features("real", real, x.shape[0], "(the floors draw as many real rows as there are samples)")
    _same_dim("samples", x, "reference", ref)
    _same_dim("samples", x, "real", pool)
    n_real = int_at_least("n_real", n_real, 2)
    generator = generator_or_none("generator", generator)
    values = _all_metrics(x, ref, k, generator)
    floors = torch.tensor([
        _all_metrics(pool[torch.randperm(pool.shape[0], generator=generator)[: x.shape[0]]], ref, k, generator)
        for _ in range(n_real)
    ], dtype=torch.float64)  # (n_real, len(METRICS))
    scores = {
        name: Score(value, floors[:, i].mean().item(), floors[:, i].std().item())
        for i, (name, value) in enumerate(zip(Evaluation.METRICS, values))
    }
    return Evaluation(x.shape[0], ref.shape[0], n_real, k, **scores)


def evaluate(
    samples: Tensor,
    reference: Tensor | None = None,
    real: Tensor | None = None,
    k: int = 3,
    n_real: int = 5,
    generator: torch.Generator | None = None,
    train: Tensor | None = None,
) -> Evaluation:
    """Score generated digits: samples (N, 1, H, W) in [-1, 1] on digit-classifier features.

    reference: the images the samples are compared to (default: the 364 held-out test digits);
    real: real images of the same kind, not the reference, from which the floors draw N
    (default: the 1,433 train digits, so N <= 1,433). See :func:`evaluate_features`.
    train: the images the model was trained on (default: the train digits, what every shipped
    model saw), for the memorisation check: the samples' pixel distances to their nearest
    training image against the reference's (:func:`memorisation`).
    """
    x = _check_images("samples", samples)
    k = int_at_least("k", k, 1)  # checked here too: before any features are computed
    n_real = int_at_least("n_real", n_real, 2)
    generator = generator_or_none("generator", generator)
    ref = digits(16, split="test").images if reference is None else _check_images("reference", reference)
    pool = digits(16, split="train").images if real is None else _check_images("real", real)
    if x.shape[0] > pool.shape[0]:
        raise ValueError(f"samples can hold at most {pool.shape[0]} images (the floors need as many real ones); "
                         f"got {x.shape[0]}")
    seen = digits(16, split="train").images if train is None else _check_images("train", train, min_count=1)
    result = evaluate_features(digit_features(x), digit_features(ref), digit_features(pool), k, n_real, generator)
    return dataclasses.replace(result, memorisation=memorisation(_resized(x, seen), seen, _resized(ref, seen)))


def _resized(images: Tensor, like: Tensor) -> Tensor:
    """images (N, 1, H, W) resized (bilinear, antialiased) to the height and width of ``like``."""
    if images.shape[-2:] == like.shape[-2:]:
        return images
    return F.interpolate(images, size=like.shape[-2:], mode="bilinear", antialias=True, align_corners=False)


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
    about 30%. The samples' own distance varies as much: compare ratios with that in mind, and
    see :func:`evaluate` for the bias-corrected distance, precision and recall.
    """
    samples = _check_images("samples", samples)
    n_floor = int_at_least("n_floor", n_floor, 2)
    generator = generator_or_none("generator", generator)
    ref = digits(16, split="test").images
    train = digits(16, split="train").images
    if n_ref is not None:
        n_ref = int_in_range("n_ref", n_ref, 2, ref.shape[0], hint="or None for all")
        ref = ref[torch.randperm(ref.shape[0], generator=generator)[:n_ref]]
    n = samples.shape[0]
    if n > train.shape[0]:
        raise ValueError(f"samples can hold at most {train.shape[0]} images (the floor needs as many real ones); "
                         f"got {n}")
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

    from safetensors.torch import save_file

    from . import shipped

    out = shipped.folder() / shipped.SHIPPED["digit-classifier"].file
    if out.exists() and "--overwrite" not in sys.argv:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it")
    model = train_digit_classifier()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    test = digits(16, split="test")
    with torch.no_grad():
        accuracy = (model(test.images).argmax(1) == test.labels).double().mean().item()
    print(f"wrote {out}; test accuracy {accuracy:.4f}")

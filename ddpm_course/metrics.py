"""Sample-quality metrics: how far generated samples are from real data, and in which way.

| name                 | what it measures                                                            |
|----------------------|-----------------------------------------------------------------------------|
| sliced W2            | sqrt(E_theta[W2^2(theta . X, theta . Y)]) over random unit directions       |
| Frechet distance FD  | |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two fitted Gaussians  |
| FD_inf ("unbiased")  | the intercept of FD(n) = FD_inf + c / n fitted over sample counts n         |
| precision, recall    | share of samples inside the real data's k-NN balls, and of real in samples' |
| density, coverage    | mean count of real k-NN balls holding a sample / k; share of real balls hit |
| KID                  | unbiased MMD^2 with the kernel k(a, b) = (a . b / F + 1)^3                  |
| memorisation         | distance of each sample to its nearest training image, against held-out's   |
| digit features       | the 32-d layer of a small CNN trained on the digits' train split            |

Notation: ``feats`` (n, F) are feature vectors, one row per image; ``real`` and ``fake`` are
the real and generated sets of precision and recall; ``k`` counts nearest neighbours.

Sliced Wasserstein distance: Rabin, Peyre, Delon & Bernot (2011), "Wasserstein barycenter
and its application to texture mixing". In one dimension the optimal transport between two
equal-size samples matches them in sorted order, so each projection costs one sort.

Frechet distance: Dowson & Landau (1982) give the 2-Wasserstein distance between two
Gaussians; Heusel et al. (2017), "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium", apply it to Inception features (FID). Here the features come from a
small CNN trained on the digits' train split (``digit_features``), because Inception knows
nothing about 16x16 digits. A Frechet distance from n samples is biased upwards by about c/n:
Chong & Forsyth (2020), "Effectively Unbiased FID and Inception Score and where to find
them", fit FD against 1/n and report the intercept (``frechet_distance_unbiased``).

Precision and recall: Kynkaanniemi, Karras, Laine, Lehtinen & Aila (2019), "Improved
Precision and Recall Metric for Assessing Generative Models": each point's ball reaches its
k-th nearest neighbour in its own set. Density and coverage: Naeem, Oh, Uh, Choi & Yoo (2020),
"Reliable Fidelity and Diversity Metrics for Generative Models".

Kernel Inception distance (KID): Binkowski, Sutherland, Arbel & Gretton (2018), "Demystifying
MMD GANs". The squared maximum mean discrepancy between the feature laws under the cubic
polynomial kernel k(a, b) = (a . b / F + 1)^3, estimated by the unbiased U-statistic

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (n (n-1)) + sum_{i != j} k(y_i, y_j) / (m (m-1))
              - 2 sum_{i, j} k(x_i, y_j) / (n m),

whose expectation is the population value at every n and m: unlike the Frechet distance it
needs no extrapolation in n (it can fall below 0 when the two laws are equal).

Memorisation: a model that copies its training images scores well on every metric above.
Following the nearest-neighbour tests of Carlini et al. (2023), "Extracting Training Data from
Diffusion Models", and Somepalli et al. (2023), each sample's pixel distance to its nearest
training image is set against the same distance for held-out real images, which the model
never saw: a copier's samples sit much closer to the training set than held-out data does.

Every number here depends on the feature extractor and on the sample counts: compare two
numbers only when both are the same. ``evaluate`` therefore reports each metric next to what
real images of the same count score (its *floor*, or ceiling for precision and recall).

Bad input (a non-tensor, integer or complex dtype, the wrong number of dimensions, too few
rows, mismatched feature sizes, NaN or infinite values) raises a ``TypeError`` or
``ValueError`` that names the argument.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import finite_float, generator_or_none, int_at_least, int_in_range
from .models.classifier import DigitClassifier

__all__ = [
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
# Input checks: one rule for every public function


def _float_tensor(name: str, x: object, shape: str) -> Tensor:
    """A floating-point tensor (any device); the wrong kind of object or dtype is a TypeError."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape}; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floating-point numbers (float32 or float64); got dtype {x.dtype}")
    return x


def _check_finite(name: str, x: Tensor) -> None:
    bad = ~torch.isfinite(x)
    if bad.any():
        where = bad.flatten(1).any(1).nonzero()[0, 0].item() if x.ndim > 1 else bad.nonzero()[0, 0].item()
        raise ValueError(f"{name} contains NaN or infinite values (first in row {where}); "
                         f"remove or fix those {'images' if x.ndim == 4 else 'rows'} before scoring")


def _check_features(name: str, x: object, min_rows: int, why: str) -> Tensor:
    """Features (n, F), n >= min_rows, all finite -> a float64 CPU copy."""
    x = _float_tensor(name, x, "(n, F)")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, F): one row of F features per sample; got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: it needs at least {min_rows} rows {why} and 1 feature; "
                         f"got {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows {why}; got {x.shape[0]}")
    _check_finite(name, x)
    return x.detach().cpu().double()


def _same_dim(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} and {name_b} must have the same feature dimension; "
                         f"got {a.shape[1]} and {b.shape[1]}")


PIXEL_LIMIT = 2.0  # beyond this an image is not in [-1, 1] with a sampler's overshoot


def _check_images(name: str, images: object, min_count: int = 2) -> Tensor:
    """Grey images (N, 1, H, W) in [-1, 1], N >= min_count, all finite -> a float32 CPU copy."""
    images = _float_tensor(name, images, "(N, 1, H, W)")
    if images.ndim != 4 or images.shape[1] != 1 or min(images.shape[-2:]) < 1:
        raise ValueError(f"{name} must be grey images of shape (N, 1, H, W) in [-1, 1]; got {tuple(images.shape)}")
    if images.shape[0] < min_count:
        what = "is empty" if images.shape[0] == 0 else f"holds {images.shape[0]}"
        raise ValueError(f"{name} needs at least {min_count} images for a covariance; {what}")
    _check_finite(name, images)
    images = images.detach().cpu().float()
    peak = images.abs().max().item()
    if peak > PIXEL_LIMIT:
        raise ValueError(f"{name} must be images in [-1, 1] (clamp a sampler's output; pixels in [0, 255] map by "
                         f"x / 127.5 - 1); got values up to {peak:.4g}")
    return images


def sliced_wasserstein(
    x: Tensor, y: Tensor, n_projections: int = 256, generator: torch.Generator | None = None
) -> float:
    """Sliced 2-Wasserstein distance between two point clouds x, y: (n, d), same n.

    Projects both clouds on ``n_projections`` random unit directions (drawn from
    ``generator``), computes each 1-D W2^2 by sorting, and returns the square root of the mean.
    """
    x = _check_features("x", x, 1, "(points)")
    y = _check_features("y", y, 1, "(points)")
    if x.shape != y.shape:
        raise ValueError(f"x and y must both have shape (n, d) with the same n and d; "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    n_projections = int_at_least("n_projections", n_projections, 1)
    generator = generator_or_none("generator", generator)
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)  # (d, P) unit columns
    px = torch.sort(x @ theta, dim=0).values  # (n, P)
    py = torch.sort(y @ theta, dim=0).values  # (n, P)
    return ((px - py) ** 2).mean().sqrt().item()


# ----------------------------------------------------------------------------------------------
# Frechet distance on digit-classifier features


def _shift(x: Tensor, generator: torch.Generator) -> Tensor:
    """Translate each image by up to one pixel (padding with the background, -1)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)  # (B, 1, H+2, W+2)
    dy, dx = torch.randint(0, 3, (2, b), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def train_digit_classifier(epochs: int = 20, seed: int = 0) -> DigitClassifier:
    """Train the feature network on ``digits(16, split="train")`` with one-pixel shifts:
    Adam, batch 64, deterministic in ``seed`` (a few CPU seconds). Returned in eval mode."""
    from .data import digits

    epochs = int_at_least("epochs", epochs, 1)
    seed = int_at_least("seed", seed, 0)
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

    The weights shipped in ``ddpm_course/pretrained/digit_classifier.safetensors`` (written by
    ``python -m ddpm_course.metrics``; ``shipped.load_classifier``), so every machine gets the same
    features; without that file it trains them with :func:`train_digit_classifier`.
    """
    from .shipped import load_classifier

    try:
        return load_classifier()
    except FileNotFoundError:
        return train_digit_classifier()


def _fit(
    model: nn.Module, opt: torch.optim.Optimizer, images: Tensor, labels: Tensor, epochs: int,
    generator: torch.Generator,
) -> None:
    n = images.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, 64):
            idx = order[start : start + 64]
            loss = F.cross_entropy(model(_shift(images[idx], generator)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


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


def _sqrtm_psd(a: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    vals, vecs = torch.linalg.eigh(a)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


class _Gaussian(NamedTuple):
    """Mean (F,), covariance (F, F) (unbiased) and the covariance's square root, of a feature set."""

    mu: Tensor
    cov: Tensor
    root: Tensor


def _fit_gaussian(feats: Tensor) -> _Gaussian:
    cov = torch.cov(feats.T)  # (F, F)
    return _Gaussian(feats.mean(0), cov, _sqrtm_psd(cov))


def _fd(a: _Gaussian, b: Tensor) -> float:
    """FD between the fitted Gaussian ``a`` and the features ``b`` (n, F), both float64."""
    mu_b, cov_b = b.mean(0), torch.cov(b.T)  # (F,), (F, F)
    middle = a.root @ cov_b @ a.root
    middle = (middle + middle.T) / 2  # symmetric up to rounding; make it exactly so
    tr_sqrt = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    fd = (a.mu - mu_b).square().sum() + a.cov.trace() + cov_b.trace() - 2 * tr_sqrt
    return max(fd.item(), 0.0)


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (n, F) and (m, F), n, m >= 2.

    FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)). S_a S_b is not
    symmetric, but it is similar to S_a^(1/2) S_b S_a^(1/2), which is: the trace of its square
    root is the sum of the square roots of that symmetric matrix's eigenvalues.
    """
    a = _check_features("feats_a", feats_a, 2, "(samples) for a covariance")
    b = _check_features("feats_b", feats_b, 2, "(samples) for a covariance")
    _same_dim("feats_a", a, "feats_b", b)
    return _fd(_fit_gaussian(a), b)


class FrechetExtrapolation(NamedTuple):
    """FD(n) = value + slope / n fitted over sample counts ``sizes``; ``fds`` are the measured
    means. ``value`` is the Frechet distance extrapolated to infinitely many samples."""

    value: float
    slope: float
    sizes: tuple[int, ...]
    fds: tuple[float, ...]


def _default_sizes(n: int, count: int = 6) -> list[int]:
    """``count`` sample counts from n/4 to n, evenly spaced in 1/n (at least 2)."""
    low = max(2, n // 4)
    inverse = torch.linspace(1 / low, 1 / n, count, dtype=torch.float64)
    return sorted({round(1 / v) for v in inverse.tolist()})


def _checked_sizes(sizes: object, n: int) -> list[int]:
    if sizes is None:
        sizes = _default_sizes(n)
    elif isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a sequence of sample counts in [2, {n}] or None; got {type(sizes).__name__}")
    counts = sorted({int_in_range("sizes[i]", s, 2, n, hint="a sample count of feats") for s in sizes})
    if len(counts) < 2:
        raise ValueError(f"sizes must hold at least 2 different sample counts to fit a line; got {counts}")
    return counts


def frechet_distance_unbiased(
    feats: Tensor,
    ref_feats: Tensor,
    sizes: list[int] | None = None,
    draws: int = 5,
    generator: torch.Generator | None = None,
) -> FrechetExtrapolation:
    """The Frechet distance of ``feats`` (N, F) to ``ref_feats`` (M, F) at infinitely many samples.

    The estimate from n samples is biased upwards by about c/n. Following Chong & Forsyth
    (2020), measure FD on random subsets of ``feats`` of each count in ``sizes`` (default: six
    counts from N/4 to N, evenly spaced in 1/n), averaged over ``draws`` subsets (drawn with
    ``generator``), fit FD(n) = value + slope / n by least squares and report the intercept. The
    reference is used whole, so its own smaller bias stays in ``value``: compare with real data
    scored against the same reference (``evaluate`` does). N should be several times F; the
    result can fall below zero when the true distance is near zero.
    """
    x = _check_features("feats", feats, 3, "(samples) to fit a line through two sample counts")
    ref = _check_features("ref_feats", ref_feats, 2, "(samples) for a covariance")
    _same_dim("feats", x, "ref_feats", ref)
    counts = _checked_sizes(sizes, x.shape[0])
    draws = int_at_least("draws", draws, 1)
    generator = generator_or_none("generator", generator)
    fitted = _fit_gaussian(ref)
    fds = []
    for n in counts:
        whole = n == x.shape[0]  # one subset of all N: the set itself
        subsets = [x] if whole else [x[torch.randperm(x.shape[0], generator=generator)[:n]] for _ in range(draws)]
        fds.append(sum(_fd(fitted, s) for s in subsets) / len(subsets))
    inverse = torch.tensor([1 / n for n in counts], dtype=torch.float64)
    design = torch.stack([torch.ones_like(inverse), inverse], dim=1)  # (K, 2)
    coef = torch.linalg.lstsq(design, torch.tensor(fds, dtype=torch.float64)[:, None]).solution.flatten()
    return FrechetExtrapolation(coef[0].item(), coef[1].item(), tuple(counts), tuple(fds))


# ----------------------------------------------------------------------------------------------
# Precision, recall, density and coverage on k-nearest-neighbour balls


def _knn_radius(x: Tensor, k: int) -> Tensor:
    """Distance from each row of x (n, F) to its k-th nearest other row -> (n,)."""
    return torch.kthvalue(torch.cdist(x, x), k + 1, dim=1).values  # the 1st is the point itself


def _real_fake(real: Tensor, fake: Tensor, k: int) -> tuple[Tensor, Tensor, int]:
    k = int_at_least("k", k, 1)
    why = f"(samples): the ball of each reaches its k-th neighbour, k = {k}"
    real = _check_features("real", real, k + 1, why)
    fake = _check_features("fake", fake, k + 1, why)
    _same_dim("real", real, "fake", fake)
    return real, fake, k


class PrecisionRecall(NamedTuple):
    """precision: share of fake samples inside the real manifold (fidelity); recall: share of
    real samples inside the fake manifold (coverage of the data's variety)."""

    precision: float
    recall: float


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of features real (n, F), fake (m, F).

    Each set's manifold is the union of closed balls around its points, each reaching that
    point's k-th nearest neighbour in its own set. Precision is the share of fake points inside
    the real manifold, recall the share of real points inside the fake manifold.
    """
    real, fake, k = _real_fake(real, fake, k)
    dist = torch.cdist(real, fake)  # (n, m)
    precision = (dist <= _knn_radius(real, k)[:, None]).any(0).double().mean().item()
    recall = (dist <= _knn_radius(fake, k)[None, :]).any(1).double().mean().item()
    return PrecisionRecall(precision, recall)


class DensityCoverage(NamedTuple):
    """density: real k-NN balls holding each fake sample, divided by k (about 1 for real data,
    above 1 where samples crowd dense regions); coverage: share of real balls holding a sample."""

    density: float
    coverage: float


def density_coverage(real: Tensor, fake: Tensor, k: int = 3) -> DensityCoverage:
    """Density and coverage (Naeem et al. 2020) of features real (n, F) and fake (m, F).

    Only the real points get balls (to their k-th nearest real neighbour), so outliers among
    the fakes cannot inflate them. density = sum over fakes of the number of real balls that
    hold it / (k m); coverage = share of real balls holding at least one fake.
    """
    real, fake, k = _real_fake(real, fake, k)
    inside = torch.cdist(real, fake) <= _knn_radius(real, k)[:, None]  # (n, m)
    return DensityCoverage(inside.double().sum().item() / (k * fake.shape[0]), inside.any(1).double().mean().item())


# ----------------------------------------------------------------------------------------------
# Kernel (Inception) distance: an unbiased alternative to the Frechet distance


def polynomial_kernel(a: Tensor, b: Tensor, degree: int = 3, coef: float = 1.0) -> Tensor:
    """The kernel matrix k(a_i, b_j) = (a_i . b_j / F + coef)^degree of a (n, F), b (m, F) -> (n, m).

    degree 3 and coef 1 are Binkowski et al.'s (2018) choice for KID.
    """
    a = _check_features("a", a, 1, "(samples)")
    b = _check_features("b", b, 1, "(samples)")
    _same_dim("a", a, "b", b)
    degree = int_at_least("degree", degree, 1)
    return (a @ b.T / a.shape[1] + float(coef)) ** degree


def _mmd2(x: Tensor, y: Tensor, degree: int) -> float:
    """Unbiased MMD^2 of float64 features x (n, F), y (m, F), n, m >= 2, cubic-type kernel."""
    n, m, f = x.shape[0], y.shape[0], x.shape[1]
    k_xx = (x @ x.T / f + 1) ** degree  # (n, n)
    k_yy = (y @ y.T / f + 1) ** degree  # (m, m)
    k_xy = (x @ y.T / f + 1) ** degree  # (n, m)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))  # i != j only: the U-statistic
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return (within_x + within_y - 2 * k_xy.mean()).item()


def mmd2_unbiased(x: Tensor, y: Tensor, degree: int = 3) -> float:
    """The unbiased estimate of the squared MMD between the laws of x (n, F) and y (m, F), n, m >= 2,
    under the polynomial kernel (a . b / F + 1)^degree (see the module docstring). Its expectation
    is the population MMD^2 at every n and m; it can be negative when the laws are close."""
    x = _check_features("x", x, 2, "(samples) for the i != j sums")
    y = _check_features("y", y, 2, "(samples) for the i != j sums")
    _same_dim("x", x, "y", y)
    degree = int_at_least("degree", degree, 1)
    return _mmd2(x, y, degree)


class KID(NamedTuple):
    """Kernel distance: ``value`` the mean of the unbiased MMD^2 over ``subsets`` random subsets of
    ``subset_size`` rows of each set, ``std`` its spread over subsets (0 for one subset)."""

    value: float
    std: float
    subset_size: int
    subsets: int


def kid(
    feats_a: Tensor,
    feats_b: Tensor,
    subset_size: int | None = None,
    subsets: int = 10,
    generator: torch.Generator | None = None,
) -> KID:
    """Kernel Inception distance (Binkowski et al. 2018) between features (n, F) and (m, F).

    With ``subset_size`` None the unbiased MMD^2 of the two whole sets (one "subset", std 0);
    otherwise the mean and standard deviation over ``subsets`` pairs of random subsets of
    ``subset_size`` rows (drawn with ``generator``), as the paper reports it. The kernel is
    (a . b / F + 1)^3. Its expectation does not depend on the sample counts: no extrapolation.
    """
    a = _check_features("feats_a", feats_a, 2, "(samples) for the i != j sums")
    b = _check_features("feats_b", feats_b, 2, "(samples) for the i != j sums")
    _same_dim("feats_a", a, "feats_b", b)
    subsets = int_at_least("subsets", subsets, 1)
    generator = generator_or_none("generator", generator)
    if subset_size is None:
        return KID(_mmd2(a, b, 3), 0.0, min(a.shape[0], b.shape[0]), 1)
    size = int_in_range("subset_size", subset_size, 2, min(a.shape[0], b.shape[0]),
                        hint="rows of each subset (at most the smaller set's count), or None for the whole sets")
    values = torch.tensor([
        _mmd2(a[torch.randperm(a.shape[0], generator=generator)[:size]],
              b[torch.randperm(b.shape[0], generator=generator)[:size]], 3)
        for _ in range(subsets)
    ], dtype=torch.float64)
    return KID(values.mean().item(), values.std().item() if subsets > 1 else 0.0, size, subsets)


# ----------------------------------------------------------------------------------------------
# Memorisation: are the samples closer to the training images than new real images are?


def nearest_distances(x: Tensor, train: Tensor, batch_size: int = 1024) -> Tensor:
    """Euclidean distance of each row of x (n, D) to its nearest row of train (m, D) -> (n,) float64.

    Images (N, C, H, W) are flattened to pixels first; both must then have the same D.
    """
    x = _float_tensor("x", x, "(n, D) or images (N, C, H, W)")
    train = _float_tensor("train", train, "(m, D) or images (M, C, H, W)")
    x = _check_features("x", x.flatten(1) if x.ndim > 2 else x, 1, "(samples)")
    train = _check_features("train", train.flatten(1) if train.ndim > 2 else train, 1, "(training images)")
    _same_dim("x", x, "train", train)
    batch_size = int_at_least("batch_size", batch_size, 1)
    return torch.cat([torch.cdist(x[i : i + batch_size], train).min(1).values
                      for i in range(0, x.shape[0], batch_size)])


class Memorisation(NamedTuple):
    """Nearest-training-image distances of samples against those of held-out real images.

    ``samples_median``, ``heldout_median``: the medians of the two sets of distances; ``ratio``
    = samples_median / heldout_median (about 1 for a model that does not copy, near 0 for one that
    does); ``close_share``: the share of samples nearer to a training image than ``quantile`` of the
    held-out images are (about ``quantile`` when the model does not copy, near 1 when it does).
    """

    samples_median: float
    heldout_median: float
    ratio: float
    close_share: float
    quantile: float

    def __str__(self) -> str:
        return (f"memorisation: median distance to the nearest training image {self.samples_median:.3f} "
                f"(held-out real {self.heldout_median:.3f}, ratio {self.ratio:.2f}); "
                f"{self.close_share:.1%} of samples nearer than the closest {self.quantile:.0%} of held-out")


def memorisation(samples: Tensor, train: Tensor, heldout: Tensor, quantile: float = 0.05) -> Memorisation:
    """Compare samples' distances to their nearest training image with held-out real images' distances.

    samples (N, ...), train (M, ...), heldout (H, ...): images (flattened to pixels) or feature
    rows, all with the same size per row. Held-out images come from the data distribution but not
    from the training set, so their distances are what a generator that learned the distribution,
    rather than the training images, gives.
    """
    quantile = finite_float("quantile", quantile, 0.0, 1.0, low_open=True, high_open=True)
    d_samples = nearest_distances(samples, train)
    d_heldout = nearest_distances(heldout, train)
    threshold = d_heldout.quantile(quantile)
    s_med, h_med = d_samples.median().item(), d_heldout.median().item()
    return Memorisation(s_med, h_med, s_med / h_med if h_med > 0 else float("inf"),
                        (d_samples < threshold).double().mean().item(), quantile)


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
    from .data import digits

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
    from .data import digits

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
    from .data import digits

    out = shipped.folder() / shipped.SHIPPED["digit-classifier"].file
    if out.exists() and "--overwrite" not in sys.argv:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it")
    model = train_digit_classifier()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    test = digits(16, split="test")
    with torch.no_grad():
        accuracy = (model(test.images).argmax(1) == test.labels).double().mean().item()
    print(f"wrote {out}; test accuracy {accuracy:.4f}")

"""The metrics of two sample sets, on any features: how far generated samples are from real data,
and in which way. ``metrics`` scores digits with them on the digit classifier's features
(``feature_net``); every function here takes the feature rows (or points, or pixels) themselves.

| name                 | what it measures                                                            |
|----------------------|-----------------------------------------------------------------------------|
| sliced W2            | sqrt(E_theta[W2^2(theta . X, theta . Y)]) over random unit directions       |
| Frechet distance FD  | |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two fitted Gaussians  |
| FD_inf ("unbiased")  | the intercept of FD(n) = FD_inf + c / n fitted over sample counts n         |
| precision, recall    | share of samples inside the real data's k-NN balls, and of real in samples' |
| density, coverage    | mean count of real k-NN balls holding a sample / k; share of real balls hit |
| KID                  | unbiased MMD^2 with the kernel k(a, b) = (a . b / F + 1)^3                  |
| memorisation         | distance of each sample to its nearest training image, against held-out's   |

Notation: ``feats`` (n, F) are feature vectors, one row per image; ``real`` and ``fake`` are
the real and generated sets of precision and recall; ``k`` counts nearest neighbours.

Sliced Wasserstein distance: Rabin, Peyre, Delon & Bernot (2011), "Wasserstein barycenter
and its application to texture mixing". In one dimension the optimal transport between two
equal-size samples matches them in sorted order, so each projection costs one sort.

Frechet distance: Dowson & Landau (1982) give the 2-Wasserstein distance between two
Gaussians; Heusel et al. (2017), "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium", apply it to Inception features (FID). A Frechet distance from n
samples is biased upwards by about c/n: Chong & Forsyth (2020), "Effectively Unbiased FID and
Inception Score and where to find them", fit FD against 1/n and report the intercept
(``frechet_distance_unbiased``).

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

Bad input (a non-tensor, integer or complex dtype, the wrong number of dimensions, too few
rows, mismatched feature sizes, NaN or infinite values) raises a ``TypeError`` or
``ValueError`` that names the argument; the checks (``_check_features``, ``_check_images``)
are the ones ``metrics`` and ``feature_net`` use too.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._checks import finite_float, generator_or_none, int_at_least, int_in_range

__all__ = [
    "KID",
    "DensityCoverage",
    "FrechetExtrapolation",
    "Memorisation",
    "PrecisionRecall",
    "density_coverage",
    "frechet_distance",
    "frechet_distance_unbiased",
    "kid",
    "memorisation",
    "mmd2_unbiased",
    "nearest_distances",
    "polynomial_kernel",
    "precision_recall",
    "sliced_wasserstein",
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
# Frechet distance of two fitted Gaussians


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

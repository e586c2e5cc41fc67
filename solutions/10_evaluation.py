"""Reference answers to lesson 10's exercises ("Your turn" in notebooks/10_evaluation.ipynb)."""
from __future__ import annotations

import scipy.linalg
import torch
from torch import Tensor


def frechet_gaussians(mu_a: Tensor, cov_a: Tensor, mu_b: Tensor, cov_b: Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)), the square root by scipy."""
    cross = scipy.linalg.sqrtm((cov_a @ cov_b).numpy()).real.trace()
    return ((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace()).item() - 2 * float(cross)


def precision_recall(real: Tensor, fake: Tensor, k: int) -> tuple[float, float]:
    """Balls to the k-th nearest *other* point of the same set; precision = fakes in real balls."""
    radius_real = torch.cdist(real, real).sort(dim=1).values[:, k]  # column 0 is the point itself
    radius_fake = torch.cdist(fake, fake).sort(dim=1).values[:, k]
    dist = torch.cdist(real, fake)  # (n, m)
    precision = (dist <= radius_real[:, None]).any(dim=0).double().mean().item()
    recall = (dist <= radius_fake[None, :]).any(dim=1).double().mean().item()
    return precision, recall


def fd_infinity() -> float:
    """FD(n) = FD_inf + c/n: c = (12 - 4.5) / (1/200 - 1/800) = 2000, FD_inf = 4.5 - 2000/800."""
    c = (12.0 - 4.5) / (1 / 200 - 1 / 800)
    return 4.5 - c / 800


def kid(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 with k(a, b) = (a . b / F + 1)^3: within-set sums over i != j only."""
    f = x.shape[1]
    k_xx, k_yy, k_xy = (x @ x.T / f + 1) ** 3, (y @ y.T / f + 1) ** 3, (x @ y.T / f + 1) ** 3
    n, m = x.shape[0], y.shape[0]
    within_x = (k_xx.sum() - k_xx.trace()) / (n * (n - 1))
    within_y = (k_yy.sum() - k_yy.trace()) / (m * (m - 1))
    return (within_x + within_y - 2 * k_xy.mean()).item()


ANSWERS = {
    "10.frechet_gaussians": frechet_gaussians,
    "10.precision_recall": precision_recall,
    "10.fd_infinity": fd_infinity(),
    "10.kid": kid,
}

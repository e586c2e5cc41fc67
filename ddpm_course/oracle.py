"""An exact oracle: a Gaussian mixture, whose noised versions are Gaussian mixtures too.

If x_0 ~ sum_k w_k N(mu_k, S_k) then, under the forward jump
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, the marginal q(x_t) is the mixture

    q(x_t) = sum_k w_k N(x_t; sqrt(abar_t) mu_k, abar_t S_k + (1 - abar_t) I),

so its score grad log q(x_t) is known in closed form, and so is the ideal noise predictor
eps*(x_t, t) = -sqrt(1 - abar_t) grad log q(x_t) = E[eps | x_t]. A sampler driven by
this "model" can only err through its own discretisation, which is what the course measures.

| symbol      | code            | shape     |
|-------------|-----------------|-----------|
| w_k         | ``weights``     | (K,)      |
| mu_k        | ``means``       | (K, d)    |
| S_k         | ``covs``        | (K, d, d) |
| eps*        | ``eps(...)``    | (B, ...)  |
| E[x_0|x_t]  | ``x0_mean(...)`` | (B, ...) |

All oracle math is float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import ArgumentTypeError, batch_tensor, finite_float, generator_or_none, int_at_least
from .forward import predict_x0
from .schedules import Schedule, check_timesteps

__all__ = ["GaussianMixture", "EpsOracle", "ring_mixture"]


@dataclass(frozen=True)
class GaussianMixture:
    """A mixture of K Gaussians in d dimensions with weights (K,), means (K, d), covs (K, d, d)."""

    weights: Tensor
    means: Tensor
    covs: Tensor

    def __post_init__(self) -> None:
        try:
            w, m, c = (
                torch.as_tensor(v, dtype=torch.float64).detach().cpu() for v in (self.weights, self.means, self.covs)
            )
        except (TypeError, ValueError, RuntimeError) as err:
            raise ArgumentTypeError(f"weights, means and covs must be tensors of numbers: {err}") from err
        if w.ndim != 1 or m.ndim != 2 or c.ndim != 3 or not (w.shape[0] == m.shape[0] == c.shape[0]):
            raise ValueError(
                f"weights, means, covs must have shapes (K,), (K, d), (K, d, d); "
                f"got {tuple(w.shape)}, {tuple(m.shape)}, {tuple(c.shape)}"
            )
        if c.shape[1:] != (m.shape[1], m.shape[1]):
            raise ValueError(f"covs must be (K, d, d) with d = {m.shape[1]}; got {tuple(c.shape)}")
        if w.numel() == 0:
            raise ValueError("a mixture needs at least one component (K >= 1); got K = 0")
        if not all(torch.isfinite(v).all() for v in (w, m, c)):
            raise ValueError("weights, means and covs must be finite; they hold NaN or infinite values")
        if torch.any(w < 0) or abs(w.sum().item() - 1.0) > 1e-9:
            raise ValueError("weights must be non-negative and sum to 1")
        if torch.linalg.cholesky_ex(c).info.any():
            raise ValueError("every covariance in covs must be symmetric positive definite")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "covs", c)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def mean(self) -> Tensor:
        """The mixture's mean, (d,)."""
        return self.weights @ self.means

    def cov(self) -> Tensor:
        """The mixture's covariance, (d, d): within-component plus between-component spread."""
        mu = self.mean()
        centred = self.means - mu  # (K, d)
        within = torch.einsum("k,kij->ij", self.weights, self.covs)
        return within + torch.einsum("k,ki,kj->ij", self.weights, centred, centred)

    def sample(self, n: int, generator: torch.Generator | None = None, return_labels: bool = False):
        """Draw n points, (n, d) float64 (and their component labels (n,) if asked)."""
        n = int_at_least("n", n, 1)
        generator_or_none("generator", generator, cpu=True)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)  # (K, d, d)
        x = self.means[k] + torch.einsum("nij,nj->ni", chol[k], z)
        return (x, k) if return_labels else x

    def noised(self, abar: float) -> "GaussianMixture":
        """The law of sqrt(abar) x_0 + sqrt(1 - abar) eps: another mixture."""
        abar = finite_float("abar", abar, 0.0, 1.0)
        eye = torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(self.weights, math.sqrt(abar) * self.means, abar * self.covs + (1 - abar) * eye)

    def _points(self, x: Tensor) -> Tensor:
        """x checked to be (n, d) points in this mixture's dimension, as float64 on the CPU
        (gradients still flow back to x)."""
        batch_tensor("x", x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, d) = (n, {self.dim}); got {tuple(x.shape)}")
        return x.cpu().to(torch.float64)

    def log_prob(self, x: Tensor) -> Tensor:
        """log density at x: (n, d) -> (n,)."""
        return torch.logsumexp(self._component_log_probs(self._points(x)), dim=1)

    def _component_log_probs(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; mu_k, S_k): (n, d) -> (n, K)."""
        dist = torch.distributions.MultivariateNormal(self.means, covariance_matrix=self.covs)
        return dist.log_prob(x[:, None, :]) + self.weights.log()  # (n, K)

    def score_and_eps(self, x_t: Tensor, t: Tensor | int, schedule: Schedule) -> tuple[Tensor, Tensor]:
        """grad log q_t(x_t) and eps* = -sqrt(1 - abar_t) grad log q_t(x_t) for the noised mixture.

        x_t: (B, d) or (B, ...) with d entries per sample; t: (B,) 0-based steps or an int.
        Returns two float64 tensors of x_t's shape.
        """
        batch_tensor("x_t", x_t)
        shape = x_t.shape
        x = x_t.reshape(shape[0], -1).to(torch.float64)  # (B, d)
        if x.shape[1] != self.dim:
            raise ValueError(f"x_t has {x.shape[1]} values per sample but the mixture is {self.dim}-dimensional")
        t = check_timesteps(schedule, t, batch=shape[0]).cpu()
        # The noised covariances depend on t only: factor them once per distinct step.
        steps, index = torch.unique(t, return_inverse=True)  # (U,), (B,)
        abar_u = schedule.alpha_bars.cpu().double()[steps]  # (U,)
        eye = torch.eye(self.dim, dtype=torch.float64)
        covs_u = abar_u[:, None, None, None] * self.covs[None] + (1 - abar_u)[:, None, None, None] * eye  # (U, K, d, d)
        chol_u = torch.linalg.cholesky(covs_u)  # (U, K, d, d)
        log_det_u = 2 * torch.diagonal(chol_u, dim1=-2, dim2=-1).log().sum(-1)  # (U, K)
        abar = abar_u[index][:, None]  # (B, 1)
        diff = x.cpu()[:, None, :] - abar[:, :, None].sqrt() * self.means[None]  # (B, K, d)
        prec_u = torch.cholesky_inverse(chol_u)  # (U, K, d, d), C^-1: small, well conditioned (C >= min(S_k, I))
        if steps.numel() == 1:
            solved = torch.einsum("kij,bkj->bki", prec_u[0], diff)  # (B, K, d) = C^-1 (x - m)
        else:
            solved = torch.einsum("bkij,bkj->bki", prec_u[index], diff)  # (B, K, d)
        log_det = log_det_u[index]  # (B, K)
        log_p = self.weights.log() - 0.5 * (log_det + (diff * solved).sum(-1) + self.dim * math.log(2 * math.pi))
        resp = torch.softmax(log_p, dim=1)  # (B, K), posterior over components
        score = -(resp[..., None] * solved).sum(1)  # (B, d)
        eps = -(1 - abar).sqrt() * score
        return score.reshape(shape).to(x_t.device), eps.reshape(shape).to(x_t.device)

    def eps(self, x_t: Tensor, t: Tensor | int, schedule: Schedule) -> Tensor:
        """The exact noise prediction E[eps | x_t] at step t; same shape as x_t, float64."""
        return self.score_and_eps(x_t, t, schedule)[1]

    def x0_mean(self, x_t: Tensor, t: Tensor | int, schedule: Schedule) -> Tensor:
        """E[x_0 | x_t], the ideal denoiser: x_t's shape, float64.

        Tweedie's formula, x0 = (x_t - sqrt(1 - abar_t) eps*) / sqrt(abar_t), i.e.
        ``forward.predict_x0`` fed the exact eps. It is a posterior *mean*: averaging over the
        x_0 that could have produced x_t pulls it toward the component means.
        """
        return predict_x0(schedule, x_t.to(torch.float64), t, self.eps(x_t, t, schedule).to(x_t.device))

    def nearest_mean_distance(self, x: Tensor) -> Tensor:
        """Distance from each point to the closest component mean: (n, d) -> (n,), float64.

        Its average measures how tightly samples hug the modes; for an isotropic component
        N(mu, s^2 I) in 2-D the truth is s * sqrt(pi / 2) when the components are well apart.
        """
        return torch.cdist(self._points(x).detach(), self.means).min(dim=1).values

    def as_model(self, schedule: Schedule) -> "EpsOracle":
        """This mixture's exact noise predictor under ``schedule``, with the model contract."""
        return EpsOracle(self, schedule)


class EpsOracle:
    """``model(x_t, t) -> eps`` for a Gaussian mixture: a perfect noise predictor.

    It returns x_t's dtype, so every sampler can use it wherever it uses a network.
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule) -> None:
        self.mixture = mixture
        self.schedule = schedule

    def __call__(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return self.mixture.eps(x_t, t, self.schedule).to(x_t.dtype)


def ring_mixture(k: int = 8, radius: float = 1.0, std: float = 0.1) -> GaussianMixture:
    """K equal-weight isotropic Gaussians evenly spaced on a circle: the course's 2-D toy."""
    k = int_at_least("k", k, 1)
    radius = finite_float("radius", radius)
    std = finite_float("std", std, 0.0, low_open=True)
    angle = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)  # (k, 2)
    covs = (std**2) * torch.eye(2, dtype=torch.float64).expand(k, 2, 2).clone()
    return GaussianMixture(torch.full((k,), 1.0 / k, dtype=torch.float64), means, covs)

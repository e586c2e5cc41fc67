"""The DDPM training objective L_simple, the ELBO weights it drops, and two diagnostics per noise level.

Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eqs. 8-14. With the reverse
step p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I) and the eps-parameterisation
mu_theta = (x_t - beta_t / sqrt(1 - abar_t) eps_theta) / sqrt(alpha_t), each KL term of the
variational bound reduces to a weighted noise-prediction error:

    L_{t-1} = lambda_t E||eps - eps_theta(x_t, t)||^2 + const,
    lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)).

L_simple sets every lambda_t to 1 and averages over all elements:

    L_simple = E_{t, x_0, eps} mean((eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t))^2).

| symbol        | code                        | shape           |
|---------------|-----------------------------|-----------------|
| x_0           | ``x0``                      | (B, ...)        |
| t             | ``t``                       | (B,) 0-based    |
| eps           | ``noise``                   | (B, ...)        |
| eps_theta     | ``model(x_t, t[, y])``      | (B, ...)        |
| lambda_t      | ``elbo_weights(schedule)``  | (T,)            |
| y             | ``y``; null label ``num_classes`` | (B,)      |

Steps are 0-based as in ``schedules.py``: code step t is the math's step t+1.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from ._checks import batch_tensor, finite_float, generator_or_none, int_in_range, one_of
from ._model import call_model, eval_mode, num_classes
from .forward import noise_like, q_sample
from .schedules import Schedule, check_step, check_timesteps

__all__ = ["l_simple", "elbo_weights", "loss_by_t", "LossByT", "eps_scale"]

Model = Callable[..., Tensor]


def l_simple(
    model: Model,
    schedule: Schedule,
    x0: Tensor,
    y: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    p_uncond: float = 0.0,
) -> Tensor:
    """L_simple on one batch: the mean over all elements of (eps - eps_theta(x_t, t[, y]))^2.

    x0: (B, ...); y: (B,) labels or None. Unless given, t (B,) is drawn uniformly from
    {0, ..., T-1} and then the noise (B, ...) with :func:`~ddpm_course.forward.noise_like`, both
    from ``generator`` in that order. With ``p_uncond > 0`` each label is then replaced by the
    null label ``model.config.num_classes`` with that probability (classifier-free guidance
    trains one network for both the conditional and the unconditional task). Returns a
    scalar tensor that carries gradients.
    """
    batch_tensor("x0", x0, finite=True)
    p_uncond = finite_float("p_uncond", p_uncond, 0.0, 1.0)
    generator_or_none("generator", generator, cpu=True)
    batch = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.T, (batch,), generator=generator)
    t = check_timesteps(schedule, t, batch=batch).to(x0.device)
    if noise is None:
        noise = noise_like(x0, generator)
    x_t, noise = q_sample(schedule, x0, t, noise=noise)
    if p_uncond > 0:
        null = num_classes(model)
        if null is None:
            raise ValueError(
                "p_uncond > 0 needs a class-conditional model (model.config.num_classes set), "
                "whose null label num_classes stands for 'no label'"
            )
        if y is None:
            raise ValueError("p_uncond > 0 needs labels y (B,) to drop; got y=None")
        drop = (torch.rand(batch, generator=generator) < p_uncond).to(y.device)  # (B,)
        y = torch.where(drop, torch.full_like(y, null), y)
    eps_hat = call_model(model, x_t, t, y, what="eps_hat")
    return (noise - eps_hat).pow(2).mean()


def elbo_weights(schedule: Schedule, variance: str = "posterior") -> Tensor:
    """lambda_t with L_{t-1} = lambda_t E||eps - eps_theta(x_t, t)||^2 + const: (T,) float64.

    lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)) (Ho et al. eq. 12), with the
    reverse variance sigma_t^2 = beta_tilde_t (``variance="posterior"``) or beta_t
    (``variance="beta"``); the sum over elements, not the mean, is what the bound weights.

    At t = 0 (the math's t = 1) the term is the decoder -log p(x_0 | x_1). For a Gaussian
    decoder N(mu_theta(x_1, 1), sigma_1^2 I) it is the same weighted error with the same
    formula (1 - abar = beta there, so lambda = beta / (2 sigma^2 alpha)). With
    sigma^2 = beta_tilde the decoder's variance would be beta_tilde_1 = 0 and the weight
    infinite, so that entry uses beta_tilde of the next step instead, as improved DDPM's
    clipped posterior log-variance does (or beta_1 if T = 1).

    L_simple drops these weights (all set to 1). The optimum is unchanged: for each t the
    minimiser of E||eps - eps_theta||^2 is E[eps | x_t] whatever the weight in front, so a
    flexible enough network learns the same function. The weights only decide how capacity
    and gradient are shared between noise levels: for the linear schedule lambda_t is
    largest at small t, where the task is easy (tiny noise), so dropping it moves effort to
    the harder, noisier steps; Ho et al. found better samples that way.
    """
    one_of("variance", variance, ("posterior", "beta"))
    if variance == "beta":
        sigma2 = schedule.betas
    else:
        sigma2 = schedule.posterior_variance.clone()
        sigma2[0] = sigma2[1] if schedule.T > 1 else schedule.betas[0]
    return schedule.betas**2 / (2 * sigma2 * schedule.alphas * (1 - schedule.alpha_bars))


class LossByT(NamedTuple):
    """The L_simple error in buckets of t: ``edges`` (n_buckets + 1,) long, bucket i is
    [edges[i], edges[i+1]); ``loss`` (n_buckets,) float, the mean squared error in each."""

    edges: Tensor
    loss: Tensor


@torch.no_grad()
def loss_by_t(
    model: Model,
    schedule: Schedule,
    x0: Tensor,
    y: Tensor | None = None,
    *,
    n_buckets: int = 10,
    generator: torch.Generator | None = None,
) -> LossByT:
    """Mean L_simple error per noise-level bucket, at fixed t spread evenly within each bucket.

    x0: (B, ...); the T steps are cut into ``n_buckets`` equal ranges, and in each the B
    images get B evenly spaced steps of that range. One noise tensor, drawn from
    ``generator``, is shared by every bucket, so differences between buckets come from t,
    not from the noise. A model that is an ``nn.Module`` is evaluated in eval mode (no
    dropout) and put back in its previous mode afterwards.
    """
    n_buckets = int_in_range("n_buckets", n_buckets, 1, schedule.T, hint="at most T")
    batch_tensor("x0", x0, finite=True)
    batch = x0.shape[0]
    edges = torch.linspace(0, schedule.T, n_buckets + 1, dtype=torch.float64).round().long()  # (n_buckets+1,)
    noise = noise_like(x0, generator)
    losses = []
    with eval_mode(model):
        for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
            frac = (torch.arange(batch, dtype=torch.float64) + 0.5) / batch  # (B,) in (0, 1)
            t = (lo + (frac * (hi - lo)).floor()).long().clamp(max=hi - 1)  # (B,) in [lo, hi)
            losses.append(l_simple(model, schedule, x0, y, t=t.to(x0.device), noise=noise).float().cpu())
    return LossByT(edges=edges, loss=torch.stack(losses))


@torch.no_grad()
def eps_scale(
    model: Model,
    schedule: Schedule,
    x0: Tensor,
    t: int,
    y: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> float:
    """||eps_theta(x_t, t)|| / ||eps|| over a batch noised to step ``t``: the size of the predicted noise.

    x0: (B, ...); one noise tensor (B, ...) is drawn from ``generator``. Near t = T the
    best prediction E[eps | x_t] is almost eps itself, so the ratio should be 1 to within a
    fraction of a percent. Deterministic samplers multiply an error there by
    1 / sqrt(abar_t) on the way to x0_hat; a network a few percent short at high noise
    samples badly with DDIM or DPM-Solver++ even when DDPM looks fine (lesson 07).
    A model that is an ``nn.Module`` is evaluated in eval mode and put back afterwards.
    """
    t = check_step(schedule, t)
    batch_tensor("x0", x0, finite=True)
    t_batch = check_timesteps(schedule, t, x0.shape[0]).to(x0.device)  # (B,)
    x_t, noise = q_sample(schedule, x0, t_batch, generator=generator)
    with eval_mode(model):
        eps_hat = call_model(model, x_t, t_batch, y, what="eps_hat")
    return (eps_hat.double().norm() / noise.double().norm()).item()

"""Lesson 05 (loss and training): L_simple on one batch, one ELBO weight, and one number.

| exercise             | the learner writes                                           | reference              |
|----------------------|--------------------------------------------------------------|------------------------|
| ``05.l_simple``      | ``my_l_simple(model, x0, t, noise, schedule) -> loss``       | ``losses.l_simple``    |
| ``05.elbo_weight``   | ``my_elbo_weight(t, schedule) -> lambda_t`` (B,), t >= 1     | ``losses.elbo_weights``|
| ``05.ema_start``     | the weight a fixed-decay EMA keeps on the start              | ``d ** (n - 1)``       |

The model in the cases is a fixed, smooth function of (x_t, t) with the model contract
``model(x_t, t) -> eps_hat``, so a wrong x_t or a wrong t changes the loss. The hidden cases
(``ddpm-course grade --hidden``) use other schedules (cosine, shorter linear ones) and shapes.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..losses import elbo_weights, l_simple
from ..schedules import Schedule, cosine_schedule, linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register

SCHEDULE = linear_schedule(1000)
HIDDEN_SCHEDULE = cosine_schedule(300)


def toy_model(x_t: Tensor, t: Tensor) -> Tensor:
    """A fixed "network": eps_hat = tanh(x_t) * (0.5 + t / T), per sample. (B, ...), (B,) -> (B, ...)."""
    scale = (0.5 + t.to(x_t.dtype) / SCHEDULE.T).reshape(-1, *([1] * (x_t.ndim - 1)))  # (B, 1, ..., 1)
    return torch.tanh(x_t) * scale


def _l_simple(model, x0: Tensor, t: Tensor, noise: Tensor, schedule: Schedule) -> Tensor:
    return l_simple(model, schedule, x0, t=t, noise=noise)


def _cases(generator: torch.Generator, schedule: Schedule = SCHEDULE, hidden: bool = False) -> list[Case]:
    T = schedule.T
    if hidden:
        specs = ((torch.tensor([T - 1, 0, 1, T // 2]), (4, 3, 2, 2)),
                 (torch.randint(0, T, (6,), generator=generator), (6, 5)),
                 (torch.tensor([0]), (1, 2, 3)))
    else:
        specs = ((torch.tensor([0, 1, 500, 998, 999]), (5, 1, 4, 4)),
                 (torch.randint(0, 1000, (8,), generator=generator), (8, 2)))
    where = "" if schedule is SCHEDULE else f" ({schedule.name} schedule, T = {T})"
    cases = []
    for t, shape in specs:
        x0 = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        cases.append(Case((toy_model, x0, t, noise, schedule), {}, f"t = {t.tolist()}, shape {shape}{where}"))
    return cases


def _col(values: Tensor, x: Tensor) -> Tensor:
    return values.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)  # (B, 1, ..., 1)


def _loss(model, x0, t, noise, s, abar=None, noise_scale=None, target="eps", feed=None, t_model=None, reduce="mean"):
    a = _col(s.alpha_bars[t] if abar is None else abar, x0)
    x_t = a.sqrt() * x0 + ((1 - a).sqrt() if noise_scale is None else noise_scale(a)) * noise
    eps_hat = model(x_t if feed is None else feed(x0, x_t), t if t_model is None else t_model)
    err = ((noise if target == "eps" else x0) - eps_hat).pow(2)
    return err.mean() if reduce == "mean" else err.sum()


register(FunctionExercise(
    name="05.l_simple",
    reference=_l_simple,
    cases=_cases,
    hidden_cases=lambda g: _cases(g, HIDDEN_SCHEDULE, hidden=True),
    mistakes=(
        Mistake("the network predicts the noise: compare model(x_t, t) with eps, not with x0",
                lambda m, x0, t, n, s: _loss(m, x0, t, n, s, target="x0")),
        Mistake("feed the network the noisy x_t, not the clean x0",
                lambda m, x0, t, n, s: _loss(m, x0, t, n, s, feed=lambda a, b: a)),
        Mistake("the square roots are missing in x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps",
                lambda m, x0, t, n, s: _loss(m, x0, t, n, s, noise_scale=lambda a: 1 - a.sqrt(),
                                             abar=s.alpha_bars[t] ** 2)),
        Mistake("the noise is scaled by its variance 1 - alpha_bar_t; scale it by the standard deviation",
                lambda m, x0, t, n, s: _loss(m, x0, t, n, s, noise_scale=lambda a: 1 - a)),
        Mistake("off by one step: the code's t is 0-based, alpha_bars[t] belongs to it (t - 1 wraps at t = 0)",
                lambda m, x0, t, n, s: _loss(m, x0, t, n, s, abar=s.alpha_bars[t - 1])),
        Mistake("the network gets the same 0-based t that picked alpha_bar, not t + 1",
                lambda m, x0, t, n, s: _loss(m, x0, t, n, s, t_model=t + 1)),
        Mistake("L_simple is the mean over all elements (batch and pixels), not the sum",
                lambda m, x0, t, n, s: _loss(m, x0, t, n, s, reduce="sum")),
    ),
    rtol=1e-6,
    atol=1e-9,
))


def _elbo_weight(t: Tensor, schedule: Schedule) -> Tensor:
    return elbo_weights(schedule)[t]


def _weight(t, s, sigma2=None, alpha=None):
    sigma2 = s.posterior_variance[t] if sigma2 is None else sigma2
    alpha = s.alphas[t] if alpha is None else alpha
    return s.betas[t] ** 2 / (2 * sigma2 * alpha * (1 - s.alpha_bars[t]))


register(FunctionExercise(
    name="05.elbo_weight",
    reference=_elbo_weight,
    cases=lambda g: [
        Case((torch.tensor([1, 2, 10, 500, 999]), SCHEDULE), {}, "t = [1, 2, 10, 500, 999]"),
        Case((torch.randint(1, 100, (6,), generator=g), linear_schedule(100, 1e-3, 0.2)), {}, "6 random t, T = 100"),
    ],
    hidden_cases=lambda g: [
        Case((torch.tensor([199, 1, 2, 57]), cosine_schedule(200)), {}, "t = [199, 1, 2, 57], cosine, T = 200"),
        Case((torch.randint(1, 50, (5,), generator=g), linear_schedule(50, 1e-4, 0.1)), {}, "5 random t, T = 50"),
        Case((torch.tensor([1, 499]), linear_schedule(500)), {}, "t = [1, 499], linear, T = 500"),
    ],
    mistakes=(
        Mistake("that is lambda_t for sigma_t^2 = beta_t; the lesson's weights use the posterior's "
                "sigma_t^2 = beta-tilde_t (schedule.posterior_variance)",
                lambda t, s: _weight(t, s, sigma2=s.betas[t])),
        Mistake("the denominator has alpha_t itself, not its square root",
                lambda t, s: _weight(t, s, alpha=s.alphas[t].sqrt())),
        Mistake("sigma_t^2 is a variance: use beta-tilde_t itself, not its square root",
                lambda t, s: _weight(t, s, sigma2=s.posterior_variance[t].sqrt())),
        Mistake("the numerator is beta_t squared", lambda t, s: _weight(t, s) / s.betas[t]),
    ),
    rtol=1e-9,
    atol=0.0,
))


register(NumberExercise(
    name="05.ema_start",
    answer=lambda: 0.995 ** 499,
    mistakes=(
        Mistake("the first update copies the starting weights: 499 averaging updates follow, not 500",
                lambda: 0.995**500),
        Mistake("that is the share the last update gets; the start keeps d multiplied once per averaging update",
                lambda: 0.005),
        Mistake("that is the warmed-up decay's leftover; the question is about a fixed decay d = 0.995",
                lambda: math.prod(min(0.995, (1 + k) / (10 + k)) for k in range(1, 500))),
    ),
    rtol=1e-3,
))

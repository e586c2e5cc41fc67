"""The reverse steps: where the steps of a sampler sit, and what one step does.

Papers: DDPM, Ho et al. 2020 (ancestral sampling, Algorithm 2); DDIM, Song, Meng & Ermon 2021;
the probability-flow ODE solved with Euler's method in the sigma parametrisation of Karras et
al. 2022; DPM-Solver++(2M) and (3M), Lu et al. 2022; Heun's method on Karras' levels (EDM,
Algorithm 1 without churn). :mod:`ddpm_course.samplers` runs them (one loop, ``chain``) and
re-exports every name here, which is where the lessons find them (``samplers.ddim_step``).

Notation (0-based steps as in ``schedules.py``; ``t_prev = -1`` stands for the data itself,
where abar = 1 and sigma = 0):

| math                                   | code                    | meaning                                  |
|----------------------------------------|-------------------------|------------------------------------------|
| abar_t                                 | ``abar``                | signal fraction left at step t           |
| x0_hat = (x_t - sqrt(1-abar_t) eps) / sqrt(abar_t) | ``x0_hat`` | the network's guess of the clean data |
| sigma_t = sqrt((1 - abar_t) / abar_t)  | ``sigma``               | noise level of x_t / sqrt(abar_t)        |
| lambda_t = log(sqrt(abar_t) / sqrt(1 - abar_t)) | ``lam``        | half the log signal-to-noise ratio       |
| eta                                    | ``eta``                 | DDIM's noise knob: 0 deterministic, 1 DDPM-like |

The grids: :func:`timesteps` (``spacing`` one of :data:`SPACINGS`), :func:`dpm_solver_timesteps`,
:func:`karras_sigmas`, and :func:`multistep_orders` (the order of each multistep step). The step
rules (``ddpm_step``, ``ddim_step``, ``euler_step``, ``dpm_solver_step``, ``heun_step``,
``dpm_solver_3m_step``) are pure functions with one signature,

    ``xxx_step(schedule, x_t, t, eps, noise=None, *, t_prev=t-1, history=(), **rule options) -> Step``,

mapping the state x_t at step t and the model output there to a :class:`Step` holding
x_{t_prev} and x0_hat. ``noise`` (B, ...) is the fresh Gaussian draw of a stochastic rule;
``history`` the earlier evaluations (:class:`PastEstimate`, oldest first) that a multistep rule uses.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor

from ._checks import (
    batch_tensor,
    finite_float,
    int_at_least,
    int_in_range,
    one_of,
    same_shape,
)
from .schedules import Schedule, check_step

__all__ = [
    "Step", "PastEstimate", "StepRule", "SPACINGS", "VARIANCES", "timesteps", "dpm_solver_timesteps", "karras_sigmas",
    "multistep_orders", "ddpm_step", "ddim_step", "euler_step", "dpm_solver_step", "heun_step", "dpm_solver_3m_step",
]

SPACINGS = ("leading", "trailing", "linspace", "logsnr", "karras")
VARIANCES = ("beta", "posterior")


class Step(NamedTuple):
    """What one reverse step returns: the new state and the clean-data guess it used."""

    x_prev: Tensor  # (B, ...), the state at t_prev (the sample itself when t_prev = -1)
    x0_hat: Tensor  # (B, ...), E[x_0 | x_t] as the model sees it


class PastEstimate(NamedTuple):
    """One earlier evaluation, as a multistep rule remembers it: the step and its x0_hat (named
    ``Evaluation`` before; ``metrics.Evaluation`` is the scores of a set of samples)."""

    t: int
    x0_hat: Tensor  # (B, ...)

class StepRule(Protocol):
    """A step rule with its schedule and options bound: ``rule(x_t, t, out, noise, *, t_prev, history)``."""

    def __call__(self, x_t: Tensor, t: Any, out: Tensor, noise: Tensor | None, *, t_prev: Any,
                 history: tuple[PastEstimate, ...]) -> Step: ...


# ----------------------------------------------------------------------------- timesteps


def _check_steps(schedule: Schedule, steps: int) -> int:
    return int_in_range("steps", steps, 1, schedule.T, hint="at most T network evaluations")


def _abar_table(schedule: Schedule) -> np.ndarray:
    """alpha_bar as a float64 NumPy array, wherever the schedule lives."""
    return schedule.alpha_bars.detach().cpu().double().numpy()  # (T,)


def _t_from_log_sigma(schedule: Schedule, log_sigma: np.ndarray) -> np.ndarray:
    """Fractional step at which log sigma_t takes each value (sigma_t grows with t), rounded."""
    abar = _abar_table(schedule)
    table = 0.5 * (np.log1p(-abar) - np.log(abar))  # (T,)
    return np.interp(log_sigma, table, np.arange(schedule.T)).round().astype(np.int64)


def timesteps(schedule: Schedule, steps: int, spacing: str = "leading") -> Tensor:
    """The steps at which a sampler evaluates the network, from noisiest to cleanest: (n,) long.

    ``leading``, ``trailing`` and ``linspace`` follow diffusers' ``DDPMScheduler`` and
    ``DDIMScheduler`` exactly (T = 1000, steps = 10 shown):

    | spacing    | rule                                      | T=1000, steps=10         |
    |------------|-------------------------------------------|--------------------------|
    | leading    | k * (T // steps), k = steps-1 .. 0        | 900, 800, ..., 100, 0    |
    | trailing   | round(T - k * T / steps) - 1, k = 0 ..    | 999, 899, ..., 199, 99   |
    | linspace   | round(linspace(T-1, 0, steps))            | 999, 888, ..., 111, 0    |
    | logsnr     | uniform in log-SNR from t = T-1 to t = 0  | 999, ..., 0              |
    | karras     | Karras et al.'s sigma^(1/7) ramp, T-1 to 0 | 999, ..., 0             |

    ``leading`` never visits the noisiest step T-1 (a known weakness: x_T ~ N(0, I) is then
    treated as x_{T - T//steps}); ``trailing`` never evaluates near t = 0. ``logsnr`` and
    ``karras`` are rounded to whole steps and repeats are dropped, so at large ``steps``
    they can return fewer than ``steps`` entries (the other three never do).
    (diffusers' Euler scheduler keeps ``linspace`` unrounded; the model contract here wants
    whole steps, so it is rounded.)
    """
    steps = _check_steps(schedule, steps)
    one_of("spacing", spacing, SPACINGS)
    T = schedule.T
    if spacing == "leading":
        ts = (np.arange(0, steps) * (T // steps)).round()[::-1]
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / steps)) - 1
    elif spacing == "linspace":
        ts = np.linspace(0, T - 1, steps).round()[::-1]
    elif spacing in ("logsnr", "karras"):
        abar = _abar_table(schedule)
        log_sigma_min, log_sigma_max = (0.5 * math.log((1 - abar[i]) / abar[i]) for i in (0, T - 1))
        if spacing == "logsnr":
            log_sigma = np.linspace(log_sigma_max, log_sigma_min, steps)
        else:
            rho = 7.0
            ramp = np.linspace(0, 1, steps)
            lo, hi = math.exp(log_sigma_min) ** (1 / rho), math.exp(log_sigma_max) ** (1 / rho)
            log_sigma = rho * np.log(hi + ramp * (lo - hi))
        ts = _t_from_log_sigma(schedule, log_sigma)
        ts = np.unique(ts)[::-1]
    return torch.from_numpy(np.ascontiguousarray(ts).astype(np.int64))


def dpm_solver_timesteps(schedule: Schedule, steps: int, spacing: str = "linspace", drop_t0: bool = True) -> Tensor:
    """Evaluation steps of diffusers' ``DPMSolverMultistepScheduler``: (n,) long.

    For ``linspace`` and ``leading`` it lays out ``steps + 1`` points (ending at t = 0) and drops
    the last (``drop_t0=True``), so the final update jumps from the last evaluated step straight
    to sigma = 0 instead of evaluating near t = 0: 20 steps on T = 1000 evaluate last at t = 50.
    ``drop_t0=False`` keeps t = 0, as :func:`timesteps` does. The other spacings are those of
    :func:`timesteps` (``trailing`` never reaches t = 0; ``logsnr`` and ``karras`` always end there).
    """
    steps = _check_steps(schedule, steps)
    one_of("spacing", spacing, SPACINGS)
    one_of("drop_t0", drop_t0, (True, False))
    if drop_t0 and spacing in ("linspace", "leading"):
        int_in_range("steps", steps, 1, schedule.T - 1, hint=f"T - 1 for {spacing!r} spacing with drop_t0")
        return timesteps(schedule, steps + 1, spacing)[:-1]
    return timesteps(schedule, steps, spacing)


# ----------------------------------------------------------------------------- step rules


def _check_state(
    schedule: Schedule, x_t: Tensor, t: int, eps: Tensor, noise: Tensor | None, t_prev: int | None
) -> tuple[int, int]:
    """The checks every step rule shares: t and t_prev as ints, eps and noise of x_t's shape."""
    batch_tensor("x_t", x_t)
    t = check_step(schedule, t)
    t_prev = t - 1 if t_prev is None else check_step(schedule, t_prev, "t_prev", low=-1, high=t - 1)
    same_shape("eps", eps, x_t)
    if noise is not None:
        same_shape("noise", noise, x_t)
    return t, t_prev


def _no_history(rule: str, history: Sequence[PastEstimate]) -> None:
    if len(history):
        raise ValueError(
            f"{rule} is a single-step rule and uses no history; pass history=() (got {len(history)} entries)"
        )


def _abar(schedule: Schedule, t: int) -> float:
    """alpha_bar at a 0-based step as a Python float (float64); 1 at t = -1, the data."""
    return 1.0 if t < 0 else float(schedule.alpha_bars[t])


def _x0_hat(x_t: Tensor, eps: Tensor, abar: float) -> Tensor:
    """x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar): (B, ...)."""
    return (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)


def ddpm_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    noise: Tensor | None = None,
    *,
    t_prev: int | None = None,
    history: Sequence[PastEstimate] = (),
    variance: str = "beta",
) -> Step:
    """One ancestral step x_t -> x_{t_prev} ~ N(mu, sigma^2 I) (Ho et al. 2020, Algorithm 2).

    mu is the posterior mean of q(x_{t_prev} | x_t, x0_hat), which equals
    (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t); with a skipped step
    (t_prev < t - 1) alpha_t means abar_t / abar_{t_prev}. sigma^2 is beta_t (``"beta"``, the
    paper's first choice) or the posterior variance beta_tilde_t (``"posterior"``).
    The last step (t_prev = -1) adds no noise and returns mu = x0_hat.

    x_t, eps, noise: (B, ...); ``noise`` is required unless t_prev = -1.
    """
    t, t_prev = _check_state(schedule, x_t, t, eps, noise, t_prev)
    _no_history("ddpm_step", history)
    one_of("variance", variance, VARIANCES)
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    alpha = abar / abar_prev
    beta = 1 - alpha
    x0_hat = _x0_hat(x_t, eps, abar)
    mean = (math.sqrt(abar_prev) * beta / (1 - abar)) * x0_hat + (math.sqrt(alpha) * (1 - abar_prev) / (1 - abar)) * x_t
    if t_prev < 0:
        return Step(mean, x0_hat)
    if noise is None:
        raise ValueError("ddpm_step needs noise (B, ...) for every step but the last (t_prev = -1)")
    var = beta if variance == "beta" else beta * (1 - abar_prev) / (1 - abar)
    return Step(mean + math.sqrt(var) * noise, x0_hat)


def ddim_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    noise: Tensor | None = None,
    *,
    t_prev: int | None = None,
    history: Sequence[PastEstimate] = (),
    eta: float = 0.0,
) -> Step:
    """One DDIM step (Song et al. 2021, eq. 12): re-noise x0_hat to level t_prev along eps.

    x_{t_prev} = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps + s z, with
    s^2 = eta^2 (1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev). eta = 0 is
    deterministic; eta = 1 over consecutive steps is DDPM with the posterior variance.
    x_t, eps, noise: (B, ...); ``noise`` is required when eta > 0 (and t_prev >= 0).
    """
    t, t_prev = _check_state(schedule, x_t, t, eps, noise, t_prev)
    _no_history("ddim_step", history)
    eta = finite_float("eta", eta, 0.0)
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    x0_hat = _x0_hat(x_t, eps, abar)
    s2 = eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
    x_prev = math.sqrt(abar_prev) * x0_hat + math.sqrt(max(1 - abar_prev - s2, 0.0)) * eps
    if s2 > 0:
        if noise is None:
            raise ValueError("ddim_step needs noise (B, ...) when eta > 0")
        x_prev = x_prev + math.sqrt(s2) * noise
    return Step(x_prev, x0_hat)


def _deterministic(rule: str, noise: Tensor | None) -> None:
    if noise is not None:
        raise ValueError(f"{rule} is deterministic and adds no noise; pass noise=None")


def euler_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    noise: Tensor | None = None,
    *,
    t_prev: int | None = None,
    history: Sequence[PastEstimate] = (),
) -> Step:
    """One Euler step of the probability-flow ODE, taken in the sigma parametrisation.

    With z = x_t / sqrt(abar_t) (the "variance exploding" view, noise level sigma_t), the ODE
    reads dz / dsigma = eps(z, sigma) (Karras et al. 2022), and Euler gives
    z' = z + (sigma_prev - sigma) eps; the result is mapped back to x = sqrt(abar_prev) z'.
    (This is algebraically DDIM with eta = 0; the test suite checks it.)
    x_t, eps: (B, ...).
    """
    t, t_prev = _check_state(schedule, x_t, t, eps, noise, t_prev)
    _deterministic("euler_step", noise)
    _no_history("euler_step", history)
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    sigma, sigma_prev = math.sqrt((1 - abar) / abar), math.sqrt((1 - abar_prev) / abar_prev)
    z = x_t / math.sqrt(abar)
    z_prev = z + (sigma_prev - sigma) * eps
    return Step(math.sqrt(abar_prev) * z_prev, _x0_hat(x_t, eps, abar))


def _lambda(abar: float) -> float:
    """Half the log-SNR: log(alpha) - log(sigma), +inf at the data."""
    return math.inf if abar >= 1.0 else 0.5 * (math.log(abar) - math.log1p(-abar))


def _last_evaluation(schedule: Schedule, history: Sequence[PastEstimate], x_t: Tensor, t: int) -> PastEstimate | None:
    """The most recent entry of ``history`` (each a (t_last, x0_hat_last) pair), checked; None if empty."""
    if not isinstance(history, (tuple, list)):
        raise TypeError(f"history must be a tuple of (t, x0_hat) pairs, oldest first; got {type(history).__name__}")
    for entry in history:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(f"history must hold (t, x0_hat) pairs; got {entry!r:.80}")
        check_step(schedule, entry[0], "a history step", low=t + 1)
        same_shape("a history x0_hat", entry[1], x_t)
    return PastEstimate(int(history[-1][0]), history[-1][1]) if history else None


def dpm_solver_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    noise: Tensor | None = None,
    *,
    t_prev: int | None = None,
    history: Sequence[PastEstimate] = (),
) -> Step:
    """One DPM-Solver++ step in data prediction (Lu et al. 2022, Algorithm 2, "midpoint" form).

    With alpha = sqrt(abar), s = sqrt(1 - abar), lambda = log(alpha / s), h = lambda_prev - lambda_t:

    - first order (``history=()``): x_prev = (s_prev / s_t) x_t - alpha_prev (e^{-h} - 1) x0_hat,
      which is DDIM with eta = 0;
    - second order (``history`` ending in (t_last, x0_hat_last), the previous evaluation):
      D0 = x0_hat, D1 = (x0_hat - x0_hat_last) / r with r = (lambda_t - lambda_last) / h, and
      x_prev = (s_prev / s_t) x_t - alpha_prev (e^{-h} - 1) (D0 + D1 / 2).

    A step to the data (t_prev = -1, h infinite) must be first order and returns x0_hat.
    x_t, eps: (B, ...); each x0_hat_last: (B, ...).
    """
    t, t_prev = _check_state(schedule, x_t, t, eps, noise, t_prev)
    _deterministic("dpm_solver_step", noise)
    last = _last_evaluation(schedule, history, x_t, t)
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    x0_hat = _x0_hat(x_t, eps, abar)
    if t_prev < 0:
        if last is not None:
            raise ValueError("a step to the data (t_prev = -1) must be first order: pass history=()")
        return Step(x0_hat, x0_hat)
    lam, lam_prev = _lambda(abar), _lambda(abar_prev)
    h = lam_prev - lam
    phi = math.expm1(-h)  # e^{-h} - 1
    d = x0_hat
    if last is not None:
        r = (lam - _lambda(_abar(schedule, last.t))) / h
        d = x0_hat + (0.5 / r) * (x0_hat - last.x0_hat)
    x_prev = math.sqrt((1 - abar_prev) / (1 - abar)) * x_t - math.sqrt(abar_prev) * phi * d
    return Step(x_prev, x0_hat)


# ----------------------------------------------------------------------------- higher order: Heun, DPM-Solver++ 3M
#
# Lesson 13. Heun's method with Karras et al.'s sigma spacing (EDM, Algorithm 1 without churn)
# and the third-order multistep DPM-Solver++ (Lu et al. 2022, "3M"), each matching a diffusers
# scheduler step by step (``HeunDiscreteScheduler(use_karras_sigmas=True)``,
# ``DPMSolverMultistepScheduler(solver_order=3)``; tests/test_parity_diffusers.py).


def karras_sigmas(schedule: Schedule, steps: int, rho: float = 7.0) -> Tensor:
    """Karras et al.'s noise levels: (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.

    sigma_max and sigma_min are those of steps T - 1 and 0; i = 0 .. n - 1 (n = ``steps``).
    Returns (n,) float64, decreasing, unrounded (``timesteps(..., "karras")`` rounds them to
    whole steps for the model contract; diffusers feeds the network fractional steps instead).
    rho = 7 spends most of the steps at low noise, where the ODE's curvature is.
    """
    steps = _check_steps(schedule, steps)
    rho = finite_float("rho", rho, 0.0, low_open=True)
    abar = _abar_table(schedule)
    lo, hi = (math.sqrt((1 - abar[i]) / abar[i]) ** (1 / rho) for i in (0, schedule.T - 1))
    ramp = np.linspace(0, 1, steps)
    return torch.from_numpy((hi + ramp * (lo - hi)) ** rho)


def heun_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    noise: Tensor | None = None,
    *,
    t_prev: int | None = None,
    history: Sequence[PastEstimate] = (),
    predict: Callable[[Tensor, int], Tensor] | None = None,
) -> Step:
    """One Heun step of the probability-flow ODE dz/dsigma = eps (Karras et al. 2022, Algorithm 1).

    With z = x_t / sqrt(abar_t) and sigma = sqrt((1 - abar) / abar): the Euler predictor
    z_e = z + (sigma_prev - sigma) eps, a second evaluation eps_e = predict(sqrt(abar_prev) z_e,
    t_prev), and the trapezoid z' = z + (sigma_prev - sigma) (eps + eps_e) / 2, mapped back to
    x = sqrt(abar_prev) z'. Two network evaluations per step, error O(h^3) per step (second
    order). The step to the data (t_prev = -1, sigma_prev = 0) is a plain Euler step, which
    lands on x0_hat: there is no network at sigma = 0 to correct with (as in EDM and diffusers).

    x_t, eps: (B, ...); ``predict(x, t) -> eps`` (B, ...) is required unless t_prev = -1.
    """
    t, t_prev = _check_state(schedule, x_t, t, eps, noise, t_prev)
    _deterministic("heun_step", noise)
    _no_history("heun_step", history)
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    x0_hat = _x0_hat(x_t, eps, abar)
    if t_prev < 0:
        return Step(x0_hat, x0_hat)
    if predict is None or not callable(predict):
        raise TypeError("heun_step needs predict(x, t) -> eps for its second evaluation (unless t_prev = -1)")
    sigma, sigma_prev = math.sqrt((1 - abar) / abar), math.sqrt((1 - abar_prev) / abar_prev)
    z = x_t / math.sqrt(abar)
    z_euler = z + (sigma_prev - sigma) * eps
    eps_euler = predict(math.sqrt(abar_prev) * z_euler, t_prev)
    same_shape("predict's output", eps_euler, x_t)
    z_prev = z + (sigma_prev - sigma) * 0.5 * (eps + eps_euler)
    return Step(math.sqrt(abar_prev) * z_prev, x0_hat)


def _history_entries(schedule: Schedule, history: Sequence[PastEstimate], x_t: Tensor, t: int, most: int) -> list:
    """``history`` checked: at most ``most`` (t, x0_hat) pairs, oldest first, at strictly decreasing steps after t."""
    if not isinstance(history, (tuple, list)):
        raise TypeError(f"history must be a tuple of (t, x0_hat) pairs, oldest first; got {type(history).__name__}")
    if len(history) > most:
        raise ValueError(f"history holds at most {most} earlier evaluations here; got {len(history)}")
    entries, later = [], schedule.T
    for entry in history:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(f"history must hold (t, x0_hat) pairs; got {entry!r:.80}")
        step = check_step(schedule, entry[0], "a history step", low=t + 1, high=later - 1)
        same_shape("a history x0_hat", entry[1], x_t)
        entries.append(PastEstimate(step, entry[1]))
        later = step
    return entries


def dpm_solver_3m_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    noise: Tensor | None = None,
    *,
    t_prev: int | None = None,
    history: Sequence[PastEstimate] = (),
) -> Step:
    """One step of multistep DPM-Solver++ up to third order (Lu et al. 2022; diffusers' "3M").

    The order is 1 + len(history): none is :func:`dpm_solver_step`'s first order (DDIM), one
    earlier evaluation its second order (2M), two the third order. With h = lambda_prev - lambda_t,
    h_0 = lambda_t - lambda_1, h_1 = lambda_1 - lambda_2 (lambda_1, lambda_2 the steps of the last
    and second-to-last evaluations), r0 = h_0 / h, r1 = h_1 / h and the divided differences
    D1_0 = (D0 - D_1) / r0, D1_1 = (D_1 - D_2) / r1 of the x0_hat's D:

        D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),    D2 = (D1_0 - D1_1) / (r0 + r1),
        x_prev = (s_prev / s_t) x_t - alpha_prev (e^{-h} - 1) D0
                 + alpha_prev ((e^{-h} - 1) / h + 1) D1 - alpha_prev ((e^{-h} - 1 + h) / h^2 - 1/2) D2,

    the Taylor expansion of x0_hat in lambda to second order, integrated exactly against the
    exponential weight. A step to the data (t_prev = -1) must be first order and returns x0_hat.
    x_t, eps: (B, ...).
    """
    t, t_prev = _check_state(schedule, x_t, t, eps, noise, t_prev)
    _deterministic("dpm_solver_3m_step", noise)
    entries = _history_entries(schedule, history, x_t, t, 2)
    if len(entries) < 2:
        return dpm_solver_step(schedule, x_t, t, eps, t_prev=t_prev, history=tuple(entries))
    if t_prev < 0:
        raise ValueError("a step to the data (t_prev = -1) must be first order: pass history=()")
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    d0 = _x0_hat(x_t, eps, abar)
    (t2, d2), (t1, d1) = entries
    lam, lam_prev = _lambda(abar), _lambda(abar_prev)
    lam1, lam2 = _lambda(_abar(schedule, t1)), _lambda(_abar(schedule, t2))
    h, h0, h1 = lam_prev - lam, lam - lam1, lam1 - lam2
    r0, r1 = h0 / h, h1 / h
    d1_0, d1_1 = (d0 - d1) / r0, (d1 - d2) / r1
    big_d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
    big_d2 = (d1_0 - d1_1) / (r0 + r1)
    phi = math.expm1(-h)  # e^{-h} - 1
    a_prev = math.sqrt(abar_prev)
    x_prev = (math.sqrt((1 - abar_prev) / (1 - abar)) * x_t - a_prev * phi * d0
              + a_prev * (phi / h + 1.0) * big_d1 - a_prev * ((phi + h) / h**2 - 0.5) * big_d2)
    return Step(x_prev, d0)


def multistep_orders(n: int, order: int, lower_order_final: bool = True) -> list[int]:
    """The order of each of the n steps of diffusers' ``DPMSolverMultistepScheduler`` (final sigma 0).

    Step i can use at most i earlier evaluations (order <= i + 1); the last step, to the data,
    is first order; with ``lower_order_final`` and n < 15 the second-to-last is at most second
    order. An order-k multistep method thus needs k - 1 warm-up steps of lower order, and no
    extra network evaluation: each step costs one.
    """
    n = int_at_least("n", n, 1)
    order = int_in_range("order", order, 1, 3)
    one_of("lower_order_final", lower_order_final, (True, False))
    orders = [min(order, i + 1) for i in range(n)]
    if lower_order_final and n < 15 and n >= 2:
        orders[-2] = min(orders[-2], 2)
    orders[-1] = 1
    return orders



"""Samplers: turn a noise predictor eps_theta(x_t, t) into samples by running the process backwards.

Papers: DDPM, Ho et al. 2020 (ancestral sampling, Algorithm 2); DDIM, Song, Meng & Ermon 2021;
the probability-flow ODE, Song et al. 2021 ("Score-based generative modeling through SDEs")
solved with Euler's method in the sigma parametrisation of Karras et al. 2022 ("Elucidating the
design space of diffusion-based generative models"); DPM-Solver++(2M), Lu et al. 2022
("DPM-Solver++: fast solver for guided sampling of diffusion probabilistic models").

Notation (0-based steps as in ``schedules.py``; ``t_prev = -1`` stands for the data itself,
where abar = 1 and sigma = 0):

| math                                   | code                    | meaning                                  |
|----------------------------------------|-------------------------|------------------------------------------|
| abar_t                                 | ``abar``                | signal fraction left at step t           |
| x0_hat = (x_t - sqrt(1-abar_t) eps) / sqrt(abar_t) | ``x0_hat`` | the network's guess of the clean data |
| sigma_t = sqrt((1 - abar_t) / abar_t)  | ``sigma``               | noise level of x_t / sqrt(abar_t)        |
| lambda_t = log(sqrt(abar_t) / sqrt(1 - abar_t)) | ``lam``        | half the log signal-to-noise ratio       |
| eta                                    | ``eta``                 | DDIM's noise knob: 0 deterministic, 1 DDPM-like |

Every method has a pure *step* function (``ddpm_step``, ``ddim_step``, ``euler_step``,
``dpm_solver_step``) that maps (x_t, t, t_prev, model output[, noise]) to a :class:`Step`
holding x_{t_prev} and x0_hat; the ``*_sample`` loops and the parity tests against diffusers
share them. The loops all read

    ``xxx_sample(model, schedule, shape, *, ..., generator=None, callback=None, y=None)``

- ``shape`` is a tuple (x_T is drawn from ``generator`` on the CPU, as float32, on the model's
  device) or a starting x_T tensor (used as is, with its dtype and device).
- ``callback(i, t, x_t, x0_hat)`` is called after each network evaluation.
- ``y`` (B,) class labels, passed on as ``model(x_t, t, y)``; None calls ``model(x_t, t)``.
- The loops run under ``torch.no_grad()`` and leave the model's train/eval mode alone: put a
  network in ``eval()`` mode yourself (a warning reminds you if it is still training).

Defaults follow diffusers (DDIM "leading", Euler "linspace", DPM-Solver++ its own "linspace"
that stops evaluating at t ~ T/(steps+1)). On data with sharp modes that DPM-Solver++ default
squeezes the modes; ``spacing="logsnr"`` fixes it (measured in notebook 07).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .forward import noise_like
from .schedules import Schedule

__all__ = [
    "Step", "SPACINGS", "timesteps", "dpm_solver_timesteps",
    "ddpm_step", "ddim_step", "euler_step", "dpm_solver_step",
    "ddpm_sample", "ddim_sample", "euler_sample", "dpm_solver_sample",
]

SPACINGS = ("leading", "trailing", "linspace", "logsnr", "karras")
VARIANCES = ("beta", "posterior")

Callback = Callable[[int, int, Tensor, Tensor], None]


class Step(NamedTuple):
    """What one reverse step returns: the new state and the clean-data guess it used."""

    x_prev: Tensor  # (B, ...), the state at t_prev (the sample itself when t_prev = -1)
    x0_hat: Tensor  # (B, ...), E[x_0 | x_t] as the model sees it


# ----------------------------------------------------------------------------- timesteps


def _check_steps(schedule: Schedule, steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an integer; got {type(steps).__name__}")
    if not 1 <= steps <= schedule.T:
        raise ValueError(f"steps must lie in [1, T] = [1, {schedule.T}]; got {steps}")


def _t_from_log_sigma(schedule: Schedule, log_sigma: np.ndarray) -> np.ndarray:
    """Fractional step at which log sigma_t takes each value (sigma_t grows with t), rounded."""
    table = 0.5 * (np.log1p(-schedule.alpha_bars.numpy()) - np.log(schedule.alpha_bars.numpy()))  # (T,)
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
    _check_steps(schedule, steps)
    T = schedule.T
    if spacing == "leading":
        ts = (np.arange(0, steps) * (T // steps)).round()[::-1]
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / steps)) - 1
    elif spacing == "linspace":
        ts = np.linspace(0, T - 1, steps).round()[::-1]
    elif spacing in ("logsnr", "karras"):
        abar = schedule.alpha_bars.numpy()
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
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}; got {spacing!r}")
    return torch.from_numpy(np.ascontiguousarray(ts).astype(np.int64))


def dpm_solver_timesteps(schedule: Schedule, steps: int, spacing: str = "linspace", drop_t0: bool = True) -> Tensor:
    """Evaluation steps of diffusers' ``DPMSolverMultistepScheduler``: (n,) long.

    For ``linspace`` and ``leading`` it lays out ``steps + 1`` points (ending at t = 0) and drops
    the last (``drop_t0=True``), so the final update jumps from the last evaluated step straight
    to sigma = 0 instead of evaluating near t = 0: 20 steps on T = 1000 evaluate last at t = 50.
    ``drop_t0=False`` keeps t = 0, as :func:`timesteps` does. The other spacings are those of
    :func:`timesteps` (``trailing`` never reaches t = 0; ``logsnr`` and ``karras`` always end there).
    """
    _check_steps(schedule, steps)
    if drop_t0 and spacing in ("linspace", "leading"):
        if steps + 1 > schedule.T:
            raise ValueError(f"steps must lie in [1, T - 1] = [1, {schedule.T - 1}] for {spacing!r} spacing; got {steps}")
        return timesteps(schedule, steps + 1, spacing)[:-1]
    return timesteps(schedule, steps, spacing)


# ----------------------------------------------------------------------------- step functions


def _check_pair(schedule: Schedule, t: int, t_prev: int) -> None:
    for name, value in (("t", t), ("t_prev", t_prev)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if not 0 <= t < schedule.T:
        raise ValueError(f"t must lie in [0, T-1] = [0, {schedule.T - 1}]; got {t}")
    if not -1 <= t_prev < t:
        raise ValueError(f"t_prev must lie in [-1, t-1] = [-1, {t - 1}] (-1 means the data); got {t_prev}")


def _abar(schedule: Schedule, t: int) -> float:
    """alpha_bar at a 0-based step as a Python float (float64); 1 at t = -1, the data."""
    return 1.0 if t < 0 else float(schedule.alpha_bars[t])


def _x0_hat(x_t: Tensor, eps: Tensor, abar: float) -> Tensor:
    if eps.shape != x_t.shape:
        raise ValueError(f"the model output must have the shape of x_t {tuple(x_t.shape)}; got {tuple(eps.shape)}")
    return (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)


def ddpm_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    noise: Tensor | None = None,
    *,
    t_prev: int | None = None,
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
    t_prev = t - 1 if t_prev is None else t_prev
    _check_pair(schedule, t, t_prev)
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}; got {variance!r}")
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
    t_prev: int,
    eta: float = 0.0,
) -> Step:
    """One DDIM step (Song et al. 2021, eq. 12): re-noise x0_hat to level t_prev along eps.

    x_{t_prev} = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps + s z, with
    s^2 = eta^2 (1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev). eta = 0 is
    deterministic; eta = 1 over consecutive steps is DDPM with the posterior variance.
    x_t, eps, noise: (B, ...); ``noise`` is required when eta > 0.
    """
    _check_pair(schedule, t, t_prev)
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0; got {eta!r}")
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    x0_hat = _x0_hat(x_t, eps, abar)
    s2 = eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
    x_prev = math.sqrt(abar_prev) * x0_hat + math.sqrt(max(1 - abar_prev - s2, 0.0)) * eps
    if s2 > 0:
        if noise is None:
            raise ValueError("ddim_step needs noise (B, ...) when eta > 0")
        x_prev = x_prev + math.sqrt(s2) * noise
    return Step(x_prev, x0_hat)


def euler_step(schedule: Schedule, x_t: Tensor, t: int, eps: Tensor, *, t_prev: int) -> Step:
    """One Euler step of the probability-flow ODE, taken in the sigma parametrisation.

    With z = x_t / sqrt(abar_t) (the "variance exploding" view, noise level sigma_t), the ODE
    reads dz / dsigma = eps(z, sigma) (Karras et al. 2022), and Euler gives
    z' = z + (sigma_prev - sigma) eps; the result is mapped back to x = sqrt(abar_prev) z'.
    (This is algebraically DDIM with eta = 0; the test suite checks it.)
    x_t, eps: (B, ...).
    """
    _check_pair(schedule, t, t_prev)
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    if eps.shape != x_t.shape:
        raise ValueError(f"the model output must have the shape of x_t {tuple(x_t.shape)}; got {tuple(eps.shape)}")
    sigma, sigma_prev = math.sqrt((1 - abar) / abar), math.sqrt((1 - abar_prev) / abar_prev)
    z = x_t / math.sqrt(abar)
    z_prev = z + (sigma_prev - sigma) * eps
    return Step(math.sqrt(abar_prev) * z_prev, _x0_hat(x_t, eps, abar))


def _lambda(abar: float) -> float:
    """Half the log-SNR: log(alpha) - log(sigma), +inf at the data."""
    return math.inf if abar >= 1.0 else 0.5 * (math.log(abar) - math.log1p(-abar))


def dpm_solver_step(
    schedule: Schedule,
    x_t: Tensor,
    t: int,
    eps: Tensor,
    *,
    t_prev: int,
    last: tuple[int, Tensor] | None = None,
) -> Step:
    """One DPM-Solver++ step in data prediction (Lu et al. 2022, Algorithm 2, "midpoint" form).

    With alpha = sqrt(abar), s = sqrt(1 - abar), lambda = log(alpha / s), h = lambda_prev - lambda_t:

    - first order (``last=None``): x_prev = (s_prev / s_t) x_t - alpha_prev (e^{-h} - 1) x0_hat,
      which is DDIM with eta = 0;
    - second order (``last=(t_last, x0_hat_last)``, the previous evaluation): D0 = x0_hat,
      D1 = (x0_hat - x0_hat_last) / r with r = (lambda_t - lambda_last) / h, and
      x_prev = (s_prev / s_t) x_t - alpha_prev (e^{-h} - 1) (D0 + D1 / 2).

    A step to the data (t_prev = -1, h infinite) must be first order and returns x0_hat.
    x_t, eps: (B, ...); x0_hat_last: (B, ...).
    """
    _check_pair(schedule, t, t_prev)
    abar, abar_prev = _abar(schedule, t), _abar(schedule, t_prev)
    x0_hat = _x0_hat(x_t, eps, abar)
    if t_prev < 0:
        if last is not None:
            raise ValueError("a step to the data (t_prev = -1) must be first order: pass last=None")
        return Step(x0_hat, x0_hat)
    lam, lam_prev = _lambda(abar), _lambda(abar_prev)
    h = lam_prev - lam
    phi = math.expm1(-h)  # e^{-h} - 1
    d = x0_hat
    if last is not None:
        t_last, x0_last = last
        if not t < t_last < schedule.T:
            raise ValueError(f"last must hold an earlier (noisier) step than t={t}; got t_last={t_last}")
        r = (lam - _lambda(_abar(schedule, t_last))) / h
        d = x0_hat + (0.5 / r) * (x0_hat - x0_last)
    x_prev = math.sqrt((1 - abar_prev) / (1 - abar)) * x_t - math.sqrt(abar_prev) * phi * d
    return Step(x_prev, x0_hat)


# ----------------------------------------------------------------------------- loops


def _start(model: Callable, shape: tuple[int, ...] | Tensor, generator: torch.Generator | None) -> Tensor:
    """x_T: a copy of the given tensor, or N(0, I) noise drawn on the CPU and moved to the model."""
    if isinstance(model, torch.nn.Module) and model.training:
        warnings.warn(
            "the model is in training mode (dropout, batch statistics); call model.eval() before sampling",
            stacklevel=3,
        )
    if isinstance(shape, Tensor):
        if shape.ndim < 2 or not shape.dtype.is_floating_point:
            raise ValueError(f"a starting x_T must be a float tensor (B, ...); got shape {tuple(shape.shape)}, dtype {shape.dtype}")
        return shape.detach().clone()
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2 or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape
    ):
        raise ValueError(f"shape must be a tuple of positive ints (B, ...) or a starting x_T tensor; got {shape!r}")
    device = torch.device("cpu")
    if isinstance(model, torch.nn.Module):
        param = next(model.parameters(), None)
        if param is not None:
            device = param.device
    return noise_like(torch.empty(tuple(shape), device=device), generator)


def _eval(model: Callable, x_t: Tensor, t: int, y: Tensor | None) -> Tensor:
    t_batch = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)  # (B,)
    eps = model(x_t, t_batch) if y is None else model(x_t, t_batch, y)
    if not isinstance(eps, Tensor) or eps.shape != x_t.shape:
        got = tuple(eps.shape) if isinstance(eps, Tensor) else type(eps).__name__
        raise ValueError(f"the model must return eps with the shape of x_t {tuple(x_t.shape)}; got {got}")
    return eps.to(x_t.dtype)


def _check_y(y: Tensor | None, x: Tensor) -> Tensor | None:
    if y is None:
        return None
    if not isinstance(y, Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must be a (B,) = ({x.shape[0]},) tensor of class labels; got {getattr(y, 'shape', y)!r}")
    return y.to(x.device)


def _pairs(ts: Tensor) -> list[tuple[int, int]]:
    """(t, t_prev) for each evaluation; the last goes to the data (-1)."""
    t_list = [int(v) for v in ts]
    return list(zip(t_list, t_list[1:] + [-1]))


@torch.no_grad()
def ddpm_sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    *,
    generator: torch.Generator | None = None,
    variance: str = "beta",
    callback: Callback | None = None,
    y: Tensor | None = None,
) -> Tensor:
    """Ancestral DDPM sampling over all T steps (T network evaluations). Returns x_0: (B, ...).

    ``variance``: "beta" (sigma_t^2 = beta_t) or "posterior" (sigma_t^2 = beta_tilde_t).
    """
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}; got {variance!r}")
    x = _start(model, shape, generator)
    y = _check_y(y, x)
    for i, t in enumerate(range(schedule.T - 1, -1, -1)):
        eps = _eval(model, x, t, y)
        noise = noise_like(x, generator) if t > 0 else None
        step = ddpm_step(schedule, x, t, eps, noise, t_prev=t - 1, variance=variance)
        if callback is not None:
            callback(i, t, x, step.x0_hat)
        x = step.x_prev
    return x


@torch.no_grad()
def ddim_sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    *,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = "leading",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    y: Tensor | None = None,
) -> Tensor:
    """DDIM sampling with ``steps`` evaluations at :func:`timesteps` (default spacing as
    diffusers' DDIMScheduler). eta = 0 is deterministic given x_T. Returns x_0: (B, ...)."""
    ts = timesteps(schedule, steps, spacing)
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0; got {eta!r}")
    x = _start(model, shape, generator)
    y = _check_y(y, x)
    for i, (t, t_prev) in enumerate(_pairs(ts)):
        eps = _eval(model, x, t, y)
        noise = noise_like(x, generator) if eta > 0 and t_prev >= 0 else None
        step = ddim_step(schedule, x, t, eps, noise, t_prev=t_prev, eta=eta)
        if callback is not None:
            callback(i, t, x, step.x0_hat)
        x = step.x_prev
    return x


@torch.no_grad()
def euler_sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    *,
    steps: int = 50,
    spacing: str = "linspace",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    y: Tensor | None = None,
) -> Tensor:
    """Euler's method on the probability-flow ODE, ``steps`` evaluations (default spacing as
    diffusers' EulerDiscreteScheduler). Deterministic given x_T. Returns x_0: (B, ...)."""
    ts = timesteps(schedule, steps, spacing)
    x = _start(model, shape, generator)
    y = _check_y(y, x)
    for i, (t, t_prev) in enumerate(_pairs(ts)):
        step = euler_step(schedule, x, t, _eval(model, x, t, y), t_prev=t_prev)
        if callback is not None:
            callback(i, t, x, step.x0_hat)
        x = step.x_prev
    return x


@torch.no_grad()
def dpm_solver_sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    *,
    steps: int = 20,
    order: int = 2,
    spacing: str = "linspace",
    lower_order_final: int = 1,
    drop_t0: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    y: Tensor | None = None,
) -> Tensor:
    """DPM-Solver++ multistep ("2M" for order 2), ``steps`` evaluations. Returns x_0: (B, ...).

    The defaults reproduce diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++",
    solver_order=2)``: evaluations at :func:`dpm_solver_timesteps` (``drop_t0=True``), the
    first step first order (no history yet), the last step straight to sigma = 0 through x0_hat.

    ``lower_order_final``: how many final steps are first order (>= 1; the step to the data
    always is). On sharp data the defaults put too few evaluations at low noise: see notebook
    07, where ``spacing="logsnr"`` is the setting that fixes it.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2; got {order!r}")
    if isinstance(lower_order_final, bool) or not isinstance(lower_order_final, int) or lower_order_final < 1:
        raise ValueError(f"lower_order_final must be an integer >= 1; got {lower_order_final!r}")
    ts = dpm_solver_timesteps(schedule, steps, spacing, drop_t0=drop_t0)
    x = _start(model, shape, generator)
    y = _check_y(y, x)
    last: tuple[int, Tensor] | None = None
    pairs = _pairs(ts)
    for i, (t, t_prev) in enumerate(pairs):
        eps = _eval(model, x, t, y)
        use = last if order == 2 and i < len(pairs) - lower_order_final else None
        step = dpm_solver_step(schedule, x, t, eps, t_prev=t_prev, last=use)
        if callback is not None:
            callback(i, t, x, step.x0_hat)
        last = (t, step.x0_hat)
        x = step.x_prev
    return x

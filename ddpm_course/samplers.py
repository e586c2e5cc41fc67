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

Every method is a pure *step rule* (``ddpm_step``, ``ddim_step``, ``euler_step``,
``dpm_solver_step``), all with one signature,

    ``xxx_step(schedule, x_t, t, eps, noise=None, *, t_prev=t-1, history=(), **rule options) -> Step``,

mapping the state x_t at step t and the model output there to a :class:`Step` holding
x_{t_prev} and x0_hat. ``noise`` (B, ...) is the fresh Gaussian draw of a stochastic rule;
``history`` the earlier evaluations (:class:`PastEstimate`, oldest first) that a multistep rule
uses. One loop, :func:`chain`, walks the (t, t_prev) pairs and calls a rule;
:func:`sample` wraps it for a model (x_T, labels, eval mode, no gradients), and the four
``*_sample`` functions are named settings of it, all reading

    ``xxx_sample(model, schedule, shape, *, ..., generator=None, callback=None, y=None,
    check_finite=True, device=None, dtype=None)``

- ``shape`` is a tuple (x_T is drawn from ``generator`` on the CPU, then moved to the model's
  device and dtype: those of its weights for an ``nn.Module``, at least float32; else
  ``device``/``dtype``; else the CPU and float32) or a starting x_T tensor (copied, keeping
  its dtype, moved to the model's device). A module whose weights have another dtype than the
  chain gets x_t cast to its dtype at each call (a float32 chain around a bfloat16 network).
- ``callback(i, t, x_t, x0_hat)`` is called after each network evaluation.
- ``y`` (B,) class labels, passed on as ``model(x_t, t, y)``; None calls ``model(x_t, t)``.
- ``check_finite``: stop with :class:`NonFiniteSampleError`, naming the step, as soon as the
  state holds NaN or inf.
- The loops run under ``torch.no_grad()`` with an ``nn.Module`` in ``eval()`` mode (no
  dropout), and put it back in the mode it had.

:data:`SAMPLERS` maps each name to its function and the options it accepts (beyond the
common ones above): the one registry that the command line, the benchmarks and the tests use.

Defaults follow diffusers (DDIM "leading", Euler "linspace", DPM-Solver++ its own "linspace"
that stops evaluating at t ~ T/(steps+1)). On data with sharp modes that DPM-Solver++ default
squeezes the modes; ``spacing="logsnr"`` fixes it (measured in notebook 07).
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor

from ._checks import (
    batch_tensor,
    device_or_none,
    finite_float,
    generator_or_none,
    int_at_least,
    int_in_range,
    one_of,
    same_shape,
)
from ._compat import renamed
from ._model import SAMPLER_KINDS, call_model, device_and_dtype, eval_mode, require_kind
from .forward import noise_like
from .schedules import Schedule, check_step

__all__ = [
    "Step", "PastEstimate", "NonFiniteSampleError", "SPACINGS", "VARIANCES", "timesteps", "dpm_solver_timesteps",
    "ddpm_step", "ddim_step", "euler_step", "dpm_solver_step",
    "chain", "start_state", "sample",
    "ddpm_sample", "ddim_sample", "euler_sample", "dpm_solver_sample",
    "SamplerSpec", "SAMPLERS", "COMMON_OPTIONS",
]

SPACINGS = ("leading", "trailing", "linspace", "logsnr", "karras")
VARIANCES = ("beta", "posterior")

Callback = Callable[[int, int, Tensor, Tensor], None]


class Step(NamedTuple):
    """What one reverse step returns: the new state and the clean-data guess it used."""

    x_prev: Tensor  # (B, ...), the state at t_prev (the sample itself when t_prev = -1)
    x0_hat: Tensor  # (B, ...), E[x_0 | x_t] as the model sees it


class PastEstimate(NamedTuple):
    """One earlier evaluation, as a multistep rule remembers it: the step and its x0_hat (named
    ``Evaluation`` before; ``metrics.Evaluation`` is the scores of a set of samples)."""

    t: int
    x0_hat: Tensor  # (B, ...)


class NonFiniteSampleError(FloatingPointError):
    """The sampler's state became NaN or infinite; the message names the step."""


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


# ----------------------------------------------------------------------------- the loop


def chain(
    x: Tensor,
    pairs: Sequence[tuple[Any, Any]],
    predict: Callable[[Tensor, Any], Tensor],
    rule: StepRule,
    *,
    noisy: bool = False,
    memory: int = 0,
    lower_order_final: int = 0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    check_finite: bool = True,
) -> Tensor:
    """The one sampling loop: for each (t, t_prev) in ``pairs``, evaluate and take one step.

    ``predict(x, t)`` returns the model's output at the state x (B, ...) and time t, and
    ``rule(x, t, out, noise, t_prev=..., history=...)`` returns a :class:`Step`. Nothing here
    assumes a noise prediction or integer steps: a flow-matching sampler passes float times
    and a velocity, and a two-evaluation rule (Heun) calls its own ``predict`` inside ``rule``.

    - ``noisy``: draw fresh noise (x's shape, from ``generator`` on the CPU) for every step
      but the last, which lands on the data.
    - ``memory``: how many earlier evaluations (:class:`PastEstimate`, oldest first) a rule sees;
      ``lower_order_final``: how many final steps get none (first order).
    - ``callback(i, t, x_t, x0_hat)`` after each evaluation; ``check_finite`` stops with
      :class:`NonFiniteSampleError` at the first step whose result holds NaN or inf.

    Returns the last state: (B, ...).
    """
    history: tuple[PastEstimate, ...] = ()
    for i, (t, t_prev) in enumerate(pairs):
        out = predict(x, t)
        noise = noise_like(x, generator) if noisy and i < len(pairs) - 1 else None
        seen = history if i < len(pairs) - lower_order_final else ()
        step = rule(x, t, out, noise, t_prev=t_prev, history=seen)
        if callback is not None:
            callback(i, t, x, step.x0_hat)
        if check_finite and not bool(torch.isfinite(step.x_prev).all()):
            source = "the model's output was already non-finite" if not bool(torch.isfinite(out).all()) else (
                "the model's output was finite, the step overflowed")
            raise NonFiniteSampleError(
                f"the sample became NaN or infinite at step {i} of {len(pairs)} (t={t} -> t_prev={t_prev}); {source}. "
                f"Check the model and the schedule, or pass check_finite=False to run on"
            )
        if memory:
            history = (*history, PastEstimate(t, step.x0_hat))[-memory:]
        x = step.x_prev
    return x


def start_state(
    model: Callable,
    shape: tuple[int, ...] | Tensor,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    check_finite: bool = True,
) -> Tensor:
    """x_T: a copy of the given tensor, or N(0, I) noise drawn on the CPU from ``generator``.

    The device and dtype are ``device``/``dtype`` when given, else those of the module's
    weights, else the given tensor's (or the CPU and float32 for drawn noise). A given tensor
    keeps its dtype unless ``dtype`` is given: (B, ...).

    The chain's dtype is at least float32: a float16 or bfloat16 network is called in its own
    dtype but the state between steps stays float32. Rounding the state to bfloat16's 8 bits
    at each of DDPM's 1000 steps moved the samples by 42% of their scale on a small test
    network, against 0.3% with a float32 state (tests/test_samplers.py measures the latter);
    pass ``dtype=torch.bfloat16`` to get a half-precision chain anyway.
    """
    generator = generator_or_none("generator", generator, cpu=True)
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype or None; got {dtype!r}")
    device = device_or_none("device", device)
    model_device, model_dtype = device_and_dtype(model)
    device = model_device if device is None else device
    if isinstance(shape, Tensor):
        x = batch_tensor("x_T", shape, finite=check_finite).detach()
        return x.to(device=device or x.device, dtype=dtype or x.dtype, copy=True)
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2:
        raise ValueError(f"shape must be a tuple of positive ints (B, ...) or a starting x_T tensor; got {shape!r}")
    from ._checks import shape_tuple

    shape = shape_tuple("shape", shape, min_len=2)  # at most _checks.MAX_ELEMENTS, checked before drawing
    if dtype is None:  # a half-precision network still gets a float32 chain (see the docstring)
        dtype = torch.float32 if model_dtype is None else torch.promote_types(model_dtype, torch.float32)
    like = torch.empty(tuple(shape), dtype=dtype)  # (B, ...) on the CPU
    return noise_like(like, generator).to(device or torch.device("cpu"))


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
def sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    step: Callable[..., Step],
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    y: Tensor | None = None,
    check_finite: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    noisy: bool = False,
    memory: int = 0,
    lower_order_final: int = 0,
    **options: Any,
) -> Tensor:
    """Run the step rule ``step`` (one of the ``*_step`` functions) at the steps ``ts`` (n,),
    from noisiest to cleanest, with ``model`` as the noise predictor. Returns x_0: (B, ...).

    ``options`` go to every call of ``step`` (``eta=``, ``variance=``); ``noisy``, ``memory``
    and ``lower_order_final`` are those of :func:`chain`. See the module docstring for the rest.
    """
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (i, t, x_t, x0_hat) or None; got {type(callback).__name__}")
    one_of("check_finite", check_finite, (True, False))
    _require_noise_predictor(model)
    x = start_state(model, shape, generator, device=device, dtype=dtype, check_finite=check_finite)
    y = _check_y(y, x)

    def predict(x_t: Tensor, t: int) -> Tensor:
        t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)  # (B,)
        return call_model(model, x_t, t_batch, y).to(x_t.dtype)

    rule = functools.partial(step, schedule, **options)
    with eval_mode(model):
        return chain(x, _pairs(ts), predict, rule, noisy=noisy, memory=memory, lower_order_final=lower_order_final,
                     generator=generator, callback=callback, check_finite=check_finite)


# ----------------------------------------------------------------------------- the named samplers


def ddpm_sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    *,
    generator: torch.Generator | None = None,
    variance: str = "beta",
    callback: Callback | None = None,
    y: Tensor | None = None,
    check_finite: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Ancestral DDPM sampling over all T steps (T network evaluations). Returns x_0: (B, ...).

    ``variance``: "beta" (sigma_t^2 = beta_t) or "posterior" (sigma_t^2 = beta_tilde_t).
    """
    one_of("variance", variance, VARIANCES)
    ts = torch.arange(schedule.T - 1, -1, -1)  # T-1, ..., 0
    return sample(model, schedule, shape, ddpm_step, ts, noisy=True, variance=variance, generator=generator,
                  callback=callback, y=y, check_finite=check_finite, device=device, dtype=dtype)


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
    check_finite: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """DDIM sampling with ``steps`` evaluations at :func:`timesteps` (default spacing as
    diffusers' DDIMScheduler). eta = 0 is deterministic given x_T. Returns x_0: (B, ...)."""
    ts = timesteps(schedule, steps, spacing)
    eta = finite_float("eta", eta, 0.0)
    return sample(model, schedule, shape, ddim_step, ts, noisy=eta > 0, eta=eta, generator=generator,
                  callback=callback, y=y, check_finite=check_finite, device=device, dtype=dtype)


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
    check_finite: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Euler's method on the probability-flow ODE, ``steps`` evaluations (default spacing as
    diffusers' EulerDiscreteScheduler). Deterministic given x_T. Returns x_0: (B, ...)."""
    ts = timesteps(schedule, steps, spacing)
    return sample(model, schedule, shape, euler_step, ts, generator=generator,
                  callback=callback, y=y, check_finite=check_finite, device=device, dtype=dtype)


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
    check_finite: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """DPM-Solver++ multistep ("2M" for order 2), ``steps`` evaluations. Returns x_0: (B, ...).

    The defaults reproduce diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++",
    solver_order=2)``: evaluations at :func:`dpm_solver_timesteps` (``drop_t0=True``), the
    first step first order (no history yet), the last step straight to sigma = 0 through x0_hat.

    ``lower_order_final``: how many final steps are first order (>= 1; the step to the data
    always is). On sharp data the defaults put too few evaluations at low noise: see notebook
    07, where ``spacing="logsnr"`` is the setting that fixes it.
    """
    order = int_in_range("order", order, 1, 2)
    lower_order_final = int_at_least("lower_order_final", lower_order_final, 1)
    ts = dpm_solver_timesteps(schedule, steps, spacing, drop_t0=drop_t0)
    return sample(model, schedule, shape, dpm_solver_step, ts, memory=order - 1, lower_order_final=lower_order_final,
                  generator=generator, callback=callback, y=y, check_finite=check_finite, device=device, dtype=dtype)


# ----------------------------------------------------------------------------- the registry

COMMON_OPTIONS = frozenset({"generator", "callback", "y", "check_finite", "device", "dtype"})


@dataclass(frozen=True)
class SamplerSpec:
    """A named sampler: its function and the options of its own (beyond :data:`COMMON_OPTIONS`).

    ``spec(model, schedule, shape, **options)`` refuses an option the sampler does not take
    (``eta`` for Euler, ``steps`` for DDPM) instead of ignoring it.
    """

    fn: Callable[..., Tensor]
    options: frozenset[str]

    @classmethod
    def of(cls, fn: Callable[..., Tensor]) -> "SamplerSpec":
        """The spec of a ``*_sample`` function: its keyword-only arguments minus the common ones."""
        params = inspect.signature(fn).parameters.values()
        return cls(fn, frozenset(p.name for p in params if p.kind is p.KEYWORD_ONLY) - COMMON_OPTIONS)

    def check(self, options: Sequence[str] | set[str] | dict) -> None:
        """Refuse options this sampler does not accept, naming the ones it does."""
        unknown = sorted(set(options) - self.options - COMMON_OPTIONS)
        if unknown:
            accepted = ", ".join(sorted(self.options)) or "none"
            raise ValueError(f"{', '.join(unknown)} does not apply to {self.fn.__name__} (its options: {accepted})")

    def __call__(self, model: Callable, schedule: Schedule, shape: tuple[int, ...] | Tensor, **options: Any) -> Tensor:
        self.check(options)
        return self.fn(model, schedule, shape, **options)


SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec.of(ddpm_sample),
    "ddim": SamplerSpec.of(ddim_sample),
    "euler": SamplerSpec.of(euler_sample),
    "dpm_solver": SamplerSpec.of(dpm_solver_sample),
}


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


def _require_noise_predictor(model: Callable) -> None:
    """A loaded model's kind must be one these samplers read (a noise predictor); models built in code carry none."""
    require_kind(model, SAMPLER_KINDS, f"the DDPM samplers ({', '.join(SAMPLERS)})")


def _model_chain(
    model: Callable, schedule: Schedule, shape: tuple[int, ...] | Tensor, ts: Tensor, make_rule: Callable,
    *, memory: int, generator, callback, y, check_finite, device, dtype,
) -> Tensor:
    """:func:`sample` for rules that need the model's ``predict`` or their position in the chain:
    ``make_rule(predict, pairs)`` returns the bound rule that :func:`chain` calls."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (i, t, x_t, x0_hat) or None; got {type(callback).__name__}")
    one_of("check_finite", check_finite, (True, False))
    _require_noise_predictor(model)
    x = start_state(model, shape, generator, device=device, dtype=dtype, check_finite=check_finite)
    y = _check_y(y, x)

    def predict(x_t: Tensor, t: int) -> Tensor:
        t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)  # (B,)
        return call_model(model, x_t, t_batch, y).to(x_t.dtype)

    pairs = _pairs(ts)
    with eval_mode(model):
        return chain(x, pairs, predict, make_rule(predict, pairs), memory=memory, generator=generator,
                     callback=callback, check_finite=check_finite)


@torch.no_grad()
def heun_sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    *,
    steps: int = 10,
    spacing: str = "karras",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    y: Tensor | None = None,
    check_finite: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Heun's method (EDM's deterministic sampler) at the ``steps`` noise levels of :func:`timesteps`.

    ``steps`` counts noise levels, as diffusers' ``HeunDiscreteScheduler`` does: 2 * steps - 1
    network evaluations (the last step, to the data, is Euler). The default ``karras`` spacing
    is Karras et al.'s rho = 7 ramp rounded to whole steps. ``callback`` sees the first
    evaluation of each step. Returns x_0: (B, ...).
    """
    ts = timesteps(schedule, steps, spacing)

    def make_rule(predict, pairs):
        return functools.partial(heun_step, schedule, predict=predict)

    return _model_chain(model, schedule, shape, ts, make_rule, memory=0, generator=generator, callback=callback,
                        y=y, check_finite=check_finite, device=device, dtype=dtype)


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


@torch.no_grad()
def dpm_solver_3m_sample(
    model: Callable,
    schedule: Schedule,
    shape: tuple[int, ...] | Tensor,
    *,
    steps: int = 20,
    order: int = 3,
    spacing: str = "linspace",
    drop_t0: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    y: Tensor | None = None,
    check_finite: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """DPM-Solver++ 3M, ``steps`` evaluations, as diffusers' ``DPMSolverMultistepScheduler(solver_order=3)``.

    Evaluations at :func:`dpm_solver_timesteps`; the order of each step is :func:`multistep_orders`
    (first, second, then third; lower order at the end for fewer than 15 steps). ``order`` 2 or 1
    gives the lower-order solvers on the same grid. Returns x_0: (B, ...).
    """
    order = int_in_range("order", order, 1, 3)
    ts = dpm_solver_timesteps(schedule, steps, spacing, drop_t0=drop_t0)
    orders = multistep_orders(len(ts), order)

    def make_rule(predict, pairs):
        position = {pair: i for i, pair in enumerate(pairs)}

        def rule(x_t, t, out, noise, *, t_prev, history):
            keep = orders[position[(t, t_prev)]] - 1
            return dpm_solver_3m_step(schedule, x_t, t, out, noise, t_prev=t_prev,
                                      history=tuple(history)[len(history) - keep:] if keep else ())

        return rule

    return _model_chain(model, schedule, shape, ts, make_rule, memory=2, generator=generator, callback=callback,
                        y=y, check_finite=check_finite, device=device, dtype=dtype)


SAMPLERS["heun"] = SamplerSpec.of(heun_sample)
SAMPLERS["dpm_solver_3m"] = SamplerSpec.of(dpm_solver_3m_sample)
__all__ += ["karras_sigmas", "heun_step", "dpm_solver_3m_step", "multistep_orders", "heun_sample",
            "dpm_solver_3m_sample"]


_WHY = "metrics.Evaluation is the scores of a set of samples"
__getattr__ = renamed(__name__, {"Evaluation": ("PastEstimate", _WHY)}, globals())

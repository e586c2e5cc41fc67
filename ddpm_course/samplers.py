"""Samplers: turn a noise predictor eps_theta(x_t, t) into samples by running the process backwards.

Papers: DDPM, Ho et al. 2020 (ancestral sampling, Algorithm 2); DDIM, Song, Meng & Ermon 2021;
the probability-flow ODE, Song et al. 2021 ("Score-based generative modeling through SDEs")
solved with Euler's method in the sigma parametrisation of Karras et al. 2022 ("Elucidating the
design space of diffusion-based generative models"); DPM-Solver++(2M), Lu et al. 2022
("DPM-Solver++: fast solver for guided sampling of diffusion probabilistic models").

Each method is a pure *step rule* of :mod:`ddpm_course.steps` (its notation table, the grids of
steps, the rules ``ddpm_step``, ``ddim_step``, ``euler_step``, ``dpm_solver_step``, ``heun_step``
and ``dpm_solver_3m_step``, all re-exported here). One loop, :func:`chain`, walks the
(t, t_prev) pairs and calls a rule; :func:`sample` wraps it for a model (x_T, labels, eval
mode, no gradients), and the four ``*_sample`` functions are named settings of it, all reading

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

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
)
from ._compat import renamed
from ._model import SAMPLER_KINDS, call_model, device_and_dtype, eval_mode, require_kind
from .forward import noise_like
from .schedules import Schedule
from .steps import (  # the grids and the step rules, re-exported: samplers.ddim_step as the lessons name it
    SPACINGS,
    VARIANCES,
    PastEstimate,
    Step,
    StepRule,
    ddim_step,
    ddpm_step,
    dpm_solver_3m_step,
    dpm_solver_step,
    dpm_solver_timesteps,
    euler_step,
    heun_step,
    karras_sigmas,
    multistep_orders,
    timesteps,
)

__all__ = [
    "Step", "PastEstimate", "NonFiniteSampleError", "SPACINGS", "VARIANCES", "timesteps", "dpm_solver_timesteps",
    "ddpm_step", "ddim_step", "euler_step", "dpm_solver_step",
    "chain", "start_state", "sample",
    "ddpm_sample", "ddim_sample", "euler_sample", "dpm_solver_sample",
    "SamplerSpec", "SAMPLERS", "COMMON_OPTIONS",
]


Callback = Callable[[int, int, Tensor, Tensor], None]



class NonFiniteSampleError(FloatingPointError):
    """The sampler's state became NaN or infinite; the message names the step."""


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

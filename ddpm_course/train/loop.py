"""The one training loop, ``fit(model, objective, data)``, for the notebooks, the CLI and the benchmarks.

Ho et al. (2020), "Denoising Diffusion Probabilistic Models", Algorithm 1: repeat
{x_0 ~ data, t ~ Uniform{0..T-1}, eps ~ N(0, I), gradient step on |eps - eps_theta(x_t, t)|^2}.
:func:`train` is that loop: ``fit`` with the objective L_simple. Every other objective of the
course (flow matching, score matching, the VAEs, distillation, the digit classifier) plugs into
the same loop, and around it sit the habits that make a small model train well and safely:

| piece             | what it does                                                  | why                           |
|-------------------|---------------------------------------------------------------|-------------------------------|
| AdamW             | Adam with decoupled weight decay (Loshchilov & Hutter)        | the optimiser for U-Nets      |
| warm-up           | lr grows linearly over ``warmup_steps``                       | Adam's early steps are noisy  |
| cosine decay      | then lr falls to 0 along a half cosine over the budget        | small last steps settle       |
| gradient clipping | rescale the gradient to norm <= ``grad_clip``                 | high-noise batches spike      |
| EMA               | w_ema <- d * w_ema + (1 - d) * w, via torch.optim.swa_utils   | averaged weights sample better|
| budget            | stop after ``steps`` or after ``minutes``                     | a CPU lesson has minutes      |
| NaN guard         | a non-finite loss stops before the update, with what to try   | silent NaNs waste the budget  |
| Ctrl-C, SIGTERM   | finishes the step, returns what was learned (``interrupted``) | an interrupt keeps the EMA    |
| state             | ``TrainResult.state`` continues the run (``resume=``)         | long runs survive a stop      |
| precision         | fp32, bf16 autocast, or fp16 autocast with a GradScaler       | speed on GPUs                 |
| distributed       | DDP under torchrun: gradients averaged over the ranks         | several GPUs, one model       |

Randomness: batches, timesteps and noise all come from ``generator``; dropout uses the global
RNG, which ``fit`` seeds from ``generator`` inside ``torch.random.fork_rng`` (the caller's
global RNG state is left as it was). The same generator seed and step budget give the same
weights on the same machine (on a CUDA GPU only with deterministic algorithms switched on), and
a run resumed from its state at step k ends with the same weights as the run left alone.

The article's recipe is ``optimizer="adam", lr=1e-3, warmup_steps=0, lr_decay=False, weight_decay=0,
grad_clip=None, ema_decay=None`` on a ``SimpleUNet``; :data:`PRESETS` holds it next to the
course's recipe, for the CLI and the benchmarks.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from .._checks import device_or_none, finite_float, generator_or_none, int_at_least, one_of
from ..data import ImageData
from ..models.unet import set_weight_layout
from ..schedules import Schedule
from .objective import Examples, NoisePrediction, Objective
from .state import (
    BATCHINGS,
    STATE_VERSION,
    TrainState,
    _check_settings,
    _flatten_optimizer,
    _Settings,
    _unflatten_optimizer,
)

__all__ = ["NonFiniteLossError", "TrainResult", "ema_decay_at", "ema_model", "fit", "train"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient; raised before the step updates any
    weight, so the model holds the weights of the last finite step."""

    @classmethod
    def at(cls, what: str, value: float, step: int, lr: float, x0: Tensor) -> NonFiniteLossError:
        """The error for ``what`` (e.g. "the loss") having become ``value`` at ``step``, with what to try."""
        return cls(_non_finite_message(what, value, step, lr, x0))


@dataclass
class TrainResult:
    """What :func:`fit` (and so :func:`train`) returns.

    model: the trained (raw) weights, in eval mode; ema_model: the exponential moving average
    of them (a separate module, eval mode) or None without EMA; losses: the loss of every step;
    steps: steps done; seconds: wall time of the loop; images_per_second: training throughput;
    interrupted: True when Ctrl-C (or SIGTERM, SIGHUP) stopped the run early (at a step boundary),
    ``stop_signal`` the signal's number; state: what
    ``train(..., resume=state)`` needs to continue the run (None if it cannot be continued exactly).
    """

    model: nn.Module
    ema_model: nn.Module | None
    losses: list[float]
    steps: int
    seconds: float
    images_per_second: float
    interrupted: bool = False
    state: TrainState | None = None
    stop_signal: int | None = None  # the signal that asked the run to stop (SIGINT for Ctrl-C, SIGTERM, SIGHUP)
    # the objective's other numbers, one per step (not part of the saved state: a resumed run's start at the resume)
    logs: dict[str, list[float]] = field(default_factory=dict)

    @property
    def final_model(self) -> nn.Module:
        """The weights to sample from: the EMA when there is one, else the raw weights."""
        return self.ema_model if self.ema_model is not None else self.model


# ----------------------------------------------------------------------------- checks of the arguments


def _check_generator(generator: torch.Generator | None) -> torch.Generator:
    generator = generator_or_none("generator", generator) or torch.Generator().manual_seed(0)
    if generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator (noise is drawn on the CPU, then moved); got {generator.device}"
        )
    return generator


def _check_device(model: nn.Module, device: torch.device | str | None, precision: str) -> torch.device:
    if device is None:
        param = next(model.parameters(), None)
        if param is None:
            raise ValueError("model has no parameters to train")
        device = param.device
    device = device_or_none("device", device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA GPU (its GradScaler guards float16 gradients); on {device.type} "
            "use precision='bf16' or 'fp32'"
        )
    return device


def _model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the data is cast to: that of the model's first floating-point parameter."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


# ----------------------------------------------------------------------------- the pieces of a step


def _non_finite_message(what: str, value: float, step: int, lr: float, x0: Tensor) -> str:
    lo, hi = x0.min().item(), x0.max().item()
    return (
        f"{what} became {value} at step {step} (lr {lr:.3g}); training stopped. Try a lower lr "
        f"(say {lr / 10:.3g}), a longer warm-up or gradient clipping (grad_clip=1.0), and check the "
        f"data: this batch spans [{lo:.3g}, {hi:.3g}] and should be finite and lie in [-1, 1]."
    )


def _progress(step: int, steps: int | None, elapsed: float, budget_s: float) -> float:
    """The fraction of the budget used: of the steps, or of the time, whichever is further."""
    by_steps = step / steps if steps is not None else 0.0
    return min(1.0, max(by_steps, elapsed / budget_s))


def ema_decay_at(k: int, decay: float) -> float:
    """The EMA decay used for the update after ``k`` earlier ones: min(decay, (1 + k) / (10 + k)).

    A fixed decay d keeps a weight d**n on the initial weights after n updates (5% for
    d = 0.999 after 3,000): with a zero-initialised output layer that shrinks every
    prediction by as much. The warm-up forgets the start quickly (the same rule as diffusers'
    ``EMAModel``) and reaches ``decay`` after about 9 / (1 - decay) updates.
    """
    return min(decay, (1.0 + k) / (10.0 + k))


def _ema_warmup_fn(decay: float):
    """A ``multi_avg_fn`` for ``AveragedModel``: ema <- ema + (1 - d_k) (param - ema), d_k from :func:`ema_decay_at`."""

    @torch.no_grad()
    def update(ema_params: list[Tensor], params: list[Tensor], num_averaged: Tensor | int) -> None:
        weight = 1.0 - ema_decay_at(int(num_averaged), decay)
        for ema_param, param in zip(ema_params, params, strict=True):
            if ema_param.is_floating_point():
                ema_param.lerp_(param, weight)
            else:  # integer buffers (e.g. BatchNorm's step counter) are copied, not averaged
                ema_param.copy_(param)

    return update


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model`` (``torch.optim.swa_utils.AveragedModel``) whose
    decay warms up as :func:`ema_decay_at`; call ``.update_parameters(model)`` after each step."""
    return AveragedModel(model, multi_avg_fn=_ema_warmup_fn(decay), use_buffers=True)


def _lr_factor(step: int, warmup_steps: int, decay: bool, progress: float) -> float:
    """Multiplier of the base lr for the next step: linear warm-up, then an optional half cosine."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    return warm * (0.5 * (1.0 + math.cos(math.pi * progress)) if decay else 1.0)


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


class _Batches:
    """Indices of the next batch: passes over the N examples in fresh random orders (from the
    generator), without replacement within a pass. ``batches="fixed"``: every batch holds
    ``batch_size`` examples and may straddle two passes; ``"passes"``: each pass is cut into
    batches on its own, its last one shorter when N is not a multiple of ``batch_size``."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, batches: str = "fixed"):
        self.n, self.batch_size, self.generator, self.batches = n, batch_size, generator, batches
        self.order = torch.empty(0, dtype=torch.long)
        self.cursor = 0

    def next(self) -> Tensor:
        if self.batches == "passes":
            if self.cursor >= self.order.numel():  # a pass ends with its (shorter) last batch
                self.order, self.cursor = torch.randperm(self.n, generator=self.generator), 0
            idx = self.order[self.cursor : self.cursor + self.batch_size]  # (B,), B <= batch_size
            self.cursor += idx.numel()
            return idx
        if self.cursor + self.batch_size > self.order.numel():  # new passes over the data, each in a fresh order
            passes = [self.order[self.cursor :]]
            left = self.batch_size - passes[0].numel()
            while left > 0:  # one concatenation, however many passes a batch spans
                passes.append(torch.randperm(self.n, generator=self.generator))
                left -= self.n
            self.order, self.cursor = torch.cat(passes), 0
        idx = self.order[self.cursor : self.cursor + self.batch_size]  # (B,)
        self.cursor += self.batch_size
        return idx


class _CtrlC:
    """While active, the first Ctrl-C (SIGINT), SIGTERM or SIGHUP only asks the loop to stop
    after the current step; a second one interrupts at once. ``signum`` is the first signal
    received. Outside the main thread, signals are left alone. Signals that an enclosing
    :class:`~ddpm_course._signals.DeferredSignals` region held before the loop began count as
    received here."""

    def __init__(self, say: Callable[[str], None]):
        self.requested = False
        self.signum: int | None = None
        self.say = say
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _CtrlC:
        from .._signals import STOP_SIGNALS, held_by

        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
            for handler in self.previous.values():
                region = held_by(handler)
                for signum in region.take() if region is not None else ():
                    self._note(signum)
        return self

    def _note(self, signum: int) -> None:
        from .._signals import signal_name

        self.signum = signum if self.signum is None else self.signum
        self.requested = True
        self.say(f"{signal_name(signum)}: stopping after this step (press Ctrl-C again to stop at once)")

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self._note(signum)

    def __exit__(self, *exc: Any) -> None:
        from .._signals import _python_default

        for signum, handler in self.previous.items():  # a handler set outside Python reads as None
            signal.signal(signum, handler if handler is not None else _python_default(signum))


# ----------------------------------------------------------------------------- one run


class _Run:
    """The moving parts of one training run: model, optimiser, EMA, batches and counters.

    ``one_step()`` is Algorithm 1's loop body; ``state()``/``restore()`` save and reload all of it.
    """

    def __init__(self, model: nn.Module, objective: Objective, examples: Examples, s: _Settings,
                 generator: torch.Generator, device: torch.device, distributed: bool = False,
                 batches: str = "fixed", global_seed: int | None = None):
        self.model, self.objective, self.s, self.generator, self.device = model, objective, s, generator, device
        self.distributed = distributed
        self.net = model  # what the loss calls: the model itself, or the model inside DDP
        if distributed:
            from ..distributed import wrap

            self.net = wrap(model, device)
        self.examples, self.dtype = examples, _model_dtype(model)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if s.optimizer == "adamw":
            self.opt: torch.optim.Optimizer = torch.optim.AdamW(self.params, lr=s.lr, weight_decay=s.weight_decay)
        else:
            self.opt = torch.optim.Adam(self.params, lr=s.lr)
        self.ema = None
        if s.ema_decay is not None:
            self.ema = ema_model(model, s.ema_decay)
        self.scaler = torch.amp.GradScaler(device.type) if s.precision == "fp16" else None
        self.batches = _Batches(len(examples), s.batch_size, generator, batches)
        self.global_seed = global_seed
        self.losses: list[float] = []
        self.logs: dict[str, list[float]] = {}  # what the objective reports besides its loss, step by step
        self.step = 0
        self.seconds_before = 0.0  # time used before a resume
        self.budget_s = s.minutes * 60.0 if s.minutes is not None else math.inf
        self.max_steps = s.steps if s.steps is not None else math.inf
        self.global_rng: dict[str, Tensor] | None = None  # restored inside fork_rng
        self.interrupted, self.updating, self.resumable = False, False, not distributed
        self.stop_signal: int | None = None

    # -- the loop body: a batch, the loss, the NaN guard, the update, the learning rate, the EMA

    def batch(self) -> tuple[Tensor | None, ...]:
        """The next batch of examples, floating tensors in the model's dtype, e.g. (x0 (B, ...), y (B,))."""
        return self.examples.take(self.batches.next(), self.device, self.dtype)

    def loss(self, batch: tuple[Tensor | None, ...]) -> tuple[Tensor, dict[str, Tensor]]:
        dtype = torch.float16 if self.s.precision == "fp16" else torch.bfloat16
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.s.precision != "fp32"):
            out = self.objective.loss(self.net, batch, self.generator)
        loss, logs = out if isinstance(out, tuple) else (out, {})
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"the objective {self.objective.name!r} must return a scalar loss tensor; got "
                             f"{tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__}")
        return loss, logs

    def guard(self, what: str, value: float, x0: Tensor) -> None:
        if not math.isfinite(value):
            raise NonFiniteLossError.at(what, value, self.step, self.opt.param_groups[0]["lr"], x0)

    def backward(self, loss: Tensor, x0: Tensor) -> None:
        """Gradients, clipped; with fp16 scaled first (the scaler skips a step whose gradients overflow)."""
        self.opt.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        if self.s.grad_clip is not None:
            if self.scaler:
                self.scaler.unscale_(self.opt)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.s.grad_clip).item()
            if self.scaler is None:
                self.guard("the gradient norm", grad_norm, x0)

    def learning_rate(self, step: int, elapsed: float) -> float:
        s = self.s
        return s.lr * _lr_factor(step, s.warmup_steps, s.lr_decay, _progress(step, s.steps, elapsed, self.budget_s))

    def update(self, start: float) -> None:
        """The optimiser step, the learning rate of the next step, the EMA."""
        self.updating = True  # from here an interrupt leaves the weights half-updated
        if self.scaler:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        _set_lr(self.opt, self.learning_rate(self.step + 1, time.perf_counter() - start))
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def one_step(self, start: float) -> None:
        batch = self.batch()
        x0 = batch[0]  # what the NaN message describes
        loss, logs = self.loss(batch)
        loss_value = self.mean_over_ranks(loss)
        self.guard("the loss", loss_value, x0)  # before any weight changes
        self.backward(loss, x0)
        self.update(start)
        self.losses.append(loss_value)
        for key, value in logs.items():
            self.logs.setdefault(key, []).append(float(value))
        self.step += 1
        self.updating = False

    def mean_over_ranks(self, loss: Tensor) -> float:
        """The loss as a number; under DDP its mean over the ranks, so that every rank logs it and
        its NaN guard stops every rank at the same step."""
        if not self.distributed:
            return loss.item()
        from ..distributed import mean

        return mean(loss).item()

    # -- saving and restoring

    def state(self, seconds: float) -> TrainState:
        tensors = {f"model.{k}": v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v.detach().clone() for k, v in self.ema.state_dict().items()})
        optimizer = _flatten_optimizer(self.opt.state_dict(), tensors)
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        tensors["data.order"] = self.batches.order.clone()
        tensors["losses"] = torch.tensor(self.losses, dtype=torch.float64)
        scalars = {
            "version": STATE_VERSION, "step": self.step, "seconds": seconds, "cursor": self.batches.cursor,
            "n_data": self.batches.n, "settings": asdict(self.s), "optimizer": optimizer,
            "objective": self.objective.name,
            "scaler": self.scaler.state_dict() if self.scaler else None,
        }
        if self.batches.batches != "fixed":  # absent means "fixed" (and in states saved before the option)
            scalars["batches"] = self.batches.batches
        return TrainState(tensors=tensors, scalars=scalars)

    def restore(self, state: TrainState) -> None:
        if not isinstance(state, TrainState):
            raise TypeError(f"resume must be a TrainState (TrainResult.state or load_checkpoint(...).train_state); "
                            f"got {type(state).__name__}")
        sc, t = state.scalars, state.tensors
        try:
            self._check_compatible(sc)
            self.model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
            if self.ema is not None:
                self.ema.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")}, strict=True)
            self.opt.load_state_dict(_unflatten_optimizer(sc["optimizer"], t, self.opt))
            if self.scaler and sc.get("scaler"):
                self.scaler.load_state_dict(sc["scaler"])
            self.generator.set_state(t["rng.generator"])
            self.global_rng = {k: t[k] for k in ("rng.cpu", "rng.cuda") if k in t}
            self._restore_counters(sc, t)
        except (KeyError, RuntimeError, TypeError, AttributeError, IndexError) as err:
            raise ValueError(f"resume: the saved state does not fit this run ({type(err).__name__}: {err})") from None

    def _restore_counters(self, sc: dict[str, Any], t: dict[str, Tensor]) -> None:
        order, cursor, step = t["data.order"].long(), sc["cursor"], sc["step"]
        if order.ndim != 1 or (order.numel() and (order.min() < 0 or order.max() >= self.batches.n)):
            raise ValueError(f"resume: the saved data order is not a list of indices into {self.batches.n} examples")
        if not (isinstance(cursor, int) and 0 <= cursor <= order.numel() and isinstance(step, int) and step >= 0):
            raise ValueError(f"resume: the saved cursor {cursor!r} or step {step!r} is out of range")
        if t["losses"].shape != (step,):
            raise ValueError(f"resume: the saved losses hold {t['losses'].numel()} values for {step} steps")
        self.batches.order, self.batches.cursor = order, cursor
        self.losses, self.step, self.seconds_before = t["losses"].tolist(), step, float(sc["seconds"])

    def _check_compatible(self, sc: dict[str, Any]) -> None:
        if sc.get("version") != STATE_VERSION:
            raise ValueError(f"resume: state version {sc.get('version')!r}; this version reads {STATE_VERSION}")
        now = asdict(self.s)
        saved = sc.get("settings", {})
        differ = [f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in now if saved.get(k) != now[k]]
        if differ:
            raise ValueError("resume: the run must continue with the settings it started with; " + "; ".join(differ))
        saved_objective = sc.get("objective", NoisePrediction.name)  # states saved before objectives were named
        if saved_objective != self.objective.name:
            raise ValueError(f"resume: the run trained the objective {saved_objective!r}; this one is "
                             f"{self.objective.name!r}")
        if sc.get("batches", "fixed") != self.batches.batches:
            raise ValueError(f"resume: the run drew its batches as {sc.get('batches', 'fixed')!r}; this one as "
                             f"{self.batches.batches!r}")
        if sc.get("n_data") != self.batches.n:
            raise ValueError(f"resume: the run trained on {sc.get('n_data')} examples; this data has {self.batches.n}")

    def seed_global_rng(self) -> None:
        """Dropout draws from the global RNG: seed it with ``global_seed`` or from the generator (or
        restore it on resume)."""
        if self.global_rng is None:
            if self.global_seed is not None:
                torch.manual_seed(self.global_seed)
            else:
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=self.generator)))
            return
        torch.set_rng_state(self.global_rng["rng.cpu"])
        if "rng.cuda" in self.global_rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(self.global_rng["rng.cuda"], self.device)

    def result(self, seconds: float) -> TrainResult:
        ema_model = self.ema.module if self.ema is not None else None
        return TrainResult(
            model=self.model, ema_model=ema_model, losses=list(self.losses), steps=self.step, seconds=seconds,
            images_per_second=self.step * self.s.batch_size / seconds if seconds > 0 else float("nan"),
            interrupted=self.interrupted, state=self.state(seconds) if self.resumable else None,
            stop_signal=self.stop_signal, logs={k: list(v) for k, v in self.logs.items()},
        )

    # -- the loop

    def run(self, bar, ctrl_c: _CtrlC, log_every: int, every_s: float, on_checkpoint) -> TrainResult:
        start = time.perf_counter() - self.seconds_before
        self.last_save = time.perf_counter()
        if self.step == 0:
            _set_lr(self.opt, self.s.lr * _lr_factor(0, self.s.warmup_steps, self.s.lr_decay, 0.0))
        while self.step < self.max_steps and time.perf_counter() - start < self.budget_s:
            if ctrl_c.requested:
                self.interrupted, self.stop_signal = True, ctrl_c.signum
                break
            before = (self.generator.get_state(), torch.get_rng_state(), self.batches.order, self.batches.cursor)
            try:
                self.one_step(start)
            except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread: back to the step's start
                self.interrupted, self.resumable = True, not self.updating
                self.stop_signal = ctrl_c.signum or signal.SIGINT
                self.generator.set_state(before[0])
                torch.set_rng_state(before[1])
                self.batches.order, self.batches.cursor = before[2], before[3]
                break
            try:
                self.after_step(start, bar, log_every, every_s, on_checkpoint)
            except KeyboardInterrupt:  # the step itself is complete: nothing to undo
                self.interrupted, self.stop_signal = True, ctrl_c.signum or signal.SIGINT
                break
        if self.stop_signal is None:  # a signal during the last step: the run is complete, but it was asked to stop
            self.stop_signal = ctrl_c.signum
        return self.result(time.perf_counter() - start)

    def after_step(self, start: float, bar, log_every: int, every_s: float, on_checkpoint) -> None:
        """The progress bar's loss readout and, when it is time, a checkpoint."""
        bar.update(1)
        if self.step % log_every == 0 or self.step == 1:
            recent = self.losses[-log_every:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", refresh=False)
        if on_checkpoint is not None and time.perf_counter() - self.last_save >= every_s:
            on_checkpoint(self.result(time.perf_counter() - start))
            self.last_save = time.perf_counter()


def fit(
    model: nn.Module, objective: Objective, data: Any, *,
    steps: int | None = None, minutes: float | None = None, batch_size: int = 128,
    lr: float = 1e-3, warmup_steps: int = 200, lr_decay: bool = True, weight_decay: float = 0.0,
    grad_clip: float | None = 1.0, ema_decay: float | None = 0.999, optimizer: str = "adamw",
    generator: torch.Generator | None = None, device: torch.device | str | None = None,
    precision: str = "fp32", progress: bool = True, log_every: int = 25,
    resume: TrainState | None = None, checkpoint_every: float | None = None,
    on_checkpoint: Callable[[TrainResult], None] | None = None, distributed: bool = False,
    batches: str = "fixed", global_seed: int | None = None,
) -> TrainResult:
    """Train ``model`` in place to minimise ``objective`` on ``data``; return a :class:`TrainResult`.

    The one training loop: :func:`train` is ``fit`` with L_simple (:class:`NoisePrediction`), and
    each lesson's method (flow matching, score matching, the VAEs, distillation) is ``fit`` with
    its own :class:`~ddpm_course.train.objective.Objective`.

    model: the network the objective trains; the data's floating tensors are cast to its dtype.
    objective: ``objective.examples(data, model)`` checks the data and gives the N examples;
        ``objective.loss(net, batch, generator)`` the loss of one batch (and optionally logs).
    data: what the objective takes; the default an ImageData (images (N, ...) and labels (N,))
        or a tensor (N, ...), e.g. (N, 2) points. Labels are used only by a class-conditional model.
    steps / minutes: the budget (finite); with both, training stops at whichever comes first. A
        step budget is reproducible, a minutes budget is not (it depends on the machine's speed).
        A budget that allows no step at all is a ValueError.
    batch_size: images per step, drawn without replacement within each pass over the data.
    batches: "fixed" (every batch holds ``batch_size`` examples; one may straddle two passes) or
        "passes" (each pass cut into batches on its own, its last one shorter: a classic epoch
        loop's batches, which ``metrics.train_digit_classifier`` keeps for its shipped weights).
    lr, warmup_steps: the learning rate, reached linearly over the first ``warmup_steps``.
    lr_decay: after the warm-up, multiply lr by (1 + cos(pi * p)) / 2, where p is the fraction
        of the budget used (of the steps, or of the minutes, whichever is further along).
    weight_decay: AdamW's decoupled weight decay (0 for ``optimizer="adam"``).
    grad_clip: the largest gradient norm, or None for no clipping.
    ema_decay: the EMA decay d (the EMA averages about the last 1/(1-d) steps), or None. It
        warms up: update k uses min(d, (1 + k) / (10 + k)), see :func:`ema_decay_at`.
    optimizer: "adamw" or "adam".
    generator: the source of every random draw, a CPU ``torch.Generator`` (seed 0 when None).
    global_seed: the seed of the global RNG that dropout draws from during the run; None draws it
        from ``generator`` before the first batch (an int leaves the generator's stream to the
        batches and the objective).
    device: where to train (default: where the model's parameters are).
    precision: "fp32"; "bf16" (the forward pass under bfloat16 autocast, weights and loss stay
        float32); or "fp16" (float16 autocast with a GradScaler, CUDA only: GPUs without fast
        bfloat16 such as the T4). On a CPU, "bf16" stores the convolution weights in NCHW order, where oneDNN's bfloat16
        convolutions are faster (the course U-Net's own channels_last suits float32); the
        values do not change.
    progress: show a tqdm progress bar; log_every: refresh its loss readout every so many steps.
    resume: a :class:`TrainState` (``TrainResult.state``, or ``load_checkpoint(...).train_state``)
        to continue from; the model, data and settings must be those of the saved run. The run
        then ends with the weights the uninterrupted run would have had (bit for bit on the CPU).
    checkpoint_every, on_checkpoint: call ``on_checkpoint(result_so_far)`` (its ``state`` set)
        every ``checkpoint_every`` minutes, e.g. to save the latest state to disk.
    distributed: train one replica of a DistributedDataParallel run (the process group already
        started, see :mod:`ddpm_course.distributed`): the model is wrapped in DDP, each rank draws
        its batches from its own ``generator`` and the gradients are averaged, so every rank ends
        with the same weights and EMA. Needs a step budget (a minutes budget could stop the ranks
        at different steps); such a run cannot be resumed (``state`` is None).
    Ctrl-C (or a notebook's interrupt), SIGTERM and SIGHUP finish the step and return the result
    so far with ``interrupted=True`` and ``stop_signal`` set; a second one stops at once. The
    model and EMA end in eval mode.
    """
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be a train.Objective (e.g. train.NoisePrediction(schedule)); "
                        f"got {type(objective).__name__}")
    s = _check_settings(steps=steps, minutes=minutes, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                        lr_decay=lr_decay, weight_decay=weight_decay, grad_clip=grad_clip, ema_decay=ema_decay,
                        optimizer=optimizer, p_uncond=objective.p_uncond, precision=precision)
    log_every = int_at_least("log_every", log_every, 1)
    batches = one_of("batches", batches, BATCHINGS)
    global_seed = None if global_seed is None else int_at_least("global_seed", global_seed, 0)
    every_s = _check_checkpointing(checkpoint_every, on_checkpoint)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters (none with requires_grad=True)")
    examples = objective.examples(data, model)
    generator = _check_generator(generator)
    device = _check_device(model, device, s.precision)
    _check_distributed(distributed, s, resume)
    model.to(device)
    if device.type == "cpu" and s.precision == "bf16":
        # oneDNN's bfloat16 convolutions run faster on NCHW weights, its float32 ones on the course
        # U-Net's channels_last (benchmarks/throughput.py --contiguous); the values do not change.
        set_weight_layout(model, torch.contiguous_format)
    run = _Run(model, objective, examples, s, generator, device, distributed, batches, global_seed)
    if resume is not None:
        run.restore(resume)
    return _loop(run, progress, log_every, every_s, on_checkpoint)


def train(
    model: nn.Module, schedule: Schedule, data: ImageData | Tensor, *,
    p_uncond: float = 0.0, autocast_bf16: bool = False, precision: str = "fp32", **settings: Any,
) -> TrainResult:
    """Train ``model`` to predict the noise with L_simple; return a :class:`TrainResult`.

    ``fit(model, NoisePrediction(schedule, p_uncond), data, **settings)``: Algorithm 1 of Ho et
    al. (2020) in the one loop, whose settings (budget, batch, lr, warm-up, decay, clipping, EMA,
    optimiser, generator, device, precision, progress, resume, checkpoints, distributed) are
    described at :func:`fit`.

    model: any noise predictor following the contract ``model(x_t, t) -> eps_hat``
        (``model(x_t, t, y)`` when ``model.config.num_classes`` is set); trained in place. The
        data is cast to its dtype (a float64 or bfloat16 model trains in that dtype).
    data: an ImageData (images (N, C, H, W) in [-1, 1] and labels (N,)) or a tensor (N, ...),
        e.g. (N, 2) points. Labels are used only by a class-conditional model.
    p_uncond: probability of replacing a label by the null label (classifier-free guidance).
    autocast_bf16: the older spelling of ``precision="bf16"``.
    """
    if autocast_bf16:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"autocast_bf16=True asks for precision 'bf16'; got precision={precision!r} as well")
        precision = "bf16"
    return fit(model, NoisePrediction(schedule, p_uncond), data, precision=precision, **settings)


def _check_distributed(distributed: bool, s: _Settings, resume: TrainState | None) -> None:
    if not isinstance(distributed, bool):
        raise TypeError(f"distributed must be True or False; got {distributed!r}")
    if not distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        raise ValueError("distributed=True needs a started process group: run under torchrun "
                         "(ddpm_course.distributed.start does it)")
    if s.minutes is not None:
        raise ValueError("distributed training needs a step budget (steps=...), not minutes: every rank must stop "
                         "at the same step")
    if resume is not None:
        raise ValueError("a distributed run cannot resume a saved state (each rank has its own data stream)")


def _check_checkpointing(checkpoint_every: float | None, on_checkpoint: Callable | None) -> float:
    if (checkpoint_every is None) != (on_checkpoint is None):
        raise ValueError("checkpoint_every and on_checkpoint go together: give both or neither")
    if on_checkpoint is not None and not callable(on_checkpoint):
        raise TypeError(f"on_checkpoint must be callable; got {type(on_checkpoint).__name__}")
    if checkpoint_every is None:
        return math.inf
    return 60.0 * finite_float("checkpoint_every", checkpoint_every, 0.0, low_open=True)


def _loop(run: _Run, progress: bool, log_every: int, every_s: float, on_checkpoint) -> TrainResult:
    """Run the loop inside a private global RNG and a Ctrl-C guard; eval mode at the end, always."""
    from tqdm.auto import tqdm

    bar = tqdm(total=run.s.steps, initial=run.step, disable=not progress, desc="train", unit="step", dynamic_ncols=True)
    devices = [run.device] if run.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), _CtrlC(bar.write) as ctrl_c:
            run.seed_global_rng()
            run.model.train()
            result = run.run(bar, ctrl_c, log_every, every_s, on_checkpoint)
    finally:
        bar.close()
        run.model.eval()
        if run.ema is not None:
            run.ema.module.eval()
    if result.steps == 0 and not result.interrupted:
        raise ValueError(f"the budget (steps={run.s.steps}, minutes={run.s.minutes}) ended before the first step; "
                         "give more minutes or a number of steps")
    return result

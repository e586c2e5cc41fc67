"""Training a noise predictor: one loop for the notebooks, the CLI and the benchmarks.

Ho et al. (2020), "Denoising Diffusion Probabilistic Models", Algorithm 1: repeat
{x_0 ~ data, t ~ Uniform{0..T-1}, eps ~ N(0, I), gradient step on |eps - eps_theta(x_t, t)|^2}.
Around that loop sit the habits that make a small model train well and safely:

| piece                | what it does                                              | why                                   |
|----------------------|-----------------------------------------------------------|---------------------------------------|
| AdamW                | Adam with decoupled weight decay (Loshchilov & Hutter)    | the standard optimiser for U-Nets     |
| warm-up              | lr grows linearly over ``warmup_steps``                   | Adam's early steps are noisy          |
| cosine decay         | then lr falls to 0 along a half cosine over the budget    | small steps at the end settle weights |
| gradient clipping    | rescale the gradient to norm <= ``grad_clip``             | rare high-noise batches spike         |
| EMA                  | w_ema <- d * w_ema + (1 - d) * w, via torch.optim.swa_utils | averaged weights sample better      |
| budget               | stop after ``steps`` or after ``minutes``                 | a CPU lesson has minutes, not epochs  |
| NaN guard            | a non-finite loss stops with the step and what to try     | silent NaNs waste the whole budget    |

Randomness: batches, timesteps and noise all come from ``generator``; dropout uses the global
RNG, which ``train`` seeds from ``generator`` inside ``torch.random.fork_rng`` (the caller's
global RNG state is left as it was). The same generator seed and step budget give the same
weights on the same machine.

The article's recipe is ``optimizer="adam", lr=1e-3, warmup_steps=0, lr_decay=False, weight_decay=0,
grad_clip=None, ema_decay=None`` on a ``SimpleUNet``; :data:`PRESETS` holds it next to the
course's recipe, for the CLI and the benchmarks.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from .data import ImageData
from .schedules import Schedule

__all__ = ["TrainResult", "NonFiniteLossError", "train", "ema_decay_at", "Preset", "PRESETS", "build_preset"]

OPTIMIZERS = ("adamw", "adam")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    model: the trained (raw) weights, in eval mode; ema_model: the exponential moving average
    of them (a separate module, eval mode) or None without EMA; losses: the loss of every step;
    steps: steps done; seconds: wall time of the loop; images_per_second: training throughput.
    """

    model: nn.Module
    ema_model: nn.Module | None
    losses: list[float]
    steps: int
    seconds: float
    images_per_second: float

    @property
    def final_model(self) -> nn.Module:
        """The weights to sample from: the EMA when there is one, else the raw weights."""
        return self.ema_model if self.ema_model is not None else self.model


def _as_tensors(data: ImageData | Tensor) -> tuple[Tensor, Tensor | None]:
    if isinstance(data, ImageData):
        return data.images, data.labels
    if isinstance(data, Tensor):
        return data, None
    raise TypeError(f"data must be an ImageData or a tensor of shape (N, ...); got {type(data).__name__}")


def _num_classes(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_classes", None)


def _check_args(steps, minutes, batch_size, lr, warmup_steps, weight_decay, grad_clip, ema_decay, optimizer, p_uncond, log_every):
    if steps is None and minutes is None:
        raise ValueError("give a budget: steps (an int >= 1) and/or minutes (a float > 0)")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be an integer >= 1 or None; got {steps!r}")
    if minutes is not None and not (isinstance(minutes, (int, float)) and minutes > 0):
        raise ValueError(f"minutes must be a number > 0 or None; got {minutes!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0; got {warmup_steps!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0; got {weight_decay!r}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None (no clipping); got {grad_clip!r}")
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must lie strictly inside (0, 1) or be None (no EMA); got {ema_decay!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}")
    if optimizer == "adam" and weight_decay != 0:
        raise ValueError("weight_decay needs optimizer='adamw' (Adam's L2 penalty is not decoupled); set weight_decay=0 for 'adam'")
    if not 0.0 <= p_uncond < 1.0:
        raise ValueError(f"p_uncond must lie in [0, 1); got {p_uncond!r}")
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ValueError(f"log_every must be an integer >= 1; got {log_every!r}")


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
        for ema_param, param in zip(ema_params, params):
            if ema_param.is_floating_point():
                ema_param.lerp_(param, weight)
            else:  # integer buffers (e.g. BatchNorm's step counter) are copied, not averaged
                ema_param.copy_(param)

    return update


def _lr_factor(step: int, warmup_steps: int, decay: bool, progress: float) -> float:
    """Multiplier of the base lr for the next step: linear warm-up, then an optional half cosine."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    return warm * (0.5 * (1.0 + math.cos(math.pi * progress)) if decay else 1.0)


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def train(
    model: nn.Module,
    schedule: Schedule,
    data: ImageData | Tensor,
    *,
    steps: int | None = None,
    minutes: float | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    warmup_steps: int = 200,
    lr_decay: bool = True,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    ema_decay: float | None = 0.999,
    optimizer: str = "adamw",
    p_uncond: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    autocast_bf16: bool = False,
    progress: bool = True,
    log_every: int = 25,
) -> TrainResult:
    """Train ``model`` to predict the noise with L_simple; return a :class:`TrainResult`.

    model: any noise predictor following the contract ``model(x_t, t) -> eps_hat``
        (``model(x_t, t, y)`` when ``model.config.num_classes`` is set); trained in place.
    data: an ImageData (images (N, C, H, W) in [-1, 1] and labels (N,)) or a tensor (N, ...),
        e.g. (N, 2) points. Labels are used only by a class-conditional model.
    steps / minutes: the budget; with both, training stops at whichever comes first. A step
        budget is reproducible, a minutes budget is not (it depends on the machine's speed).
    batch_size: images per step, drawn without replacement within each pass over the data.
    lr, warmup_steps: the learning rate, reached linearly over the first ``warmup_steps``.
    lr_decay: after the warm-up, multiply lr by (1 + cos(pi * p)) / 2, where p is the fraction
        of the budget used (of the steps, or of the minutes, whichever is further along).
    weight_decay: AdamW's decoupled weight decay (0 for ``optimizer="adam"``).
    grad_clip: the largest gradient norm, or None for no clipping.
    ema_decay: the EMA decay d (the EMA averages about the last 1/(1-d) steps), or None. It
        warms up: update k uses min(d, (1 + k) / (10 + k)), see :func:`ema_decay_at`.
    optimizer: "adamw" or "adam".
    p_uncond: probability of replacing a label by the null label (classifier-free guidance).
    generator: the source of every random draw (a fresh seeded one when None: seed 0).
    device: where to train (default: where the model's parameters are).
    autocast_bf16: run the forward pass under bfloat16 autocast (weights and loss stay float32).
    progress: show a tqdm progress bar; log_every: refresh its loss readout every so many steps.
    """
    _check_args(steps, minutes, batch_size, lr, warmup_steps, weight_decay, grad_clip, ema_decay, optimizer, p_uncond, log_every)
    from .losses import l_simple  # imported here: losses imports nothing from train, but models may be heavy

    images, labels = _as_tensors(data)
    if images.ndim < 2 or images.shape[0] < 1:
        raise ValueError(f"data must have shape (N, ...) with N >= 1; got {tuple(images.shape)}")
    num_classes = _num_classes(model)
    if num_classes is not None:
        if labels is None:
            raise ValueError(f"the model is class-conditional (num_classes={num_classes}); pass an ImageData with labels")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes - 1}]; got values from {labels.min().item()} to {labels.max().item()}")
    elif p_uncond > 0:
        raise ValueError("p_uncond > 0 needs a class-conditional model (model.config.num_classes is None)")

    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    model.to(device)
    n = images.shape[0]

    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=lr)
    ema = AveragedModel(model, multi_avg_fn=_ema_warmup_fn(ema_decay), use_buffers=True) if ema_decay else None

    from tqdm.auto import tqdm

    losses: list[float] = []
    budget_s = minutes * 60.0 if minutes is not None else math.inf
    max_steps = steps if steps is not None else math.inf
    bar = tqdm(total=steps, disable=not progress, desc="train", unit="step", dynamic_ncols=True)
    order = torch.empty(0, dtype=torch.long)
    cursor = 0
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # dropout draws from the global RNG; seed it from the generator so a run is repeatable
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        model.train()
        start = time.perf_counter()
        step = 0
        _set_lr(opt, lr * _lr_factor(0, warmup_steps, lr_decay, 0.0))
        while step < max_steps and time.perf_counter() - start < budget_s:
            while cursor + batch_size > order.numel():  # a new pass over the data in a fresh order
                order = torch.cat([order[cursor:], torch.randperm(n, generator=generator)])
                cursor = 0
            idx = order[cursor : cursor + batch_size]  # (B,)
            cursor += batch_size
            x0 = images[idx].to(device)
            y = labels[idx].to(device) if num_classes is not None else None

            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                loss = l_simple(model, schedule, x0, y, generator=generator, p_uncond=p_uncond)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                bar.close()
                raise NonFiniteLossError(_non_finite_message("the loss", loss_value, step, opt.param_groups[0]["lr"], x0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip).item()
                if not math.isfinite(grad_norm):
                    bar.close()
                    raise NonFiniteLossError(_non_finite_message("the gradient norm", grad_norm, step, opt.param_groups[0]["lr"], x0))
            opt.step()
            _set_lr(opt, lr * _lr_factor(step + 1, warmup_steps, lr_decay, _progress(step + 1, steps, time.perf_counter() - start, budget_s)))
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss_value)
            step += 1
            bar.update(1)
            if step % log_every == 0 or step == 1:
                recent = losses[-log_every:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", refresh=False)
        seconds = time.perf_counter() - start
    bar.close()

    model.eval()
    ema_model = None
    if ema is not None:
        ema_model = ema.module  # the averaged copy, a plain module with the model's class and config
        ema_model.eval()
    return TrainResult(
        model=model,
        ema_model=ema_model,
        losses=losses,
        steps=step,
        seconds=seconds,
        images_per_second=step * batch_size / seconds if seconds > 0 else float("nan"),
    )


# ----------------------------------------------------------------------------------------------
# Recipes: one place for the CLI and the benchmarks.


@dataclass(frozen=True)
class Preset:
    """A complete training recipe: data, model, schedule and optimisation settings.

    ``model_config`` is the dict that ``models.build_model(arch, model_config)`` takes;
    ``schedule`` is "linear" or "cosine" with ``T`` steps; ``data`` is "digits" (the train split
    at ``image_size``) or "toy2d:<name>" (``n_points`` points). ``steps``/``minutes`` are the
    default budget; the CLI can override them.
    """

    description: str
    arch: str
    model_config: dict = field(default_factory=dict)
    data: str = "digits"
    image_size: int = 16
    n_points: int = 8192
    schedule: str = "linear"
    T: int = 1000
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 200
    lr_decay: bool = True
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.999
    optimizer: str = "adamw"

    def train_kwargs(self) -> dict:
        """The optimisation settings as keyword arguments of :func:`train`."""
        return dict(
            batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps, lr_decay=self.lr_decay,
            weight_decay=self.weight_decay, grad_clip=self.grad_clip, ema_decay=self.ema_decay,
            optimizer=self.optimizer,
        )


PRESETS: dict[str, Preset] = {
    "digits": Preset(
        description="the course U-Net on 16x16 digits (train split): GroupNorm, two resolutions "
        "below the input, attention at the lowest, dropout; AdamW with warm-up, cosine decay, "
        "clipping and EMA (0.999); 3000 steps",
        arch="UNet",
        model_config=dict(
            in_channels=1, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
            attention_levels=(2,), dropout=0.1, num_classes=None, groups=8, time_dim=None,
        ),
        steps=3000,
        lr=1e-3,
        warmup_steps=200,
        ema_decay=0.999,
    ),
    "article-digits": Preset(
        description="the article's recipe on the same digits: SimpleUNet (base 64), linear "
        "schedule, plain Adam at lr 1e-3, no warm-up, no clipping, no EMA",
        arch="SimpleUNet",
        model_config=dict(in_channels=1, base_channels=64, time_dim=128),
        steps=4000,
        lr=1e-3,
        warmup_steps=0,
        lr_decay=False,
        grad_clip=None,
        ema_decay=None,
        optimizer="adam",
    ),
    "toy2d": Preset(
        description="an MLP noise predictor on the 8-Gaussian ring mixture (2-D points)",
        arch="MLPDenoiser",
        model_config=dict(dim=2, hidden=128, depth=3, time_dim=64, num_classes=None),
        data="toy2d:mixture",
        T=1000,
        steps=4000,
        batch_size=256,
        lr=1e-3,
        warmup_steps=100,
        ema_decay=0.995,
    ),
}


@dataclass
class PresetRun:
    """The pieces :func:`build_preset` assembles: a fresh model, its schedule and its data."""

    preset: Preset
    model: nn.Module
    schedule: Schedule
    data: ImageData | Tensor
    sample_shape: tuple[int, ...]


def build_preset(name: str, seed: int = 0) -> PresetRun:
    """A fresh model (initialised from ``seed``), the schedule and the training data of a preset."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {name!r}")
    from . import models
    from .data import digits, toy2d
    from .schedules import cosine_schedule, linear_schedule

    preset = PRESETS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.build_model(preset.arch, copy.deepcopy(preset.model_config))
    schedule = linear_schedule(preset.T) if preset.schedule == "linear" else cosine_schedule(preset.T)
    if preset.data == "digits":
        data = digits(size=preset.image_size, split="train")
        sample_shape = tuple(data.images.shape[1:])
    else:
        toy_name = preset.data.split(":", 1)[1]
        data = toy2d(toy_name, n=preset.n_points, generator=torch.Generator().manual_seed(seed + 1))
        sample_shape = tuple(data.shape[1:])
    return PresetRun(preset=preset, model=model, schedule=schedule, data=data, sample_shape=sample_shape)

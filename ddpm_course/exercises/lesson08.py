"""Lesson 08 (conditioning and guidance): the training step that makes CFG possible, the
guidance rule, a guided model, and one number.

| exercise            | the learner writes                                             | reference               |
|---------------------|----------------------------------------------------------------|-------------------------|
| ``08.cfg_loss``     | ``my_cfg_loss(model, x0, y, t, noise, drop, null, schedule)``  | ``cfg_loss`` below      |
| ``08.cfg_combine``  | ``my_cfg(eps_cond, eps_uncond, s) -> eps_guided``              | ``guidance.guided_eps`` |
| ``08.guided_model`` | ``my_guided(model, x_t, t, y, s, null) -> eps_guided``         | ``cfg(model, s, null)`` |
| ``08.scale_from_w`` | the scale s of a paper's guidance weight w = 0.3               | ``scale_from_w``        |

``model`` is a small fixed function of (x_t, t, y) with the model contract, whose null label
is ``null``; in ``08.guided_model`` the learner's answer may call it once on a doubled batch or
twice, as long as the result is the guided prediction. In ``08.cfg_loss`` the random draws are
given (``t``, ``noise`` and the (B,) bool mask ``drop`` of the examples whose condition is
dropped), so the loss is a function of its arguments. Cases are float64; answers computed in
float32 pass, since the tolerances (relative 1e-5) sit above float32's rounding (about 6e-8
relative per operation, a few operations deep). The hidden cases (``ddpm-course
grade --hidden``) use other scales and shapes, and a model with six labels whose null label is 5.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..guidance import cfg, guided_eps, scale_from_w
from ..schedules import Schedule, cosine_schedule, linear_schedule
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register

RTOL, ATOL = 1e-5, 1e-6  # fits a float32 answer to float64 cases

PAPER_W = 0.3  # Ho & Salimans' weight with the best FID on ImageNet 64x64 in their table 1


def _combine_cases(generator: torch.Generator, specs=((0.0, (3, 2)), (1.0, (2, 1, 4, 4)), (3.0, (4, 2)),
                                                       (7.5, (2, 1, 3, 3)), (0.5, (5,)))) -> list[Case]:
    cases = []
    for s, shape in specs:
        cond, uncond = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(2))
        cases.append(Case((cond, uncond, s), {}, f"s = {s}, shape {shape}"))
    return cases


register(FunctionExercise(
    name="08.cfg_combine",
    reference=guided_eps,
    cases=_combine_cases,
    hidden_cases=lambda g: _combine_cases(g, ((1.0, (4, 3)), (2.0, (1, 2, 2, 2)), (12.0, (3,)), (0.0, (2, 5)),
                                              (4.25, (3, 1, 1, 4)))),
    mistakes=(
        Mistake("the two predictions are swapped: start from eps_uncond and move towards eps_cond",
                lambda c, u, s: c + s * (u - c)),
        Mistake("the difference alone is not a prediction: add it to eps_uncond", lambda c, u, s: s * (c - u)),
        Mistake("that is the (1 + w) eps_cond - w eps_uncond convention with w = s: here w = s - 1",
                lambda c, u, s: (1 + s) * c - s * u),
        Mistake("wrong sign: guidance moves away from eps_uncond, eps_uncond + s (eps_cond - eps_uncond)",
                lambda c, u, s: u - s * (c - u)),
    ),
    rtol=RTOL,
    atol=ATOL,
))


NULL = 3
HIDDEN_NULL = 5


def _toy(x_t: Tensor, t: Tensor, y: Tensor, centres: tuple) -> Tensor:
    shape = (-1, *([1] * (x_t.ndim - 1)))
    centre = torch.tensor(centres, dtype=x_t.dtype)[y].reshape(shape)  # (B, 1, ..., 1)
    return torch.tanh(x_t - centre) * (1 + t.to(x_t.dtype).reshape(shape) / 1000)


def toy_model(x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
    """A fixed conditional 'noise predictor' with null label 3: (B, ...) -> (B, ...)."""
    return _toy(x_t, t, y, (0.5, -1.0, 2.0, 0.0))


def hidden_toy_model(x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
    """The hidden cases' model: six labels, the null label 5: (B, ...) -> (B, ...)."""
    return _toy(x_t, t, y, (0.5, -1.0, 2.0, -0.3, 1.2, 0.1))


def _guided(model, x_t: Tensor, t: Tensor, y: Tensor, s: float, null: int) -> Tensor:
    return cfg(model, s, null=null)(x_t, t, y)


def _model_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    cases = []
    model, null = (hidden_toy_model, HIDDEN_NULL) if hidden else (toy_model, NULL)
    specs = ((3.0, (5, 2)), (1.0, (2, 1, 3, 3)), (0.0, (4, 4)), (1.5, (6, 1))) if hidden else \
        ((2.0, (4, 3)), (0.0, (3, 1, 2, 2)), (1.0, (4, 3)), (4.5, (5, 2)))
    for s, shape in specs:
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        t = torch.randint(0, 1000, (shape[0],), generator=generator)
        y = torch.randint(0, null, (shape[0],), generator=generator)
        where = f", null label {null}" if hidden else ""
        cases.append(Case((model, x, t, y, s, null), {}, f"s = {s}, labels {y.tolist()}{where}"))
    return cases


def _with_labels(model, x, t, y, s, null, uncond_label):
    cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, uncond_label))
    return uncond + s * (cond - uncond)


def _swapped(model, x, t, y, s, null):
    cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, null))
    return cond + s * (uncond - cond)


register(FunctionExercise(
    name="08.guided_model",
    reference=_guided,
    cases=_model_cases,
    hidden_cases=lambda g: _model_cases(g, hidden=True),
    mistakes=(
        Mistake("the unconditional pass needs the null label (null), not label 0",
                lambda m, x, t, y, s, null: _with_labels(m, x, t, y, s, null, uncond_label=0)),
        Mistake("that is the conditional model alone: guidance also needs the unconditional pass with the null label",
                lambda m, x, t, y, s, null: m(x, t, y)),
        Mistake("the passes are swapped: start from the unconditional prediction and move towards the conditional one",
                lambda m, x, t, y, s, null: _swapped(m, x, t, y, s, null)),
    ),
    rtol=RTOL,
    atol=ATOL,
))


def cfg_loss(model, x0: Tensor, y: Tensor, t: Tensor, noise: Tensor, drop: Tensor, null: int,
             schedule: Schedule, one_based: bool = False, target_x0: bool = False) -> Tensor:
    """L_simple with the condition dropped where ``drop``: mean (eps_theta(x_t, t, y') - eps)^2."""
    labels = torch.where(drop, torch.full_like(y, null), y)  # (B,)
    abar = schedule.alpha_bars.to(x0.dtype)[t + 1 if one_based else t].reshape(-1, *[1] * (x0.ndim - 1))
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    return ((model(x_t, t, labels) - (x0 if target_x0 else noise)) ** 2).mean()


def _loss_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    schedule = cosine_schedule(400) if hidden else linear_schedule(1000)
    sizes = ((7, (3,)), (4, (2, 2, 2)), (9, (1,))) if hidden else ((6, (2,)), (5, (1, 3, 3)), (8, (3,)))
    n_drop = 3 if hidden else 2
    cases = []
    for b, shape in sizes:
        x0 = torch.randn(b, *shape, generator=generator, dtype=torch.float64)
        y = torch.randint(0, NULL, (b,), generator=generator)
        t = torch.randint(0, schedule.T - 1, (b,), generator=generator)  # below T - 1: a 1-based read stays in range
        noise = torch.randn(b, *shape, generator=generator, dtype=torch.float64)
        drop = torch.zeros(b, dtype=torch.bool)
        drop[torch.randperm(b, generator=generator)[:n_drop]] = True  # some dropped, the rest kept
        label = f"batch {b}, dropped {drop.tolist()}"
        cases.append(Case((toy_model, x0, y, t, noise, drop, NULL, schedule), {}, label))
    return cases


def _loss_with(labels_rule):
    def loss(model, x0, y, t, noise, drop, null, schedule):
        labels = labels_rule(y, drop, null)
        abar = schedule.alpha_bars.to(x0.dtype)[t].reshape(-1, *[1] * (x0.ndim - 1))
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        return ((model(x_t, t, labels) - noise) ** 2).mean()
    return loss


register(FunctionExercise(
    name="08.cfg_loss",
    reference=cfg_loss,
    cases=_loss_cases,
    hidden_cases=lambda g: _loss_cases(g, hidden=True),
    mistakes=(
        Mistake("the condition is never dropped: where drop is True the label must become null, or the "
                "network never learns the unconditional prediction", _loss_with(lambda y, d, n: y)),
        Mistake("the mask is inverted: drop marks the examples whose label becomes null",
                _loss_with(lambda y, d, n: torch.where(d, y, torch.full_like(y, n)))),
        Mistake("a dropped label becomes the null label (null), not label 0",
                _loss_with(lambda y, d, n: torch.where(d, torch.zeros_like(y), y))),
        Mistake("alpha_bar is indexed 1-based: in code t is 0-based, alpha_bars[t]",
                lambda m, x0, y, t, e, d, n, s: cfg_loss(m, x0, y, t, e, d, n, s, one_based=True)),
        Mistake("the network predicts the noise: the target is noise, not x0",
                lambda m, x0, y, t, e, d, n, s: cfg_loss(m, x0, y, t, e, d, n, s, target_x0=True)),
        Mistake("the model must see the noisy x_t, not the clean x0",
                lambda m, x0, y, t, e, d, n, s: ((m(x0, t, torch.where(d, torch.full_like(y, n), y)) - e) ** 2).mean()),
    ),
    rtol=RTOL,
    atol=ATOL,
))


register(NumberExercise(
    name="08.scale_from_w",
    answer=lambda: scale_from_w(PAPER_W),
    mistakes=(
        Mistake("w is the paper's weight; this course's scale is s = 1 + w", lambda: PAPER_W),
        Mistake("the other direction: w = s - 1, so s = w + 1", lambda: PAPER_W - 1.0),
    ),
    rtol=1e-6,
))

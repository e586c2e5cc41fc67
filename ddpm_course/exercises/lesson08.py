"""Lesson 08 (conditioning and guidance): the guidance rule, a guided model, and one number.

| exercise             | the learner writes                                      | reference                        |
|----------------------|---------------------------------------------------------|----------------------------------|
| ``08.cfg_combine``   | ``my_cfg(eps_cond, eps_uncond, s) -> eps_guided``       | ``guidance.guided_eps``          |
| ``08.guided_model``  | ``my_guided(model, x_t, t, y, s, null) -> eps_guided``  | ``cfg(model, s, null=null)``     |
| ``08.scale_from_w``  | the scale s of a paper's guidance weight w = 0.3        | ``guidance.scale_from_w``        |

``model`` in the second exercise is a small fixed function of (x_t, t, y) with the model
contract, whose null label is ``null``; the learner's answer may call it once on a doubled
batch or twice, as long as the result is the guided prediction. The hidden cases (``ddpm-course
grade --hidden``) use other scales and shapes, and a model with six labels whose null label is 5.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..guidance import cfg, guided_eps, scale_from_w
from . import Case, FunctionExercise, Mistake, NumberExercise, register

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
    rtol=1e-9,
    atol=1e-12,
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
    rtol=1e-9,
    atol=1e-12,
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

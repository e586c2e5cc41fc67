"""What one training step minimises: the objective that :func:`~ddpm_course.train.fit` plugs into
its one loop (as a step rule plugs into the samplers' one chain).

| piece                    | what it is                                                           |
|--------------------------|----------------------------------------------------------------------|
| :class:`Examples`        | N examples as aligned tensors, each (N, ...); a batch takes every    |
|                          | tensor at the same indices                                           |
| :class:`Objective`       | ``examples(data, model)`` checks the data; ``loss(net, batch,        |
|                          | generator)`` is one step's loss                                      |
| :class:`NoisePrediction` | L_simple (Ho et al. 2020): what ``train.train`` minimises            |

A lesson's objective lives in its lesson module (``flow.FlowMatching``, ``score.DenoisingScoreMatching``,
``autoencoder.VAEObjective``, ...): the loop, its budgets, EMA, NaN guard, signals and state
are the same for all of them. An objective's ``loss`` may return ``(loss, logs)``, logs a dict of
scalar tensors that the run records step by step (``TrainResult.logs``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import losses
from .._model import num_classes as _model_classes
from ..data import ImageData
from ..schedules import Schedule

__all__ = ["Examples", "NoisePrediction", "Objective", "image_examples"]


class Examples:
    """N training examples as aligned tensors (each (N, ...), or None for "absent").

    ``take(idx, device, dtype)`` gives each tensor at the indices idx (B,), on ``device``;
    floating-point ones in ``dtype`` (the model's), integer ones (labels, steps) as they are.
    """

    def __init__(self, *tensors: Tensor | None):
        present = [t for t in tensors if t is not None]
        if not present:
            raise ValueError("Examples needs at least one tensor")
        self.n = present[0].shape[0]
        for t in present:
            if not isinstance(t, Tensor) or t.ndim < 1 or t.shape[0] != self.n:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"every tensor of the examples must have the same first size {self.n}; got {got}")
        self.tensors = tensors

    def __len__(self) -> int:
        return self.n

    def take(self, idx: Tensor, device: torch.device, dtype: torch.dtype) -> tuple[Tensor | None, ...]:
        return tuple(
            None if t is None else t[idx].to(device, dtype) if t.is_floating_point() else t[idx].to(device)
            for t in self.tensors
        )


class Objective:
    """The loss of one training step, for :func:`~ddpm_course.train.fit`.

    ``name`` shows on the progress bar and is saved with a run's state: a run resumes only under
    the objective it started with. ``p_uncond`` is the label-dropout probability the objective
    uses (0 but for classifier-free guidance), recorded with the settings. The default
    ``examples`` takes an ImageData or a tensor (N, ...) and checks it (:func:`image_examples`).
    """

    name = "loss"
    p_uncond = 0.0

    def examples(self, data: Any, model: nn.Module) -> Examples:
        return image_examples(data, model, self.p_uncond)

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator
             ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError


class NoisePrediction(Objective):
    """L_simple: mean |eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)|^2, t and eps drawn
    from the generator; a class-conditional model's label replaced by the null label with
    probability ``p_uncond`` (classifier-free guidance). Batches are (x0, y)."""

    name = "l_simple"

    def __init__(self, schedule: Schedule, p_uncond: float = 0.0):
        if not isinstance(schedule, Schedule):
            raise TypeError(
                f"schedule must be a Schedule (e.g. dc.linear_schedule(1000)); got {type(schedule).__name__}"
            )
        self.schedule, self.p_uncond = schedule, p_uncond

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator) -> Tensor:
        x0, y = batch
        return losses.l_simple(net, self.schedule, x0, y, generator=generator, p_uncond=self.p_uncond)


def _as_tensors(data: ImageData | Tensor) -> tuple[Tensor, Tensor | None]:
    if isinstance(data, ImageData):
        return data.images, data.labels
    if isinstance(data, Tensor):
        return data, None
    raise TypeError(f"data must be an ImageData or a tensor of shape (N, ...); got {type(data).__name__}")


def image_examples(data: ImageData | Tensor, model: nn.Module, p_uncond: float = 0.0) -> Examples:
    """The images (N, ...) and, for a class-conditional model, the labels (N,), checked: finite
    floats, labels in range, labels present when the model needs them."""
    images, labels = _as_tensors(data)
    if images.ndim < 2 or images.shape[0] < 1 or not images.is_floating_point():
        raise ValueError(
            f"data must be a float tensor of shape (N, ...) with N >= 1; got {tuple(images.shape)}, {images.dtype}"
        )
    finite = torch.isfinite(images.reshape(images.shape[0], -1)).all(dim=1)  # (N,)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0, 0])
        raise ValueError(
            f"data holds NaN or infinite values ({int((~finite).sum())} examples, the first is example {first})"
        )
    num_classes = _model_classes(model)
    if num_classes is None:
        if p_uncond > 0:
            raise ValueError("p_uncond > 0 needs a class-conditional model (model.config.num_classes is None)")
        return Examples(images, None)
    if labels is None:
        raise ValueError(f"the model is class-conditional (num_classes={num_classes}); pass an ImageData with labels")
    if labels.shape != images.shape[:1] or labels.is_floating_point():
        raise ValueError(
            f"labels must be integers of shape (N,) = ({images.shape[0]},); got {tuple(labels.shape)}, {labels.dtype}"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}]; got values from {labels.min().item()} to "
            f"{labels.max().item()}"
        )
    return Examples(images, labels)



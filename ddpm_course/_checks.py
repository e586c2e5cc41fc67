"""Small argument checks shared by the whole package: one wording for every bad input.

Each check raises a ``ValueError`` (or ``TypeError`` for the wrong kind of object) whose
message names the argument, the allowed values and what was given, and returns the value
(converted where that is harmless, e.g. an int accepted as a float) so that a caller can
write ``steps = int_at_least("steps", steps, 1)``.

An argument of the wrong kind (a float or a bool where an integer is wanted, a string where a
number is) raises :class:`ArgumentTypeError`, which is both a ``TypeError`` and a
``ValueError``: either ``except`` clause catches it.

| check               | accepts                                                        |
|---------------------|----------------------------------------------------------------|
| ``int_at_least``    | an integer (not a bool) >= low                                 |
| ``int_in_range``    | an integer (not a bool) in [low, high]                         |
| ``finite_float``    | a finite real number inside optional (open or closed) bounds   |
| ``one_of``          | one of a few choices                                           |
| ``generator_or_none`` | a ``torch.Generator`` (on the CPU if asked) or None          |
| ``batch_tensor``    | a non-empty floating-point tensor (B, ...), finite if asked    |
| ``same_shape``      | a tensor with the shape of another (noise, a model output)     |
| ``shape_tuple``     | a shape (B, ...) of positive ints with at most MAX_ELEMENTS in all |
| ``device_or_none``  | a device (or its name) that exists on this machine, or None    |

Upper bounds, checked before anything is allocated (a typo such as ``1e8`` is an error, not a
machine that swaps for an hour):

| bound           | value      | on                                                               |
|-----------------|------------|------------------------------------------------------------------|
| ``MAX_BATCH``   | 65,536     | images or points in one training batch (``batch_size``)          |
| ``MAX_STEPS``   | 100,000    | steps of a chain without a schedule (``flow_sample``, Langevin), |
|                 |            | noise levels (``geometric_sigmas``)                              |
| ``MAX_ELEMENTS``| 2**28      | elements of one tensor made from a shape (1 GiB of float32)      |
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

import torch

MAX_BATCH = 2**16
MAX_STEPS = 100_000
MAX_ELEMENTS = 2**28

__all__ = [
    "MAX_BATCH", "MAX_STEPS", "MAX_ELEMENTS", "shape_tuple",
    "ArgumentTypeError", "int_at_least", "int_in_range", "finite_float", "one_of", "generator_or_none",
    "batch_tensor", "same_shape", "device_or_none",
]

_T = TypeVar("_T")


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong kind: a ``TypeError`` that is also a ``ValueError``."""


def _is_int(value: object) -> bool:
    """An int, a NumPy integer or a 0-d integer tensor (``for t in timesteps(...)`` gives those); not a bool."""
    import numpy as np

    if isinstance(value, torch.Tensor):
        return value.ndim == 0 and not value.dtype.is_floating_point and not value.is_complex() and (
            value.dtype != torch.bool)
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def int_at_least(name: str, value: object, low: int, *, even: bool = False, hint: str = "") -> int:
    """``value`` must be an integer (not a bool) >= ``low`` (and even, if asked); ``hint`` is added
    to the message in brackets."""
    kind = "an even integer" if even else "an integer"
    message = f"{name} must be {kind} >= {low}{f' ({hint})' if hint else ''}; got {value!r}"
    if not _is_int(value):
        raise ArgumentTypeError(message)
    if value < low or (even and value % 2):  # type: ignore[operator]
        raise ValueError(message)
    return int(value)  # type: ignore[arg-type]


def int_in_range(name: str, value: object, low: int, high: int, *, hint: str = "") -> int:
    """``value`` must be an integer (not a bool) with ``low <= value <= high``; ``hint`` as above."""
    message = f"{name} must be an integer in [{low}, {high}]{f' ({hint})' if hint else ''}; got {value!r}"
    if not _is_int(value):
        raise ArgumentTypeError(message)
    if not low <= value <= high:  # type: ignore[operator]
        raise ValueError(message)
    return int(value)  # type: ignore[arg-type]


def finite_float(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` must be a finite real number (not a bool) inside the given bounds.

    ``low_open``/``high_open`` exclude the bound itself: ``finite_float("lr", lr, 0, low_open=True)``
    asks for lr > 0.
    """
    import numpy as np

    left, right = "(" if low_open else "[", ")" if high_open else "]"
    span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    message = f"{name} must be a finite number in {span}; got {value!r}"
    if not (_is_int(value) or isinstance(value, (float, np.floating))):
        raise ArgumentTypeError(message)
    number = float(value)  # type: ignore[arg-type]
    ok = math.isfinite(number)
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if not ok:
        raise ValueError(message)
    return number


def one_of(name: str, value: _T, choices: Iterable[_T]) -> _T:
    """``value`` must be one of ``choices`` (compared with ==)."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def generator_or_none(name: str, value: object, *, cpu: bool = False) -> torch.Generator | None:
    """``value`` must be a ``torch.Generator`` or None; with ``cpu=True`` a CPU generator.

    The package draws its noise on the CPU and then moves it, so that a seed gives the same
    numbers on every machine: a CUDA generator cannot drive those draws.
    """
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None; got {type(value).__name__}")
    if cpu and value is not None and value.device.type != "cpu":
        raise ValueError(
            f"{name} must be a CPU torch.Generator (noise is drawn on the CPU, then moved); got one on {value.device}"
        )
    return value


def batch_tensor(name: str, value: object, *, min_ndim: int = 2, finite: bool = False) -> torch.Tensor:
    """``value`` must be a floating-point tensor (B, ...) with B >= 1 and at least ``min_ndim`` dims.

    ``finite=True`` also refuses NaN and infinite entries (one reduction over the tensor).
    """
    shape = "(B, ...)" if min_ndim == 2 else f"with at least {min_ndim} dims"
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a floating-point tensor {shape}; got {type(value).__name__}")
    if value.ndim < min_ndim:
        raise ValueError(
            f"{name} must have a batch dimension first, shape (B, ...) with at least {min_ndim} dims; "
            f"got shape {tuple(value.shape)} (add one with {name}[None])"
        )
    if not value.dtype.is_floating_point:
        raise ArgumentTypeError(f"{name} must be a floating-point tensor; got dtype {value.dtype}")
    if value.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample; got shape {tuple(value.shape)}")
    if finite and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values")
    return value


def same_shape(name: str, value: object, like: torch.Tensor, like_name: str = "x_t") -> torch.Tensor:
    """``value`` must be a tensor with exactly ``like``'s shape (no broadcasting)."""
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(
            f"{name} must be a tensor with the shape of {like_name} {tuple(like.shape)}; got {type(value).__name__}"
        )
    if value.shape != like.shape:
        raise ValueError(f"{name} must have the shape of {like_name} {tuple(like.shape)}; got {tuple(value.shape)}")
    return value


def shape_tuple(name: str, shape: object, *, min_len: int = 1, max_elements: int = MAX_ELEMENTS) -> tuple[int, ...]:
    """``shape`` must be a tuple (or list, torch.Size) of at least ``min_len`` positive integers
    whose product is at most ``max_elements``; returns it as a tuple of ints."""
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < min_len:
        raise ValueError(f"{name} must be a tuple of at least {min_len} positive ints; got {shape!r}")
    dims = tuple(int_at_least(f"every entry of {name}", n, 1) for n in shape)
    if math.prod(dims) > max_elements:
        raise ValueError(f"{name} {dims} holds {math.prod(dims):,} elements, more than the {max_elements:,} allowed "
                         "(a bound checked before allocating)")
    return dims


def device_or_none(name: str, value: object, *, hint: str = "use 'cpu'") -> torch.device | None:
    """``value`` must be None, a ``torch.device`` or a name ("cpu", "cuda", "cuda:1", "mps") of a
    device this machine has; returns it as a ``torch.device`` (None stays None).

    The one device check of the package: a missing GPU, a GPU index past the count or a missing
    MPS backend is a ValueError naming the argument here, before any tensor is moved (the
    driver's own error names neither). ``hint`` ends the message (the CLI says "try auto or cpu").
    """
    if value is None:
        return None
    allowed = "a torch device such as 'cpu', 'cuda', 'cuda:0' or 'mps' (a name or a torch.device)"
    if not isinstance(value, (str, torch.device)):
        raise ArgumentTypeError(f"{name} must be {allowed}; got {type(value).__name__}")
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}; got {value!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {device} asked for, but CUDA is not available here ({hint})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {device} asked for, but this machine has "
                             f"{torch.cuda.device_count()} GPU(s) ({hint})")
    elif device.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError(f"{name} {device} asked for, but Apple's MPS is not available here ({hint})")
    elif device.type not in ("cpu", "meta"):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return device

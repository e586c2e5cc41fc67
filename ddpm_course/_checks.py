"""Small argument checks shared by the whole package: one wording for every bad input.

Each check raises a ``ValueError`` (or ``TypeError`` for the wrong kind of object) whose
message names the argument, the allowed values and what was given, and returns the value
(converted where that is harmless, e.g. an int accepted as a float) so that a caller can
write ``steps = int_at_least("steps", steps, 1)``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

import torch

__all__ = ["int_at_least", "int_in_range", "finite_float", "one_of", "generator_or_none"]

_T = TypeVar("_T")


def _is_int(value: object) -> bool:
    import numpy as np  # numpy integers (from a numpy index, say) are integers too

    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def int_at_least(name: str, value: object, low: int) -> int:
    """``value`` must be an integer (not a bool) >= ``low``."""
    if not _is_int(value) or value < low:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)  # type: ignore[arg-type]


def int_in_range(name: str, value: object, low: int, high: int) -> int:
    """``value`` must be an integer (not a bool) with ``low <= value <= high``."""
    if not _is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer in [{low}, {high}]; got {value!r}")
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
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) or _is_int(value)
    if not ok:
        try:
            import numpy as np

            ok = isinstance(value, np.floating)
        except ImportError:  # pragma: no cover
            ok = False
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(number)
        if ok and low is not None:
            ok = number > low if low_open else number >= low
        if ok and high is not None:
            ok = number < high if high_open else number <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be a finite number in {span}; got {value!r}")
    return number


def one_of(name: str, value: _T, choices: Iterable[_T]) -> _T:
    """``value`` must be one of ``choices`` (compared with ==)."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def generator_or_none(name: str, value: object) -> torch.Generator | None:
    """``value`` must be a ``torch.Generator`` or None."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None; got {type(value).__name__}")
    return value

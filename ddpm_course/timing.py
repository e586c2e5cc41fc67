"""Wall-clock cost of a network pass, the way the lessons and benchmarks measure it.

| name         | meaning                                                              |
|--------------|----------------------------------------------------------------------|
| ``fn``       | a call to time, e.g. ``lambda: model(x, t)`` on a batch of ``batch`` |
| ``reps``     | timed repetitions after one untimed warm-up call                     |

Times move with the machine and its load: print them in cells marked NBVAL_IGNORE_OUTPUT,
and compare costs through ratios measured in the same run, or through FLOPs.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from ._checks import int_at_least

__all__ = ["ms_per_image"]


def ms_per_image(fn: Callable[[], object], batch: int, reps: int = 3) -> float:
    """Median wall time of ``fn()`` over ``reps`` runs (after a warm-up), per image of the batch, in ms."""
    batch = int_at_least("batch", batch, 1)
    reps = int_at_least("reps", reps, 1)
    with torch.no_grad():
        fn()  # warm-up: first calls pay for allocation and kernel selection
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / batch

"""The cost of a network pass, the way the lessons and benchmarks measure it: FLOPs and wall time.

| name         | meaning                                                              |
|--------------|----------------------------------------------------------------------|
| ``fn``       | a call to count or time, e.g. ``lambda: model(x, t)`` on ``batch`` images |
| ``reps``     | timed repetitions after one untimed warm-up call                     |
| ``calls``    | network evaluations a sampler made, counted by :class:`Counted`       |
| ``device``   | where a run happened, as :func:`hardware_description` writes it in records and benchmarks |

Times move with the machine and its load: print them in cells marked NBVAL_IGNORE_OUTPUT,
and compare costs through ratios measured in the same run, or through FLOPs.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from ._checks import int_at_least

__all__ = ["Counted", "count_flops", "hardware_description", "ms_per_image"]


def _as_4d(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape) if len(shape) == 4 else (shape[0], 1, *shape[1:])  # (B, N, C) -> (B, 1 head, N, C)


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(_as_4d(query_shape), _as_4d(key_shape), _as_4d(value_shape))


def _cpu_attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                                  **kwargs) -> int:
    return sdpa_backward_flop_count(_as_4d(grad_out_shape), _as_4d(query_shape), _as_4d(key_shape),
                                    _as_4d(value_shape))


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn()``: matrix products, convolutions and attention, forward and backward.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (from the shapes, so the same on every
    machine). That counter knows the GPUs' fused attention kernels but not the CPU's
    (``aten._scaled_dot_product_flash_attention_for_cpu``), which ``F.scaled_dot_product_attention``
    picks or not depending on its inputs' memory layout. Its formula, PyTorch's own for the
    other fused kernels, is added here, so a forward count does not depend on which kernel ran;
    a backward through the fused kernel counts one matrix product more than through plain
    ``bmm`` calls, because that kernel recomputes the attention scores instead of storing them.
    """
    aten = torch.ops.aten
    extra = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        extra[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_attention_flops
        extra[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_attention_backward_flops
    with FlopCounterMode(display=False, custom_mapping=extra) as counter:
        fn()
    return int(counter.get_total_flops())


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


def hardware_description(device: torch.device) -> str:
    """A one-line description of where a run happened: CPU model and threads, or the GPU."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads of {os.cpu_count()} CPUs, torch {torch.__version__}"


class Counted:
    """A model wrapped to count its calls (the network evaluations, NFE, a sampler spends);
    ``calls`` is the count so far. Every argument is passed on unchanged."""

    def __init__(self, model: Callable) -> None:
        self.model, self.calls = model, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.model(*args, **kwargs)

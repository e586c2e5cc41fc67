"""Training: one loop with pluggable objectives (``fit``), L_simple on it (``train``), the saved
state of a run, and the course's recipes. ``from ddpm_course.train import train`` as before.

| module        | holds                                                                          |
|---------------|--------------------------------------------------------------------------------|
| ``loop``      | :func:`fit`, the loop (budgets, AdamW, warm-up, decay, clipping, EMA, NaN      |
|               | guard, signals, precision, DDP), and :func:`train`                             |
| ``objective`` | :class:`Objective`, :class:`Examples`, :class:`NoisePrediction` (L_simple)      |
| ``state``     | :class:`TrainState` and its checks: what ``resume=`` continues from            |
| ``presets``   | :data:`PRESETS` and :func:`build_preset`, for the CLI and the benchmarks         |
"""
from .loop import NonFiniteLossError, TrainResult, ema_decay_at, ema_model, fit, train
from .objective import Examples, NoisePrediction, Objective, image_examples
from .presets import PRESETS, Preset, PresetRun, build_preset
from .state import BATCHINGS, OPTIMIZERS, PRECISIONS, STATE_VERSION, TrainState, check_train_state

__all__ = [
    "BATCHINGS", "OPTIMIZERS", "PRECISIONS", "PRESETS", "STATE_VERSION", "Examples", "NoisePrediction",
    "NonFiniteLossError", "Objective", "Preset", "PresetRun", "TrainResult", "TrainState", "build_preset",
    "check_train_state", "ema_decay_at", "ema_model", "fit", "image_examples", "train",
]

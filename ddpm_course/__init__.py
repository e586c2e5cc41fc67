"""ddpm_course: the tested support package of a course on denoising diffusion models.

Import it as ``import ddpm_course as dc``. The most used names are re-exported here; every
submodule is reachable as an attribute too (``dc.samplers``, ``dc.viz``, ...), imported on
first use so that ``import ddpm_course`` stays quick.
"""
from __future__ import annotations

import importlib
import os
import platform
import random

import numpy as np
import torch

from .data import ImageData, digits, photo, to_unit, toy2d
from .forward import noise_like, predict_x0, q_posterior, q_sample, q_step
from .samplers import ddim_sample, ddpm_sample, dpm_solver_sample, euler_sample
from .schedules import Schedule, cosine_schedule, linear_schedule

__version__ = "0.2.0"

_SUBMODULES = (
    "schedules", "forward", "data", "oracle", "viz", "widgets", "models", "losses", "train",
    "checkpoint", "samplers", "guidance", "metrics", "exercises", "cli", "autoencoder",
    "gan", "compare", "parametrization", "flow", "score", "timing", "distributed",
)

__all__ = [
    "setup", "pick_device",
    "Schedule", "linear_schedule", "cosine_schedule",
    "q_step", "q_sample", "q_posterior", "predict_x0", "noise_like",
    "ImageData", "photo", "digits", "toy2d", "to_unit",
    "ddpm_sample", "ddim_sample", "euler_sample", "dpm_solver_sample",
    "pretrained",
    *_SUBMODULES,
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "pretrained":  # dc.pretrained("digits"): the shipped models, see shipped.py
        return importlib.import_module(".shipped", __name__).pretrained
    raise AttributeError(f"module 'ddpm_course' has no attribute {name!r}")


def pick_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setup(seed: int = 0, verbose: bool = True, tf32: bool = True, deterministic: bool = False) -> torch.device:
    """Seed Python, NumPy and PyTorch, pick a device (cuda > mps > cpu) and print the configuration.

    The course passes explicit ``torch.Generator`` objects wherever randomness matters; the
    global seed only makes stray draws (weight initialisation, say) repeatable too.

    ``tf32``: on NVIDIA GPUs from Ampere on, let float32 matrix multiplications and
    convolutions use TensorFloat-32 (about 3 decimal digits of mantissa, several times
    faster); the course's models train the same either way. Off gives full float32.
    ``deterministic``: make CUDA runs bit-reproducible (``torch.use_deterministic_algorithms``,
    no cuDNN autotuning, and cuBLAS's fixed workspace); slower. On the CPU the course is
    reproducible without it: the same seed gives the same weights and samples.
    Returns the device.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = pick_device()
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    if verbose:
        gpu = ""
        if device.type == "cuda":
            gpu = f" ({torch.cuda.get_device_name(0)}, tf32 {'on' if tf32 else 'off'})"
        print(
            f"ddpm_course {__version__} | torch {torch.__version__} | python {platform.python_version()} | "
            f"device {device}{gpu} | cpu threads {torch.get_num_threads()} of {os.cpu_count()} | seed {seed}"
            + (" | deterministic" if deterministic else "")
        )
    return device

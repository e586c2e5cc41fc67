"""The checkpoint format: what a checkpoint is on disk and what loading one gives.

A checkpoint ``NAME`` is two files side by side:

| file                | holds                                                                        |
|---------------------|------------------------------------------------------------------------------|
| NAME.safetensors    | the state dict (plain tensors; loading it cannot run code), and optionally   |
|                     | the tensors of a training run to resume (keys ``train_state.*``)             |
| NAME.json           | format version, architecture name and config, schedule (name and betas),     |
|                     | sample shape, the training record, the SHA-256 of the weights file, and      |
|                     | optionally the scalars of a training run to resume (``train_state``)         |

This module holds the format's version (:data:`FORMAT`), the weight dtypes it stores, the key
prefix of a training state, the names of the pair (:func:`checkpoint_paths`) and the loaded
form (:class:`Checkpoint`); ``checkpoint`` writes the pair and ``_checkpoint_load`` reads it
back, and ``checkpoint`` re-exports every public name here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .schedules import Schedule

__all__ = ["FORMAT", "TRAIN_STATE_PREFIX", "Checkpoint", "Pretrained", "checkpoint_paths"]

FORMAT = "ddpm_course.checkpoint/1"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
TRAIN_STATE_PREFIX = "train_state."


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), its schedule, the training record and the
    shape of one sample ((C, H, W) for images, (d,) for points; image_size is H or None).

    name: the shipped model's name for :func:`pretrained`, None for a file of your own.
    kind: the model's family (``shipped.KINDS``: "eps", "velocity", "latent", "vae"), as its JSON
    declares it; the model carries it too, so that the samplers can refuse a model of another kind.
    train_state: what :func:`~ddpm_course.train.train` needs to resume the run (``resume=``),
    or None when the checkpoint was saved without it.
    """

    model: nn.Module
    schedule: Schedule
    record: dict[str, Any]
    sample_shape: tuple[int, ...]
    arch: str
    config: dict[str, Any]
    name: str | None = None
    train_state: Any = None
    kind: str = "eps"  # what the network predicts and how to sample it: see shipped.KINDS

    @property
    def image_size(self) -> int | None:
        return self.sample_shape[-1] if len(self.sample_shape) == 3 else None


Pretrained = Checkpoint  # a shipped model: a Checkpoint whose ``name`` is set


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The weights and metadata files of a checkpoint: ``X`` or ``X.safetensors`` or ``X.json``
    all name the pair (X.safetensors, X.json)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path; got {type(path).__name__}")
    path = Path(path)
    if not path.name:
        raise ValueError(f"path must name a checkpoint file, not a folder; got {str(path)!r}")
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")

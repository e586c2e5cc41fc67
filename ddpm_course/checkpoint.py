"""Checkpoints: weights in safetensors, everything else in readable JSON; never pickle.

A checkpoint ``NAME`` is two files side by side, ``NAME.safetensors`` (the weights, and the
tensors of a run to resume) and ``NAME.json`` (everything else); ``_checkpoint_format`` tables
what each holds.

Saving (here) is atomic: everything is serialised in memory first, both files are written
under temporary names in the same folder, flushed to disk, then renamed into place (the
weights first; if the second rename fails the old weights are put back: ``_atomic``). A
failure at any point leaves the previous checkpoint loadable and no stray files; an existing
checkpoint is replaced only with ``overwrite=True``.

Loading (``_checkpoint_load``, re-exported here) trusts nothing: it reads regular files only
(a FIFO or a device is refused), checks the whole JSON (types, ranges, the sample shape against
the model, the model's size against ``max_parameters``) before building anything, streams the
weights file through SHA-256, and loads the tensors strictly: a file made for another
architecture, a truncated or altered weights file, or a missing field is a ``ValueError`` that
names the file and the field. The schedule is stored as its betas (exact in JSON: a float64
prints and parses back bit for bit), so any schedule round-trips.

``shipped.pretrained(name)`` (``dc.pretrained``) loads the small models shipped in
``ddpm_course/pretrained/``; each one says in its record the command that made it. A shipped
model is a :class:`Checkpoint` with a ``name`` (``Pretrained`` is the same type).
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._atomic import _backup as _backup  # the atomic write, its steps reachable here as before
from ._atomic import _glob_escape, _process_alive, _replace_pair
from ._atomic import _move as _move
from ._atomic import _sync_folder as _sync_folder
from ._atomic import _usual_permissions as _usual_permissions
from ._atomic import _write_temporary as _write_temporary
from ._checkpoint_format import _DTYPES, FORMAT, TRAIN_STATE_PREFIX, Checkpoint, Pretrained, checkpoint_paths
from ._checkpoint_load import MAX_CONFIG_INT as MAX_CONFIG_INT  # the loader's limits, reachable here as before
from ._checkpoint_load import MAX_CONFIG_LIST as MAX_CONFIG_LIST
from ._checkpoint_load import MAX_JSON_BYTES as MAX_JSON_BYTES
from ._checkpoint_load import MAX_PARAMETERS as MAX_PARAMETERS
from ._checkpoint_load import MAX_REPEATS as MAX_REPEATS
from ._checkpoint_load import MAX_SAMPLE_ELEMENTS as MAX_SAMPLE_ELEMENTS
from ._checkpoint_load import READ_RETRY_S as READ_RETRY_S
from ._checkpoint_load import READ_RETRY_WAITS_S as READ_RETRY_WAITS_S
from ._checkpoint_load import load_checkpoint
from ._model import ARCH_KINDS, KINDS
from .schedules import Schedule

__all__ = [
    "Checkpoint", "Pretrained", "save_checkpoint", "load_checkpoint", "checkpoint_paths",
    "clean_stale_temporaries",
]


# ----------------------------------------------------------------------------- saving


def _jsonable(value: Any, where: str = "record") -> Any:
    """Values as JSON: tuples become lists, numpy numbers plain ones; anything else (and NaN or
    infinity, which JSON cannot hold) is a ValueError naming where it sits."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"cannot store {where} = {value!r} in checkpoint metadata: JSON has no NaN or infinity")
        return float(value)
    raise ValueError(
        f"cannot store {where} = {type(value).__name__} {value!r} in checkpoint metadata; "
        "use str, int, float, bool, None, lists and dicts"
    )


def _serialise(
    model: nn.Module, schedule: Schedule, sample_shape, record, weights_dtype, train_state, kind
) -> tuple[bytes, bytes]:
    """Both files' bytes, built in memory: nothing is written unless everything serialises."""
    from safetensors.torch import save as safetensors_bytes

    from .models import model_spec

    arch, config = model_spec(model)
    state = {
        k: (v.detach().to("cpu", weights_dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in model.state_dict().items()
    }
    _check_finite(state, "the weights hold")
    scalars = None
    if train_state is not None:
        extra = {TRAIN_STATE_PREFIX + k: v.detach().cpu().contiguous() for k, v in train_state.tensors.items()}
        _check_finite(extra, "the training state holds")
        state.update(extra)
        scalars = _jsonable(train_state.scalars, "train_state")
    weights = safetensors_bytes(state)
    meta = {
        "format": FORMAT,
        "arch": arch,
        "kind": kind if kind is not None else ARCH_KINDS.get(arch, "eps"),
        "config": _jsonable(config, "config"),
        "sample_shape": list(sample_shape),
        "schedule": {"name": schedule.name, "betas": schedule.betas.double().cpu().tolist()},
        "weights_dtype": str(weights_dtype).removeprefix("torch."),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "record": _jsonable(record or {}),
    }
    if scalars is not None:
        meta["train_state"] = scalars
    return weights, (json.dumps(meta, indent=1, allow_nan=False) + "\n").encode()


def _check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Nothing non-finite is ever saved: the loader would refuse the file."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(
            f"cannot save a checkpoint: {what} NaN or infinite values ({len(bad)} tensors, e.g. {bad[:3]}); "
            "the previous checkpoint, if any, is left as it was"
        )


def clean_stale_temporaries(path: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Remove the temporary files that a save of the checkpoint ``path`` left when its process
    was killed (``kill -9``, a power cut): ``.NAME.safetensors.<pid>.*.tmp`` and
    ``.NAME.json.<pid>.*.tmp`` whose process no longer runs. Returns (removed, kept): kept are
    temporaries of a live process (a save under way) or without a process id (older versions),
    which the caller may report."""
    removed: list[Path] = []
    kept: list[Path] = []
    for dest in checkpoint_paths(path):
        if not dest.parent.is_dir():
            continue
        for tmp in sorted(dest.parent.glob(f".{_glob_escape(dest.name)}.*.tmp")):
            pid_text = tmp.name[len(dest.name) + 2:].split(".", 1)[0]
            pid = int(pid_text) if pid_text.isdigit() else None
            if pid is None or pid == os.getpid() or _process_alive(pid):
                kept.append(tmp)
                continue
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                kept.append(tmp)
    return removed, kept



def _check_shape(sample_shape) -> tuple[int, ...]:
    if not isinstance(sample_shape, (tuple, list, torch.Size)):
        raise ValueError(
            f"sample_shape must be a non-empty tuple of positive ints, e.g. (1, 16, 16); got {sample_shape!r}"
        )
    shape = tuple(sample_shape)
    ok = 1 <= len(shape) <= 4 and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in shape
    )
    if not ok:
        raise ValueError(
            f"sample_shape must be a non-empty tuple of positive ints, e.g. (1, 16, 16); got {sample_shape!r}"
        )
    return tuple(int(s) for s in shape)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    schedule: Schedule,
    *,
    sample_shape: tuple[int, ...],
    record: dict[str, Any] | None = None,
    weights_dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
    train_state: Any = None,
    kind: str | None = None,
) -> tuple[Path, Path]:
    """Save ``model``'s weights to ``path``.safetensors and its description to ``path``.json, atomically.

    sample_shape: the shape of one sample, (C, H, W) or (d,), so a sampler knows what to draw.
    record: JSON-able facts about the training run (steps, seconds, command, hardware, ...).
    weights_dtype: float32, or float16/bfloat16 to halve the file (loading casts back to float32).
    overwrite: an existing checkpoint is replaced only when True; otherwise FileExistsError.
    train_state: a ``train.TrainState`` (``TrainResult.state``) to store for a later
        ``train(..., resume=...)``; its tensors keep their own dtype.
    kind: what the network predicts (``shipped.KINDS``): "eps" (default; "vae" for a VAE,
        "generator" for a DCGAN generator),
        "velocity" for flow matching, "latent" for a noise predictor on a VAE's latents.
    Returns the two paths written. On any failure the previous files are left as they were.
    SIGINT, SIGTERM and SIGHUP arriving during the save take effect only once it has ended, and
    the temporary files of an earlier save whose process was killed are removed first.
    Weights or training-state tensors holding NaN or infinity are refused (ValueError naming
    them): a checkpoint on disk always loads.
    """
    weights_path, meta_path = checkpoint_paths(path)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule; got {type(schedule).__name__}")
    if weights_dtype not in _DTYPES.values():
        raise ValueError(f"weights_dtype must be one of {list(_DTYPES)}; got {weights_dtype}")
    if record is not None and not isinstance(record, dict):
        raise TypeError(f"record must be a dict or None; got {type(record).__name__}")
    sample_shape = _check_shape(sample_shape)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}; got {kind!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False; got {overwrite!r}")
    if not overwrite:
        for p in (weights_path, meta_path):
            if p.exists() or p.is_symlink():
                raise FileExistsError(f"{p} already exists; pass overwrite=True to replace it, or choose another path")
    for p in (Path(path), weights_path, meta_path):
        if p.is_dir():
            raise IsADirectoryError(f"{p} is a folder; give a checkpoint name inside it, e.g. {p / 'run'}")
    from ._signals import DeferredSignals

    with DeferredSignals():  # SIGINT, SIGTERM, SIGHUP wait until the pair is in place (or the save failed)
        weights, meta = _serialise(model, schedule, sample_shape, record, weights_dtype, train_state, kind)
        folder = weights_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(path)
        _replace_pair(folder, (weights_path, meta_path), (weights, meta), overwrite)
    return weights_path, meta_path

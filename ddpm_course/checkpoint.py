"""Checkpoints: weights in safetensors, everything else in readable JSON; never pickle.

A checkpoint ``NAME`` is two files side by side:

| file                | holds                                                                        |
|---------------------|------------------------------------------------------------------------------|
| NAME.safetensors    | the state dict (plain tensors; loading it cannot run code)                   |
| NAME.json           | format version, architecture name and config, schedule (name and betas),     |
|                     | sample shape, the training record, and the SHA-256 of the weights file       |

Loading rebuilds the model with ``models.build_model(arch, config)`` and loads the tensors
strictly: a file made for another architecture, a truncated or altered weights file, or a
missing field is a ``ValueError`` that says which. The schedule is stored as its betas
(exact in JSON: a float64 prints and parses back bit for bit), so any schedule round-trips.

``pretrained(name)`` loads the small models shipped in ``ddpm_course/pretrained/``; each one
says in its record the command that made it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .schedules import Schedule

__all__ = ["Checkpoint", "Pretrained", "save_checkpoint", "load_checkpoint", "checkpoint_paths", "pretrained", "PRETRAINED"]

FORMAT = "ddpm_course.checkpoint/1"
PRETRAINED = {
    "digits": "the course U-Net on 16x16 digits (EMA weights): ddpm-course train --preset digits",
    "toy2d": "an MLP noise predictor on the 2-D ring mixture: ddpm-course train --preset toy2d",
}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), its schedule, the training record and the
    shape of one sample ((C, H, W) for images, (d,) for points; image_size is H or None)."""

    model: nn.Module
    schedule: Schedule
    record: dict[str, Any]
    sample_shape: tuple[int, ...]
    arch: str
    config: dict[str, Any]

    @property
    def image_size(self) -> int | None:
        return self.sample_shape[-1] if len(self.sample_shape) == 3 else None


@dataclass
class Pretrained:
    """A shipped model: ``.model`` (eval mode), ``.schedule``, ``.image_size`` (None for points),
    ``.sample_shape`` and ``.record`` (how it was trained)."""

    name: str
    model: nn.Module
    schedule: Schedule
    image_size: int | None
    sample_shape: tuple[int, ...]
    record: dict[str, Any]


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """The weights and metadata files of a checkpoint: ``X`` or ``X.safetensors`` or ``X.json``
    all name the pair (X.safetensors, X.json)."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonable(value: Any) -> Any:
    """Config values as JSON: tuples become lists (``build_model`` accepts both)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in checkpoint metadata; use str, int, float, bool, None, lists and dicts")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    schedule: Schedule,
    *,
    sample_shape: tuple[int, ...],
    record: dict[str, Any] | None = None,
    weights_dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Save ``model``'s weights to ``path``.safetensors and its description to ``path``.json.

    sample_shape: the shape of one sample, (C, H, W) or (d,), so a sampler knows what to draw.
    record: JSON-able facts about the training run (steps, seconds, command, hardware, ...).
    weights_dtype: float32, or float16/bfloat16 to halve the file (loading casts back to float32).
    overwrite: an existing checkpoint is replaced only when True; otherwise FileExistsError.
    Returns the two paths written.
    """
    from .models import model_spec

    weights_path, meta_path = checkpoint_paths(path)
    if not overwrite:
        for p in (weights_path, meta_path):
            if p.exists():
                raise FileExistsError(f"{p} already exists; pass overwrite=True to replace it, or choose another path")
    if weights_dtype not in _DTYPES.values():
        raise ValueError(f"weights_dtype must be one of {list(_DTYPES)}; got {weights_dtype}")
    sample_shape = tuple(int(s) for s in sample_shape)
    if not sample_shape or any(s < 1 for s in sample_shape):
        raise ValueError(f"sample_shape must be a non-empty tuple of positive ints, e.g. (1, 16, 16); got {sample_shape}")
    arch, config = model_spec(model)

    from safetensors.torch import save_file

    state = {
        k: (v.detach().to("cpu", weights_dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in model.state_dict().items()
    }
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights_path))
    meta = {
        "format": FORMAT,
        "arch": arch,
        "config": _jsonable(config),
        "sample_shape": list(sample_shape),
        "schedule": {"name": schedule.name, "betas": schedule.betas.double().cpu().tolist()},
        "weights_dtype": str(weights_dtype).removeprefix("torch."),
        "weights_sha256": _sha256(weights_path),
        "record": _jsonable(record or {}),
    }
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return weights_path, meta_path


def _read_meta(meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path} is not valid JSON ({err}); the checkpoint metadata is corrupt or truncated") from err
    missing = [k for k in ("format", "arch", "config", "sample_shape", "schedule", "weights_sha256") if k not in meta]
    if not isinstance(meta, dict) or missing:
        raise ValueError(f"{meta_path} is not a ddpm_course checkpoint: missing fields {missing}")
    if meta["format"] != FORMAT:
        raise ValueError(f"{meta_path} has format {meta['format']!r}; this version reads {FORMAT!r}")
    return meta


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Load a checkpoint saved by :func:`save_checkpoint`; the model comes back in eval mode
    and float32 on ``device``. Raises FileNotFoundError for missing files and ValueError for a
    corrupt or truncated file or weights that do not fit the stored architecture."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models import build_model

    weights_path, meta_path = checkpoint_paths(path)
    for p in (weights_path, meta_path):
        if not p.exists():
            raise FileNotFoundError(f"checkpoint file {p} does not exist (a checkpoint is a .safetensors and a .json side by side)")
    meta = _read_meta(meta_path)
    if _sha256(weights_path) != meta["weights_sha256"]:
        raise ValueError(
            f"{weights_path} does not match the checksum in {meta_path}: the weights file is truncated, "
            "altered, or belongs to another checkpoint"
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"{weights_path} is not a readable safetensors file ({err})") from err
    try:
        model = build_model(meta["arch"], meta["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{meta_path} names an architecture that cannot be built: {meta['arch']!r} with {meta['config']} ({err})") from err
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and expected[k].shape != state[k].shape]
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"the weights in {weights_path} do not fit a {meta['arch']} with config {meta['config']}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong_shape)} with another shape (e.g. {wrong_shape[:3]}); the file was made for another architecture"
        )
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    schedule = Schedule.from_betas(torch.tensor(meta["schedule"]["betas"], dtype=torch.float64), name=meta["schedule"]["name"])
    return Checkpoint(
        model=model,
        schedule=schedule,
        record=meta.get("record", {}),
        sample_shape=tuple(meta["sample_shape"]),
        arch=meta["arch"],
        config=meta["config"],
    )


def pretrained(name: str = "digits", device: torch.device | str = "cpu") -> Pretrained:
    """A model shipped with the package: "digits" (16x16 digits) or "toy2d" (the 2-D ring mixture).

    Returns a :class:`Pretrained` with ``.model`` in eval mode, ``.schedule`` and ``.image_size``.
    """
    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {sorted(PRETRAINED)}; got {name!r}")
    folder = resources.files("ddpm_course") / "pretrained"
    with resources.as_file(folder) as folder_path:
        if not (Path(folder_path) / f"{name}.safetensors").exists():
            raise FileNotFoundError(f"the shipped model {name!r} is missing from {folder_path}; make it with: {PRETRAINED[name].split(': ', 1)[1]}")
        ckpt = load_checkpoint(Path(folder_path) / name, device=device)
    return Pretrained(
        name=name,
        model=ckpt.model,
        schedule=ckpt.schedule,
        image_size=ckpt.image_size,
        sample_shape=ckpt.sample_shape,
        record=ckpt.record,
    )

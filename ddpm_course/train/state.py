"""A training run's saved state: what ``train(..., resume=state)`` needs to continue exactly.

| piece                 | what it holds                                                        |
|-----------------------|----------------------------------------------------------------------|
| :class:`TrainState`   | tensors (weights, EMA, optimiser moments, RNG states, data order, losses) and JSON scalars |
| ``_Settings``         | the checked optimisation settings; a resumed run must use the same   |
| :func:`check_train_state` | every field of a state read from disk, before any run resumes it |

No pickle: the tensors go to safetensors and the scalars to JSON (``checkpoint.save_checkpoint``).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import MAX_BATCH, finite_float, int_at_least, int_in_range, one_of

__all__ = ["BATCHINGS", "OPTIMIZERS", "PRECISIONS", "STATE_VERSION", "TrainState", "check_train_state"]

OPTIMIZERS = ("adamw", "adam")
BATCHINGS = ("fixed", "passes")  # fit's ``batches``: fixed-size batches, or each pass cut on its own
PRECISIONS = ("fp32", "bf16", "fp16")
STATE_VERSION = 1


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped: the tensors (weights, EMA,
    optimiser moments, random generator states, the data order, the losses) and the JSON-able
    scalars (step, time used, settings, optimiser hyper-parameters). No pickle: save it with
    ``save_checkpoint(..., train_state=state)``, get it back as ``load_checkpoint(...).train_state``."""

    tensors: dict[str, Tensor]
    scalars: dict[str, Any]


_MAX_COUNT = 2**53  # steps, positions and sizes a saved state may name: exact as JSON numbers


def check_train_state(state: TrainState, where: str, tensors_where: str) -> None:
    """The training state of a checkpoint, field by field, at load time: each failure is a
    ValueError naming the field (``train_state.seconds``) or tensor, before any run resumes it.

    ``where`` names the JSON file, ``tensors_where`` the weights file.
    """
    sc, t = state.scalars, state.tensors

    def fail(field: str, rule: str, value: Any) -> None:
        text = repr(value)
        raise ValueError(f"{where}: field 'train_state.{field}' must be {rule}; got "
                         f"{text if len(text) <= 80 else text[:77] + '...'}")

    def count(field: str, low: int = 0, high: int = _MAX_COUNT) -> int:
        value = sc.get(field)
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            fail(field, f"an integer in [{low}, {high}]", value)
        return value

    if sc.get("version") != STATE_VERSION:
        fail("version", f"{STATE_VERSION} (the state format this version reads)", sc.get("version"))
    step, n_data = count("step"), count("n_data", 1)
    seconds = sc.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        fail("seconds", "a finite number >= 0", seconds)
    settings = sc.get("settings")
    fields = [f.name for f in dataclasses.fields(_Settings)]
    if not isinstance(settings, dict) or sorted(settings) != sorted(fields):
        fail("settings", f"an object with exactly the fields {fields}", settings)
    try:
        _check_settings(**settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: field 'train_state.settings' is not valid ({err})") from None
    objective = sc.get("objective", "l_simple")  # absent in states saved before objectives were named
    if not isinstance(objective, str) or not objective:
        fail("objective", "the name of the objective the run trained (a non-empty string)", objective)
    if sc.get("batches", "fixed") not in BATCHINGS:
        fail("batches", f"absent or one of {list(BATCHINGS)}", sc.get("batches"))
    if sc.get("scaler") is not None and not isinstance(sc.get("scaler"), dict):
        fail("scaler", "null or an object", sc.get("scaler"))
    _check_optimizer_state(sc.get("optimizer"), t, fail)
    for key, rule in (("rng.generator", "uint8"), ("rng.cpu", "uint8"), ("data.order", "int64"), ("losses", "float64")):
        tensor = t.get(key)
        if not isinstance(tensor, Tensor) or str(tensor.dtype).removeprefix("torch.") != rule or tensor.ndim != 1:
            got = "missing" if tensor is None else f"{tensor.dtype} of shape {tuple(tensor.shape)}"
            raise ValueError(f"{tensors_where}: tensor 'train_state.{key}' must be a 1-D {rule} tensor; got {got}")
    count("cursor", 0, t["data.order"].numel())
    order = t["data.order"]
    if order.numel() and (int(order.min()) < 0 or int(order.max()) >= n_data):
        raise ValueError(f"{tensors_where}: tensor 'train_state.data.order' must hold indices in [0, {n_data - 1}]")
    if t["losses"].numel() != step:
        raise ValueError(f"{tensors_where}: tensor 'train_state.losses' holds {t['losses'].numel()} values for "
                         f"{step} steps (field 'train_state.step')")
    bad = sorted(k for k, v in t.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise ValueError(f"{tensors_where}: the training state holds NaN or infinite values (tensor "
                         f"'train_state.{bad[0]}' and {len(bad) - 1} more); it cannot be resumed")


def _check_optimizer_state(opt: Any, tensors: dict[str, Tensor], fail: Callable[[str, str, Any], None]) -> None:
    """The optimiser's JSON part: per-parameter entries naming tensors that exist, parameter groups."""
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) or not isinstance(
            opt.get("param_groups"), list):
        fail("optimizer", 'an object {"state": {...}, "param_groups": [...]}', opt)
    for index, entry in opt["state"].items():
        if not (index.isdigit() and isinstance(entry, dict) and isinstance(entry.get("tensors"), list)
                and isinstance(entry.get("scalars"), dict)):
            fail(f"optimizer.state.{index}", 'an object {"tensors": [...], "scalars": {...}}', entry)
        missing = [k for k in entry["tensors"] if not isinstance(k, str) or f"opt.{index}.{k}" not in tensors]
        if missing:
            fail(f"optimizer.state.{index}.tensors", "names of tensors stored in the weights file", missing)
    for i, group in enumerate(opt["param_groups"]):
        params = group.get("params") if isinstance(group, dict) else None
        if not (isinstance(params, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in params)):
            fail(f"optimizer.param_groups[{i}]", 'an object with "params": [integers]', group)


@dataclass(frozen=True)
class _Settings:
    """The checked optimisation settings; a resumed run must use the same ones."""

    steps: int | None
    minutes: float | None
    batch_size: int
    lr: float
    warmup_steps: int
    lr_decay: bool
    weight_decay: float
    grad_clip: float | None
    ema_decay: float | None
    optimizer: str
    p_uncond: float
    precision: str


def _check_settings(**kw: Any) -> _Settings:
    """Each argument checked with the package's shared checks; returns them as one record."""
    if kw["steps"] is None and kw["minutes"] is None:
        raise ValueError("give a budget: steps (an int >= 1) and/or minutes (a finite number > 0)")
    if not isinstance(kw["lr_decay"], bool):
        raise TypeError(f"lr_decay must be True or False; got {kw['lr_decay']!r}")
    optimizer = one_of("optimizer", kw["optimizer"], OPTIMIZERS)
    weight_decay = finite_float("weight_decay", kw["weight_decay"], 0.0)
    if optimizer == "adam" and weight_decay != 0:
        raise ValueError(
            "weight_decay needs optimizer='adamw' (Adam's L2 penalty is not decoupled); set weight_decay=0 for 'adam'"
        )
    return _Settings(
        steps=None if kw["steps"] is None else int_at_least("steps", kw["steps"], 1),
        minutes=None if kw["minutes"] is None else finite_float("minutes", kw["minutes"], 0.0, low_open=True),
        batch_size=int_in_range("batch_size", kw["batch_size"], 1, MAX_BATCH, hint="_checks.MAX_BATCH"),
        lr=finite_float("lr", kw["lr"], 0.0, low_open=True),
        warmup_steps=int_at_least("warmup_steps", kw["warmup_steps"], 0),
        lr_decay=kw["lr_decay"],
        weight_decay=weight_decay,
        grad_clip=None if kw["grad_clip"] is None else finite_float("grad_clip", kw["grad_clip"], 0.0, low_open=True),
        ema_decay=None if kw["ema_decay"] is None else finite_float("ema_decay", kw["ema_decay"], 0.0, 1.0,
                                                                    low_open=True, high_open=True),
        optimizer=optimizer,
        p_uncond=finite_float("p_uncond", kw["p_uncond"], 0.0, 1.0, high_open=True),
        precision=one_of("precision", kw["precision"], PRECISIONS),
    )


def _flatten_optimizer(state_dict: dict, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """An optimiser's state dict as JSON scalars, its tensors moved into ``tensors`` ("opt.<i>.<key>")."""
    state = {}
    for index, entries in state_dict["state"].items():
        names = [k for k, v in entries.items() if isinstance(v, Tensor)]
        for k in names:
            tensors[f"opt.{index}.{k}"] = entries[k].detach().clone()
        state[str(index)] = {"tensors": names, "scalars": {k: v for k, v in entries.items() if k not in names}}
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state_dict["param_groups"]]
    return {"state": state, "param_groups": groups}


def _unflatten_optimizer(scalars: dict[str, Any], tensors: dict[str, Tensor], opt: torch.optim.Optimizer) -> dict:
    """The inverse of :func:`_flatten_optimizer`, with JSON lists turned back into tuples where
    ``opt`` keeps tuples (Adam's betas)."""
    current = opt.state_dict()["param_groups"]
    if len(scalars["param_groups"]) != len(current):
        raise ValueError(
            f"the optimiser had {len(scalars['param_groups'])} parameter groups; this one has {len(current)}"
        )
    groups = [
        {k: tuple(v) if isinstance(v, list) and isinstance(now.get(k), tuple) else v for k, v in saved.items()}
        for saved, now in zip(scalars["param_groups"], current, strict=True)
    ]
    state = {
        int(index): {**entry["scalars"], **{k: tensors[f"opt.{index}.{k}"] for k in entry["tensors"]}}
        for index, entry in scalars["state"].items()
    }
    return {"state": state, "param_groups": groups}

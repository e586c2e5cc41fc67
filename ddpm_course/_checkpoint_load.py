"""Loading a checkpoint defensively: every field checked, nothing unpickled, nothing built too soon.

Loading trusts nothing: it reads regular files only (a FIFO or a device is refused), checks
the whole JSON (types, ranges, the sample shape against the model, the model's size against
``max_parameters``) before building anything, streams the weights file through SHA-256, and
loads the tensors strictly: a file made for another architecture, a truncated or altered
weights file, or a missing field is a ``ValueError`` that names the file and the field.

The order of the checks, so that a bad file costs no more than reading its JSON and header:

| step | what is read                    | what is checked                                                  |
|------|---------------------------------|------------------------------------------------------------------|
| 1    | NAME.json (at most MAX_JSON_BYTES) | fields, types and bounds (``_check_meta``, ``_check_config_bounds``) |
| 2    | nothing                         | the model built on the meta device: its size, its sample shape   |
| 3    | the weights file's header       | every tensor's name, shape and dtype against the model           |
| 4    | exactly the bytes it declares   | the JSON's SHA-256; then the model is built and loaded strictly  |

A reader beside a save that replaces the pair retries (READ_RETRY_WAITS_S, READ_RETRY_S)
rather than report corruption. ``checkpoint`` re-exports :func:`load_checkpoint` and the limits.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._atomic import _glob_escape
from ._checkpoint_format import _DTYPES, FORMAT, TRAIN_STATE_PREFIX, Checkpoint, checkpoint_paths
from ._checks import device_or_none
from ._model import KINDS, infer_kind, tag
from ._model import num_classes as _num_classes
from .schedules import Schedule

__all__ = [
    "load_checkpoint", "MAX_PARAMETERS", "MAX_SAMPLE_ELEMENTS", "MAX_JSON_BYTES", "MAX_CONFIG_INT",
    "MAX_CONFIG_LIST", "MAX_REPEATS", "READ_RETRY_WAITS_S", "READ_RETRY_S",
]

MAX_PARAMETERS = 100_000_000  # a model the JSON describes must be smaller than this to be built
MAX_SAMPLE_ELEMENTS = 2**24  # the largest sample_shape (C * H * W) a checkpoint may describe
MAX_JSON_BYTES = 64 * 2**20  # the JSON file, and the weights file's header
MAX_CONFIG_INT = 2**16  # every integer in an architecture's config (channels, widths, dims)
MAX_CONFIG_LIST = 8  # every list in a config (levels of a U-Net)
MAX_REPEATS = 64  # repeat counts in a config (an MLP's depth, a U-Net's res blocks per level)
_REPEAT_FIELDS = ("depth", "num_res_blocks")
READ_RETRY_WAITS_S = (0.01, 0.02, 0.04, 0.08, 0.16)  # a reader beside a save: how long it waits for the JSON
READ_RETRY_S = 5.0  # and how long in all it keeps reading again while a writer keeps replacing the pair
_CHUNK = 2**20


def _open_regular(path: Path):
    """Open ``path`` for reading only if it is a regular file: a FIFO would block, a device
    (``/dev/zero``, ``/dev/urandom``) would read without end. Returns a binary file object."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"checkpoint file {path} does not exist (a checkpoint is a .safetensors and a .json side by side)"
        ) from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a checkpoint file") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or other special file"
        kind = "a folder" if stat.S_ISDIR(mode) else kind
        raise ValueError(f"{path} is {kind}, not a regular file; a checkpoint is read from regular files only")
    return os.fdopen(fd, "rb")


def _sha256(path: Path, limit: int) -> str:
    """SHA-256 of a regular file, read in chunks, of at most ``limit`` bytes (a longer file, or one
    such as a /proc file that reads without end, gives the checksum of a prefix: it matches nothing)."""
    digest = hashlib.sha256()
    left = limit + 1
    with _open_regular(path) as f:
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _reject_constant(name: str):
    raise ValueError(f"JSON holds {name}, which is not a number")


def _read_json(meta_path: Path) -> Any:
    with _open_regular(meta_path) as f:
        data = f.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{meta_path} is larger than {MAX_JSON_BYTES} bytes; checkpoint metadata is a few kilobytes")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{meta_path} is not UTF-8 text ({err.reason} at byte {err.start}); the checkpoint metadata is corrupt"
        ) from None
    except (ValueError, RecursionError) as err:
        raise ValueError(
            f"{meta_path} is not valid JSON ({err}); the checkpoint metadata is corrupt or truncated"
        ) from None


class _Fields:
    """Checks of one parsed JSON object, each error naming the file and the field."""

    def __init__(self, meta: Any, path: Path):
        self.path = path
        if not isinstance(meta, dict):
            raise ValueError(
                f"{path} is not a ddpm_course checkpoint: its JSON is {type(meta).__name__} {_short(meta)}, not an "
                "object"
            )
        self.meta = meta

    def fail(self, field: str, rule: str, value: Any) -> None:
        raise ValueError(f"{self.path}: field {field!r} must be {rule}; got {_short(value)}")

    def get(self, field: str, kinds: type | tuple[type, ...], rule: str, required: bool = True) -> Any:
        if field not in self.meta:
            if required:
                raise ValueError(f"{self.path} is not a ddpm_course checkpoint: the field {field!r} is missing")
            return None
        value = self.meta[field]
        allowed = kinds if isinstance(kinds, tuple) else (kinds,)
        if not isinstance(value, allowed) or isinstance(value, bool) and bool not in allowed:
            self.fail(field, rule, value)
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_meta(meta: Any, meta_path: Path) -> dict[str, Any]:
    """The whole metadata checked before anything is built; returns it with shapes as tuples."""
    from .models import ARCHITECTURES

    f = _Fields(meta, meta_path)
    fmt = f.get("format", str, f"the string {FORMAT!r}")
    if fmt != FORMAT:
        raise ValueError(f"{meta_path} has format {fmt!r}; this version reads {FORMAT!r}")
    arch = f.get("arch", str, f"one of {sorted(ARCHITECTURES)}")
    if arch not in ARCHITECTURES:
        f.fail("arch", f"one of {sorted(ARCHITECTURES)}", arch)
    f.get("config", dict, "an object of the architecture's settings")
    shape = f.get("sample_shape", list, "a list of 1 to 4 positive integers, e.g. [1, 16, 16]")
    if not 1 <= len(shape) <= 4 or not all(_is_int(s) and 1 <= s <= 2**16 for s in shape):
        f.fail("sample_shape", "a list of 1 to 4 positive integers (each <= 65536), e.g. [1, 16, 16]", shape)
    if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        f.fail("sample_shape", f"a shape of at most {MAX_SAMPLE_ELEMENTS} elements in all", shape)
    schedule = f.get("schedule", dict, 'an object {"name": ..., "betas": [...]}')
    if not isinstance(schedule.get("name"), str):
        f.fail("schedule.name", "a string", schedule.get("name"))
    betas = schedule.get("betas")
    if not isinstance(betas, list) or not 1 <= len(betas) <= 100_000:
        f.fail("schedule.betas", "a list of 1 to 100000 numbers", betas)
    bad = [b for b in betas if not (isinstance(b, (int, float)) and not isinstance(b, bool) and 0 < b < 1)]
    if bad:
        f.fail("schedule.betas", "finite numbers strictly inside (0, 1)", bad[0])
    sha = f.get("weights_sha256", str, "a SHA-256 as 64 hexadecimal digits")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        f.fail("weights_sha256", "a SHA-256 as 64 hexadecimal digits", sha)
    dtype = f.get("weights_dtype", str, f"one of {list(_DTYPES)}", required=False)
    if dtype is not None and dtype not in _DTYPES:
        f.fail("weights_dtype", f"one of {list(_DTYPES)}", dtype)
    record = f.get("record", dict, "an object", required=False)
    f.get("train_state", dict, "an object", required=False)
    kind = f.get("kind", str, f"one of {list(KINDS)}", required=False)
    if kind is None:  # saved before checkpoints declared their kind
        kind = infer_kind(arch, record or {})
    elif kind not in KINDS:
        f.fail("kind", f"one of {list(KINDS)}", kind)
    return {**meta, "sample_shape": tuple(shape), "kind": kind}


def _check_config_bounds(config: dict[str, Any], meta_path: Path) -> None:
    """Bounds on the architecture's settings, checked before anything is built: every integer at
    most MAX_CONFIG_INT, every list at most MAX_CONFIG_LIST long, repeat counts at most MAX_REPEATS."""
    for key, value in config.items():
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) > MAX_CONFIG_LIST:
            raise ValueError(f"{meta_path}: field 'config.{key}' must be a list of at most {MAX_CONFIG_LIST} "
                             f"items; got {len(value)}")
        limit = MAX_REPEATS if key in _REPEAT_FIELDS else MAX_CONFIG_INT
        for item in items:
            if _is_int(item) and not -limit <= item <= limit:
                raise ValueError(f"{meta_path}: field 'config.{key}' must be at most {limit:,}; got {_short(value)}")


def _check_model_size(meta: dict[str, Any], meta_path: Path, max_parameters: int) -> tuple[nn.Module, int]:
    """Build the described model on the meta device (no memory, no compute) and count its
    parameters against the limit. Returns that model and the largest size its weights file can
    have (bytes): the state dict and, with a training state, the raw weights, the EMA and two
    optimiser moments, all as float32."""
    from .models import build_model

    arch, config = meta["arch"], meta["config"]
    _check_config_bounds(config, meta_path)
    try:
        with torch.device("meta"):
            model = build_model(arch, config)
    except (TypeError, ValueError, RuntimeError, OverflowError, IndexError, KeyError, AttributeError) as err:
        raise ValueError(
            f"{meta_path} names an architecture that cannot be built: {arch!r} with {_short(config)} ({err})"
        ) from None
    n = sum(p.numel() for p in model.parameters())
    if n > max_parameters:
        raise ValueError(
            f"{meta_path} describes a {arch} with {n:,} parameters, more than max_parameters={max_parameters:,}"
        )
    state_bytes = sum(v.numel() * 4 for v in model.state_dict().values())
    copies = 6 if "train_state" in meta else 1
    return model.eval(), copies * state_bytes + 2**20 * (1 + 4 * copies)


def _backup_hint(weights_path: Path, sha: str, size_limit: int) -> str:
    """Where the matching weights are, if a save was cut off between its two renames (a power cut)."""
    for backup in sorted(weights_path.parent.glob(f".{_glob_escape(weights_path.name)}.*.bak")):
        if backup.is_file() and _sha256(backup, size_limit) == sha:
            return f"; a save was cut off: the weights that match are in {backup}, rename it to {weights_path.name}"
    return ""


# safetensors dtype codes -> what a checkpoint may hold there: floats for the weights, anything
# torch itself writes for a training state (random generator bytes, the data order)
_FLOAT_CODES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
_STATE_CODES = {**_FLOAT_CODES, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
             "C64": 8}


def _header(f, weights_path: Path, size_limit: int) -> tuple[dict[str, Any], int]:
    """The safetensors header (8-byte little-endian length, then JSON), checked as a layout:
    returns it and the file's total size that it declares."""
    head = f.read(8)
    if len(head) < 8:
        raise ValueError(f"{weights_path} is not a safetensors file: {len(head)} bytes, shorter than its header")
    n = int.from_bytes(head, "little")
    if not 2 <= n <= min(MAX_JSON_BYTES, size_limit):
        raise ValueError(f"{weights_path} is not a safetensors file: its header claims {n:,} bytes")
    raw = f.read(n)
    if len(raw) < n:
        raise ValueError(f"{weights_path} is cut short: the weights file is truncated (it ends inside its "
                         "header), or it is not a safetensors file")
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError(f"{weights_path} is not a safetensors file: its header is not JSON (truncated or "
                         "altered)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{weights_path} is not a safetensors file: its header is not an object")
    header.pop("__metadata__", None)
    end = 0
    for key, entry in header.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("shape"), list) and all(
            _is_int(s) and s >= 0 for s in entry["shape"]) and isinstance(entry.get("data_offsets"), list) and len(
            entry["data_offsets"]) == 2 and all(_is_int(o) and o >= 0 for o in entry["data_offsets"])
        if ok and entry.get("dtype") in _ITEMSIZE:
            begin, stop = entry["data_offsets"]
            ok = stop - begin == math.prod(entry["shape"]) * _ITEMSIZE[entry["dtype"]]
        if not ok:
            raise ValueError(f"{weights_path}: the header entry of tensor {key!r} is malformed ({_short(entry)})")
        end = max(end, entry["data_offsets"][1])
    return header, 8 + n + end


def _check_header(header: dict[str, Any], expected: dict[str, torch.Tensor], meta: dict[str, Any],
                  weights_path: Path) -> None:
    """Every tensor the model needs, with its shape and a floating dtype; training-state tensors
    only with a training state; nothing else. Checked before a byte of data is read."""
    names = set(header)
    state_keys = {k for k in names if k.startswith(TRAIN_STATE_PREFIX)}
    if state_keys and "train_state" not in meta:
        raise ValueError(f"{weights_path} holds training-state tensors but its JSON has no 'train_state'")
    model_keys = names - state_keys
    missing, unexpected = sorted(set(expected) - model_keys), sorted(model_keys - set(expected))
    wrong_shape = sorted(k for k in expected if k in header and list(expected[k].shape) != header[k]["shape"])
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"the weights in {weights_path} do not fit a {meta['arch']} with config {_short(meta['config'])}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong_shape)} with another shape (e.g. {wrong_shape[:3]}); "
            "the file was made for another architecture"
        )
    for key in sorted(names):
        code = header[key].get("dtype")
        want_float = key in expected and expected[key].is_floating_point()
        allowed = _FLOAT_CODES if want_float else _STATE_CODES
        if code not in allowed:
            what = "a floating-point dtype (F32, F16, BF16)" if want_float else f"one of {sorted(allowed)}"
            raise ValueError(f"{weights_path}: tensor {key!r} has dtype {code!r}; it must have {what}")
        if key in expected and not want_float and allowed[code] != expected[key].dtype:
            raise ValueError(f"{weights_path}: tensor {key!r} has dtype {code!r}; the model keeps it as "
                             f"{expected[key].dtype}")


def _read_weights(weights_path: Path, meta: dict[str, Any], meta_path: Path, size_limit: int,
                  expected: dict[str, torch.Tensor]) -> tuple[bytes | None, str]:
    """The weights file's bytes, read through one open file: its header first (checked against
    the model), then exactly the size the header declares. Returns (bytes, "") or (None, why)
    when the bytes do not match the JSON's checksum (the caller may retry: a save may be
    replacing the pair)."""
    with _open_regular(weights_path) as f:
        header, total = _header(f, weights_path, size_limit)
        _check_header(header, expected, meta, weights_path)
        if total > size_limit:
            raise ValueError(f"{weights_path} declares {total:,} bytes, far more than the {meta['arch']} in "
                             f"{meta_path} needs")
        f.seek(0)
        data = f.read(total)
        extra = f.read(1)
    if len(data) < total:
        return None, f"{weights_path} is truncated: {len(data):,} of the {total:,} bytes its header declares"
    if extra:
        return None, f"{weights_path} holds more bytes than the {total:,} its header declares"
    if hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
        return None, (f"{weights_path} does not match the checksum in {meta_path}: the weights file is truncated, "
                      f"altered, or belongs to another checkpoint")
    return data, ""


def _check_sample_shape(model: nn.Module, meta: dict[str, Any], meta_path: Path) -> None:
    """One sample of ``sample_shape`` through the model built on the meta device must come out with
    that shape (a generator's: one z in, one sample out): shapes are checked, nothing is computed.
    A model whose forward pass reads values (a prompt model checks its token ids) gets a real
    pass, for samples of at most 2**16 elements."""
    shape, num_classes = meta["sample_shape"], _num_classes(model)
    generator = meta.get("kind", infer_kind(meta["arch"], meta.get("record", {}))) == "generator"

    def fits(device: str, net: nn.Module) -> bool:
        x, t = torch.zeros(1, *shape, device=device), torch.zeros(1, dtype=torch.long, device=device)
        with torch.no_grad():
            if generator:  # a GAN generator G(z): noise (1, latent) in, one sample out
                out = net.eval()(torch.zeros(1, net.config.latent, device=device))
                return isinstance(out, torch.Tensor) and out.shape == x.shape
            out = net(x, t) if num_classes is None else net(x, t, torch.zeros(1, dtype=torch.long, device=device))
        return isinstance(out, torch.Tensor) and out.shape == x.shape

    try:
        ok = fits("meta", model)
    except (RuntimeError, NotImplementedError) as err:
        if "meta" not in str(err) or math.prod(shape) > 2**16:
            ok = False
        else:
            from .models import build_model

            try:
                ok = fits("cpu", build_model(meta["arch"], meta["config"]).eval())
            except (RuntimeError, ValueError, TypeError, IndexError):
                ok = False
    except (ValueError, TypeError, IndexError):
        ok = False
    if not ok:
        raise ValueError(
            f"{meta_path}: field 'sample_shape' {list(shape)} does not fit the {meta['arch']} "
            f"described by 'config' {_short(meta['config'])}"
        )


def _fit_weights(model: nn.Module, state: dict[str, torch.Tensor], meta: dict[str, Any], weights_path: Path) -> None:
    expected = model.state_dict()
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(
            f"the weights in {weights_path} hold NaN or infinite values ({len(bad)} tensors, e.g. {bad[:3]})"
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def _file_ids(*paths: Path) -> tuple:
    ids = []
    for p in paths:
        try:
            st = os.stat(p)
            ids.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            ids.append(None)
    return tuple(ids)


def _read_pair(weights_path: Path, meta_path: Path, max_parameters: int) -> tuple[dict, nn.Module, bytes]:
    """The checked JSON, the model built on the meta device and the weights' bytes. A checksum
    mismatch is retried while the files change under the reader (a save replacing the pair
    renames the weights, then the JSON), for up to READ_RETRY_S in all; a file that stays wrong
    for the whole of READ_RETRY_WAITS_S is reported (ValueError)."""
    deadline = time.monotonic() + READ_RETRY_S
    while True:
        ids = _file_ids(weights_path, meta_path)
        meta = _check_meta(_read_json(meta_path), meta_path)
        meta_model, size_limit = _check_model_size(meta, meta_path, max_parameters)
        data, why = _read_weights(weights_path, meta, meta_path, size_limit, meta_model.state_dict())
        if data is not None:
            return meta, meta_model, data
        for wait in READ_RETRY_WAITS_S:  # give the writer time for its second rename, then read again
            time.sleep(wait)
            if _file_ids(weights_path, meta_path) != ids:
                break
        else:  # nothing changed: the pair is wrong, not being replaced
            break
        if time.monotonic() > deadline:
            break
    raise ValueError(why + _backup_hint(weights_path, meta["weights_sha256"], size_limit))


def load_checkpoint(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    *,
    max_parameters: int = MAX_PARAMETERS,
) -> Checkpoint:
    """Load a checkpoint saved by :func:`save_checkpoint`; the model comes back in eval mode
    and float32 on ``device``. Raises FileNotFoundError for missing files and ValueError for a
    file that is not regular, corrupt or truncated metadata (naming the field), a model larger
    than ``max_parameters``, or weights that do not fit the stored architecture. Never unpickles.

    Order of the checks, so that a bad file costs no more than reading its JSON and header: the
    JSON (fields, bounds), the model built on the meta device (size, sample shape), the weights
    file's header (every tensor's name, shape and dtype), then exactly the bytes the header
    declares, through one open file, against the JSON's checksum; only then is the model built.
    A reader beside a save that replaces the pair retries rather than report corruption."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    from .models import build_model

    weights_path, meta_path = checkpoint_paths(path)
    device = device_or_none("device", "cpu" if device is None else device)
    if isinstance(max_parameters, bool) or not isinstance(max_parameters, int) or max_parameters < 1:
        raise ValueError(f"max_parameters must be an integer >= 1; got {max_parameters!r}")
    for p in (weights_path, meta_path):
        _open_regular(p).close()  # missing or special files are reported before anything is read
    meta, meta_model, data = _read_pair(weights_path, meta_path, max_parameters)
    _check_sample_shape(meta_model, meta, meta_path)
    try:
        betas = torch.tensor(meta["schedule"]["betas"], dtype=torch.float64)
        schedule = Schedule.from_betas(betas, name=meta["schedule"]["name"])
    except ValueError as err:
        raise ValueError(f"{meta_path}: field 'schedule.betas' does not make a schedule ({err})") from None
    try:
        state = load_bytes(data)
    except (SafetensorError, RuntimeError, ValueError) as err:
        raise ValueError(f"{weights_path} is not a readable safetensors file ({err})") from None
    model = build_model(meta["arch"], meta["config"]).eval()
    train_tensors = {k[len(TRAIN_STATE_PREFIX):]: state.pop(k) for k in list(state) if k.startswith(TRAIN_STATE_PREFIX)}
    _fit_weights(model, state, meta, weights_path)
    tag(model.to(device).eval(), meta["kind"])
    train_state = None
    if "train_state" in meta:
        from .train import TrainState, check_train_state

        train_state = TrainState(tensors=train_tensors, scalars=meta["train_state"])
        check_train_state(train_state, str(meta_path), str(weights_path))  # field by field, before any resume
    return Checkpoint(
        model=model,
        schedule=schedule,
        record=meta.get("record", {}),
        sample_shape=meta["sample_shape"],
        arch=meta["arch"],
        config=meta["config"],
        train_state=train_state,
        kind=meta["kind"],
    )

"""A table of bad inputs for every CLI command, for save_checkpoint/load_checkpoint and for
train(): each with the exit status or exception type and a fragment of the message. A CLI
failure is one ``ddpm-course: error:`` line, no traceback, and no file written; nothing hangs."""
import json
import math
import os
import signal

import pytest
import torch
from torch.optim.swa_utils import AveragedModel

import ddpm_course as dc
from ddpm_course import cli
from ddpm_course.checkpoint import load_checkpoint, save_checkpoint
from ddpm_course.models import build_model
from ddpm_course.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

SCHEDULE = dc.linear_schedule(50)
MLP = {"dim": 2, "hidden": 16, "depth": 1, "time_dim": 8, "num_classes": None}


def _net():
    torch.manual_seed(0)
    return build_model("MLPDenoiser", MLP)


@pytest.fixture
def place(tmp_path):
    """A folder with a checkpoint ``toy`` (no training state), an existing ``taken.png``,
    ``taken`` checkpoint files, a sub-folder, a corrupt checkpoint and a FIFO."""
    save_checkpoint(tmp_path / "toy", _net(), SCHEDULE, sample_shape=(2,))
    save_checkpoint(tmp_path / "taken", _net(), SCHEDULE, sample_shape=(2,))
    (tmp_path / "taken.png").write_bytes(b"keep me")
    (tmp_path / "sub").mkdir()
    (tmp_path / "corrupt.safetensors").write_bytes(b"\0" * 16)
    (tmp_path / "corrupt.json").write_text('{"format": ')
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.json")
        (tmp_path / "fifo.safetensors").write_bytes(b"")
    return tmp_path


def _no_cuda():
    return not torch.cuda.is_available()


T, S = ["train", "--preset", "toy2d", "--steps", "2", "--no-progress", "--device", "cpu"], ["sample", "--device", "cpu"]

CLI_CASES = [
    # (argv with {d} for the folder, exit status, fragment)
    ([], 2, "required: COMMAND"),
    (["fly"], 2, "invalid choice: 'fly'"),
    (["train"], 1, "give --preset"),
    (["train", "--preset", "imagenet"], 2, "invalid choice: 'imagenet'"),
    ([*T, "--steps", "0"], 2, "--steps: must be an integer >= 1; got 0"),
    ([*T, "--steps", "-3"], 2, "--steps: must be an integer >= 1"),
    ([*T, "--steps", "1.5"], 2, "--steps: must be an integer >= 1; got '1.5'"),
    ([*T, "--steps", "many"], 2, "--steps: must be an integer"),
    ([*T, "--minutes", "inf"], 2, "--minutes: must be a finite number in (0, inf)"),
    ([*T, "--minutes", "nan"], 2, "--minutes: must be a finite number"),
    ([*T, "--minutes", "0"], 2, "--minutes: must be a finite number"),
    ([*T, "--minutes", "-1"], 2, "--minutes: must be a finite number"),
    ([*T, "--seed", "-1"], 2, "--seed: must be an integer >= 0"),
    ([*T, "--seed", str(2**64)], 2, "--seed: must be an integer"),
    ([*T, "--threads", "0"], 2, "--threads: must be an integer in [1, 1024]"),
    ([*T, "--save-every", "0"], 2, "--save-every: must be a finite number"),
    ([*T, "--save-every", "inf"], 2, "--save-every: must be a finite number"),
    ([*T, "--device", "tpu"], 2, "--device: must be auto, cpu, cuda, cuda:N or mps"),
    ([*T, "--device", ""], 2, "--device: must be auto"),
    ([*T, "--precision", "fp8"], 2, "--precision: invalid choice"),
    ([*T, "--precision", "fp16"], 1, "fp16 needs a CUDA GPU"),
    ([*T, "--bf16", "--precision", "fp32"], 1, "contradict"),
    ([*T, "--out", "{d}/missing/run"], 1, "does not exist; create it first"),
    ([*T, "--out", "{d}/taken"], 1, "already exists; pass --overwrite"),
    ([*T, "--out", "{d}/taken.json"], 1, "already exists; pass --overwrite"),
    ([*T, "--out", "{d}/sub"], 1, "is a folder"),
    ([*T, "--wings"], 2, "unrecognized arguments: --wings"),
    (["train", "--resume", "{d}/nothing", "--device", "cpu"], 1, "does not exist"),
    (["train", "--resume", "{d}/toy", "--device", "cpu"], 1, "no training state"),
    (["train", "--resume", "{d}/corrupt", "--device", "cpu"], 1, "not valid JSON"),
    ([*S, "--out", "{d}/a.txt"], 1, "must end in one of .png"),
    ([*S, "--out", "{d}/taken"], 1, "must end in one of .png"),
    ([*S, "--out", "{d}/noext"], 1, "must end in one of .png"),
    ([*S, "--out", "{d}/sub"], 1, "is a folder"),
    ([*S, "--out", "{d}/missing/a.png"], 1, "does not exist; create it first"),
    ([*S, "--out", "{d}/taken.png"], 1, "already exists; pass --overwrite"),
    ([*S], 2, "required: --out"),
    ([*S, "--sampler", "unipc", "--out", "{d}/a.png"], 2, "--sampler: invalid choice: 'unipc'"),
    ([*S, "--sampler", "euler", "--eta", "0.5", "--out", "{d}/a.png"], 1, "--eta does not apply to --sampler euler"),
    ([*S, "--sampler", "dpm_solver", "--eta", "0", "--out", "{d}/a.png"], 1, "--eta does not apply"),
    ([*S, "--sampler", "euler", "--eta", "0", "--variance", "beta", "--out", "{d}/a.png"], 1,
     "--eta, --variance do not apply to --sampler euler"),
    ([*S, "--sampler", "ddpm", "--steps", "3", "--out", "{d}/a.png"], 1, "--steps does not apply to --sampler ddpm"),
    ([*S, "--sampler", "ddpm", "--spacing", "trailing", "--out", "{d}/a.png"], 1, "--spacing does not apply"),
    ([*S, "--sampler", "ddim", "--eta", "-1", "--out", "{d}/a.png"], 2, "--eta: must be a finite number in [0, 1]"),
    ([*S, "--sampler", "ddim", "--eta", "1.5", "--out", "{d}/a.png"], 2, "--eta: must be a finite number in [0, 1]"),
    ([*S, "--model", "", "--out", "{d}/a.png"], 1, "must name a checkpoint file"),
    ([*S, "--out", ""], 1, "is a folder"),
    ([*S, "--out", "{d}/" + "x" * 300 + ".png"], 1, "File name too long"),
    ([*T, "--out", ""], 1, "is a folder"),
    ([*S, "--sampler", "ddim", "--eta", "nan", "--out", "{d}/a.png"], 2, "--eta: must be a finite number"),
    ([*S, "--spacing", "random", "--out", "{d}/a.png"], 2, "--spacing: invalid choice"),
    ([*S, "--sampler", "ddim", "--variance", "beta", "--out", "{d}/a.png"], 1,
     "--variance does not apply to --sampler ddim"),
    ([*S, "--sampler", "ddpm", "--order", "2", "--out", "{d}/a.png"], 1,
     "--order does not apply to --sampler ddpm, which takes --variance"),
    ([*S, "--sampler", "dpm_solver", "--order", "3", "--out", "{d}/a.png"], 2, "--order: must be an integer in [1, 2]"),
    ([*S, "--n", "0", "--out", "{d}/a.png"], 2, "--n: must be an integer in [1, 4096]"),
    ([*S, "--n", "100000", "--out", "{d}/a.png"], 2, "--n: must be an integer in [1, 4096]"),
    ([*S, "--steps", "0", "--out", "{d}/a.png"], 2, "--steps: must be an integer >= 1"),
    ([*S, "--model", "{d}/toy", "--steps", "5000", "--out", "{d}/a.png"], 1, "steps"),
    ([*S, "--model", "{d}/nothing", "--out", "{d}/a.png"], 1, "does not exist"),
    ([*S, "--model", "{d}/corrupt", "--out", "{d}/a.png"], 1, "not valid JSON"),
    ([*S, "--model", "{d}/fifo", "--out", "{d}/a.png"], 1, "FIFO"),
]


@pytest.mark.parametrize("argv, status, fragment", CLI_CASES, ids=[" ".join(c[0])[:60] for c in CLI_CASES])
def test_cli_bad_input(place, capsys, argv, status, fragment):
    if "fifo" in " ".join(argv) and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    before = sorted(p.name for p in place.iterdir())
    with _no_hang(60):
        code = cli.main([a.format(d=place) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == status, captured.err
    assert len(lines) == 1 and lines[0].startswith("ddpm-course: error: "), lines
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in place.iterdir()) == before  # nothing written, nothing left behind
    assert (place / "taken.png").read_bytes() == b"keep me"


class _no_hang:
    """Fail (instead of hanging) when the body runs longer than ``seconds`` (POSIX)."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def __enter__(self):
        if hasattr(signal, "SIGALRM"):
            def timeout(signum, frame):
                raise TimeoutError(f"hung for {self.seconds} s")

            self.previous = signal.signal(signal.SIGALRM, timeout)
            signal.alarm(self.seconds)

    def __exit__(self, *exc):
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
            signal.signal(signal.SIGALRM, self.previous)


# ----------------------------------------------------------------------------- save_checkpoint


def _save_case(tmp_path, **changes):
    kwargs = {"path": tmp_path / "new", "model": _net(), "schedule": SCHEDULE, "sample_shape": (2,)}
    kwargs.update(changes)
    path = kwargs.pop("path")
    return save_checkpoint(path, kwargs.pop("model"), kwargs.pop("schedule"), **kwargs)


SAVE_CASES = [
    ({"path": 5}, TypeError, "path must be a str"),
    ({"path": None}, TypeError, "path must be a str"),
    ({"model": "unet"}, TypeError, "model must be an nn.Module"),
    ({"model": torch.nn.Linear(2, 2)}, TypeError, "registered architectures"),
    ({"model": AveragedModel(_net())}, TypeError, "pass its .module"),
    ({"schedule": [0.1, 0.2]}, TypeError, "schedule must be a Schedule"),
    ({"sample_shape": ()}, ValueError, "sample_shape"),
    ({"sample_shape": (0,)}, ValueError, "sample_shape"),
    ({"sample_shape": (-2,)}, ValueError, "sample_shape"),
    ({"sample_shape": (2.0,)}, ValueError, "sample_shape"),
    ({"sample_shape": (True,)}, ValueError, "sample_shape"),
    ({"sample_shape": "2"}, ValueError, "sample_shape"),
    ({"sample_shape": None}, ValueError, "sample_shape"),
    ({"sample_shape": (1, 1, 1, 1, 2)}, ValueError, "sample_shape"),
    ({"weights_dtype": torch.int8}, ValueError, "weights_dtype"),
    ({"weights_dtype": "float16"}, ValueError, "weights_dtype"),
    ({"record": [1, 2]}, TypeError, "record must be a dict"),
    ({"record": {"t": torch.zeros(2)}}, ValueError, "record['t']"),
    ({"record": {"inf": math.inf}}, ValueError, "JSON has no NaN or infinity"),
    ({"path": "{d}/toy"}, FileExistsError, "overwrite=True"),
    ({"path": "{d}/toy.json"}, FileExistsError, "overwrite=True"),
    ({"path": "{d}/sub/"}, IsADirectoryError, "is a folder"),
    ({"path": "{d}/sub", "overwrite": True}, IsADirectoryError, "is a folder"),
    ({"path": "{d}/dir", "overwrite": True}, IsADirectoryError, "is a folder"),
    ({"overwrite": "yes"}, TypeError, "overwrite must be True or False"),
]


@pytest.mark.parametrize("changes, error, fragment", SAVE_CASES, ids=[str(c[0])[:50] for c in SAVE_CASES])
def test_save_checkpoint_bad_input(place, changes, error, fragment):
    (place / "dir.json").mkdir()
    changes = {k: (v.format(d=place) if isinstance(v, str) and "{d}" in v else v) for k, v in changes.items()}
    before = _contents(place)
    with pytest.raises(error) as info:
        _save_case(place, **changes)
    assert fragment in str(info.value)
    assert _contents(place) == before and not (place / "new.json").exists()


def _contents(folder) -> dict[str, bytes]:
    """Every regular file's bytes (the FIFO left out: reading it would block)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "fifo.json"}


# ----------------------------------------------------------------------------- load_checkpoint


def _meta(tmp_path):
    _, meta_path = save_checkpoint(tmp_path / "run", _net(), SCHEDULE, sample_shape=(2,))
    return meta_path, json.loads(meta_path.read_text())


def _without(key):
    def edit(meta):
        del meta[key]
        return meta

    return edit


def _set(path, value):
    def edit(meta):
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return meta

    return edit


LOAD_JSON_CASES = [
    # (an edit of the parsed JSON, or raw bytes for the file, fragment)
    (b"5", "its JSON is int 5, not an object"),
    (b"null", "its JSON is NoneType None"),
    (b"[]", "its JSON is list"),
    (b'"checkpoint"', "its JSON is str"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b"", "is not valid JSON"),
    (b'{"format": ', "is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),
    (_without("betas"), None),
    *[(_without(k), f"the field '{k}' is missing") for k in ("format", "arch", "config", "sample_shape", "schedule",
                                                             "weights_sha256")],
    (_set(("format",), "ddpm_course.checkpoint/99"), "this version reads"),
    (_set(("format",), 1), "field 'format'"),
    (_set(("arch",), "Transformer"), "field 'arch' must be one of"),
    (_set(("arch",), None), "field 'arch'"),
    (_set(("config",), [1, 2]), "field 'config' must be an object"),
    (_set(("config",), {}), "cannot be built"),
    (_set(("config", "hidden"), -4), "cannot be built"),
    (_set(("config", "hidden"), 10**6), "field 'config.hidden' must be at most 65,536; got 1000000"),
    (_set(("config", "hidden"), 60_000), "more than max_parameters"),
    (_set(("config", "depth"), 200_000), "field 'config.depth' must be at most 64; got 200000"),
    (_set(("sample_shape",), []), "field 'sample_shape'"),
    (_set(("sample_shape",), [0]), "field 'sample_shape'"),
    (_set(("sample_shape",), [-2]), "field 'sample_shape'"),
    (_set(("sample_shape",), [2.0]), "field 'sample_shape'"),
    (_set(("sample_shape",), [True]), "field 'sample_shape'"),
    (_set(("sample_shape",), "2"), "field 'sample_shape'"),
    (_set(("sample_shape",), [10**9]), "field 'sample_shape'"),
    (_set(("sample_shape",), [4096, 4096, 4]), "at most 16777216 elements"),
    (_set(("config", "hidden"), 10**30), "field 'config.hidden' must be at most 65,536"),
    (_set(("config", "hidden"), "16"), "cannot be built"),
    (_set(("sample_shape",), [3]), "field 'sample_shape' [3] does not fit the MLPDenoiser"),
    (_set(("sample_shape",), [1, 2]), "does not fit"),
    (_set(("schedule",), [0.1]), "field 'schedule'"),
    (_set(("schedule", "betas"), []), "field 'schedule.betas'"),
    (_set(("schedule", "betas"), "0.1"), "field 'schedule.betas'"),
    (_set(("schedule", "betas"), [0.1, 0.0]), "finite numbers strictly inside (0, 1)"),
    (_set(("schedule", "betas"), [0.1, 1.0]), "strictly inside (0, 1)"),
    (_set(("schedule", "betas"), [0.1, -0.2]), "strictly inside (0, 1)"),
    (_set(("schedule", "betas"), [0.1, "0.2"]), "strictly inside (0, 1)"),
    (_set(("schedule", "betas"), [0.1, None]), "strictly inside (0, 1)"),
    (_set(("schedule", "betas"), [0.1, True]), "strictly inside (0, 1)"),
    (_set(("schedule", "name"), 3), "field 'schedule.name'"),
    (_set(("weights_sha256",), "abc"), "field 'weights_sha256'"),
    (_set(("weights_sha256",), "0" * 64), "does not match the checksum"),
    (_set(("weights_dtype",), "int8"), "field 'weights_dtype'"),
    (_set(("record",), [1]), "field 'record' must be an object"),
    (_set(("train_state",), 3), "field 'train_state' must be an object"),
]


@pytest.mark.parametrize("edit, fragment", LOAD_JSON_CASES, ids=[str(i) for i in range(len(LOAD_JSON_CASES))])
def test_load_checkpoint_bad_json(tmp_path, edit, fragment):
    meta_path, meta = _meta(tmp_path)
    if isinstance(edit, bytes):
        meta_path.write_bytes(edit)
    else:
        if fragment is None:  # betas sit inside "schedule"
            del meta["schedule"]["betas"]
            fragment = "field 'schedule.betas'"
        else:
            meta = edit(meta)
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError) as info:
        load_checkpoint(tmp_path / "run")
    assert fragment in str(info.value) and str(meta_path) in str(info.value)


def test_load_checkpoint_refuses_nan_written_into_the_json(tmp_path):
    meta_path, _ = _meta(tmp_path)
    meta_path.write_text(meta_path.read_text().replace('"betas": [\n  ', '"betas": [\n  NaN, ', 1))
    with pytest.raises(ValueError, match="NaN"):
        load_checkpoint(tmp_path / "run")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("which", ["json", "safetensors"])
def test_load_checkpoint_refuses_a_fifo_without_hanging(tmp_path, which):
    save_checkpoint(tmp_path / "run", _net(), SCHEDULE, sample_shape=(2,))
    (tmp_path / f"run.{which}").unlink()
    os.mkfifo(tmp_path / f"run.{which}")
    with _no_hang(30), pytest.raises(ValueError, match="is a FIFO, not a regular file"):
        load_checkpoint(tmp_path / "run")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
@pytest.mark.parametrize("which", ["json", "safetensors"])
def test_load_checkpoint_refuses_a_link_to_a_device(tmp_path, which):
    save_checkpoint(tmp_path / "run", _net(), SCHEDULE, sample_shape=(2,))
    (tmp_path / f"run.{which}").unlink()
    (tmp_path / f"run.{which}").symlink_to("/dev/zero")
    with _no_hang(30), pytest.raises(ValueError, match="a device or other special file"):
        load_checkpoint(tmp_path / "run")


def test_load_checkpoint_other_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="device must be a torch device"):
        load_checkpoint(tmp_path / "nothing", device="tpu")
    with pytest.raises(ValueError, match="max_parameters must be an integer >= 1"):
        load_checkpoint(tmp_path / "nothing", max_parameters=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")
    with pytest.raises(TypeError, match="path must be a str"):
        load_checkpoint(3.5)
    save_checkpoint(tmp_path / "run", _net(), SCHEDULE, sample_shape=(2,))
    with pytest.raises(ValueError, match="more than max_parameters=10"):
        load_checkpoint(tmp_path / "run", max_parameters=10)
    with open(tmp_path / "run.safetensors", "ab") as f:  # 16 MB of padding on a 5 kB model: never read
        f.write(b"\0" * 16 * 2**20)
    with pytest.raises(ValueError, match="holds more bytes than the [0-9,]+ its header declares"):
        load_checkpoint(tmp_path / "run")


def test_loading_never_unpickles_even_a_state_checkpoint(tmp_path, monkeypatch):
    import pickle

    result = train(_net(), SCHEDULE, dc.toy2d("mixture", n=64, generator=torch.Generator().manual_seed(0)), steps=2,
                   batch_size=16, progress=False)
    save_checkpoint(tmp_path / "run", result.final_model, SCHEDULE, sample_shape=(2,), train_state=result.state)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during load")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    assert load_checkpoint(tmp_path / "run").train_state.scalars["step"] == 2


# ----------------------------------------------------------------------------- train()


def _points(n=64):
    return dc.toy2d("mixture", n=n, generator=torch.Generator().manual_seed(0))


TRAIN_CASES = [
    ({}, ValueError, "give a budget"),
    ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
    ({"steps": -1}, ValueError, "steps must be an integer >= 1"),
    ({"steps": 1.5}, ValueError, "steps must be an integer >= 1"),
    ({"steps": True}, ValueError, "steps must be an integer >= 1"),
    ({"steps": "10"}, ValueError, "steps must be an integer >= 1"),
    ({"minutes": math.inf}, ValueError, "minutes must be a finite number in (0"),
    ({"minutes": math.nan}, ValueError, "minutes must be a finite number"),
    ({"minutes": 0}, ValueError, "minutes must be a finite number"),
    ({"minutes": "1"}, ValueError, "minutes must be a finite number"),
    ({"minutes": 1e-9}, ValueError, "ended before the first step"),
    ({"steps": 1, "batch_size": 0}, ValueError, "batch_size must be an integer in [1, 65536]"),
    ({"steps": 1, "batch_size": 10**8}, ValueError, "batch_size must be an integer in [1, 65536]"),
    ({"steps": 1, "lr": 0}, ValueError, "lr must be a finite number"),
    ({"steps": 1, "lr": math.nan}, ValueError, "lr must be a finite number"),
    ({"steps": 1, "lr": math.inf}, ValueError, "lr must be a finite number"),
    ({"steps": 1, "warmup_steps": -1}, ValueError, "warmup_steps must be an integer >= 0"),
    ({"steps": 1, "lr_decay": "yes"}, TypeError, "lr_decay must be True or False"),
    ({"steps": 1, "weight_decay": -0.1}, ValueError, "weight_decay must be a finite number"),
    ({"steps": 1, "grad_clip": 0.0}, ValueError, "grad_clip must be a finite number"),
    ({"steps": 1, "grad_clip": math.inf}, ValueError, "grad_clip must be a finite number"),
    ({"steps": 1, "ema_decay": 1.0}, ValueError, "ema_decay must be a finite number in (0.0, 1.0)"),
    ({"steps": 1, "ema_decay": 0}, ValueError, "ema_decay must be a finite number"),
    ({"steps": 1, "ema_decay": math.nan}, ValueError, "ema_decay must be a finite number"),
    ({"steps": 1, "optimizer": "sgd"}, ValueError, "optimizer must be one of 'adamw', 'adam'"),
    ({"steps": 1, "optimizer": "adam", "weight_decay": 0.1}, ValueError, "weight_decay needs optimizer='adamw'"),
    ({"steps": 1, "p_uncond": 1.0}, ValueError, "p_uncond must be a finite number"),
    ({"steps": 1, "p_uncond": 0.5}, ValueError, "p_uncond > 0 needs a class-conditional model"),
    ({"steps": 1, "generator": 5}, TypeError, "generator must be a torch.Generator or None"),
    ({"steps": 1, "device": "tpu"}, ValueError, "device must be a torch device"),
    ({"steps": 1, "precision": "fp8"}, ValueError, "precision must be one of"),
    ({"steps": 1, "autocast_bf16": True, "precision": "fp16"}, ValueError, "autocast_bf16=True asks for precision"),
    ({"steps": 1, "log_every": 0}, ValueError, "log_every must be an integer >= 1"),
    ({"steps": 1, "resume": {"step": 3}}, TypeError, "resume must be a TrainState"),
    ({"steps": 1, "checkpoint_every": 1.0}, ValueError, "go together"),
    ({"steps": 1, "checkpoint_every": 0.0, "on_checkpoint": print}, ValueError, "checkpoint_every must be a finite"),
    ({"steps": 1, "checkpoint_every": 1.0, "on_checkpoint": "save"}, TypeError, "on_checkpoint must be callable"),
    ({"steps": 1, "data": [[0.0, 0.0]]}, TypeError, "data must be an ImageData or a tensor"),
    ({"steps": 1, "data": torch.zeros(5, 2, dtype=torch.long)}, ValueError, "data must be a float tensor"),
    ({"steps": 1, "data": torch.zeros(0, 2)}, ValueError, "N >= 1"),
    ({"steps": 1, "data": torch.zeros(5)}, ValueError, "shape (N, ...)"),
    ({"steps": 1, "data": torch.full((5, 2), math.nan)}, ValueError, "data holds NaN or infinite values"),
    ({"steps": 1, "model": "mlp"}, TypeError, "model must be an nn.Module"),
    ({"steps": 1, "model": torch.nn.Identity()}, ValueError, "no trainable parameters"),
    ({"steps": 1, "schedule": [0.1, 0.2]}, TypeError, "schedule must be a Schedule"),
]
if not torch.cuda.is_available():
    TRAIN_CASES.append(({"steps": 1, "precision": "fp16"}, ValueError, "precision='fp16' needs a CUDA GPU"))
    TRAIN_CASES.append(({"steps": 1, "device": "cuda"}, ValueError, "CUDA is not available"))


@pytest.mark.parametrize("kwargs, error, fragment", TRAIN_CASES, ids=[str(c[0])[:50] for c in TRAIN_CASES])
def test_train_bad_input(kwargs, error, fragment):
    kwargs = dict(kwargs)
    model, data = kwargs.pop("model", _net()), kwargs.pop("data", _points())
    schedule = kwargs.pop("schedule", SCHEDULE)
    with pytest.raises(error) as info:
        train(model, schedule, data, progress=False, **kwargs)
    assert fragment in str(info.value)
    if isinstance(model, torch.nn.Module):
        fresh = _net().state_dict().values()
        assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), fresh))


def test_load_checkpoint_refuses_non_finite_weights(tmp_path):
    import hashlib

    from safetensors.torch import load_file, save_file

    weights, meta_path = save_checkpoint(tmp_path / "run", _net(), SCHEDULE, sample_shape=(2,))
    state = load_file(weights)
    name = next(iter(state))
    state[name].view(-1)[0] = math.nan
    save_file(state, weights)
    meta = json.loads(meta_path.read_text())
    meta["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"hold NaN or infinite values.*{name}"):
        load_checkpoint(tmp_path / "run")


@pytest.mark.parametrize("damage, fragment", [
    (lambda s: s.tensors.__setitem__("data.order", torch.tensor([0, 99])), "not a list of indices"),
    (lambda s: s.scalars.__setitem__("cursor", -1), "out of range"),
    (lambda s: s.scalars.__setitem__("step", "2"), "out of range"),
    (lambda s: s.tensors.__setitem__("losses", torch.zeros(7, dtype=torch.float64)), "losses hold 7 values"),
    (lambda s: s.tensors.pop("rng.generator"), "does not fit this run"),
    (lambda s: s.tensors.pop(next(k for k in s.tensors if k.startswith("model."))), "does not fit this run"),
    (lambda s: s.scalars.__setitem__("version", 99), "state version 99"),
    (lambda s: s.scalars["optimizer"].__setitem__("param_groups", []), "parameter groups"),
])
def test_train_refuses_a_damaged_state(damage, fragment):
    data = _points()
    state = train(_net(), SCHEDULE, data, steps=2, batch_size=16, progress=False).state
    damage(state)
    with pytest.raises(ValueError, match=fragment):
        train(_net(), SCHEDULE, data, steps=2, batch_size=16, progress=False, resume=state)


# ----------------------------------------------------------------------------- nothing hangs: bounded work first


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_leftover_torchrun_environment_checks_the_arguments_then_gives_up_quickly(tmp_path, monkeypatch, capsys):
    import time

    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(_free_port()), "DDPM_COURSE_JOIN_TIMEOUT": "1"}.items():
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    assert cli.main([*T, "--out", str(tmp_path / "x"), "--save-every", "1"]) == 1  # refused before any joining
    assert "under torchrun give a step budget" in capsys.readouterr().err
    assert time.monotonic() - start < 5
    start = time.monotonic()
    assert cli.main([*T, "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert time.monotonic() - start < 20
    assert "the 2 torchrun processes did not all join within 1 s" in err and "unset RANK, WORLD_SIZE" in err
    assert not list(tmp_path.iterdir())
    monkeypatch.delenv("MASTER_ADDR")
    assert cli.main([*T, "--out", str(tmp_path / "x")]) == 1
    assert "MASTER_ADDR and MASTER_PORT (set by torchrun) are missing" in capsys.readouterr().err
    monkeypatch.setenv("DDPM_COURSE_JOIN_TIMEOUT", "soon")
    assert cli.main([*T, "--out", str(tmp_path / "x")]) == 1
    assert "DDPM_COURSE_JOIN_TIMEOUT must be a finite number of seconds > 0; got 'soon'" in capsys.readouterr().err


@pytest.mark.parametrize("call, fragment", [
    (lambda: dc.flow.flow_sample(_net(), (2, 2), steps=10**9), "steps must be an integer in [1, 100000]"),
    (lambda: dc.score.geometric_sigmas(10.0, 0.01, 10**9), "n must be an integer in [1, 100000]"),
    (lambda: dc.score.langevin(lambda x: -x, torch.zeros(2, 2), step_size=0.1, steps=10**9),
     "steps must be an integer in [1, 100000]"),
    (lambda: dc.samplers.ddim_sample(_net(), SCHEDULE, (10**6, 1, 1024, 1024), steps=2), "more than the 268,435,456"),
    (lambda: dc.flow.flow_sample(_net(), (2**20, 2**10), steps=2), "more than the 268,435,456"),
    (lambda: train(_net(), SCHEDULE, torch.zeros(4, 2), steps=1, batch_size=10**8, progress=False),
     "batch_size must be an integer in [1, 65536]"),
])
def test_sizes_and_counts_have_an_upper_bound_checked_before_allocating(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)


def test_the_cli_bounds_the_batch_size(capsys):
    assert cli.main([*T, "--batch-size", "100000000"]) == 2
    assert "--batch-size: must be an integer in [1, 65536]; got 100000000" in capsys.readouterr().err


def _unet_checkpoint(tmp_path):
    from ddpm_course.models import UNet, UNetConfig

    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                          attention_levels=(1,), dropout=0.0, num_classes=None, groups=4, time_dim=None))
    return save_checkpoint(tmp_path / "unet", net, SCHEDULE, sample_shape=(1, 16, 16))


def test_a_huge_sample_shape_is_checked_without_running_the_model(tmp_path):
    import time

    _, meta_path = _unet_checkpoint(tmp_path)
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "sample_shape": [1, 4096, 4096]}))  # full-resolution attention
    start = time.monotonic()
    assert load_checkpoint(tmp_path / "unet").sample_shape == (1, 4096, 4096)  # it fits: the U-Net is convolutional
    meta_path.write_text(json.dumps({**meta, "sample_shape": [2, 2048, 2048]}))  # two channels for a 1-channel net
    with pytest.raises(ValueError, match=r"field 'sample_shape' \[2, 2048, 2048\] does not fit the UNet"):
        load_checkpoint(tmp_path / "unet")
    assert time.monotonic() - start < 10  # a real forward pass would attend over 2048 x 2048 positions


def _rewrite_weights(weights_path, meta_path, state):
    """Replace the weights by ``state`` and make the JSON's checksum match, as a careful forger would."""
    import hashlib

    from safetensors.torch import save_file

    save_file(state, str(weights_path))
    meta = json.loads(meta_path.read_text())
    meta["weights_sha256"] = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("change, fragment", [
    (lambda s, k: {**s, k: s[k].to(torch.int32)}, "has dtype 'I32'; it must have a floating-point dtype"),
    (lambda s, k: {**s, k: s[k].to(torch.complex64)}, "has dtype 'C64'; it must have a floating-point dtype"),
    (lambda s, k: {**s, k: s[k][..., :1].contiguous()}, "1 with another shape"),
    (lambda s, k: {**s, "extra.weight": torch.zeros(3)}, "1 unexpected (e.g. ['extra.weight'])"),
    (lambda s, k: {**s, "train_state.x": torch.zeros(3)}, "holds training-state tensors but its JSON has no"),
])
def test_the_weights_header_is_checked_against_the_model_before_any_data(tmp_path, change, fragment):
    weights_path, meta_path = save_checkpoint(tmp_path / "run", _net(), SCHEDULE, sample_shape=(2,))
    state = {k: v.clone() for k, v in _net().state_dict().items()}
    key = next(k for k, v in state.items() if v.ndim == 2)
    _rewrite_weights(weights_path, meta_path, change(state, key))
    with pytest.raises(ValueError) as info:
        load_checkpoint(tmp_path / "run")
    assert fragment in str(info.value) and str(weights_path) in str(info.value)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.parametrize("target", ["/proc/self/status", "/proc/self/pagemap"])
def test_a_weights_file_linked_to_proc_is_read_only_as_far_as_its_header(tmp_path, target):
    import time

    weights_path, _ = save_checkpoint(tmp_path / "run", _net(), SCHEDULE, sample_shape=(2,))
    weights_path.unlink()
    weights_path.symlink_to(target)  # a regular file whose st_size is 0 and whose reads may never end
    start = time.monotonic()
    with pytest.raises(ValueError, match=f"{weights_path} is not a safetensors file"):
        load_checkpoint(tmp_path / "run")
    assert time.monotonic() - start < 5


# ----------------------------------------------------------------------------- the training state, field by field


@pytest.fixture
def state_checkpoint(tmp_path):
    data = dc.toy2d("mixture", n=64, generator=torch.Generator().manual_seed(0))
    result = train(_net(), SCHEDULE, data, steps=3, batch_size=16, progress=False)
    return save_checkpoint(tmp_path / "run", result.final_model, SCHEDULE, sample_shape=(2,), train_state=result.state)


def _edit_state(meta_path, **fields):
    meta = json.loads(meta_path.read_text())
    for field, value in fields.items():
        target = meta["train_state"]
        *parents, last = field.split("__")
        for p in parents:
            target = target[p]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("fields, fragment", [
    ({"seconds": "abc"}, "field 'train_state.seconds' must be a finite number >= 0; got 'abc'"),
    ({"seconds": -1.0}, "field 'train_state.seconds' must be a finite number >= 0; got -1.0"),
    ({"step": "3"}, "field 'train_state.step' must be an integer in [0, 9007199254740992]; got '3'"),
    ({"step": 2**70}, "field 'train_state.step' must be an integer in [0, 9007199254740992]"),
    ({"step": 5}, "tensor 'train_state.losses' holds 3 values for 5 steps"),
    ({"version": 2}, "field 'train_state.version' must be 1"),
    ({"n_data": 0}, "field 'train_state.n_data' must be an integer in [1,"),
    ({"n_data": 10}, "tensor 'train_state.data.order' must hold indices in [0, 9]"),
    ({"cursor": 10**6}, "field 'train_state.cursor' must be an integer in [0, "),
    ({"settings__lr": -1}, "field 'train_state.settings' is not valid (lr must be a finite number in (0.0, inf]"),
    ({"settings__lr": KeyError}, "field 'train_state.settings' must be an object with exactly the fields"),
    ({"scaler": 3}, "field 'train_state.scaler' must be null or an object; got 3"),
    ({"optimizer": []}, "field 'train_state.optimizer' must be an object"),
    ({"optimizer__state__0__tensors": ["step", "nope"]},
     "field 'train_state.optimizer.state.0.tensors' must be names of tensors stored in the weights file; got ['nope']"),
    ({"optimizer__param_groups": [{"params": ["a"]}]}, "field 'train_state.optimizer.param_groups[0]' must be"),
])
def test_the_training_state_is_checked_field_by_field_at_load_time(state_checkpoint, fields, fragment):
    _, meta_path = state_checkpoint
    _edit_state(meta_path, **fields)
    with pytest.raises(ValueError) as info:
        load_checkpoint(meta_path)
    assert fragment in str(info.value) and ("run.json" in str(info.value) or "run.safetensors" in str(info.value))


def test_a_nan_in_the_saved_ema_is_refused_at_load_and_nothing_is_replaced(state_checkpoint, capsys):
    from safetensors.torch import load_file

    weights_path, meta_path = state_checkpoint
    state = load_file(str(weights_path))
    key = next(k for k in state if k.startswith("train_state.ema.module.") and state[k].is_floating_point())
    state[key][0] = float("nan")
    _rewrite_weights(weights_path, meta_path, state)
    before = (weights_path.read_bytes(), meta_path.read_bytes())
    with pytest.raises(ValueError, match=rf"tensor '{key}' and 0 more\); it cannot be resumed"):
        load_checkpoint(meta_path)
    assert cli.main(["train", "--resume", str(weights_path.with_suffix("")), "--device", "cpu"]) == 1
    assert "it cannot be resumed" in capsys.readouterr().err
    assert (weights_path.read_bytes(), meta_path.read_bytes()) == before  # the resumable checkpoint is untouched


def test_a_state_with_a_nan_is_never_saved(tmp_path):
    data = dc.toy2d("mixture", n=64, generator=torch.Generator().manual_seed(0))
    result = train(_net(), SCHEDULE, data, steps=2, batch_size=16, progress=False)
    key = next(k for k, v in result.state.tensors.items() if k.startswith("ema.") and v.is_floating_point())
    result.state.tensors[key] = torch.full_like(result.state.tensors[key], float("inf"))
    with pytest.raises(ValueError, match="the training state holds NaN or infinite values"):
        save_checkpoint(tmp_path / "run", result.final_model, SCHEDULE, sample_shape=(2,), train_state=result.state)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- smaller: each error names what is wrong


def test_an_extreme_guidance_scale_names_the_option(capsys):
    argv = [*S, "--model", "digits-cond", "--label", "3", "--guidance", "1e300", "--out", "x.png"]
    assert cli.main(argv) == 2
    assert "--guidance: must be a finite number in [0, 100]; got 1e300" in capsys.readouterr().err


def test_samples_that_overflow_name_the_model_and_sampler(tmp_path, capsys):
    net = _net()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1e30)  # finite weights whose products overflow float32
    save_checkpoint(tmp_path / "loud", net, SCHEDULE, sample_shape=(2,))
    out = tmp_path / "x.png"
    argv = [*S, "--model", str(tmp_path / "loud"), "--sampler", "ddim", "--steps", "2", "--out", str(out)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"error: --model {tmp_path / 'loud'} with --sampler ddim: the sample became NaN or infinite" in err
    assert "NonFiniteSampleError" not in err and len(err.splitlines()) == 1 and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_a_gpu_is_a_clear_error_in_the_api(tmp_path):
    with pytest.raises(ValueError, match="device cuda asked for, but CUDA is not available here"):
        dc.samplers.ddim_sample(_net(), SCHEDULE, (2, 2), steps=2, device="cuda")
    save_checkpoint(tmp_path / "run", _net(), SCHEDULE, sample_shape=(2,))
    with pytest.raises(ValueError, match="device cuda asked for, but CUDA is not available here"):
        load_checkpoint(tmp_path / "run", device="cuda")


def test_a_complex_answer_is_not_graded_correct():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from _solutions import answers
    finally:
        sys.path.pop(0)
    from ddpm_course import exercises

    reference = answers("02")["02.q_sample"]
    assert exercises.check("02.q_sample", reference).ok  # the control: the real answer passes
    complex_answer = lambda *args: reference(*args).to(torch.complex64)  # noqa: E731  same real part
    assert not exercises.check("02.q_sample", complex_answer).ok


@pytest.mark.parametrize("damage, fragment", [
    (None, "are incomplete or corrupt (torchvision's check of them failed)"),  # made-up files: the MD5 check fails
    ("truncate", "cannot be read: corrupt, unreadable or not torchvision's format"),
])
def test_corrupt_cifar_files_are_named_as_corrupt_not_missing(tmp_path, monkeypatch, capsys, damage, fragment):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from _fake_datasets import cifar_md5_off, fake_cifar10
    finally:
        sys.path.pop(0)
    fake_cifar10(tmp_path)
    if damage:
        cifar_md5_off(monkeypatch)
        batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
        batch.write_bytes(batch.read_bytes()[:100])
    argv = ["train", "--preset", "cifar10", "--steps", "1", "--device", "cpu", "--data-root", str(tmp_path),
            "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert fragment in err and str(tmp_path / "cifar-10-batches-py") in err and "not in --data-root" not in err


def test_a_truncated_mnist_file_is_named(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from _fake_datasets import fake_mnist
    finally:
        sys.path.pop(0)
    fake_mnist(tmp_path)
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:40])
    argv = ["train", "--preset", "mnist", "--steps", "1", "--device", "cpu", "--data-root", str(tmp_path),
            "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "the mnist files in" in err and "cannot be read" in err and len(err.splitlines()) == 1

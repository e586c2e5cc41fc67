"""Nothing lost: a save that fails at any point leaves the previous checkpoint loadable and no
stray files; Ctrl-C keeps what was learned; a resumed run ends where the run left alone ends."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import ddpm_course as dc
from ddpm_course import cli, losses
from ddpm_course.checkpoint import load_checkpoint, save_checkpoint
from ddpm_course.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

SCHEDULE = dc.linear_schedule(50)


def _net(seed: int):
    torch.manual_seed(seed)
    return build_model("MLPDenoiser", {"dim": 2, "hidden": 16, "depth": 1, "time_dim": 8, "num_classes": None})


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class Disk:
    """Counts the disk operations of a save and makes the ``fail_at``-th one fail (``error``);
    the file writes, fsyncs, renames, links and temporary-file creations are the points."""

    def __init__(self, monkeypatch, fail_at: int | None = None, error: BaseException | None = None):
        self.ops: list[str] = []
        self.fail_at = fail_at
        self.error = error or OSError(errno.ENOSPC, "No space left on device (injected)")
        for name in ("fsync", "replace", "link"):
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))
        import tempfile

        monkeypatch.setattr(tempfile, "mkstemp", self._wrap("mkstemp", tempfile.mkstemp))
        real_fdopen = os.fdopen

        def fdopen(*args, **kwargs):
            f = real_fdopen(*args, **kwargs)
            f.write = self._wrap("write", f.write)
            return f

        monkeypatch.setattr(os, "fdopen", fdopen)

    def _wrap(self, name, fn):
        def wrapped(*args, **kwargs):
            self.ops.append(name)
            if len(self.ops) - 1 == self.fail_at:
                raise self.error
            return fn(*args, **kwargs)

        return wrapped


def _count_ops(tmp_path, monkeypatch, overwrite: bool) -> list[str]:
    folder = tmp_path / "count"
    folder.mkdir()
    if overwrite:
        save_checkpoint(folder / "run", _net(0), SCHEDULE, sample_shape=(2,))
    with monkeypatch.context() as m:
        disk = Disk(m)
        save_checkpoint(folder / "run", _net(1), SCHEDULE, sample_shape=(2,), overwrite=overwrite)
    return disk.ops


def test_a_save_has_the_expected_disk_operations(tmp_path, monkeypatch):
    ops = _count_ops(tmp_path, monkeypatch, overwrite=True)
    # two temporary files written and flushed, the old weights linked aside, two renames
    assert ops.count("mkstemp") == 2 and ops.count("write") >= 2 and ops.count("replace") == 2
    assert ops.index("replace") > max(i for i, op in enumerate(ops) if op == "write")


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device (injected)"), KeyboardInterrupt()],
                         ids=["ENOSPC", "Ctrl-C"])
def test_overwrite_failing_at_every_point_keeps_the_old_checkpoint(tmp_path, monkeypatch, error):
    ops = _count_ops(tmp_path, monkeypatch, overwrite=True)
    json_moved = max(i for i, op in enumerate(ops) if op == "replace")  # the last rename puts the JSON in place
    old, new = _net(0), _net(1)
    kept_old = 0
    for k in range(len(ops)):
        folder = tmp_path / f"at{k}"
        folder.mkdir()
        save_checkpoint(folder / "run", old, SCHEDULE, sample_shape=(2,), record={"which": "old"})
        failed = False
        with monkeypatch.context() as m:
            Disk(m, fail_at=k, error=error)
            try:
                save_checkpoint(folder / "run", new, SCHEDULE, sample_shape=(2,), record={"which": "new"},
                                overwrite=True)
            except type(error):
                failed = True
        ckpt = load_checkpoint(folder / "run")  # loadable, whatever happened
        assert _files(folder) == ["run.json", "run.safetensors"], (k, _files(folder))
        if failed and k <= json_moved:
            assert ckpt.record == {"which": "old"} and _same_weights(ckpt.model, old), k
            kept_old += 1
        else:  # a failure after both renames (the folder's fsync), or one a fallback absorbed (a hard link
            # refused: the backup is copied instead): the new checkpoint is complete
            assert ckpt.record == {"which": "new"} and _same_weights(ckpt.model, new), k
    assert kept_old >= json_moved  # every point up to the JSON's rename failed the save but the link aside


def test_a_new_checkpoint_failing_at_every_point_leaves_no_orphan(tmp_path, monkeypatch):
    n_ops = len(_count_ops(tmp_path, monkeypatch, overwrite=False))
    for k in range(n_ops):
        folder = tmp_path / f"at{k}"
        folder.mkdir()
        with monkeypatch.context() as m:
            Disk(m, fail_at=k)
            try:
                save_checkpoint(folder / "run", _net(1), SCHEDULE, sample_shape=(2,))
            except OSError:
                assert _files(folder) == [], (k, _files(folder))
                save_checkpoint(folder / "run", _net(1), SCHEDULE, sample_shape=(2,))  # a retry is not blocked
        assert _files(folder) == ["run.json", "run.safetensors"]
        load_checkpoint(folder / "run")


def test_an_exception_between_the_two_renames_puts_the_old_weights_back(tmp_path, monkeypatch):
    old = _net(0)
    save_checkpoint(tmp_path / "run", old, SCHEDULE, sample_shape=(2,))
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(str(dst))
        if len(calls) == 2:  # the weights are in place, the JSON is not
            raise OSError(errno.EIO, "Input/output error (injected)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="injected"):
        save_checkpoint(tmp_path / "run", _net(1), SCHEDULE, sample_shape=(2,), overwrite=True)
    monkeypatch.undo()
    assert calls[0].endswith("run.safetensors") and calls[1].endswith("run.json")
    assert _same_weights(load_checkpoint(tmp_path / "run").model, old)
    assert _files(tmp_path) == ["run.json", "run.safetensors"]


@pytest.mark.parametrize("record, match", [
    ({"x": object()}, r"record\['x'\] = object"),
    ({"loss": float("nan")}, "NaN"),
    ({"nested": {"deep": [1, {2, 3}]}}, r"record\['nested'\]\['deep'\]\[1\]"),
])
def test_an_unserialisable_record_writes_nothing(tmp_path, record, match):
    old = _net(0)
    save_checkpoint(tmp_path / "run", old, SCHEDULE, sample_shape=(2,))
    before = {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)}
    with pytest.raises(ValueError, match=match):
        save_checkpoint(tmp_path / "run", _net(1), SCHEDULE, sample_shape=(2,), record=record, overwrite=True)
    assert {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)} == before
    with pytest.raises(ValueError, match=match):
        save_checkpoint(tmp_path / "fresh", _net(1), SCHEDULE, sample_shape=(2,), record=record)
    assert _files(tmp_path) == ["run.json", "run.safetensors"]


def test_a_read_only_json_file_is_replaced_whole_or_not_at_all(tmp_path):
    _, meta = save_checkpoint(tmp_path / "run", _net(0), SCHEDULE, sample_shape=(2,))
    meta.chmod(0o444)
    save_checkpoint(tmp_path / "run", _net(1), SCHEDULE, sample_shape=(2,), overwrite=True)
    assert _same_weights(load_checkpoint(tmp_path / "run").model, _net(1))


def test_a_folder_that_cannot_be_written_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    old = _net(0)
    save_checkpoint(tmp_path / "run", old, SCHEDULE, sample_shape=(2,))
    if getattr(os, "geteuid", lambda: 0)() != 0:  # a real read-only folder (POSIX, not root; simulated below too)
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(PermissionError):
                save_checkpoint(tmp_path / "run", _net(1), SCHEDULE, sample_shape=(2,), overwrite=True)
        finally:
            tmp_path.chmod(0o755)
    with monkeypatch.context() as m:
        Disk(m, fail_at=0, error=PermissionError(errno.EACCES, "Permission denied (injected)"))
        with pytest.raises(PermissionError):
            save_checkpoint(tmp_path / "run", _net(1), SCHEDULE, sample_shape=(2,), overwrite=True)
    assert _same_weights(load_checkpoint(tmp_path / "run").model, old)
    assert _files(tmp_path) == ["run.json", "run.safetensors"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        weights, meta = save_checkpoint(tmp_path / "run", _net(0), SCHEDULE, sample_shape=(2,))
    finally:
        os.umask(umask)
    assert weights.stat().st_mode & 0o777 == 0o644 and meta.stat().st_mode & 0o777 == 0o644


# ----------------------------------------------------------------------------- the CLI: interrupt, save, resume


def _ctrl_c_at_call(monkeypatch, n: int) -> None:
    """Press Ctrl-C (a real SIGINT to this process) during the n-th training loss."""
    real, calls = losses.l_simple, []

    def l_simple(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(losses, "l_simple", l_simple)


def _train(out, *extra) -> int:
    return cli.main(["train", "--preset", "toy2d", "--steps", "12", "--device", "cpu", "--no-progress",
                     "--out", str(out), *extra])


def test_cli_ctrl_c_saves_and_resume_ends_bit_identical(tmp_path, monkeypatch, capsys):
    assert _train(tmp_path / "whole") == 0
    with monkeypatch.context() as m:
        _ctrl_c_at_call(m, 5)
        assert _train(tmp_path / "part") == 130
    assert "interrupted at step 5" in capsys.readouterr().err
    meta = json.loads((tmp_path / "part.json").read_text())
    assert meta["record"]["status"] == "interrupted" and meta["record"]["interrupted_at_step"] == 5
    assert meta["train_state"]["step"] == 5
    assert load_checkpoint(tmp_path / "part").model is not None  # samplable as it is
    assert cli.main(["train", "--resume", str(tmp_path / "part"), "--device", "cpu", "--no-progress"]) == 0
    whole, resumed = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "part")
    assert resumed.record["status"] == "finished" and resumed.record["steps"] == 12 and resumed.train_state is None
    assert _same_weights(resumed.model, whole.model)
    assert resumed.record["commands"][0] == resumed.record["command"] and "--resume" in resumed.record["commands"][1]


def test_cli_save_every_keeps_the_latest_state(tmp_path, monkeypatch):
    import ddpm_course.checkpoint as checkpoint

    seen, real = [], checkpoint.save_checkpoint

    def watching(path, model, schedule, **kwargs):
        out = real(path, model, schedule, **kwargs)
        ckpt = load_checkpoint(path)  # loadable after every save
        seen.append((ckpt.record["status"], ckpt.record["steps"], ckpt.train_state is not None))
        return out

    monkeypatch.setattr(checkpoint, "save_checkpoint", watching)
    assert _train(tmp_path / "run", "--save-every", "1e-9") == 0
    assert seen[:3] == [("running", 1, True), ("running", 2, True), ("running", 3, True)]
    assert seen[-1] == ("finished", 12, False)
    assert _files(tmp_path) == ["run.json", "run.safetensors"]


def test_cli_resume_refuses_changed_settings_and_finished_runs(tmp_path, monkeypatch, capsys):
    with monkeypatch.context() as m:
        _ctrl_c_at_call(m, 2)
        assert _train(tmp_path / "part") == 130
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(tmp_path / "part"), "--steps", "99", "--device", "cpu"]) == 1
    assert "--steps 99 differs from the resumed run's 12" in capsys.readouterr().err
    assert _train(tmp_path / "done") == 0
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(tmp_path / "done"), "--device", "cpu"]) == 1
    assert "no training state" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to a child process")
def test_the_script_on_a_real_ctrl_c_saves_and_exits_130(tmp_path):
    out = tmp_path / "long"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddpm_course.cli", "train", "--preset", "toy2d", "--steps", "1000000", "--device", "cpu",
         "--threads", "1", "--no-progress", "--save-every", "0.002", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "long.json").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert (tmp_path / "long.json").exists(), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    record = json.loads((tmp_path / "long.json").read_text())["record"]
    assert record["status"] == "interrupted" and record["interrupted_at_step"] >= 1
    assert f"continue with: ddpm-course train --resume {out}" in err


def test_a_save_cut_off_between_the_renames_says_where_the_old_weights_are(tmp_path):
    # what a power cut between the two renames leaves: the new weights, the old JSON, the old
    # weights under the backup name (no code runs to put them back)
    old_w, old_meta = save_checkpoint(tmp_path / "run", _net(0), SCHEDULE, sample_shape=(2,))
    backup = tmp_path / ".run.safetensors.123.abcd.bak"
    os.link(old_w, backup)
    save_checkpoint(tmp_path / "new", _net(1), SCHEDULE, sample_shape=(2,))
    os.replace(tmp_path / "new.safetensors", old_w)
    with pytest.raises(ValueError, match=r"a save was cut off: the weights that match are in .*\.bak"):
        load_checkpoint(tmp_path / "run")
    os.replace(backup, old_w)
    assert _same_weights(load_checkpoint(tmp_path / "run").model, _net(0))


# ----------------------------------------------------------------------------- readers beside a save


def test_a_reader_between_the_two_renames_waits_for_the_json(tmp_path):
    import threading

    save_checkpoint(tmp_path / "run", _net(0), SCHEDULE, sample_shape=(2,))
    save_checkpoint(tmp_path / "next", _net(1), SCHEDULE, sample_shape=(2,))
    os.replace(tmp_path / "next.safetensors", tmp_path / "run.safetensors")  # a save between its renames
    later = threading.Timer(0.05, os.replace, (tmp_path / "next.json", tmp_path / "run.json"))
    later.start()
    try:
        loaded = load_checkpoint(tmp_path / "run")  # sees the new weights with the old JSON, then the new pair
    finally:
        later.join()
    assert _same_weights(loaded.model, _net(1))


def test_a_reader_never_sees_a_half_written_pair_while_a_writer_rewrites_it(tmp_path):
    # the writer is another process rewriting the pair as fast as it can; the reader loads meanwhile
    save_checkpoint(tmp_path / "run", _net(0), SCHEDULE, sample_shape=(2,))
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, torch; import ddpm_course as dc; from ddpm_course.checkpoint import save_checkpoint\n"
        "from ddpm_course.models import build_model\n"
        "nets = [build_model('MLPDenoiser', {'dim': 2, 'hidden': 16, 'depth': 1, 'time_dim': 8, 'num_classes': None})"
        " for _ in range(2)]\n"
        "s = dc.linear_schedule(50); end = time.monotonic() + float(sys.argv[2]); n = 0\n"
        "while time.monotonic() < end:\n"
        "    save_checkpoint(sys.argv[1], nets[n % 2], s, sample_shape=(2,), overwrite=True); n += 1\n"
        "print(n)\n"), str(tmp_path / "run"), "4"], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    loads, failures = 0, []
    try:
        while writer.poll() is None:
            try:
                load_checkpoint(tmp_path / "run")
                loads += 1
            except ValueError as err:
                failures.append(str(err))
    finally:
        saves = int(writer.communicate(timeout=60)[0])
    assert failures == [] and loads >= 20 and saves >= 20, (loads, saves, failures[:2])


# ----------------------------------------------------------------------------- a resumed run is the same run


def test_resume_restores_threads_and_the_weights_dtype_and_refuses_other_values(tmp_path, monkeypatch, capsys):
    with monkeypatch.context() as m:
        _ctrl_c_at_call(m, 3)
        assert _train(tmp_path / "part", "--threads", "1", "--fp16-weights") == 130
    err = capsys.readouterr().err
    hint = err.split("continue with: ", 1)[1].split()
    assert hint == ["ddpm-course", "train", "--resume", str(tmp_path / "part"), "--device", "cpu", "--no-progress"]
    meta = json.loads((tmp_path / "part.json").read_text())
    assert meta["weights_dtype"] == "float16" and meta["record"]["cli_options"] == {"threads": 1, "fp16_weights": True}
    assert cli.main(["train", "--resume", str(tmp_path / "part"), "--threads", "2", "--device", "cpu"]) == 1
    assert "--threads 2 differs from the resumed run's 1" in capsys.readouterr().err
    torch.set_num_threads(2)
    assert cli.main(hint[1:]) == 0  # the printed command: threads and dtype come back from the file
    assert torch.get_num_threads() == 1
    done = json.loads((tmp_path / "part.json").read_text())
    assert done["weights_dtype"] == "float16" and done["record"]["status"] == "finished"
    with monkeypatch.context() as m:
        _ctrl_c_at_call(m, 3)
        assert _train(tmp_path / "f32") == 130
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(tmp_path / "f32"), "--fp16-weights", "--device", "cpu"]) == 1
    assert "--fp16-weights differs from the resumed run" in capsys.readouterr().err

"""Real signals at every phase of a tiny ``ddpm-course train`` run: what is on disk, the exit status.

The child (tests/_signal_child.py) pauses at exact moments (inside a training step, inside a save
after its temporary files are written) and reports when a signal has arrived, so that each signal
lands where the test says, without sleeps that race. A save is never the moment work dies:
SIGINT, SIGTERM and SIGHUP wait for the end of any save; during training they stop the run after
the step and the state is saved; the exit status is 128 + the first signal's number.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from ddpm_course import cli
from ddpm_course._signals import DeferredSignals, exit_status
from ddpm_course.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(os.name != "posix" or not hasattr(signal, "SIGHUP"), reason="POSIX signals")

CHILD = Path(__file__).with_name("_signal_child.py")
ROOT = Path(__file__).resolve().parents[1]


class Child:
    """One ``ddpm-course train`` in a subprocess, paused at the tags given."""

    def __init__(self, tmp_path: Path, *train_args: str, pause: tuple[str, ...] = (), out: str = "run"):
        self.ctl = Path(tempfile.mkdtemp(dir=tmp_path, prefix="ctl-"))
        self.out = tmp_path / out
        env = {**os.environ, "CTL": str(self.ctl), "PAUSE": ",".join(pause), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "train", "--preset", "toy2d", "--device", "cpu", "--threads", "1",
             "--no-progress", "--out", str(self.out), *train_args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def _until(self, path: Path) -> None:
        deadline = time.monotonic() + 90
        while not path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out, err = self.proc.communicate()
                pytest.fail(f"the child never reached {path.name} (status {self.proc.returncode}): {out}{err}")
            time.sleep(0.01)

    def at(self, tag: str) -> None:
        """Wait until the child is paused at ``tag``."""
        self._until(self.ctl / f"at-{tag}")

    def signal(self, tag: str, signum: int, nth: int = 1) -> None:
        """Send ``signum`` while paused at ``tag``; return once the child has noted it (its ``nth``)."""
        self.proc.send_signal(signum)
        self._until(self.ctl / f"held-{tag}-{nth}")

    def go(self, tag: str) -> None:
        (self.ctl / f"go-{tag}").touch()

    def finish(self) -> tuple[int, str]:
        try:
            _, err = self.proc.communicate(timeout=90)
        finally:
            self.proc.kill()
        return self.proc.returncode, err

    def meta(self) -> dict:
        return json.loads(self.out.with_suffix(".json").read_text())


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".bak")))


def test_sigterm_during_training_stops_after_the_step_saves_and_resumes(tmp_path):
    child = Child(tmp_path, "--steps", "6", pause=("loss3",))
    child.at("loss3")
    child.signal("loss3", signal.SIGTERM)
    child.go("loss3")
    status, err = child.finish()
    assert status == 143 == exit_status(signal.SIGTERM), err
    assert "Traceback" not in err and "interrupted at step 3 (SIGTERM)" in err
    meta = child.meta()
    assert meta["record"]["status"] == "interrupted" and meta["train_state"]["step"] == 3
    assert _leftovers(tmp_path) == []
    hint = err.split("continue with: ", 1)[1].split()
    assert hint[:4] == ["ddpm-course", "train", "--resume", str(child.out)] and "--device" in hint
    assert cli.main(hint[1:]) == 0  # the printed command continues the run
    resumed = load_checkpoint(child.out)
    assert resumed.record["status"] == "finished" and resumed.record["steps"] == 6


def test_ctrl_c_during_a_periodic_save_lets_it_finish_then_stops(tmp_path):
    child = Child(tmp_path, "--steps", "1000", "--save-every", "1e-9", pause=("running2",))
    child.at("running2")
    assert sorted(p.name for p in tmp_path.glob(".run.*.tmp"))  # mid-save: the temporaries are written
    child.signal("running2", signal.SIGINT)
    child.go("running2")
    status, err = child.finish()
    assert status == 130, err
    record = child.meta()["record"]
    assert record["status"] == "interrupted" and record["interrupted_at_step"] == 2
    assert load_checkpoint(child.out).train_state.scalars["step"] == 2
    assert _leftovers(tmp_path) == []


def test_sigterm_during_the_final_save_keeps_the_finished_checkpoint(tmp_path):
    child = Child(tmp_path, "--steps", "3", pause=("finished1",))
    child.at("finished1")
    child.signal("finished1", signal.SIGTERM)
    child.go("finished1")
    status, err = child.finish()
    assert status == 143, err
    assert "SIGTERM arrived at the end of the run; the checkpoint above was saved whole first" in err
    ckpt = load_checkpoint(child.out)
    assert ckpt.record["status"] == "finished" and ckpt.record["steps"] == 3 and ckpt.train_state is None
    assert _leftovers(tmp_path) == []


def test_signals_while_the_interrupted_state_is_saved_wait_for_it(tmp_path):
    # SIGTERM stops training; Ctrl-C ("press it again to stop at once") and SIGHUP arrive during the save
    child = Child(tmp_path, "--steps", "50", pause=("loss4", "interrupted1"))
    child.at("loss4")
    child.signal("loss4", signal.SIGTERM)
    child.go("loss4")
    child.at("interrupted1")
    child.signal("interrupted1", signal.SIGINT, nth=1)
    child.signal("interrupted1", signal.SIGHUP, nth=2)
    child.go("interrupted1")
    status, err = child.finish()
    assert status == 143, err  # the first signal's status
    assert "Traceback" not in err
    ckpt = load_checkpoint(child.out)
    assert ckpt.record["status"] == "interrupted" and ckpt.train_state.scalars["step"] == 4
    assert _leftovers(tmp_path) == []


def test_a_second_ctrl_c_during_training_stops_at_once_and_still_saves(tmp_path):
    child = Child(tmp_path, "--steps", "50", pause=("loss3",))
    child.at("loss3")
    child.signal("loss3", signal.SIGINT, nth=1)
    child.proc.send_signal(signal.SIGINT)  # the second one raises inside the paused step: it is undone
    child.go("loss3")
    status, err = child.finish()
    assert status == 130, err
    ckpt = load_checkpoint(child.out)
    assert ckpt.record["status"] == "interrupted" and ckpt.train_state.scalars["step"] == 2


def test_a_save_killed_outright_leaves_temporaries_that_the_next_run_removes(tmp_path):
    child = Child(tmp_path, "--steps", "1000", "--save-every", "1e-9", pause=("running1",))
    child.at("running1")
    child.proc.send_signal(signal.SIGKILL)  # no code runs: this is what a power cut or kill -9 leaves
    status, _ = child.finish()
    assert status == -signal.SIGKILL
    stale = sorted(p.name for p in tmp_path.glob(".run.*.tmp"))
    assert len(stale) == 2 and not child.out.with_suffix(".json").exists()
    again = Child(tmp_path, "--steps", "2", "--overwrite")
    status, err = again.finish()
    assert status == 0, err
    assert all(f"removed {tmp_path / name}, left by an earlier save that was killed" in err for name in stale)
    assert _leftovers(tmp_path) == [] and load_checkpoint(child.out).record["steps"] == 2


# ----------------------------------------------------------------------------- in this process


def test_deferred_signals_hold_then_deliver_in_order():
    seen = []
    previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for s in old:
            signal.signal(s, lambda signum, frame: seen.append(signum))
        with DeferredSignals():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            with DeferredSignals():  # nested: handed to the outer region
                os.kill(os.getpid(), signal.SIGHUP)
            assert seen == []
        assert seen == [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
        with DeferredSignals(deliver=False) as held:
            os.kill(os.getpid(), signal.SIGINT)
        assert held.pending == [signal.SIGINT] and seen == [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        signal.signal(signal.SIGUSR1, previous)


def _failing_saves(monkeypatch, fails) -> list[tuple[str, bool]]:
    """Make the n-th save fail with ENOSPC when ``fails(name, has_state, is_float16)`` says so."""
    import ddpm_course.checkpoint as checkpoint

    real, calls = checkpoint._replace_pair, []

    def replace_pair(folder, dests, blobs, overwrite):
        meta = json.loads(blobs[1])
        key = (dests[0].name, "train_state" in meta, meta["weights_dtype"] == "float16")
        calls.append(key)
        if fails(*key):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(folder, dests, blobs, overwrite)

    monkeypatch.setattr(checkpoint, "_replace_pair", replace_pair)
    return calls


def _train(out: Path, *extra: str) -> int:
    return cli.main(["train", "--preset", "toy2d", "--steps", "4", "--device", "cpu", "--no-progress",
                     "--out", str(out), *extra])


def test_a_failed_periodic_save_is_reported_and_training_goes_on(tmp_path, monkeypatch, capsys):
    failed = []
    _failing_saves(monkeypatch, lambda name, state, half: state and not failed and not failed.append(1))
    assert _train(tmp_path / "run", "--save-every", "1e-9") == 0
    err = capsys.readouterr().err
    assert "warning: the periodic save at step 1 failed ([Errno 28] No space left on device)" in err
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.record["status"] == "finished" and ckpt.record["steps"] == 4


def test_a_failed_interrupted_save_falls_back_to_the_ema_weights_alone(tmp_path, monkeypatch, capsys):
    import ddpm_course.losses as losses

    real, n = losses.l_simple, []

    def l_simple(*args, **kwargs):
        n.append(1)
        if len(n) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(losses, "l_simple", l_simple)
    calls = _failing_saves(monkeypatch, lambda name, state, half: state)  # the training state never fits
    assert _train(tmp_path / "run") == 130
    err = capsys.readouterr().err
    assert "saved the EMA weights at" in err and "losing its training state (it cannot be resumed)" in err
    assert calls == [("run.safetensors", True, False), ("run.safetensors", False, False)]
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.train_state is None and ckpt.record["status"] == "interrupted" and "note" in ckpt.record


def test_a_final_save_that_cannot_write_at_out_goes_beside_it(tmp_path, monkeypatch, capsys):
    _failing_saves(monkeypatch, lambda name, state, half: name == "run.safetensors")
    assert _train(tmp_path / "run") == 1
    err = capsys.readouterr().err
    rescued = sorted(tmp_path.glob("run-rescued-*.json"))
    assert len(rescued) == 1 and f"saved the EMA weights at {rescued[0].with_suffix('')} instead" in err
    assert load_checkpoint(rescued[0]).record["steps"] == 4
    assert not (tmp_path / "run.json").exists()


def test_a_final_save_that_cannot_write_anywhere_says_what_was_lost(tmp_path, monkeypatch, capsys):
    calls = _failing_saves(monkeypatch, lambda name, state, half: True)
    assert _train(tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert "could not save the run at step 4 ([Errno 28] No space left on device)" in err and "lost now" in err
    assert len(calls) == 4 and _leftovers(tmp_path) == [] and not list(tmp_path.glob("*.json"))


def test_nothing_non_finite_is_ever_saved(tmp_path):
    from ddpm_course.checkpoint import save_checkpoint
    from ddpm_course.models import MLPConfig, MLPDenoiser
    from ddpm_course.schedules import linear_schedule

    net = MLPDenoiser(MLPConfig(dim=2, hidden=8, depth=1, time_dim=8))
    with torch.no_grad():
        next(net.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match="the weights hold NaN or infinite values"):
        save_checkpoint(tmp_path / "bad", net, linear_schedule(10), sample_shape=(2,))
    assert list(tmp_path.iterdir()) == []


def test_a_signal_held_before_training_starts_stops_it_at_the_first_step():
    from ddpm_course.models import MLPConfig, MLPDenoiser
    from ddpm_course.schedules import linear_schedule
    from ddpm_course.train import train

    net = MLPDenoiser(MLPConfig(dim=2, hidden=8, depth=1, time_dim=8))
    with DeferredSignals(deliver=False) as held:
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. while the data was loading: held, then handed to train()
        result = train(net, linear_schedule(10), torch.randn(32, 2), steps=50, batch_size=8, progress=False)
    assert result.interrupted and result.steps == 0 and result.stop_signal == signal.SIGTERM
    assert held.pending == [] and result.state is not None

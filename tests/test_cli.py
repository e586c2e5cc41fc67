"""The ``ddpm-course`` command line: it writes what it says, refuses to overwrite, and every
failure is one ``ddpm-course: error:`` line with a non-zero exit status."""
import pytest
import torch

import ddpm_course as dc
from ddpm_course import cli
from ddpm_course.checkpoint import load_checkpoint, save_checkpoint
from ddpm_course.models import build_model
from ddpm_course.train import PRESETS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def toy_ckpt(tmp_path):
    net = build_model("MLPDenoiser", dict(dim=2, hidden=16, depth=1, time_dim=16, num_classes=None))
    path = tmp_path / "toy"
    save_checkpoint(path, net, dc.linear_schedule(), sample_shape=(2,))
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddpm-course: error: "), err
    return err[0]


def test_sample_writes_a_png_and_refuses_to_overwrite(tmp_path, toy_ckpt, capsys):
    out = tmp_path / "points.png"
    args = ["sample", "--model", str(toy_ckpt), "--sampler", "dpm_solver", "--steps", "3", "--n", "16", "--seed", "0",
            "--device", "cpu", "--out", str(out)]
    assert cli.main(args) == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = out.read_bytes()
    capsys.readouterr()
    assert cli.main(args) == 1
    assert "already exists" in _error_line(capsys)
    assert out.read_bytes() == before
    assert cli.main(args + ["--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["points.png", "toy.json", "toy.safetensors"]  # no strays


def test_sample_out_without_extension_never_touches_the_png(tmp_path, toy_ckpt, capsys):
    # matplotlib would add ".png" to "keep" after an existence check on "keep": the file checked
    # must be the file written
    keep = tmp_path / "keep.png"
    keep.write_bytes(b"a learner's picture")
    code = cli.main(["sample", "--model", str(toy_ckpt), "--steps", "2", "--n", "4", "--device", "cpu",
                     "--out", str(tmp_path / "keep")])
    assert code == 1 and "must end in one of" in _error_line(capsys)
    assert keep.read_bytes() == b"a learner's picture"
    assert not (tmp_path / "keep").exists()


def test_sample_checks_the_output_before_sampling(tmp_path, toy_ckpt, capsys, monkeypatch):
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before the output location was checked")

    monkeypatch.setattr(cli.sample, "_draw", no_sampling)
    monkeypatch.setattr(cli.sample, "_load_model", no_sampling)
    code = cli.main(["sample", "--model", str(toy_ckpt), "--out", str(tmp_path / "missing" / "grid.png")])
    assert code == 1 and "does not exist" in _error_line(capsys)


def test_sample_jpg_and_svg_are_written_under_their_own_names(tmp_path, toy_ckpt):
    for name in ("a.jpg", "b.svg"):
        out = tmp_path / name
        args = ["sample", "--model", str(toy_ckpt), "--steps", "2", "--n", "4", "--device", "cpu", "--out", str(out)]
        assert cli.main(args) == 0
        assert out.stat().st_size > 0
    assert (tmp_path / "b.svg").read_text().lstrip().startswith("<?xml")


def test_shipped_image_model_samples_a_grid(tmp_path):
    out = tmp_path / "grid.png"
    args = ["sample", "--model", "digits", "--sampler", "ddim", "--steps", "2", "--eta", "0.5", "--n", "4",
            "--device", "cpu", "--out", str(out)]
    assert cli.main(args) == 0 and out.stat().st_size > 0


def test_train_writes_a_loadable_checkpoint_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "toy"
    args = ["train", "--preset", "toy2d", "--steps", "5", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert cli.main(args) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.arch == "MLPDenoiser" and ckpt.sample_shape == (2,)
    assert ckpt.record["steps"] == 5 and ckpt.record["preset"] == "toy2d"
    assert "ddpm-course train" in ckpt.record["command"]
    before = (tmp_path / "toy.safetensors").read_bytes()
    capsys.readouterr()
    assert cli.main(args) == 1
    assert "overwrite" in _error_line(capsys)
    assert (tmp_path / "toy.safetensors").read_bytes() == before


def test_help_explains_every_option(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ["--preset", "--seed", "--steps", "--minutes", "--out", "--overwrite", "--device", "--threads",
                   "--bf16", "--precision", "--fp16-weights", "--save-every", "--resume", "--debug"]:
        assert option in text
    for name in PRESETS:
        assert name in text


def test_debug_shows_the_traceback(tmp_path, capsys):
    args = ["sample", "--model", str(tmp_path / "nothing"), "--device", "cpu", "--out", str(tmp_path / "a.png")]
    assert cli.main(args) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert cli.main(args + ["--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "FileNotFoundError" in err
    assert err.strip().splitlines()[-1].startswith("ddpm-course: error:")


def test_the_installed_script_prints_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ddpm_course.cli", "sample", "--sampler", "euler", "--eta", "0.5",
                           "--out", str(tmp_path / "a.png")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    expected = "ddpm-course: error: --eta does not apply to --sampler euler, which takes --steps, --spacing"
    assert proc.stderr.strip() == expected
    assert not (tmp_path / "a.png").exists()


def test_auto_device_is_the_best_available():
    assert cli._device("auto") == dc.pick_device()
    assert cli._device("cpu") == torch.device("cpu")


def test_ctrl_c_while_sampling_exits_130_and_writes_nothing(tmp_path, toy_ckpt, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.sample, "_draw", interrupted)
    out = tmp_path / "a.png"
    assert cli.main(["sample", "--model", str(toy_ckpt), "--device", "cpu", "--out", str(out)]) == 130
    assert _error_line(capsys) == "ddpm-course: error: interrupted"
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["toy.json", "toy.safetensors"]

"""The bigger presets (mnist, cifar10): their recipes build, and `ddpm-course train --preset ...`
runs on tiny fake MNIST/CIFAR-10 files written here (no network)."""
import json

import pytest
import torch
from _fake_datasets import cifar_md5_off, fake_cifar10, fake_mnist

from ddpm_course import cli
from ddpm_course.models import count_parameters
from ddpm_course.train import PRESETS, build_preset


@pytest.mark.parametrize("name, channels", [("mnist", 1), ("cifar10", 3)])
def test_recipes_build_a_32x32_model(name, channels):
    preset = PRESETS[name]
    assert "estimated from FLOPs" in preset.description and preset.steps and preset.batch_size
    run = build_preset(name, seed=0, data_root="no-such-folder")  # the model needs no files
    assert run.sample_shape == (channels, 32, 32)
    x = torch.zeros(2, *run.sample_shape)
    with torch.no_grad():
        assert run.model(x, torch.tensor([0, run.schedule.T - 1])).shape == x.shape
    assert f"{count_parameters(run.model) / 1e6:.1f}M parameters" in preset.description


def test_missing_files_say_how_to_get_them(tmp_path):
    run = build_preset("mnist", data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download=True"):
        run.data  # noqa: B018


def _train(tmp_path, preset: str, capsys) -> tuple[int, str, str]:
    out = tmp_path / "ckpt"
    code = cli.main(["train", "--preset", preset, "--data-root", str(tmp_path), "--steps", "2", "--batch-size", "2",
                     "--out", str(out),
                     "--device", "cpu", "--threads", "1", "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_trains_mnist_preset_on_fake_files(tmp_path, capsys):
    fake_mnist(tmp_path)
    code, out, err = _train(tmp_path, "mnist", capsys)
    assert code == 0, err
    assert "trained 2 steps" in out
    meta = json.loads((tmp_path / "ckpt.json").read_text())
    assert meta["sample_shape"] == [1, 32, 32]
    assert meta["record"]["preset"] == "mnist" and meta["record"]["steps"] == 2 and meta["record"]["batch_size"] == 2


def test_cli_trains_cifar10_preset_on_fake_files(tmp_path, monkeypatch, capsys):
    fake_cifar10(tmp_path)
    cifar_md5_off(monkeypatch)
    code, out, err = _train(tmp_path, "cifar10", capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "ckpt.json").read_text())
    assert meta["sample_shape"] == [3, 32, 32] and meta["record"]["preset"] == "cifar10"


def test_cli_without_files_says_to_download(tmp_path, capsys):
    code, out, err = _train(tmp_path, "mnist", capsys)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddpm-course: error:")
    assert "--download" in lines[0] and str(tmp_path) in lines[0]
    assert not (tmp_path / "ckpt.json").exists()

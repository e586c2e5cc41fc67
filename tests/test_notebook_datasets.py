"""Lessons 05 and 06 with `DATASET = "mnist"` or `"cifar10"`, run end to end on tiny fake files.

Each lesson's cell tagged "parameters" gets new values (the way papermill does it), and the
notebook runs in a fresh kernel: lesson 05 trains the preset's U-Net on the fake set and saves
it (`SAVE_AS`), lesson 06 samples from that checkpoint (`CHECKPOINT`). Only the size knobs are
turned down (steps, batch, samples, chains); every other cell, assert and print runs as a
learner's would. No network: the files are written here.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from _fake_datasets import CIFAR_MD5_OFF, fake_cifar10, fake_mnist
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

# Lessons in a kernel: run once per CI run, not again in its second CPU configuration (.ci/run).
pytestmark = pytest.mark.kernel

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def with_parameters(lesson: str, values: dict, preamble: str = "") -> nbformat.NotebookNode:
    """The lesson's notebook with ``values`` assigned in its parameters cell; every name must be there."""
    nb = jupytext.read(NOTEBOOKS / f"{lesson}.py")
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{lesson} must have one cell tagged 'parameters'; found {len(cells)}"
    source = cells[0].source
    for name, value in values.items():
        source, n = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", source, flags=re.MULTILINE)
        assert n == 1, f"{lesson}'s parameters cell does not set {name}"
    cells[0].source = source
    if preamble:
        nb.cells.insert(0, nbformat.v4.new_code_cell(preamble))
    return nb


class _ThisPython(KernelSpecManager):
    """Every kernel is this interpreter (as nbval's --nbval-current-env), whatever kernels are installed."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name="this Python", language="python")


def run(nb: nbformat.NotebookNode, cwd: Path) -> list[str]:
    """Execute in a fresh kernel with ``cwd`` as the working folder; returns every stream output."""
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())
    NotebookClient(nb, km=km, timeout=900, resources={"metadata": {"path": str(cwd)}}).execute()
    return [out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if out.output_type == "stream"]


@pytest.mark.parametrize("dataset, channels", [("mnist", 1), ("cifar10", 3)])
def test_lessons_05_and_06_on_a_torchvision_dataset(tmp_path, dataset, channels):
    root = tmp_path / "data"
    if dataset == "mnist":
        fake_mnist(root, n=24)
    else:
        fake_cifar10(root, n=24)
    preamble = CIFAR_MD5_OFF if dataset == "cifar10" else ""
    saved = tmp_path / f"{dataset}_run"

    lesson05 = with_parameters("05_training", dict(
        DATASET=dataset, DATA_ROOT=str(root), TRAIN_STEPS=80, BATCH_SIZE=4, N_SAMPLES=2, SAVE_AS=str(saved),
    ), preamble)
    printed = "".join(run(lesson05, tmp_path))
    n_train = 24 if dataset == "mnist" else 5 * 24  # CIFAR-10's train split is five batch files
    assert f"{n_train} training images of shape ({channels}, 32, 32)" in printed
    meta = json.loads(saved.with_suffix(".json").read_text())
    assert meta["sample_shape"] == [channels, 32, 32]
    assert meta["record"]["dataset"] == dataset and meta["record"]["steps"] == 80
    assert meta["record"]["batch_size"] == 4
    assert meta["config"]["base_channels"] == (64 if dataset == "mnist" else 96)  # the preset's U-Net

    lesson06 = with_parameters("06_sampling", dict(
        DATASET=dataset, DATA_ROOT=str(root), CHECKPOINT=str(saved), N_CHAINS=1,
    ), preamble)
    printed = "".join(run(lesson06, tmp_path))
    assert "your model: " in printed and "of the chains end nearer to a training image" in printed
    assert "same seed: identical samples" in printed


def test_lesson_06_refuses_a_checkpoint_of_another_shape(tmp_path):
    from nbclient.exceptions import CellExecutionError

    root = tmp_path / "data"
    fake_mnist(root, n=4)
    digits = Path(__file__).resolve().parents[1] / "ddpm_course" / "pretrained" / "digits"  # 16x16, not 32x32
    nb = with_parameters("06_sampling", dict(DATASET="mnist", DATA_ROOT=str(root), CHECKPOINT=str(digits)))
    with pytest.raises(CellExecutionError, match=r"samples of shape \(1, 16, 16\), but mnist images have shape"):
        run(nb, tmp_path)

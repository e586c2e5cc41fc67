"""The course installs like a library: the wheel and the sdist carry every shipped file, and the
installed wheel runs lesson 01 and a sampler from outside the checkout.

A missing package-data line would pass every other test (they import the checkout); this one
builds the distributions from the tracked files, installs the wheel into a fresh virtual
environment (its dependencies come from this interpreter's site-packages, wherever they are: a
system Python, a venv, a conda env; see ``tests/_venv.py``; no network is needed) and runs there,
in an empty folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from _venv import make_venv

ROOT = Path(__file__).resolve().parent.parent


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the wheel test builds from git's tracked files; this is not a git checkout")
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


# `dists` (the sdist and the wheel, built once per run) is a fixture of tests/conftest.py, shared with
# tests/test_colab.py.


def _shipped_files() -> list[str]:
    return sorted(
        name for name in _tracked_files() if name.startswith("ddpm_course/") and not name.endswith(".pyc")
    )


def test_wheel_carries_every_package_file(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
    missing = [name for name in _shipped_files() if name not in names]
    assert not missing, f"the wheel lacks {missing}: add them to [tool.setuptools.package-data]"
    assert "ddpm_course/pretrained/digit_classifier.safetensors" in names


def test_sdist_carries_every_package_file_and_the_lessons(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = [name for name in _shipped_files() if name not in names]
    assert not missing, f"the sdist lacks {missing}"


@pytest.fixture(scope="module")
def venv_python(dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (no network: dependencies are
    borrowed from this interpreter's site-packages)."""
    python = make_venv(tmp_path_factory.mktemp("venv"))
    # --force-reinstall: the outer environment may hold the same version (an editable install of
    # this checkout), which pip would otherwise count as already installed.
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall",
         str(dists["wheel"])],
        check=True, capture_output=True, env=_env(),
    )
    return python


def _env() -> dict[str, str]:
    """This environment without PYTHONPATH, so that nothing but the venv decides what is imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MPLBACKEND"] = "Agg"  # a script, not a notebook: figures are drawn and dropped
    return env


def _run(python: Path, cwd: Path, *args: str) -> str:
    result = subprocess.run([str(python), *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_installed_wheel_samples_outside_the_checkout(venv_python, tmp_path):
    script = (
        "import torch, ddpm_course as dc\n"
        "from pathlib import Path\n"
        "print(Path(dc.__file__).resolve())\n"
        "m = dc.pretrained('digits')\n"
        "x = dc.samplers.ddim_sample(m.model, m.schedule, (2, *m.sample_shape), steps=5,"
        " generator=torch.Generator().manual_seed(0))\n"
        "assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()\n"
        "print('sampled', tuple(x.shape))\n"
    )
    out = _run(venv_python, tmp_path, "-c", script)
    installed = Path(out.splitlines()[0])
    assert venv_python.parent.parent.resolve() in installed.parents, f"imported {installed}, not the installed wheel"
    assert "sampled (2, 1, 16, 16)" in out


@pytest.mark.kernel
def test_installed_wheel_runs_lesson_01(venv_python, tmp_path):
    lesson = tmp_path / "01_fog.py"
    shutil.copy2(ROOT / "notebooks" / "01_fog.py", lesson)
    # IPython runs the lesson's py:percent source as the notebook would (display() included).
    _run(venv_python, tmp_path, "-m", "IPython", "--no-banner", "--quick", "-c", f"%run {lesson.name}")


def test_installed_wheel_has_the_command_line(venv_python, tmp_path):
    cli = venv_python.parent / ("ddpm-course.exe" if os.name == "nt" else "ddpm-course")
    assert cli.exists()
    result = subprocess.run([str(cli), "--help"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "sample" in result.stdout

"""Shared fixtures for the unit tests."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one torch thread: the oracle's tensors are tiny, and on a busy machine a
    second thread only adds hand-offs. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


@pytest.fixture(params=_devices())
def device(request) -> torch.device:
    """Every device this machine has: the CPU, plus CUDA and Apple's MPS when present, so the
    same tests run unchanged on a GPU machine."""
    return torch.device(request.param)


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built once per test run from a copy of git's tracked files (the
    checkout stays untouched); tests/test_wheel.py and tests/test_colab.py install them. With
    ``DDPM_COURSE_DIST=folder`` they are that folder's files instead (the release workflow tests
    the very files it publishes)."""
    if os.environ.get("DDPM_COURSE_DIST"):
        given = Path(os.environ["DDPM_COURSE_DIST"])
        sdists, wheels = sorted(given.glob("*.tar.gz")), sorted(given.glob("*.whl"))
        assert len(sdists) == 1 and len(wheels) == 1, f"DDPM_COURSE_DIST={given} must hold one sdist and one wheel"
        return {"sdist": sdists[0].resolve(), "wheel": wheels[0].resolve()}
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the distributions are built from git's tracked files; this is not a git checkout")
    src = tmp_path_factory.mktemp("src")
    for name in listed.splitlines():
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    for hook in ("build_sdist", "build_wheel"):  # one process each: the backend keeps state between them
        build = f"import sys, setuptools.build_meta as b; print(b.{hook}(sys.argv[1]))"
        subprocess.run([sys.executable, "-c", build, str(out)], cwd=src, check=True, capture_output=True)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}

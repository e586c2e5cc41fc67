"""Shared fixtures for the unit tests."""
from __future__ import annotations

from pathlib import Path

import _colab_env
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
def dists() -> dict[str, Path]:
    """The sdist and the wheel, built once per test run from a copy of git's tracked files (the
    checkout stays untouched); tests/test_wheel.py and tests/test_colab.py install them, and
    nbval's kernel runs the lessons from the wheel. With ``DDPM_COURSE_DIST=folder`` they are that
    folder's files instead (the release workflow tests the very files it publishes)."""
    try:
        return _colab_env.dists()
    except LookupError as err:
        pytest.skip(str(err))

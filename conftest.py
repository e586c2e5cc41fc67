"""Repository-wide pytest configuration.

nbval compares every notebook's stored outputs with a fresh run. stderr carries warnings and
progress bars that differ between machines, so it is left out of the comparison; stdout and
every cell result are still compared.

The notebooks run as Colab runs them: nbval's kernel is the Colab-shaped environment of
``tests/_colab_env.py`` (the wheel built from the tracked files, ipywidgets 7, no development
tools, an empty working folder), so one run of each lesson checks both its stored outputs and
that it works from the installed package. ``DDPM_COURSE_NBVAL_KERNEL=checkout`` runs them in
this interpreter instead (``--nbval-current-env``: the checkout, as a maintainer edits it); so
does a machine that cannot install ipywidgets 7, with a warning at the end of the run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))  # the helpers shared with the unit tests
import _colab_env  # noqa: E402

_KERNEL: dict[str, str] = {}  # "name" (the kernel the notebooks ran in), "fallback" (why not Colab-shaped) or "error"


def pytest_collectstart(collector):
    if str(getattr(collector, "fspath", "")).endswith(".ipynb") and hasattr(collector, "skip_compare"):
        collector.skip_compare += ("stderr",)


def _use_colab_kernel(config) -> None:
    """Point nbval at the Colab-shaped kernel (built on the first notebook), or say why not."""
    choice = os.environ.get("DDPM_COURSE_NBVAL_KERNEL", "colab")
    if choice not in ("colab", "checkout"):
        _KERNEL["error"] = f"DDPM_COURSE_NBVAL_KERNEL must be colab or checkout; got {choice!r}"
        raise RuntimeError(_KERNEL["error"])
    if choice == "checkout":
        _KERNEL["name"] = f"this interpreter ({sys.executable}), as DDPM_COURSE_NBVAL_KERNEL=checkout asks"
        return
    try:
        folder = _colab_env.kernels_folder()
    except (_colab_env.NoColabEnvironment, LookupError) as err:
        _KERNEL["fallback"] = str(err)
        return
    except Exception as err:  # a wheel that does not build: every notebook fails, once each, saying why
        _KERNEL["error"] = f"the Colab-shaped kernel could not be built: {err!r}"
        raise
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(folder), *filter(None, [os.environ.get("JUPYTER_PATH")])])
    config.option.nbval_current_env = False
    config.option.nbval_kernel_name = _colab_env.KERNEL_NAME
    _KERNEL["name"] = f"the Colab-shaped kernel ({_colab_env.colab_python()})"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Runs before the notebook's collector starts its kernel (pytest's own setup comes after)."""
    if type(item).__name__ != "IPyNbCell":
        return
    if "error" in _KERNEL:
        raise RuntimeError(_KERNEL["error"])
    if not _KERNEL:
        _use_colab_kernel(item.config)


def pytest_terminal_summary(terminalreporter):
    if "name" in _KERNEL:
        terminalreporter.write_line(f"nbval ran the notebooks in {_KERNEL['name']}")
    elif "fallback" in _KERNEL:
        terminalreporter.write_line(f"WARNING: nbval ran the notebooks in this interpreter, not shaped like Colab: "
                                    f"{_KERNEL['fallback']}", yellow=True, bold=True)

"""Every lesson runs as Colab runs it: from the installed wheel, alone in an empty folder.

The lessons run once, under nbval, in a kernel of the Colab-shaped environment that
``tests/_colab_env.py`` builds (the repository's ``conftest.py`` points nbval at it): the wheel
built from the tracked files and installed without the checkout on the path, ipywidgets 7 (Colab's
7.7) installed from the package index, the other packages borrowed from this interpreter, the dev
extra's tools unimportable, and a working folder that is empty, as Colab's. A lesson that reads
``solutions/``, ``benchmarks/`` or a data file of the repository, imports a tool that only the dev
extra installs, or needs ipywidgets 8, fails its nbval run.

This file checks that environment and that kernel (so a kernel that quietly imported the
checkout cannot pass for it), that every lesson starts with the install cell (pip only on Colab),
and the install cell's success and failure paths.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import _colab_env
import nbformat
import pytest

from ddpm_course import _colab

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_env = _colab_env.env_without_pythonpath


@pytest.fixture(scope="module")
def colab_python(dists) -> Path:
    try:
        return _colab_env.colab_python()
    except _colab_env.NoColabEnvironment as err:
        pytest.skip(str(err))


_PROBE = """\
import json, os, sys
import ddpm_course, ipywidgets
blocked = []
for name in {blocked!r}:
    try:
        __import__(name)
        blocked.append(name)
    except ImportError:
        pass
print("PROBE " + json.dumps({{"python": sys.executable, "ddpm_course": ddpm_course.__file__, "cwd": os.getcwd(),
                             "files": os.listdir("."), "path": sys.path,
                             "ipywidgets": ipywidgets.__version__, "importable dev tools": blocked}}))
"""


@pytest.mark.kernel  # the lessons' environment: built once, in .ci/run's first pass
def test_the_environment_is_shaped_like_colab(colab_python, tmp_path):
    check = (
        "import json, sys, importlib.metadata as m\n"
        "from packaging.requirements import Requirement\n"
        "import ddpm_course, ipywidgets, torch\n"
        "unmet = []\n"
        "for line in m.requires('ddpm-course'):\n"
        "    r = Requirement(line)\n"
        "    if r.marker is None or r.marker.evaluate({'extra': 'colab'}):\n"
        "        try:\n"
        "            if not r.specifier.contains(m.version(r.name), prereleases=True): unmet.append(line)\n"
        "        except m.PackageNotFoundError:\n"
        "            unmet.append(line)\n"
        "print(json.dumps({'prefix': sys.prefix, 'ddpm_course': ddpm_course.__file__,\n"
        "    'ipywidgets': [ipywidgets.__version__, ipywidgets.__file__], 'unmet': unmet}))\n"
    )
    out = subprocess.run([str(colab_python), "-c", check], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, check=True).stdout
    seen = json.loads(out.splitlines()[-1])
    prefix = Path(seen["prefix"])
    assert prefix in Path(seen["ddpm_course"]).parents, f"ddpm_course came from {seen['ddpm_course']}"
    version, where = seen["ipywidgets"]
    assert version.startswith("7.") and prefix in Path(where).parents, seen["ipywidgets"]
    assert seen["unmet"] == [], f"the wheel's requirements (with the colab extra) unmet: {seen['unmet']}"
    blocked = subprocess.run([str(colab_python), "-c", "import jupytext"], env=_env(), capture_output=True, text=True)
    assert blocked.returncode != 0 and "development tool" in blocked.stderr


@pytest.mark.kernel
def test_nbvals_kernel_is_the_colab_shaped_one(colab_python, dists, monkeypatch):
    """The kernel started as nbval starts it (by name, found on JUPYTER_PATH, asked to start in
    the notebooks' folder, with this checkout on PYTHONPATH): the wheel's ddpm_course, ipywidgets 7,
    no dev tools, an empty working folder, nothing of the checkout on sys.path."""
    from nbval.kernel import RunningKernel

    monkeypatch.setenv("JUPYTER_PATH", str(_colab_env.kernels_folder()))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    kernel = RunningKernel(_colab_env.KERNEL_NAME, cwd=str(ROOT / "notebooks"))
    try:
        msg_id = kernel.execute_cell_input(_PROBE.format(blocked=_colab_env.dev_only_modules(dists["wheel"])),
                                           allow_stdin=False)
        text = ""
        while "PROBE " not in text:
            msg = kernel.get_message(stream="iopub", timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            assert msg["msg_type"] != "error", msg["content"]
    finally:
        kernel.stop()
    seen = json.loads(text[text.index("PROBE "):].removeprefix("PROBE ").splitlines()[0])
    prefix = colab_python.parent.parent.resolve()
    assert Path(seen["python"]).parent.parent.resolve() == prefix, seen["python"]
    assert prefix in Path(seen["ddpm_course"]).resolve().parents, f"imported {seen['ddpm_course']}, not the wheel"
    assert seen["ipywidgets"].startswith("7."), seen["ipywidgets"]
    assert seen["importable dev tools"] == []
    assert seen["files"] == [] and ROOT not in Path(seen["cwd"]).resolve().parents, seen["cwd"]
    assert not [p for p in seen["path"] if p and Path(p).resolve() in (ROOT, ROOT / "notebooks", ROOT / "tests")]


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_starts_with_the_install_cell(lesson):
    nb = nbformat.read(ROOT / "notebooks" / lesson, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == _colab.install_cell(), f"{lesson}: the first code cell is not the install cell"


def _run_install_cell(tmp_path: Path, **pip_env: str) -> subprocess.CompletedProcess:
    """Every lesson's first cell, run as on Colab (a ``google.colab`` module is present), with pip
    configured through its environment variables; pip installs into a folder of its own."""
    fake_colab = "import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
    env = {k: v for k, v in _env().items() if not k.startswith("PIP_")}  # no pip.conf or PIP_* of this machine
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_TARGET=str(tmp_path / "target"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(pip_env)
    return subprocess.run([sys.executable, "-c", fake_colab + _colab.install_cell()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("why, pip_env", [
    ("no release on the index", {"PIP_NO_INDEX": "1"}),
    ("no network or a proxy", {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}),
])
def test_a_failed_install_prints_what_to_do(tmp_path, why, pip_env):
    result = _run_install_cell(tmp_path, **pip_env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stdout == _colab.FAILURE_MESSAGE + "\n"
    assert "ddpm-course" in result.stderr  # pip's own reason, above the paragraph
    message = result.stdout
    assert _colab.REQUIREMENT in message
    assert _colab.FROM_ARCHIVE in message and _colab.ARCHIVE_URL.startswith(_colab.REPOSITORY + "/archive/")
    assert _colab.FROM_WHEEL in message


def test_the_install_cell_installs_this_version_and_nothing_else(dists, tmp_path):
    """The cell asks pip for REQUIREMENT only; offered just the wheel built here, pip takes it (the
    version range admits this version) and the cell prints nothing."""
    tree = ast.parse(_colab.install_cell())
    lists = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.List)]
    assert lists == [f"[sys.executable, '-m', 'pip', 'install', '-q', {_colab.REQUIREMENT!r}]"]
    assert _colab.REQUIREMENT == f"ddpm-course[colab]{_colab.VERSION_RANGE}"
    result = _run_install_cell(tmp_path, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(dists["wheel"].parent), PIP_NO_DEPS="1")
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    assert list((tmp_path / "target").glob("ddpm_course-*.dist-info"))


def test_off_colab_the_install_cell_does_nothing(tmp_path):
    env = {**_env(), "PIP_NO_INDEX": "1", "PIP_TARGET": str(tmp_path / "target"), "PIP_CONFIG_FILE": os.devnull}
    result = subprocess.run([sys.executable, "-c", _colab.install_cell()], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert not (tmp_path / "target").exists()

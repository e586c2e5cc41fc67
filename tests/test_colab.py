"""Every lesson runs as Colab runs it: from the installed wheel, alone in an empty folder.

The other notebook tests import the checkout, so a lesson that reads ``solutions/``,
``benchmarks/`` or a data file of the repository, or imports a tool that only the dev extra
installs, would pass them and fail on Colab. Here each lesson's ``.ipynb`` is copied alone into
an empty folder and executed there through nbclient in a fresh kernel of a virtual environment
shaped like Colab's:

- the wheel built from the tracked files (``dists`` in conftest.py), installed without the
  checkout on the path (no PYTHONPATH, no editable install);
- ipywidgets 7 (Colab ships 7.7), installed into the environment from the package index, so it
  shadows this environment's ipywidgets 8;
- the other packages (torch, diffusers of the ``colab`` extra, Jupyter's kernel) borrowed from
  this interpreter (``tests/_venv.py``), so nothing big is downloaded;
- the dev extra's tools (pytest, nbval, jupytext, ...) made unimportable in the kernel.

The install cell (pip only on Colab) is replaced by a cell that reports where ``ddpm_course``
and ipywidgets were imported from. Where a lesson has a parameters cell, only its size
parameters may be turned down (``SMALLER``); every other cell and assert runs as a learner's.
The first cell's failure path is tested by running that cell with pip pointed at no index.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from _venv import make_venv
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from ddpm_course import _colab

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# Size parameters turned down for this run (lesson stem -> {name: value}), each in the lesson's
# parameters cell; a lesson not listed runs as stored. These are the knobs of each lesson's
# slowest cell (the digits sampled per sampler, per class, and the 1000-step chains), halved or
# less: the checks after them are stated in standard errors or against real data of the same
# size. Lesson 10 runs at its stored size: at 100 digits per seed its precision check failed
# (0.850 against real digits' 0.956 - 0.1).
SMALLER: dict[str, dict[str, object]] = {
    "06_sampling": {"N_CHAINS": 2},
    "07_fast_samplers": {"N_DIGITS": 128},
    "08_guidance": {"PER_CLASS": 6},
    "12_score_and_flow": {"N_DIGITS": 128},
}

# The kernel needs ipykernel (Colab has it); the colab extra is installed there too.
_KERNEL_NEEDS = {"ipykernel"}


def _requirement_name(line: str) -> str:
    return re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0].lower().replace("_", "-")


def _dev_only_modules(wheel: Path) -> list[str]:
    """Top-level modules of the distributions that only the wheel's dev extra installs (not the
    colab extra, not the kernel), as this environment has them."""
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line.split(":", 1)[1].strip() for line in zf.read(name).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    dev = {_requirement_name(r) for r in requires if 'extra == "dev"' in r}
    colab = {_requirement_name(r) for r in requires if 'extra == "colab"' in r}
    modules = set()
    for module, dists in metadata.packages_distributions().items():
        if any(d.lower().replace("_", "-") in dev - colab - _KERNEL_NEEDS for d in dists) and module.isidentifier():
            modules.add(module)
    return sorted(modules)


_BLOCKER = '''"""Colab has no development tools: importing one of these fails as if it were not installed."""
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {blocked!r}


class _NotOnColab(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (a development tool; Colab has none)", name=name)
        return None


sys.meta_path.insert(0, _NotOnColab())
'''


def _env() -> dict[str, str]:
    """This environment without PYTHONPATH: only the venv decides what is imported."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def colab_python(dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = make_venv(tmp_path_factory.mktemp("colab-venv"))
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True, env=_env()).stdout.strip())
    blocked = _dev_only_modules(dists["wheel"])
    assert {"pytest", "nbval", "jupytext"} <= set(blocked), blocked
    (purelib / "_colab_shape.py").write_text(_BLOCKER.format(blocked=blocked))
    (purelib / "_colab_shape.pth").write_text("import _colab_shape\n")
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "ipywidgets>=7.6,<8"],
                         capture_output=True, text=True, env=_env())
    if pip.returncode != 0:
        pytest.skip(f"ipywidgets 7 could not be installed (no package index?): {pip.stderr.strip()[-500:]}")
    # --force-reinstall: the outer environment may hold the same version (an editable install of
    # this checkout), which pip would otherwise count as already installed.
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall",
                    str(dists["wheel"])], check=True, capture_output=True, env=_env())
    return python


_PROBE = """\
import json, sys
import ddpm_course, ipywidgets
blocked = []
for name in {blocked!r}:
    try:
        __import__(name)
        blocked.append(name)
    except ImportError:
        pass
print("PROBE " + json.dumps({{"python": sys.executable, "ddpm_course": ddpm_course.__file__,
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


def _parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The cell tagged ``parameters``, else the first code cell after the install cell that only
    assigns literals (the lessons' untagged parameters cells)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        if "parameters" in cell.metadata.get("tags", []):
            return cell
    for cell in code[1:]:
        try:
            body = ast.parse(cell.source).body
            if body and all(isinstance(s, ast.Assign) and ast.literal_eval(s.value) is not None for s in body):
                return cell
        except (SyntaxError, ValueError):
            pass
        return None
    return None


def _cpu_seconds(km: KernelManager) -> float:
    """CPU time the kernel has used (user + system, all threads; read from /proc, so Linux only):
    on a busy machine a steadier measure of a lesson's cost than wall time."""
    try:
        fields = Path(f"/proc/{km.provisioner.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, AttributeError, ValueError, IndexError):
        return float("nan")


class _VenvKernels(KernelSpecManager):
    """Every kernel is the Colab-shaped environment's python."""

    python: str = ""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=[self.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name="Colab-shaped", language="python")


@pytest.mark.kernel
@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_from_the_installed_wheel(lesson, dists, colab_python, tmp_path, record_property):
    folder = tmp_path / "content"  # empty but for the lesson, as Colab's working folder
    folder.mkdir()
    shutil.copy2(ROOT / "notebooks" / lesson, folder / lesson)
    nb = nbformat.read(folder / lesson, as_version=4)

    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == _colab.install_cell(), f"{lesson}: the first code cell is not the install cell"
    first.source = _PROBE.format(blocked=_dev_only_modules(dists["wheel"]))

    smaller = SMALLER.get(lesson.removesuffix(".ipynb"), {})
    if smaller:
        cell = _parameters_cell(nb)
        assert cell is not None, f"{lesson} has no parameters cell to turn down {sorted(smaller)}"
        for name, value in smaller.items():
            cell.source, n = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", cell.source, flags=re.MULTILINE)
            assert n == 1, f"{lesson}'s parameters cell does not set {name}"

    kernels = _VenvKernels()
    kernels.python = str(colab_python)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=kernels)
    start = time.perf_counter()
    try:
        NotebookClient(nb, km=km, timeout=900, resources={"metadata": {"path": str(folder)}}).execute(env=_env())
        seconds = time.perf_counter() - start
        cpu = _cpu_seconds(km)
    finally:  # nbclient leaves a kernel it was handed running
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    record_property("seconds", round(seconds, 1))
    print(f"{lesson}: {seconds:.0f} s of wall time, {cpu:.0f} s of kernel CPU time, in the Colab-shaped kernel")

    probe = next(line for out in nb.cells[nb.cells.index(first)].outputs if out.output_type == "stream"
                 for line in out.text.splitlines() if line.startswith("PROBE "))
    seen = json.loads(probe.removeprefix("PROBE "))
    prefix = colab_python.parent.parent.resolve()
    assert Path(seen["python"]).parent.parent.resolve() == prefix, seen["python"]
    assert prefix in Path(seen["ddpm_course"]).resolve().parents, f"imported {seen['ddpm_course']}, not the wheel"
    assert seen["ipywidgets"].startswith("7."), seen["ipywidgets"]
    assert seen["importable dev tools"] == []
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.get("execution_count"), f"{lesson}: the last code cell did not run"


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

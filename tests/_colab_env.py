"""The distributions and the Colab-shaped environment, built once per test run and shared.

Three users: the ``dists`` fixture (``tests/conftest.py``: ``test_wheel.py`` and ``test_colab.py``
install the wheel), ``test_colab.py``'s checks of the environment, and nbval (the repository's
``conftest.py``), whose notebooks run in a kernel of this environment:

- the wheel built from a copy of git's tracked files, installed without the checkout on the
  path (no PYTHONPATH, no editable install);
- ipywidgets 7 (Colab ships 7.7), installed from the package index, so it shadows this
  environment's ipywidgets 8;
- the other packages (torch, diffusers of the ``colab`` extra, Jupyter's kernel) borrowed from
  this interpreter (``_venv.py``), so nothing big is downloaded;
- the dev extra's tools (pytest, nbval, jupytext, ...) made unimportable;
- a kernel (``KERNEL_NAME``) that starts in an empty folder of its own, as Colab's ``/content``,
  with ``python -E`` (no PYTHONPATH can bring the checkout back).
"""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from _venv import make_venv

ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAME = "ddpm-course-colab"

# The kernel needs ipykernel (Colab has it); the colab extra is installed there too.
_KERNEL_NEEDS = {"ipykernel"}

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

_LAUNCHER = '''"""Start the kernel as Colab does: in an empty working folder of its own."""
import os
import sys
import tempfile

del sys.path[0]  # this script's folder; the kernel puts its working folder ("") first
os.chdir(tempfile.mkdtemp(prefix="content-"))

from ipykernel import kernelapp  # noqa: E402

kernelapp.launch_new_instance()
'''


class NoColabEnvironment(RuntimeError):
    """ipywidgets 7 could not be installed (no package index?): no Colab-shaped environment."""


def env_without_pythonpath() -> dict[str, str]:
    """This environment without PYTHONPATH: only the venv decides what is imported."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


_built: dict[str, object] = {}


def _scratch() -> Path:
    if "scratch" not in _built:
        folder = Path(tempfile.mkdtemp(prefix="ddpm-course-dists-"))
        atexit.register(shutil.rmtree, folder, True)
        _built["scratch"] = folder
    return _built["scratch"]  # type: ignore[return-value]


def dists() -> dict[str, Path]:
    """The sdist and the wheel, built once per process from a copy of git's tracked files (the
    checkout stays untouched). With ``DDPM_COURSE_DIST=folder`` they are that folder's files
    instead (the release workflow tests the very files it publishes). Raises ``LookupError``
    outside a git checkout."""
    if "dists" in _built:
        return _built["dists"]  # type: ignore[return-value]
    if os.environ.get("DDPM_COURSE_DIST"):
        given = Path(os.environ["DDPM_COURSE_DIST"])
        sdists, wheels = sorted(given.glob("*.tar.gz")), sorted(given.glob("*.whl"))
        assert len(sdists) == 1 and len(wheels) == 1, f"DDPM_COURSE_DIST={given} must hold one sdist and one wheel"
        found = {"sdist": sdists[0].resolve(), "wheel": wheels[0].resolve()}
    else:
        try:
            listed = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            raise LookupError("the distributions are built from git's tracked files; "
                              "this is not a git checkout") from err
        src = _scratch() / "src"
        for name in listed.splitlines():
            if (ROOT / name).is_file():
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, src / name)
        out = _scratch() / "dist"
        out.mkdir()
        for hook in ("build_sdist", "build_wheel"):  # one process each: the backend keeps state between them
            build = f"import sys, setuptools.build_meta as b; print(b.{hook}(sys.argv[1]))"
            subprocess.run([sys.executable, "-c", build, str(out)], cwd=src, check=True, capture_output=True)
        (sdist,) = out.glob("*.tar.gz")
        (wheel,) = out.glob("*.whl")
        found = {"sdist": sdist, "wheel": wheel}
    _built["dists"] = found
    return found


def _requirement_name(line: str) -> str:
    return re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0].lower().replace("_", "-")


def dev_only_modules(wheel: Path) -> list[str]:
    """Top-level modules of the distributions that only the wheel's dev extra installs (not the
    colab extra, not the kernel), as this environment has them."""
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line.split(":", 1)[1].strip() for line in zf.read(name).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    dev = {_requirement_name(r) for r in requires if 'extra == "dev"' in r}
    colab = {_requirement_name(r) for r in requires if 'extra == "colab"' in r}
    modules = set()
    for module, names in metadata.packages_distributions().items():
        if any(d.lower().replace("_", "-") in dev - colab - _KERNEL_NEEDS for d in names) and module.isidentifier():
            modules.add(module)
    return sorted(modules)


def colab_python() -> Path:
    """The Colab-shaped environment's python, built once per process; raises
    :class:`NoColabEnvironment` when ipywidgets 7 cannot be installed."""
    if "python" in _built:
        return _built["python"]  # type: ignore[return-value]
    if "no env" in _built:
        raise NoColabEnvironment(_built["no env"])
    wheel = dists()["wheel"]
    python = make_venv(_scratch() / "colab-venv")
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(subprocess.run([str(python), "-c", where], check=True, capture_output=True, text=True,
                                  env=env_without_pythonpath()).stdout.strip())
    (purelib / "_colab_shape.py").write_text(_BLOCKER.format(blocked=dev_only_modules(wheel)))
    (purelib / "_colab_shape.pth").write_text("import _colab_shape\n")
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "ipywidgets>=7.6,<8"],
                         capture_output=True, text=True, env=env_without_pythonpath())
    if pip.returncode != 0:
        _built["no env"] = f"ipywidgets 7 could not be installed (no package index?): {pip.stderr.strip()[-500:]}"
        raise NoColabEnvironment(_built["no env"])
    # --force-reinstall: the outer environment may hold the same version (an editable install of
    # this checkout), which pip would otherwise count as already installed.
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall",
                    str(wheel)], check=True, capture_output=True, env=env_without_pythonpath())
    _built["python"] = python
    return python


def kernels_folder() -> Path:
    """A Jupyter data folder whose ``kernels/KERNEL_NAME`` starts the Colab-shaped python in an
    empty folder (put it first on ``JUPYTER_PATH``); raises :class:`NoColabEnvironment`."""
    if "kernels" in _built:
        return _built["kernels"]  # type: ignore[return-value]
    python = colab_python()
    folder = _scratch() / "jupyter"
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "launch.py").write_text(_LAUNCHER)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-E", str(spec / "launch.py"), "-f", "{connection_file}"],
        "display_name": "Colab-shaped (ddpm-course wheel, ipywidgets 7)", "language": "python",
    }, indent=1))
    _built["kernels"] = folder
    return folder

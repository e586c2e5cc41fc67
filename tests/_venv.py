"""A fresh virtual environment that borrows this interpreter's packages, wherever they live.

``python -m venv --system-site-packages`` exposes the *base* interpreter's site-packages: run
from inside a virtual environment (what most people do) or a conda env, that is not where torch
is, and the new environment cannot import it. Instead the new environment gets a ``.pth`` file
listing the site directories on this interpreter's ``sys.path`` (its own, the system's it may
inherit, the user's). Lines of a ``.pth`` file are appended to ``sys.path`` after the environment's
own site-packages, so what is installed into the new environment wins, and ``.pth`` files inside
the borrowed folders are not run, so an editable install of this checkout stays out of it. No
package is downloaded.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def borrowed_site_dirs() -> list[str]:
    """The site directories this interpreter imports from, in its order (no duplicates)."""
    seen: list[str] = []
    for entry in sys.path:
        path = Path(entry) if entry else None
        if path and path.is_dir() and path.name in ("site-packages", "dist-packages") and str(path) not in seen:
            seen.append(str(path))
    return seen


def make_venv(where: Path) -> Path:
    """Create a virtual environment at ``where`` that sees this interpreter's packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, capture_output=True)
    python = where / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(purelib) / "_borrowed_site_packages.pth").write_text("\n".join(borrowed_site_dirs()) + "\n")
    return python

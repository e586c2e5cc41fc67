"""Where the course lives and how Colab installs it: the one definition.

Every lesson opens with a Colab badge and an install cell, and the README's lesson table and
"Colab" section repeat them. All of them are generated from the constants below by

    python -m ddpm_course._colab --write-notebooks     # from the repository root; idempotent

which rewrites, in every ``notebooks/NN_*.py`` and ``NN_*.ipynb``, the badge line of the first
markdown cell and the whole first code cell (the .ipynb's outputs are kept: the cell prints
nothing off Colab), and the badge links of ``README.md``. ``tests/test_release.py`` checks that
running it changes nothing.

| name            | what it is                                                                   |
|-----------------|------------------------------------------------------------------------------|
| ``REPOSITORY``  | the repository's URL (also ``[project.urls] Homepage`` in pyproject.toml)    |
| ``BRANCH``      | the branch the badges open                                                   |
| ``DISTRIBUTION``| the package index name, installed with the ``colab`` extra                   |
| ``REQUIREMENT`` | what the install cell asks pip for: name, extra and version range, nothing else |

The version range follows ``ddpm_course.__version__``: ``>=0.2,<0.3`` for 0.2.x, so a lesson
installs a release of the API it was written for.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from . import __version__

REPOSITORY = "https://github.com/ddpm-course/ddpm-course"
BRANCH = "main"
DISTRIBUTION = "ddpm-course"
EXTRA = "colab"

_major, _minor = (int(part) for part in __version__.split(".")[:2])
VERSION_RANGE = f">={_major}.{_minor},<{_major}.{_minor + 1}"
REQUIREMENT = f"{DISTRIBUTION}[{EXTRA}]{VERSION_RANGE}"
ARCHIVE_URL = f"{REPOSITORY}/archive/refs/heads/{BRANCH}.zip"
WHEEL = f"{DISTRIBUTION.replace('-', '_')}-{__version__}-py3-none-any.whl"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"

# The alternatives the install cell offers when pip fails, as `!pip` lines for a Colab cell.
FROM_ARCHIVE = f'!pip install "{DISTRIBUTION}[{EXTRA}] @ {ARCHIVE_URL}"'
FROM_WHEEL = f'!pip install "/content/{WHEEL}[{EXTRA}]"'

FAILURE_MESSAGE = (
    f"The course package did not install: pip could not get {REQUIREMENT} (pip says why above: no "
    f"network, no release {VERSION_RANGE} on the package index yet, or a proxy). Install it one of two "
    f"other ways, then run the next cells. Either from the repository archive, in a new cell:\n"
    f"    {FROM_ARCHIVE}\n"
    f"or upload the wheel {WHEEL} (from {REPOSITORY}/releases, or built in a checkout with "
    f"python -m build) in the Files panel on the left, then run:\n"
    f"    {FROM_WHEEL}"
)


def colab_url(notebook: str) -> str:
    """The URL that opens ``notebooks/<notebook>`` (e.g. ``01_fog.ipynb``) on Colab."""
    repo = REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/{BRANCH}/notebooks/{notebook}"


def badge(notebook: str) -> str:
    """The markdown badge of one lesson, as its first line and the README's table show it."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"


def install_cell() -> str:
    """The source of every lesson's first code cell: pip runs only on Colab, only for REQUIREMENT,
    and a failure prints FAILURE_MESSAGE instead of a traceback."""
    pieces = []  # the message as string literals of at most ~90 characters, one a line
    lines = FAILURE_MESSAGE.split("\n")
    for i, line in enumerate(lines):
        wrapped = textwrap.wrap(line, 90, drop_whitespace=False, break_on_hyphens=False)
        if i < len(lines) - 1:
            wrapped[-1] += "\n"
        pieces += wrapped
    literals = [repr(piece) for piece in pieces]
    body = ("\n" + " " * 14).join(literals)
    return "\n".join([
        "import subprocess, sys",
        'if "google.colab" in sys.modules:  # Colab: install the course package (JupyterLab users did it once)',
        f'    install = [sys.executable, "-m", "pip", "install", "-q", "{REQUIREMENT}"]',
        "    if subprocess.run(install).returncode != 0:  # say what to do instead of a traceback",
        f"        print({body})",
    ])


_BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*/notebooks/([0-9][0-9]_[A-Za-z0-9_]+\.ipynb)\)")


def _with_badges(text: str, notebook: str | None = None) -> str:
    """``text`` with every Colab badge regenerated (for ``notebook`` only, if given)."""
    def new(match: re.Match) -> str:
        return badge(notebook or match.group(1))
    return _BADGE.sub(new, text)


def _py_cells(text: str) -> list[str]:
    """A py:percent file split before each ``# %%`` line (the header is the first piece)."""
    return re.split(r"(?m)^(?=# %%)", text)


def write_py(text: str, notebook: str) -> str:
    """The py:percent source with its badge and first code cell regenerated."""
    pieces = _py_cells(text)
    markdown = next(i for i, p in enumerate(pieces) if p.startswith("# %% [markdown]"))
    pieces[markdown] = _with_badges(pieces[markdown], notebook)
    code = next(i for i, p in enumerate(pieces) if re.match(r"# %%(?! \[markdown\])", p))
    header = pieces[code].split("\n", 1)[0]
    pieces[code] = f"{header}\n{install_cell()}\n\n"
    return "".join(pieces)


def write_ipynb(text: str, notebook: str) -> str:
    """The notebook JSON with its badge and first code cell's source regenerated (outputs kept)."""
    nb = json.loads(text)
    cells = nb["cells"]
    first_md = next(c for c in cells if c["cell_type"] == "markdown")
    first_md["source"] = _split_lines(_with_badges("".join(first_md["source"]), notebook))
    first_code = next(c for c in cells if c["cell_type"] == "code")
    first_code["source"] = _split_lines(install_cell())
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"  # nbformat's own layout


def _split_lines(source: str) -> list[str]:
    return source.splitlines(keepends=True)


def write_readme(text: str) -> str:
    return _with_badges(text)


def write_all(root: Path) -> list[Path]:
    """Regenerate the badges and install cells under ``root``; returns the files that changed."""
    changed = []
    targets: list[tuple[Path, Callable[[str, str], str], str]] = []
    for py in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        ipynb = py.with_suffix(".ipynb")
        targets.append((py, write_py, ipynb.name))
        if ipynb.exists():
            targets.append((ipynb, write_ipynb, ipynb.name))
    if (root / "README.md").exists():
        targets.append((root / "README.md", lambda text, _: write_readme(text), ""))
    for path, rewrite, notebook in targets:
        old = path.read_text(encoding="utf-8")
        new = rewrite(old, notebook)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddpm_course._colab", description=__doc__.split("\n")[0])
    parser.add_argument("--write-notebooks", action="store_true",
                        help="rewrite every lesson's badge and install cell, and the README's badges")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository root (default: .)")
    args = parser.parse_args(argv)
    if not args.write_notebooks:
        print(install_cell())
        return 0
    if not (args.root / "notebooks").is_dir():
        parser.error(f"--root: {args.root} has no notebooks/ folder; run from the repository root")
    for path in write_all(args.root):
        print("rewrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

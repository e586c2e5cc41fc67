"""Every notebooks/NN_*.py has its paired .ipynb, in sync and with stored outputs.

nbval then re-runs the .ipynb and compares those outputs; this test makes sure the reviewed
.py source and what Colab opens say the same thing.
"""
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_pair_in_sync_with_outputs(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: jupytext --set-formats ipynb,py:percent {source.name}"
    from_py = jupytext.read(source)
    from_ipynb = nbformat.read(paired, as_version=4)
    assert _cells(from_py) == _cells(from_ipynb), (
        f"{source.name} and {paired.name} differ: run jupytext --sync and re-execute"
    )
    code = [c for c in from_ipynb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), f"{paired.name} is not fully executed"
    assert any(c.outputs for c in code), f"{paired.name} has no stored outputs"


def test_every_notebook_has_a_source():
    for nb in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"):
        assert nb.with_suffix(".py").exists(), f"{nb.name} has no paired .py source"

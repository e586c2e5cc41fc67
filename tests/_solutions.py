"""The reference answers in solutions/, loaded by file (solutions/ is not a package)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lesson_file(lesson: str, folder: str) -> Path:
    """The one file of lesson "NN" in ``folder`` ("solutions" or "notebooks"), e.g. 02_forward_chain.py."""
    (path,) = sorted((ROOT / folder).glob(f"{lesson}_*.py"))
    return path


def answers(lesson: str) -> dict:
    """``ANSWERS`` of solutions/NN_topic.py: exercise name -> reference function or number."""
    path = lesson_file(lesson, "solutions")
    spec = importlib.util.spec_from_file_location(f"solutions_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ANSWERS

"""Automatic checks for the learners' exercises ("Your turn" at the end of every lesson).

A lesson's exercise cell calls ``dc.exercises.check("02.q_sample", my_q_sample)`` and sees one
line: ``not attempted yet`` (the stub still raises ``NotImplementedError``), ``correct``, a
specific hint when the answer matches a classic mistake, or the first failing case with the
expected and the received value.

How a checker works:

| piece                | what it is                                                                    |
|----------------------|-------------------------------------------------------------------------------|
| ``reference``        | the package's own implementation, called with the same arguments              |
| ``cases``            | a function ``generator -> list[Case]``: random cases and edge cases            |
| ``mistakes``         | wrong implementations, one per classic mistake, each with its hint            |
| ``hidden_cases``     | other cases for grading (other shapes, schedules, edge steps), drawn with a   |
|                      | grading-only seed; without it the hidden variant redraws ``cases``            |

An answer that disagrees with the reference is run against every mistake; if it agrees with
one of them on every case, the learner sees that mistake's hint. An answer that raises is
matched the same way: a mistake that raises the same error with the same message on the same
case (a lost batch dimension, an index one past the end of a table) gives its hint. The same wrong
implementations are what ``tests/test_exercises.py`` feeds to each checker, so a checker that
cannot recognise its own mistakes fails its test.

Hidden variants: ``check(name, answer, hidden=True)`` (what ``ddpm-course grade --hidden`` runs)
checks against :meth:`FunctionExercise.hidden`, the same exercise with ``hidden_cases`` drawn from
a generator seeded with ``seed`` (default :data:`HIDDEN_SEED`), so an answer fitted to the visible
cases (a hard-coded table, a special-cased shape) fails there; the mistake hints work the same.
A number exercise asks one fixed question, so it has no hidden variant: its ``hidden`` is itself.

Each lesson's checkers live in ``lessonNN.py`` beside this file and register themselves on
import (:func:`load_lessons`); ``solutions/NN_topic.py`` in the repository holds the reference
answers. The package's ``__init__`` re-exports this module's public names.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "Case", "Mistake", "FunctionExercise", "NumberExercise", "Verdict", "check", "register", "names", "EXERCISES",
    "HIDDEN_SEED", "CORRECT", "NOT_ATTEMPTED", "load_lessons",
]

NOT_ATTEMPTED = "not attempted yet"
CORRECT = "correct"
HIDDEN_SEED = 271828  # the hidden variants' default seed; a grader may choose its own (ddpm-course grade --seed)


class Case(NamedTuple):
    """One call of the learner's function: positional and keyword arguments, and a short label
    used in messages ("t = 0", "batch of 3")."""

    args: tuple
    kwargs: dict
    label: str


@dataclass(frozen=True)
class Mistake:
    """A classic wrong answer: ``impl`` computes it, ``hint`` tells the learner what went wrong."""

    hint: str
    impl: Callable


class Verdict(NamedTuple):
    """The result of a check: ``status`` is "not attempted", "correct", "mistake" or "wrong"."""

    name: str
    status: str
    message: str

    def __repr__(self) -> str:
        return f"{self.name}: {self.message}"

    @property
    def ok(self) -> bool:
        return self.status == "correct"


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """Do two results agree? Tensors by value and shape, tuples element-wise, numbers by value."""
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        if not (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list))) or len(a) != len(b):
            return False
        return all(_close(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or a.shape != b.shape:
            return False
        if a.is_complex() or b.is_complex():  # .double() would drop the imaginary part
            return a.is_complex() == b.is_complex() and bool(torch.allclose(a.cpu(), b.cpu(), rtol=rtol, atol=atol))
        return bool(torch.allclose(a.double().cpu(), b.double().cpu(), rtol=rtol, atol=atol, equal_nan=False))
    import numpy as np

    if isinstance(a, (complex, np.complexfloating)) or isinstance(b, (complex, np.complexfloating)):
        return False  # float() of a NumPy complex would drop the imaginary part; the answers are real
    try:
        return abs(float(a) - float(b)) <= atol + rtol * abs(float(b))
    except (TypeError, ValueError):
        return False


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        flat = value.detach().double().cpu().flatten()
        head = ", ".join(f"{v:.4g}" for v in flat[:4].tolist()) + (", ..." if flat.numel() > 4 else "")
        return f"tensor of shape {tuple(value.shape)} [{head}]"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def _call(fn: Callable, case: Case) -> Any:
    # Fresh copies so that an answer that modifies its inputs in place cannot spoil the next call.
    args = tuple(a.clone() if isinstance(a, Tensor) else a for a in case.args)
    kwargs = {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in case.kwargs.items()}
    return fn(*args, **kwargs)


@dataclass(frozen=True)
class FunctionExercise:
    """The learner writes a function; it must agree with ``reference`` on every case.

    ``cases`` draws the visible cases from a generator seeded with ``seed``; ``hidden_cases``
    (optional) draws the grading-only ones, see :meth:`hidden`."""

    name: str
    reference: Callable
    cases: Callable[[torch.Generator], Sequence[Case]]
    mistakes: Sequence[Mistake] = field(default_factory=tuple)
    rtol: float = 1e-5
    atol: float = 1e-6
    seed: int = 0
    hidden_cases: Callable[[torch.Generator], Sequence[Case]] | None = None

    def hidden(self, seed: int | None = None) -> FunctionExercise:
        """The hidden variant: the same exercise (same class, reference and mistakes) whose cases are
        ``hidden_cases`` (or ``cases`` where it has none) drawn with ``seed`` (default HIDDEN_SEED)."""
        seed = HIDDEN_SEED if seed is None else int(seed)
        return replace(self, cases=self.hidden_cases or self.cases, seed=seed)

    def verdict(self, answer: Callable) -> Verdict:
        if not callable(answer):
            raise TypeError(f"pass your function itself, not its result; got {type(answer).__name__}")
        cases = list(self.cases(torch.Generator().manual_seed(self.seed)))
        got: list[Any] = []
        for case in cases:
            try:
                got.append(_call(answer, case))
            except NotImplementedError:
                return Verdict(self.name, "not attempted", NOT_ATTEMPTED)
            except Exception as err:  # the learner's code may fail in any way: say where
                mistake = self._failing_mistake(case, err)
                if mistake is not None:
                    where = f"({type(err).__name__} for {case.label})"
                    return Verdict(self.name, "mistake", f"not yet: {mistake.hint} {where}")
                message = f"your function raised {type(err).__name__}: {err} (case: {case.label})"
                return Verdict(self.name, "wrong", message)
        expected = [_call(self.reference, case) for case in cases]
        if all(_close(g, e, self.rtol, self.atol) for g, e in zip(got, expected)):
            return Verdict(self.name, "correct", CORRECT)
        for mistake in self.mistakes:
            try:
                wrong = [_call(mistake.impl, case) for case in cases]
            except Exception:  # a mistake that cannot run on some case cannot be the learner's
                continue
            if all(_close(g, w, self.rtol, self.atol) for g, w in zip(got, wrong)):
                return Verdict(self.name, "mistake", f"not yet: {mistake.hint}")
        for case, g, e in zip(cases, got, expected):
            if not _close(g, e, self.rtol, self.atol):
                return Verdict(
                    self.name, "wrong", f"not yet: for {case.label} expected {_describe(e)}, got {_describe(g)}"
                )
        raise AssertionError("unreachable: some case disagreed")  # pragma: no cover


    def _failing_mistake(self, case: Case, err: Exception) -> Mistake | None:
        """The mistake that fails on ``case`` exactly as the learner's answer did (same error type and
        message), if any: a lost batch dimension or an index past the table's end shows up as an error.
        Only where the reference itself runs, so that an error the case provokes in everyone is not a hint."""
        try:
            _call(self.reference, case)
        except Exception:  # a broken case: no mistake can be singled out
            return None
        for mistake in self.mistakes:
            try:
                _call(mistake.impl, case)
            except Exception as mine:  # compared with the learner's error below
                if type(mine) is type(err) and str(mine) == str(err):
                    return mistake
        return None


@dataclass(frozen=True)
class NumberExercise:
    """The learner computes a number; it must be within ``rtol``/``atol`` of ``answer()``.

    ``mistakes`` maps a wrong number (computed by a function) to its hint.
    """

    name: str
    answer: Callable[[], float]
    mistakes: Sequence[Mistake] = field(default_factory=tuple)
    rtol: float = 1e-3
    atol: float = 0.0

    def hidden(self, seed: int | None = None) -> NumberExercise:
        """A number exercise asks one fixed question: its hidden variant is itself."""
        return self

    def verdict(self, value: Any) -> Verdict:
        if value is None or value is Ellipsis:
            return Verdict(self.name, "not attempted", NOT_ATTEMPTED)
        try:
            number = float(value)
        except (TypeError, ValueError):
            return Verdict(self.name, "wrong", f"not yet: expected a number, got {type(value).__name__}")
        if _close(number, self.answer(), self.rtol, self.atol):
            return Verdict(self.name, "correct", CORRECT)
        for mistake in self.mistakes:
            if _close(number, mistake.impl(), self.rtol, self.atol):
                return Verdict(self.name, "mistake", f"not yet: {mistake.hint}")
        message = f"not yet: {number:.6g} is not the answer (checked to a relative {self.rtol:g})"
        return Verdict(self.name, "wrong", message)


EXERCISES: dict[str, FunctionExercise | NumberExercise] = {}


def register(exercise: FunctionExercise | NumberExercise) -> FunctionExercise | NumberExercise:
    """Add an exercise to the table; names are "NN.short_name" and unique."""
    if exercise.name in EXERCISES:
        raise ValueError(f"exercise {exercise.name!r} is registered twice")
    EXERCISES[exercise.name] = exercise
    return exercise


def load_lessons() -> None:
    """Import every ``lessonNN`` module beside this one, so that each registers its checkers."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("lesson"):
            importlib.import_module(f"{__package__}.{info.name}")


def names() -> list[str]:
    """Every exercise's name, in lesson order."""
    load_lessons()
    return sorted(EXERCISES)


def check(name: str, answer: Any, hidden: bool = False, seed: int | None = None) -> Verdict:
    """Check the learner's ``answer`` (a function, or a number for a number exercise) for the
    exercise ``name`` ("02.q_sample"); returns a :class:`Verdict` that prints as one line.
    ``hidden=True`` checks on the hidden variant's cases, drawn with ``seed`` (default HIDDEN_SEED)."""
    load_lessons()
    if name not in EXERCISES:
        raise ValueError(f"name must be one of the exercises {sorted(EXERCISES)}; got {name!r}")
    exercise = EXERCISES[name]
    if hidden and hasattr(exercise, "hidden"):
        exercise = exercise.hidden(seed)
    return exercise.verdict(answer)

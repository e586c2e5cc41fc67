"""Automatic checks for the learners' exercises ("Your turn" at the end of every lesson).

``dc.exercises.check("02.q_sample", my_q_sample)`` prints one line: not attempted yet, correct,
the hint of a classic mistake, or the first failing case. How a checker works is told in
``_checker.py``, which holds the machinery; each lesson's checkers live in ``lessonNN.py`` and
register themselves when :func:`check` or :func:`names` first runs. This file only re-exports.
"""
from ._checker import (
    CORRECT,
    EXERCISES,
    HIDDEN_SEED,
    NOT_ATTEMPTED,
    Case,
    FunctionExercise,
    Mistake,
    NumberExercise,
    Verdict,
    check,
    load_lessons,
    names,
    register,
)

__all__ = [
    "Case", "Mistake", "FunctionExercise", "NumberExercise", "Verdict", "check", "register", "names", "EXERCISES",
    "HIDDEN_SEED", "CORRECT", "NOT_ATTEMPTED", "load_lessons",
]

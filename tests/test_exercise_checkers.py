"""Every exercise checker of every lesson can say each of its verdicts.

For every registered exercise: the reference answer in ``solutions/`` reads "correct"; a stub
that raises ``NotImplementedError`` (or a number left as ``None``) reads "not attempted yet",
the verdict the stored notebook outputs show; every classic mistake the checker lists is
recognised with its *own* hint (so no two listed mistakes coincide on the checker's cases, and
none coincides with the reference); and the lesson's notebook calls the checker. The wrong
answers that no checker lists live beside each lesson's other checks, in
``tests/test_exercises*.py``.
"""
from __future__ import annotations

import pytest
from _solutions import ROOT, answers, lesson_file

from ddpm_course import exercises
from ddpm_course.exercises import NumberExercise

NAMES = exercises.names()
LESSONS = sorted({name[:2] for name in NAMES})
ANSWERS = {name: answer for lesson in LESSONS for name, answer in answers(lesson).items()}
MISTAKES = [(name, i) for name in NAMES for i in range(len(exercises.EXERCISES[name].mistakes))]


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


def test_every_lesson_has_exercises_and_every_exercise_an_answer():
    notebooks = sorted(path.name[:2] for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert LESSONS == notebooks
    assert set(ANSWERS) == set(NAMES)
    for lesson in LESSONS:
        mine = [name for name in NAMES if name.startswith(lesson)]
        assert 2 <= len(mine) <= 4, (lesson, mine)
        assert any(isinstance(exercises.EXERCISES[n], NumberExercise) for n in mine), f"lesson {lesson} asks no number"


@pytest.mark.parametrize("name", NAMES)
def test_reference_answer_is_correct(name):
    verdict = exercises.check(name, ANSWERS[name])
    assert verdict.status == "correct", verdict
    assert repr(verdict) == f"{name}: correct"


@pytest.mark.parametrize("name", NAMES)
def test_stub_reads_not_attempted(name):
    stub = None if isinstance(exercises.EXERCISES[name], NumberExercise) else _stub
    assert repr(exercises.check(name, stub)) == f"{name}: not attempted yet"


@pytest.mark.parametrize(("name", "index"), MISTAKES)
def test_each_listed_mistake_gets_its_own_hint(name, index):
    exercise = exercises.EXERCISES[name]
    mistake = exercise.mistakes[index]
    answer = mistake.impl() if isinstance(exercise, NumberExercise) else mistake.impl
    verdict = exercise.verdict(answer)
    assert verdict.status == "mistake", verdict
    assert verdict.message.startswith(f"not yet: {mistake.hint}"), verdict


@pytest.mark.parametrize("name", NAMES)
def test_the_notebook_calls_the_checker(name):
    source = lesson_file(name[:2], "notebooks").read_text()
    assert f'dc.exercises.check("{name}", ' in source, name

"""Every exercise checker of every lesson can say each of its verdicts.

For every registered exercise: the reference answer in ``solutions/`` reads "correct"; a stub
that raises ``NotImplementedError`` (or a number left as ``None``) reads "not attempted yet",
the verdict the stored notebook outputs show; every classic mistake the checker lists is
recognised with its *own* hint (so no two listed mistakes coincide on the checker's cases, and
none coincides with the reference); and the lesson's notebook calls the checker. The same holds
on every function exercise's hidden cases (``check(..., hidden=True)``), which differ from the
visible ones: an answer fitted to the visible cases passes them and fails the hidden ones. The wrong
answers that no checker lists live beside each lesson's other checks, in
``tests/test_exercises*.py``.
"""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from _solutions import ROOT, answers, lesson_file

from ddpm_course import exercises
from ddpm_course.exercises import Case, FunctionExercise, NumberExercise

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


# ---------------------------------------------------------------------------------------------- hidden variants
# ``check(name, answer, hidden=True)`` (ddpm-course grade --hidden) draws other cases: other shapes,
# schedules and edge steps, from a grading-only seed. The same verdicts must hold there.

FUNCTIONS = [name for name in NAMES if isinstance(exercises.EXERCISES[name], FunctionExercise)]
HIDDEN_MISTAKES = [(name, i) for name, i in MISTAKES if name in FUNCTIONS]


def _same(a, b) -> bool:
    """Structural equality of case arguments: tensors by value, dataclasses (schedules) field by field."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        both = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        return both and a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.nn.Module) and isinstance(b, torch.nn.Module):  # models rebuilt per case: by value
        plain = [k for k in vars(a) if not k.startswith("_") and k != "training"]
        return (type(a) is type(b) and _same(list(a.state_dict().values()), list(b.state_dict().values()))
                and all(_same(getattr(a, k), getattr(b, k, None)) for k in plain))
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if inspect.isfunction(a) and inspect.isfunction(b) and a.__code__ is b.__code__:  # a closure made per case
        cells = [c.cell_contents for c in a.__closure__ or ()], [c.cell_contents for c in b.__closure__ or ()]
        return _same(*cells)
    return a is b or (type(a) is type(b) and not callable(a) and a == b)


def _cases(exercise: FunctionExercise) -> list:
    return list(exercise.cases(torch.Generator().manual_seed(exercise.seed)))


def _memoriser(exercise: FunctionExercise):
    """An answer fitted to the visible cases: a table of their expected results, looked up by the
    arguments; anything else gets the first case's result."""
    table = [(case, exercise.reference(*case.args, **case.kwargs)) for case in _cases(exercise)]

    def answer(*args, **kwargs):
        for case, result in table:
            if _same(case.args, args) and _same(case.kwargs, kwargs):
                return result
        return table[0][1]

    return answer


@pytest.mark.parametrize("name", FUNCTIONS)
def test_reference_answer_is_correct_on_the_hidden_cases(name):
    verdict = exercises.check(name, ANSWERS[name], hidden=True)
    assert verdict.status == "correct", verdict
    assert exercises.check(name, ANSWERS[name], hidden=True, seed=12345).ok


@pytest.mark.parametrize("name", FUNCTIONS)
def test_stub_reads_not_attempted_on_the_hidden_cases(name):
    assert repr(exercises.check(name, _stub, hidden=True)) == f"{name}: not attempted yet"


@pytest.mark.parametrize(("name", "index"), HIDDEN_MISTAKES)
def test_each_listed_mistake_gets_its_own_hint_on_the_hidden_cases(name, index):
    exercise = exercises.EXERCISES[name]
    mistake = exercise.mistakes[index]
    verdict = exercise.hidden().verdict(mistake.impl)
    assert verdict.status == "mistake", verdict
    assert verdict.message.startswith(f"not yet: {mistake.hint}"), verdict


@pytest.mark.parametrize("name", FUNCTIONS)
def test_hidden_cases_are_other_cases(name):
    exercise = exercises.EXERCISES[name]
    hidden = exercise.hidden()
    assert exercise.hidden_cases is not None, f"{name}: give FunctionExercise(..., hidden_cases=...) other shapes/steps"
    # not only another seed: other shapes, schedules or steps show in the cases' labels
    visible_labels = {case.label for case in _cases(exercise)}
    hidden_labels = {case.label for case in _cases(hidden)}
    assert hidden_labels - visible_labels, (name, sorted(hidden_labels))
    # an answer fitted to the visible cases passes them and fails the hidden ones
    memoriser = _memoriser(exercise)
    assert exercise.verdict(memoriser).ok, name
    assert not hidden.verdict(memoriser).ok, name
    # the hidden cases are drawn from their own seed, reproducibly
    again = exercise.hidden()
    assert all(_same(a.args, b.args) for a, b in zip(_cases(hidden), _cases(again)))


def test_number_exercises_have_no_hidden_variant():
    for name in NAMES:
        exercise = exercises.EXERCISES[name]
        if isinstance(exercise, NumberExercise):
            assert exercise.hidden() is exercise
            assert exercises.check(name, ANSWERS[name], hidden=True).ok


def test_an_exercise_without_hidden_cases_redraws_its_cases_with_the_grading_seed():
    plain = FunctionExercise("00.plain", reference=lambda x: 2 * x,
                             cases=lambda g: [Case((torch.randn(3, generator=g),), {}, "three numbers")])
    hidden = plain.hidden(seed=7)
    assert hidden.seed == 7 and hidden.cases is plain.cases
    assert not torch.equal(_cases(plain)[0].args[0], _cases(hidden)[0].args[0])
    assert hidden.verdict(lambda x: x + x).ok

"""Lesson 08's exercise checkers: the solutions read "correct", the stubs "not attempted yet",
each listed mistake its own hint, and wrong answers in no list fail too."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from ddpm_course import exercises
from ddpm_course.exercises import NumberExercise

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["08.cfg_combine", "08.guided_model", "08.scale_from_w"]


def _answers() -> dict:
    spec = importlib.util.spec_from_file_location("solutions_08", ROOT / "solutions" / "08_guidance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ANSWERS


ANSWERS = _answers()
exercises.names()  # loads every lesson's checkers
MISTAKES = [(name, i) for name in NAMES for i in range(len(exercises.EXERCISES[name].mistakes))]


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


def _half_step(c, u, s):  # moves only half as far as asked
    return u + 0.5 * s * (c - u)


def _null_zero_doubled(model, x, t, y, s, null):  # one call, but the null half uses label 0
    b = x.shape[0]
    eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.zeros_like(y)]))
    return eps[b:] + s * (eps[:b] - eps[b:])


def _guided_by_s_squared(model, x, t, y, s, null):
    cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, null))
    return uncond + s * s * (cond - uncond)


UNLISTED = {
    "08.cfg_combine": [_half_step, lambda c, u, s: c, lambda c, u, s: u + s * c],
    "08.guided_model": [_null_zero_doubled, _guided_by_s_squared],
    "08.scale_from_w": [0.7, 2.0, 1.0],
}


def test_lesson_08_has_its_exercises():
    assert [n for n in exercises.names() if n.startswith("08.")] == sorted(NAMES)
    assert any(isinstance(exercises.EXERCISES[n], NumberExercise) for n in NAMES)
    assert set(ANSWERS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_reference_answer_is_correct(name):
    verdict = exercises.check(name, ANSWERS[name])
    assert verdict.status == "correct", verdict


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
    assert verdict.message == f"not yet: {mistake.hint}", verdict


@pytest.mark.parametrize("name", NAMES)
def test_unlisted_wrong_answers_fail(name):
    for answer in UNLISTED[name]:
        verdict = exercises.check(name, answer)
        assert verdict.status in ("wrong", "mistake"), (name, verdict)


def test_the_batched_and_the_two_call_answers_are_both_correct():
    def two_calls(model, x, t, y, s, null):
        cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, null))
        return uncond + s * (cond - uncond)

    assert exercises.check("08.guided_model", two_calls).status == "correct"


def test_the_notebook_calls_every_checker():
    source = (ROOT / "notebooks" / "08_guidance.py").read_text()
    for name in NAMES:
        assert f'dc.exercises.check("{name}", ' in source, name

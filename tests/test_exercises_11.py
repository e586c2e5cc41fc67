"""Lesson 11's exercise checkers: the solutions read "correct", the stubs "not attempted yet",
each listed mistake its own hint, and wrong answers in no list fail too."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ddpm_course import exercises
from ddpm_course.exercises import NumberExercise

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["11.modes_covered", "11.generator_loss", "11.d_loss_equilibrium"]


def _answers() -> dict:
    spec = importlib.util.spec_from_file_location("solutions_11", ROOT / "solutions" / "11_why_diffusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ANSWERS


ANSWERS = _answers()
exercises.names()  # loads every lesson's checkers
MISTAKES = [(name, i) for name in NAMES for i in range(len(exercises.EXERCISES[name].mistakes))]


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


def _nearest_any_mode_within(x, means, radius, min_count):
    """Counts a sample for every mode whose disc holds it (not only its nearest): here the discs do
    not overlap, so this one is right too; the unlisted wrong answers are below."""
    inside = torch.cdist(x.double(), means.double()) <= radius  # (n, K)
    return int((inside.sum(0) >= min_count).sum())


def _squared_radius(x, means, radius, min_count):  # compares squared distances with the radius
    dist = torch.cdist(x.double(), means.double()).min(dim=1)
    counts = torch.bincount(dist.indices[dist.values**2 <= radius], minlength=means.shape[0])
    return int((counts >= min_count).sum())


def _fraction(x, means, radius, min_count):  # the share of modes, not their number
    return ANSWERS["11.modes_covered"](x, means, radius, min_count) / means.shape[0]


UNLISTED = {
    "11.modes_covered": [_squared_radius, _fraction, lambda x, m, r, c: m.shape[0]],
    "11.generator_loss": [lambda logit: F.softplus(logit).mean(), lambda logit: -logit.mean(),
                          lambda logit: F.softplus(-logit).mean() / 2],
    "11.d_loss_equilibrium": [1.0, 4 * math.log(2), math.log(3)],
}


def test_lesson_11_has_its_exercises():
    assert [n for n in exercises.names() if n.startswith("11.")] == sorted(NAMES)
    assert set(ANSWERS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_reference_answer_is_correct(name):
    verdict = exercises.check(name, ANSWERS[name])
    assert verdict.status == "correct", verdict


def test_a_disc_count_is_also_correct_when_discs_do_not_overlap():
    assert exercises.check("11.modes_covered", _nearest_any_mode_within).status == "correct"


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


def test_the_notebook_calls_every_checker():
    source = (ROOT / "notebooks" / "11_why_diffusion.py").read_text()
    for name in NAMES:
        assert f'dc.exercises.check("{name}", ' in source, name

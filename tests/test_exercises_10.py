"""Lesson 10's exercise checkers: the solutions read "correct", the stubs "not attempted yet",
each listed mistake its own hint, and wrong answers in no list fail too."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from ddpm_course import exercises
from ddpm_course.exercises import NumberExercise

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["10.frechet_gaussians", "10.precision_recall", "10.fd_infinity"]


def _answers() -> dict:
    spec = importlib.util.spec_from_file_location("solutions_10", ROOT / "solutions" / "10_evaluation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ANSWERS


ANSWERS = _answers()
exercises.names()  # loads every lesson's checkers
MISTAKES = [(name, i) for name in NAMES for i in range(len(exercises.EXERCISES[name].mistakes))]


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


def _mean_term_only(mu_a, cov_a, mu_b, cov_b):
    return (mu_a - mu_b).square().sum()


def _traces_only(mu_a, cov_a, mu_b, cov_b):  # ignores the cross term entirely
    return (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace()


def _strict_one_nn(real, fake, k):  # always k = 1, whatever k asks
    d = torch.cdist(real, fake)
    r_real = torch.cdist(real, real).sort(1).values[:, 1]
    r_fake = torch.cdist(fake, fake).sort(1).values[:, 1]
    return (d <= r_real[:, None]).any(0).double().mean(), (d <= r_fake[None, :]).any(1).double().mean()


UNLISTED = {
    "10.frechet_gaussians": [_mean_term_only, _traces_only],
    "10.precision_recall": [lambda r, f, k: (1.0, 1.0), _strict_one_nn],
    "10.fd_infinity": [0.0, 12.0, 8.25],
}


def test_lesson_10_has_its_exercises():
    assert [n for n in exercises.names() if n.startswith("10.")] == sorted(NAMES)
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


def test_tensor_and_float_answers_are_both_read_as_numbers():
    def as_tensor(mu_a, cov_a, mu_b, cov_b):
        return torch.tensor(ANSWERS["10.frechet_gaussians"](mu_a, cov_a, mu_b, cov_b))

    assert exercises.check("10.frechet_gaussians", as_tensor).status == "correct"
    assert exercises.check("10.precision_recall", lambda r, f, k: tuple(torch.tensor(v) for v in ANSWERS[
        "10.precision_recall"](r, f, k))).status == "correct"


def test_the_one_dimensional_case_is_the_closed_form():
    # N(0, 1) vs N(3, 4): 9 + 1 + 4 - 2 * 2 = 10, as the case's label says
    one = torch.ones(1, dtype=torch.float64)
    answer = ANSWERS["10.frechet_gaussians"](0 * one, one.reshape(1, 1), 3 * one, 4 * one.reshape(1, 1))
    assert answer == pytest.approx(10)


def test_the_notebook_calls_every_checker():
    source = (ROOT / "notebooks" / "10_evaluation.py").read_text()
    for name in NAMES:
        assert f'dc.exercises.check("{name}", ' in source, name

"""Lesson 09's exercise checkers: the solutions read "correct", the stubs "not attempted yet",
each listed mistake its own hint, and wrong answers in no list fail too."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from ddpm_course import exercises
from ddpm_course.exercises import NumberExercise

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["09.kl_term", "09.reparameterise", "09.scale_factor", "09.pass_ratio"]


def _answers() -> dict:
    spec = importlib.util.spec_from_file_location("solutions_09", ROOT / "solutions" / "09_latent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ANSWERS


ANSWERS = _answers()
exercises.names()  # loads every lesson's checkers
MISTAKES = [(name, i) for name in NAMES for i in range(len(exercises.EXERCISES[name].mistakes))]


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


UNLISTED = {
    "09.kl_term": [lambda m, lv: 0.5 * m.flatten(1).square().sum(1),  # the mean's term only
                   lambda m, lv: (0.5 * (m**2 + lv.exp() - lv)).flatten(1).sum(1)],  # the "- 1" forgotten
    "09.reparameterise": [lambda m, lv, eps: m + eps, lambda m, lv, eps: m + (-0.5 * lv).exp() * eps],
    "09.scale_factor": [lambda z: 0.18215, lambda z: 1 / z.abs().max().item()],
    "09.pass_ratio": [16.0, 4096.0],
}


def test_lesson_09_has_its_exercises():
    assert [n for n in exercises.names() if n.startswith("09.")] == sorted(NAMES)
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


def test_the_kl_checker_agrees_with_the_package_and_torch():
    from torch.distributions import Normal, kl_divergence

    g = torch.Generator().manual_seed(0)
    m = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64)
    lv = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64)
    ref = kl_divergence(Normal(m, (lv / 2).exp()), Normal(0.0, 1.0)).flatten(1).sum(1)
    assert torch.allclose(ANSWERS["09.kl_term"](m, lv), ref)


def test_a_tensor_scale_factor_is_read_as_a_number():
    assert exercises.check("09.scale_factor", lambda z: 1 / z.std()).status == "correct"


def test_the_notebook_calls_every_checker():
    source = (ROOT / "notebooks" / "09_latent.py").read_text()
    for name in NAMES:
        assert f'dc.exercises.check("{name}", ' in source, name

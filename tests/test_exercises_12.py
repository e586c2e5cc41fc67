"""Lesson 12's exercise checkers: the solutions read "correct", the stubs "not attempted yet",
each listed mistake its own hint, and wrong answers in no list fail too."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from ddpm_course import exercises
from ddpm_course.exercises import NumberExercise

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["12.eps_to_score", "12.eps_to_velocity", "12.euler_step", "12.flow_time"]


def _answers() -> dict:
    spec = importlib.util.spec_from_file_location("solutions_12", ROOT / "solutions" / "12_score_and_flow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ANSWERS


ANSWERS = _answers()
exercises.names()  # loads every lesson's checkers
MISTAKES = [(name, i) for name in NAMES for i in range(len(exercises.EXERCISES[name].mistakes))]


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


def _col(v, x):
    return v.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


UNLISTED = {
    "12.eps_to_score": [
        lambda eps, t, s: -eps,  # forgets the noise level altogether
        lambda eps, t, s: -eps / _col(s.alpha_bars[t], eps).sqrt() / _col(1 - s.alpha_bars[t], eps).sqrt(),
        lambda eps, t, s: -eps / _col(1 - s.alpha_bars, eps)[: eps.shape[0]].sqrt(),  # ignores t
    ],
    "12.eps_to_velocity": [
        lambda x, e, t: e - x,  # x0 = x_t, as if t = 0
        lambda x, e, t: (e - x) / (1 + _col(t, x)),
        lambda x, e, t: (e - x) / (1 - _col(t, x)).sqrt(),
    ],
    "12.euler_step": [
        lambda x, t, tn, u: x + (tn - t) * u * 0.5,
        lambda x, t, tn, u: x * (1 + (tn - t)),  # forgets u
    ],
    "12.flow_time": [math.sqrt(0.5), 500 / 999, 0.0],
}


def test_lesson_12_has_its_exercises():
    assert [n for n in exercises.names() if n.startswith("12.")] == sorted(NAMES)
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


def test_the_solution_agrees_with_the_package():
    """The hand-written answers equal the package's conversions (the checkers' references)."""
    from ddpm_course import linear_schedule
    from ddpm_course import parametrization as P

    schedule = linear_schedule()
    gen = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    t = torch.tensor([3, 200, 600, 999])
    score = P.convert(eps, "eps", "score", x_t, *P.vp(schedule.alpha_bars[t]))
    assert torch.allclose(ANSWERS["12.eps_to_score"](eps, t, schedule), score, atol=1e-12)
    tf = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=torch.float64)
    u = P.convert(eps, "eps", "velocity", x_t, *P.linear(tf))
    assert torch.allclose(ANSWERS["12.eps_to_velocity"](x_t, eps, tf), u, atol=1e-12)


def test_the_notebook_calls_every_checker():
    source = (ROOT / "notebooks" / "12_score_and_flow.py").read_text()
    for name in NAMES:
        assert f'dc.exercises.check("{name}", ' in source, name

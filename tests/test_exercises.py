"""The exercise checkers of lessons 01-07: each can say "correct", "not attempted yet" and its hints.

For every exercise: the reference answer in ``solutions/`` reads "correct"; a stub that raises
``NotImplementedError`` (or a number left as ``None``) reads "not attempted yet"; every classic
mistake the checker lists is recognised with its *own* hint (so no two mistakes coincide on the
cases, and none coincides with the reference); and wrong answers that are in no list fail too.
Each lesson's notebook calls every one of its checkers.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

import ddpm_course as dc
from ddpm_course import exercises
from ddpm_course.exercises import FunctionExercise, NumberExercise

ROOT = Path(__file__).resolve().parents[1]
LESSONS = {
    "01": "01_fog", "02": "02_forward_chain", "03": "03_schedules", "04": "04_unet",
    "05": "05_training", "06": "06_sampling", "07": "07_fast_samplers",
}


def _solutions(stem: str) -> dict:
    path = ROOT / "solutions" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ANSWERS


ANSWERS = {name: answer for stem in LESSONS.values() if (ROOT / "solutions" / f"{stem}.py").exists()
           for name, answer in _solutions(stem).items()}
NAMES = sorted(n for n in exercises.names() if n[:2] in LESSONS)
MISTAKES = [(name, i) for name in NAMES for i in range(len(exercises.EXERCISES[name].mistakes))]


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


# Wrong answers that no checker lists: each must still fail.
UNLISTED = {
    "01.add_noise": [lambda x, a, n: n, lambda x, a, n: x + n],
    "01.recover_x0": [lambda x, a, n: x, lambda x, a, n: x - n],
    "01.amplification": [1.0, 157.0],
    "02.walk": [lambda x0, n, s: x0, lambda x0, n, s: x0 + n.sum(0)],
    "02.q_sample": [lambda x0, t, n, s: x0 + n, lambda x0, t, n, s: 0.5 * x0 + 0.5 * n],
    "02.posterior_mean": [lambda x0, xt, t, s: xt, lambda x0, xt, t, s: 0.5 * (x0 + xt)],
    "02.beta_tilde": [0.0, 1e-4],
    "03.cosine_alpha_bar": [lambda t, T, s: dc.linear_schedule(T).alpha_bars[t], lambda t, T, s: 1 - t.double() / T],
    "03.snr": [lambda t, s: s.alpha_bars[t], lambda t, s: s.alpha_bars[t].log()],
    "03.linear_snr_step": [1000, 500],
    "03.cosine_snr_500": [1.0, 0.0],
    "04.sinusoidal": [lambda t, d: torch.zeros(len(t), d),
                      lambda t, d: torch.sin(t[:, None].float().expand(len(t), d))],
    "04.conv_params": [lambda ci, co, k: ci * co, lambda ci, co, k: (ci + 1) * co * k * k],
    "04.simple_unet_params": [808_131, 0],
    "05.l_simple": [lambda m, x0, t, n, s: torch.zeros(()), lambda m, x0, t, n, s: (n - m(x0 + n, t)).pow(2).mean()],
    "05.elbo_weight": [lambda t, s: torch.ones(len(t), dtype=torch.float64), lambda t, s: s.betas[t]],
    "05.ema_start": [0.0, math.exp(-499 * 0.005)],
    "06.ddpm_step": [lambda x, t, e, z, s: x - e, lambda x, t, e, z, s: dc.predict_x0(s, x, t, e)],
    "06.ddpm_loop": [lambda m, x, n, s: x, lambda m, x, n, s: x - m(x, torch.full((x.shape[0],), s.T - 1))],
    "06.std_ratio": [1.0, 0.5],
    "07.ddim_step": [lambda x, t, tp, e, eta, z, s: x, lambda x, t, tp, e, eta, z, s: x - e],
    "07.dpm2m_step": [lambda x, t, tp, e, tl, x0l, s: x0l, lambda x, t, tp, e, tl, x0l, s: x - e],
    "07.shrink": [1.0, 0.894],
}


def test_every_lesson_has_exercises_and_answers():
    for prefix in LESSONS:
        names = [n for n in NAMES if n.startswith(prefix + ".")]
        if not names:
            continue  # a lesson whose exercises are not written yet
        assert 2 <= len(names) <= 4, names
        assert all(name in ANSWERS for name in names), (prefix, names)
        assert any(isinstance(exercises.EXERCISES[n], NumberExercise) for n in names), f"lesson {prefix} asks no number"


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
def test_unlisted_wrong_answers_fail(name):
    wrong = UNLISTED[name]
    assert len(wrong) >= 1
    for answer in wrong:
        verdict = exercises.check(name, answer)
        assert verdict.status in ("wrong", "mistake"), (name, verdict)


@pytest.mark.parametrize("name", NAMES)
def test_each_checker_has_several_mistakes(name):
    assert len(exercises.EXERCISES[name].mistakes) >= 2


@pytest.mark.parametrize("name", [n for n in NAMES if isinstance(exercises.EXERCISES[n], FunctionExercise)])
def test_a_raising_answer_is_reported_with_its_case(name):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    verdict = exercises.check(name, broken)
    assert verdict.status == "wrong" and "ZeroDivisionError: boom (case: " in verdict.message


def test_an_error_that_a_mistake_makes_too_gets_its_hint():
    # Multiplying the (B,) alpha-bars straight into a (B, C, H, W) batch fails with a size mismatch;
    # the checker recognises the lost broadcasting from the identical error.
    def no_reshape(x0, t, noise, schedule):
        abar = schedule.alpha_bars[t]
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    verdict = exercises.check("02.q_sample", no_reshape)
    assert verdict.status == "mistake" and "broadcasting over the batch is lost" in verdict.message, verdict


@pytest.mark.parametrize("prefix", sorted(LESSONS))
def test_the_notebook_calls_every_checker_of_its_lesson(prefix):
    source = (ROOT / "notebooks" / f"{LESSONS[prefix]}.py").read_text()
    for name in (n for n in NAMES if n.startswith(prefix + ".")):
        assert f'dc.exercises.check("{name}", ' in source, name

"""Lessons 01-07's exercise checkers beyond the checks every checker gets (tests/test_exercise_checkers.py):
wrong answers that no checker lists fail too, every checker lists several mistakes, an answer that
raises is reported with its case, and an error that a listed mistake makes too gets that mistake's hint."""
from __future__ import annotations

import math

import pytest
import torch

import ddpm_course as dc
from ddpm_course import exercises
from ddpm_course.exercises import FunctionExercise

LESSONS = ("01", "02", "03", "04", "05", "06", "07")
NAMES = sorted(n for n in exercises.names() if n[:2] in LESSONS)


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

"""Lesson 12's exercise checkers beyond the checks every checker gets (tests/test_exercise_checkers.py):
wrong answers that no checker lists fail too, and what is particular to this lesson."""
from __future__ import annotations

import math

import pytest
import torch
from _solutions import answers

from ddpm_course import exercises

NAMES = ["12.eps_to_score", "12.eps_to_velocity", "12.flow_matching_loss", "12.flow_time"]

ANSWERS = answers("12")
exercises.names()  # loads every lesson's checkers


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
    "12.flow_matching_loss": [
        lambda m, x, t, e: (e - x).pow(2).mean(),  # forgets the network
        lambda m, x, t, e: ((e - x) - m((1 - _col(t, x)) * x + _col(t, x) * e, t * 999)).abs().mean(),  # L1
    ],
    "12.flow_time": [math.sqrt(0.5), 500 / 999, 0.0],
}


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




def test_eps_to_score_in_float32_is_accepted_with_a_reason():
    def in_float32(eps, t, schedule):
        abar = schedule.alpha_bars.float()[t].reshape(-1, *([1] * (eps.ndim - 1)))
        return -eps.float() / (1 - abar).sqrt()

    verdict = exercises.check("12.eps_to_score", in_float32)
    assert verdict.status == "correct" and "float32" in verdict.message and "t = 0" in verdict.message
    # a float32 answer with a real mistake is still wrong
    def wrong_in_float32(eps, t, schedule):
        return in_float32(eps, t, schedule) * 1.01

    assert exercises.check("12.eps_to_score", wrong_in_float32).status in ("wrong", "mistake")


def test_flow_matching_loss_reference_is_the_package_and_float32_passes():
    from ddpm_course import flow

    case = exercises.EXERCISES["12.flow_matching_loss"].cases(torch.Generator().manual_seed(0))[0]
    model, x0, t, noise = case.args
    assert torch.equal(ANSWERS["12.flow_matching_loss"](model, x0, t, noise),
                       flow.flow_matching_loss(model, x0, t=t, noise=noise))

    def in_float32(model, x0, t, noise):  # a float32 model and data: agrees to float32's precision
        return ANSWERS["12.flow_matching_loss"](lambda x, s: model(x.double(), s.double()).float(), x0.float(),
                                                t.float(), noise.float())

    assert exercises.check("12.flow_matching_loss", in_float32).status == "correct"

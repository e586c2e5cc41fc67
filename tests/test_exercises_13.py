"""Lesson 13's exercise checkers beyond the checks every checker gets (tests/test_exercise_checkers.py):
wrong answers that no checker lists fail too, and what is particular to this lesson."""
from __future__ import annotations

import math

import pytest
import torch
from _solutions import answers

from ddpm_course import exercises, linear_schedule, samplers
from ddpm_course.exercises import lesson13

NAMES = ["13.heun_step", "13.consistency_target", "13.multistep_evals"]

ANSWERS = answers("13")
exercises.names()  # loads every lesson's checkers


UNLISTED = {
    "13.heun_step": [
        lambda z, s, sn, d: d(z, s),  # jumps to the data
        lambda z, s, sn, d: z + (sn - s) * (z - d(z, s)),  # the slope without the division by sigma
    ],
    "13.consistency_target": [
        lambda teacher, student, schedule, x, t, tn: x,
        lambda teacher, student, schedule, x, t, tn: student(x, torch.full((x.shape[0],), max(tn, 0))),
    ],
    "13.multistep_evals": [3, 20, 1],
}


@pytest.mark.parametrize("name", NAMES)
def test_unlisted_wrong_answers_fail(name):
    for answer in UNLISTED[name]:
        verdict = exercises.check(name, answer)
        assert verdict.status in ("wrong", "mistake"), (name, verdict)


@pytest.mark.parametrize("n_levels", [3, 8])
def test_the_reference_heun_step_is_the_samplers_heun_step(n_levels):
    """EDM's z-variable step equals samplers.heun_step on the VP variable x = z / sqrt(1 + sigma^2),
    with the exact eps of N(m, s^2 I) data at whole steps of the linear schedule."""
    schedule = linear_schedule()
    abar = schedule.alpha_bars.double()
    ts = samplers.timesteps(schedule, n_levels, "karras").tolist()
    m, s = torch.tensor([[0.4, -0.2]], dtype=torch.float64), 0.3

    def denoise(z, sigma):
        return m + s**2 / (s**2 + sigma**2) * (z - m)

    def eps(x, t):  # the same model as a noise predictor at step t
        a = abar[t].item()
        sigma = math.sqrt((1 - a) / a)
        z = x / math.sqrt(a)
        return (z - denoise(z, sigma)) / sigma

    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        a = abar[t].item()
        a_prev = 1.0 if t_prev < 0 else abar[t_prev].item()
        sigma, sigma_prev = math.sqrt((1 - a) / a), math.sqrt((1 - a_prev) / a_prev)
        ours = samplers.heun_step(schedule, x, t, eps(x, t), t_prev=t_prev, predict=eps).x_prev
        z_next = lesson13.heun_step(x / math.sqrt(a), sigma, sigma_prev, denoise)
        torch.testing.assert_close(ours, z_next * math.sqrt(a_prev), atol=1e-10, rtol=0)
        x = ours


def test_the_evaluation_count_is_what_the_3m_sampler_spends():
    calls = []

    def model(x, t):
        calls.append(1)
        return torch.zeros_like(x)

    samplers.dpm_solver_3m_sample(model, linear_schedule(), (2, 2), steps=10)
    assert len(calls) == ANSWERS["13.multistep_evals"] == 10


def test_float32_answers_are_accepted():
    def heun32(z, s, sn, d):
        return ANSWERS["13.heun_step"](z.float(), s, sn, lambda v, sg: d(v.double(), sg).float()).double()

    assert exercises.check("13.heun_step", heun32).ok

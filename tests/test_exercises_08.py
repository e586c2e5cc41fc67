"""Lesson 08's exercise checkers beyond the checks every checker gets (tests/test_exercise_checkers.py):
wrong answers that no checker lists fail too, and what is particular to this lesson."""
from __future__ import annotations

import pytest
import torch
from _solutions import answers

from ddpm_course import exercises

NAMES = ["08.cfg_loss", "08.cfg_combine", "08.guided_model", "08.scale_from_w"]

ANSWERS = answers("08")
exercises.names()  # loads every lesson's checkers


def _half_step(c, u, s):  # moves only half as far as asked
    return u + 0.5 * s * (c - u)


def _null_zero_doubled(model, x, t, y, s, null):  # one call, but the null half uses label 0
    b = x.shape[0]
    eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.zeros_like(y)]))
    return eps[b:] + s * (eps[:b] - eps[b:])


def _guided_by_s_squared(model, x, t, y, s, null):
    cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, null))
    return uncond + s * s * (cond - uncond)


def _loss_dropping_everything(model, x0, y, t, noise, drop, null, schedule):  # p_uncond = 1
    abar = schedule.alpha_bars.to(x0.dtype)[t].reshape(-1, *[1] * (x0.ndim - 1))
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    return ((model(x_t, t, torch.full_like(y, null)) - noise) ** 2).mean()


def _loss_summed(model, x0, y, t, noise, drop, null, schedule):  # a sum, not a mean
    return ANSWERS["08.cfg_loss"](model, x0, y, t, noise, drop, null, schedule) * x0.numel()


UNLISTED = {
    "08.cfg_loss": [_loss_dropping_everything, _loss_summed],
    "08.cfg_combine": [_half_step, lambda c, u, s: c, lambda c, u, s: u + s * c],
    "08.guided_model": [_null_zero_doubled, _guided_by_s_squared],
    "08.scale_from_w": [0.7, 2.0, 1.0],
}


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




def _float32(answer):
    """The same answer computed in float32 from float64 cases."""
    def run(*args):
        args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
        return answer(*args)
    return run


@pytest.mark.parametrize("name", ["08.cfg_loss", "08.cfg_combine"])
def test_float32_answers_are_accepted(name):
    assert exercises.check(name, _float32(ANSWERS[name])).status == "correct"


def test_the_loss_checker_sees_the_labels_the_model_gets():
    """The toy model's output depends on the label, so a wrong label rule changes the loss."""
    from ddpm_course.exercises.lesson08 import NULL, toy_model
    x, t = torch.zeros(3, 2, dtype=torch.float64), torch.tensor([10, 10, 10])
    outs = [toy_model(x, t, torch.full((3,), k)) for k in range(NULL + 1)]
    assert all((outs[i] - outs[j]).abs().max() > 0.1 for i in range(NULL + 1) for j in range(i))

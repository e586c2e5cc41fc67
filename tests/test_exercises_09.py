"""Lesson 09's exercise checkers beyond the checks every checker gets (tests/test_exercise_checkers.py):
wrong answers that no checker lists fail too, and what is particular to this lesson."""
from __future__ import annotations

import pytest
import torch
from _solutions import answers

from ddpm_course import exercises

NAMES = ["09.kl_term", "09.scale_factor", "09.latent_pipeline", "09.pass_ratio"]

ANSWERS = answers("09")
exercises.names()  # loads every lesson's checkers


UNLISTED = {
    "09.kl_term": [lambda m, lv: 0.5 * m.flatten(1).square().sum(1),  # the mean's term only
                   lambda m, lv: (0.5 * (m**2 + lv.exp() - lv)).flatten(1).sum(1)],  # the "- 1" forgotten
    "09.scale_factor": [lambda z: 0.18215, lambda z: 1 / z.abs().max().item()],
    "09.pass_ratio": [16.0, 4096.0],
    "09.latent_pipeline": [
        lambda e, d, x, eps, z, s: (e(x)[0] * s, d(z / s)),  # the mean only: no sample of q(z | x)
        lambda e, d, x, eps, z, s: ((e(x)[0] + (e(x)[1] / 2).exp() * eps) * s, d(z)[:, :, :2]),  # a cropped image
    ],
}


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




def _float32(answer):
    def run(*args):
        return answer(*[a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args])
    return run


@pytest.mark.parametrize("name", ["09.kl_term", "09.latent_pipeline"])
def test_float32_answers_are_accepted(name):
    assert exercises.check(name, _float32(ANSWERS[name])).status == "correct"


def test_the_forgotten_unscale_changes_the_images_a_lot():
    """The checker's cases tell the forgotten unscale apart by far more than the tolerance."""
    from ddpm_course.exercises.lesson09 import _pipeline_cases, latent_pipeline
    for case in _pipeline_cases(torch.Generator().manual_seed(0)):
        right = latent_pipeline(*case.args)[1]
        wrong = latent_pipeline(*case.args, unscale=False)[1]
        assert (right - wrong).abs().max() > 0.05

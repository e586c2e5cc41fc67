"""Lesson 11's exercise checkers beyond the checks every checker gets (tests/test_exercise_checkers.py):
wrong answers that no checker lists fail too, and what is particular to this lesson."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _solutions import answers

from ddpm_course import exercises

NAMES = ["11.modes_covered", "11.generator_loss", "11.d_loss_equilibrium", "11.core_fractions"]

ANSWERS = answers("11")
exercises.names()  # loads every lesson's checkers


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
    "11.core_fractions": [lambda x, m, s, w: torch.ones(m.shape[0], dtype=torch.float64),
                          lambda x, m, s, w: torch.bincount(torch.cdist(x, m).argmin(1), minlength=m.shape[0]) / (
                              x.shape[0] * w)],
}


def test_a_disc_count_is_also_correct_when_discs_do_not_overlap():
    assert exercises.check("11.modes_covered", _nearest_any_mode_within).status == "correct"


@pytest.mark.parametrize("name", NAMES)
def test_unlisted_wrong_answers_fail(name):
    for answer in UNLISTED[name]:
        verdict = exercises.check(name, answer)
        assert verdict.status in ("wrong", "mistake"), (name, verdict)




def test_core_fractions_reject_the_smear_and_accept_real_data():
    from ddpm_course import compare
    from ddpm_course.oracle import ring_mixture

    ring = ring_mixture()
    g = torch.Generator().manual_seed(5)
    real = ANSWERS["11.core_fractions"](ring.sample(2000, generator=g), ring.means, 0.1, ring.weights)
    smear = ANSWERS["11.core_fractions"](compare.nothing_learned(ring, 2000, g), ring.means, 0.1, ring.weights)
    assert real.min() > 0.7 and smear.max() < 0.4


def test_core_fractions_unlisted_wrong_answers_fail():
    def counts_only(x, means, std, weights):
        dist, idx = torch.cdist(x.double(), means.double()).min(dim=1)
        return torch.bincount(idx[dist <= std], minlength=means.shape[0]).double()

    def as_float32(x, means, std, weights):  # float32 is fine: the same points are counted
        return ANSWERS["11.core_fractions"](x.float(), means.float(), std, weights.float())

    assert exercises.check("11.core_fractions", counts_only).status in ("wrong", "mistake")
    assert exercises.check("11.core_fractions", as_float32).status == "correct"

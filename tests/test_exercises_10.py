"""Lesson 10's exercise checkers beyond the checks every checker gets (tests/test_exercise_checkers.py):
wrong answers that no checker lists fail too, and what is particular to this lesson."""
from __future__ import annotations

import pytest
import torch
from _solutions import answers

from ddpm_course import exercises

NAMES = ["10.frechet_gaussians", "10.precision_recall", "10.fd_infinity", "10.kid"]

ANSWERS = answers("10")
exercises.names()  # loads every lesson's checkers


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
    "10.kid": [lambda x, y: 0.0, lambda x, y: (x.mean(0) - y.mean(0)).square().sum()],
}


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




def test_kid_answers_in_float32_are_correct():
    """A learner who computes in float32 loses digits in the kernel's cancellations, but stays
    inside the checker's tolerance."""
    def in_float32(x, y):
        return ANSWERS["10.kid"](x.float(), y.float())

    assert exercises.check("10.kid", in_float32).status == "correct"


def test_kid_reference_is_the_double_loop():
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def k(a, b):
        return (float(a @ b) / 2 + 1) ** 3

    loop = (sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
            + sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
            - 2 * sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20)
    assert ANSWERS["10.kid"](x, y) == pytest.approx(loop, rel=1e-10)

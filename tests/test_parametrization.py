"""The five readings of one network (eps, x0, score, v, velocity): round trips, the oracle, Tweedie."""
import math

import pytest
import torch

from ddpm_course import linear_schedule
from ddpm_course import parametrization as P
from ddpm_course.oracle import ring_mixture

pytestmark = pytest.mark.usefixtures("one_thread")

PATHS = {
    "vp, float": P.vp(0.3),
    "vp, per sample": P.vp(torch.tensor([0.9, 0.5, 0.1, 0.01], dtype=torch.float64)),
    "linear, float": P.linear(0.7),
    "linear, per sample": P.linear(torch.tensor([0.05, 0.3, 0.6, 0.95], dtype=torch.float64)),
}


@pytest.mark.parametrize("path", PATHS.values(), ids=list(PATHS))
@pytest.mark.parametrize("source", P.KINDS)
@pytest.mark.parametrize("target", P.KINDS)
def test_round_trip(path, source, target):
    gen = torch.Generator().manual_seed(0)
    x_t, value = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen)
    there = P.convert(value, source, target, x_t, *path)
    back = P.convert(there, target, source, x_t, *path)
    assert torch.allclose(back, value, atol=1e-10)


@pytest.mark.parametrize("path", PATHS.values(), ids=list(PATHS))
def test_definitions_from_the_true_noise_and_data(path):
    """Fed the true eps of x_t = alpha x0 + sigma eps, each reading is its defining formula."""
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen)
    alpha, sigma = (v.reshape(-1, 1) if isinstance(v, torch.Tensor) else v for v in path)
    x_t = alpha * x0 + sigma * eps
    expected = {"eps": eps, "x0": x0, "score": -eps / sigma, "v": alpha * eps - sigma * x0, "velocity": eps - x0}
    for kind, value in expected.items():
        assert torch.allclose(P.from_eps(kind, eps, x_t, *path), value, atol=1e-12), kind
        assert torch.allclose(P.to_eps(kind, value, x_t, *path), eps, atol=1e-10), kind


def test_v_and_velocity_are_time_derivatives():
    """v = d x / d phi on the VP path (alpha = cos phi, sigma = sin phi); velocity = d x / dt on the straight path."""
    gen = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(2, 5, 2, dtype=torch.float64, generator=gen)
    phi, h = 0.6, 1e-6
    x_phi = math.cos(phi) * x0 + math.sin(phi) * eps
    dx = ((math.cos(phi + h) - math.cos(phi - h)) * x0 + (math.sin(phi + h) - math.sin(phi - h)) * eps) / (2 * h)
    v = P.from_eps("v", eps, x_phi, *P.vp(math.cos(phi) ** 2))
    assert torch.allclose(v, dx, atol=1e-8)
    t = 0.4
    x_t = (1 - t) * x0 + t * eps
    dx_dt = (((1 - t - h) * x0 + (t + h) * eps) - ((1 - t + h) * x0 + (t - h) * eps)) / (2 * h)
    assert torch.allclose(P.from_eps("velocity", eps, x_t, *P.linear(t)), dx_dt, atol=1e-8)


@pytest.mark.parametrize("t", [0, 50, 300, 999])
def test_agrees_with_the_oracle(t):
    """The oracle's eps*, read as a score and as x0, is its exact score and its E[x0 | x_t]."""
    schedule = linear_schedule()
    mixture = ring_mixture()
    abar = schedule.alpha_bars[t].item()
    x_t = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    score, eps = mixture.score_and_eps(x_t, t, schedule)
    assert torch.allclose(P.convert(eps, "eps", "score", x_t, *P.vp(abar)), score, rtol=1e-9, atol=1e-9)
    assert torch.allclose(P.convert(score, "score", "eps", x_t, *P.vp(abar)), eps, rtol=1e-9, atol=1e-12)
    x0_mean = mixture.x0_mean(x_t, t, schedule)
    assert torch.allclose(P.convert(eps, "eps", "x0", x_t, *P.vp(abar)), x0_mean, rtol=1e-9, atol=1e-9)
    assert torch.allclose(P.tweedie_x0(x_t, score, *P.vp(abar)), x0_mean, rtol=1e-9, atol=1e-9)


def test_tweedie_against_monte_carlo():
    """E[x0 | x_t] from the score equals a self-normalised importance-sampling estimate of the posterior mean."""
    schedule = linear_schedule()
    mixture = ring_mixture()
    t = 150
    abar = schedule.alpha_bars[t].item()
    gen = torch.Generator().manual_seed(3)
    x_t = torch.tensor([[0.9, 0.1], [0.0, 0.0], [0.5, -0.6]], dtype=torch.float64)
    x0 = mixture.sample(200_000, gen)  # prior draws
    log_w = -((x_t[:, None, :] - math.sqrt(abar) * x0[None]) ** 2).sum(-1) / (2 * (1 - abar))  # (3, N)
    w = torch.softmax(log_w, dim=1)
    mc_mean = w @ x0  # (3, 2)
    ess = 1 / (w**2).sum(1)  # effective sample size per point
    mc_se = ((w[..., None] * (x0[None] - mc_mean[:, None]) ** 2).sum(1) / ess[:, None]).sqrt()
    score, _ = mixture.score_and_eps(x_t, t, schedule)
    tweedie = P.tweedie_x0(x_t, score, *P.vp(abar))
    assert torch.all((tweedie - mc_mean).abs() < 5 * mc_se + 1e-4), (tweedie, mc_mean, mc_se)


def test_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="kind"):
        P.to_eps("noise", x, x, 0.5, 0.5)
    with pytest.raises(ValueError, match="target"):
        P.convert(x, "eps", "x_0", x, 0.5, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        P.convert(x, "eps", "x0", x, 0.0, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        P.convert(x, "x0", "eps", x, 1.0, torch.tensor([0.5, 0.0]))
    with pytest.raises(ValueError, match="same shape"):
        P.convert(torch.zeros(2, 2), "eps", "x0", x, 0.5, 0.5)

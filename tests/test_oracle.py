"""The Gaussian-mixture oracle: its eps against autograd, and samplers driven by it.

With the exact eps a sampler can only err through its own discretisation, so these tests
check the samplers against the known answer: DDPM with all 1000 steps must reproduce the
mixture to Monte Carlo precision, and the fast samplers must approach the ODE's solution as
their step count grows.
"""
from __future__ import annotations

import math

import pytest
import torch

import ddpm_course as dc
from ddpm_course import samplers
from ddpm_course.forward import predict_x0, q_sample
from ddpm_course.metrics import sliced_wasserstein
from ddpm_course.oracle import GaussianMixture, ring_mixture

SCHEDULE = dc.linear_schedule()


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def skewed_mixture() -> GaussianMixture:
    """Unequal weights and full covariances, so the checks see more than a symmetric ring."""
    return GaussianMixture(
        weights=torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
        means=torch.tensor([[1.0, 0.0], [-1.0, 0.5], [0.0, -1.2]]),
        covs=torch.tensor([[[0.04, 0.01], [0.01, 0.02]], [[0.02, 0.0], [0.0, 0.05]], [[0.03, -0.015], [-0.015, 0.03]]]),
    )


@pytest.mark.parametrize("t", [0, 10, 250, 999])
def test_eps_is_minus_sqrt_one_minus_abar_times_autograd_score(t):
    mix = skewed_mixture()
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(t)).requires_grad_(True)
    abar = SCHEDULE.alpha_bars[t].item()
    mix.noised(abar).log_prob(x).sum().backward()
    score, eps = mix.score_and_eps(x.detach(), t, SCHEDULE)
    torch.testing.assert_close(score, x.grad, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(eps, -math.sqrt(1 - abar) * x.grad, atol=1e-9, rtol=1e-9)


def test_mixed_timesteps_in_one_batch():
    mix = skewed_mixture()
    x = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.arange(40) * 25
    together = mix.eps(x, t, SCHEDULE)
    one_by_one = torch.cat([mix.eps(x[i : i + 1], int(t[i]), SCHEDULE) for i in range(40)])
    torch.testing.assert_close(together, one_by_one, atol=1e-12, rtol=0)


def test_x0_mean_of_one_gaussian_is_the_shrunk_point():
    """For N(m, s^2 I): E[x0 | x_t] = m + s^2 sqrt(abar) / (abar s^2 + 1 - abar) (x_t - sqrt(abar) m)."""
    m, s2, t = torch.tensor([[0.5, -1.0]], dtype=torch.float64), 0.09, 300
    mix = GaussianMixture(torch.ones(1, dtype=torch.float64), m, s2 * torch.eye(2, dtype=torch.float64)[None])
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = SCHEDULE.alpha_bars[t].item()
    expected = m + s2 * math.sqrt(a) / (a * s2 + 1 - a) * (x - math.sqrt(a) * m)
    torch.testing.assert_close(mix.x0_mean(x, t, SCHEDULE), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(mix.x0_mean(x, t, SCHEDULE), predict_x0(SCHEDULE, x, t, mix.eps(x, t, SCHEDULE)))


def test_x0_mean_is_the_regression_of_x0_on_x_t():
    """Monte Carlo: average x0 over pairs whose x_t fell in a small cell equals E[x0 | x_t] there."""
    mix, t = ring_mixture(8, 1.0, 0.1), 150
    x0 = mix.sample(400_000, torch.Generator().manual_seed(2))
    x_t, _ = q_sample(SCHEDULE, x0, t, generator=torch.Generator().manual_seed(3))
    centre = torch.tensor([[0.5, 0.3]], dtype=torch.float64)
    inside = (x_t - centre).abs().max(dim=1).values < 0.04
    n = int(inside.sum())
    assert n > 200
    mc = x0[inside].mean(0)
    exact = mix.x0_mean(x_t[inside], t, SCHEDULE).mean(0)  # averaged over the same cell
    se = x0[inside].std(0) / math.sqrt(n)
    assert torch.all((mc - exact).abs() < 4 * se), (mc, exact, se)


def test_noised_mixture_matches_q_sample_moments():
    mix, t = skewed_mixture(), 400
    abar = SCHEDULE.alpha_bars[t].item()
    n = 200_000
    x0 = mix.sample(n, torch.Generator().manual_seed(4))
    x_t, _ = q_sample(SCHEDULE, x0, t, generator=torch.Generator().manual_seed(5))
    noised = mix.noised(abar)
    five_se = 5 * noised.cov().diagonal().max().sqrt().item() / math.sqrt(n)
    torch.testing.assert_close(x_t.mean(0), noised.mean(), atol=five_se, rtol=0)
    torch.testing.assert_close(torch.cov(x_t.T), noised.cov(), atol=0.01, rtol=0)


def test_nearest_mean_distance():
    mix = ring_mixture(4, radius=2.0, std=0.1)
    x = torch.tensor([[2.0, 0.0], [0.0, 1.5], [0.1, 0.1]], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.5, math.hypot(1.9, 0.1)], dtype=torch.float64)
    torch.testing.assert_close(mix.nearest_mean_distance(x), expected)


# ----------------------------------------------------------------------------- DDPM reproduces the mixture


N = 4000


@pytest.fixture(scope="module")
def ddpm_samples():
    mix = skewed_mixture()
    x_T = torch.randn(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    out = samplers.ddpm_sample(mix.as_model(SCHEDULE), SCHEDULE, x_T, generator=torch.Generator().manual_seed(11))
    return mix, out


def test_ddpm_1000_reproduces_component_weights(ddpm_samples):
    mix, x = ddpm_samples
    labels = mix._component_log_probs(x).argmax(1)  # most likely component of each sample
    counts = torch.bincount(labels, minlength=3).double()
    # Misassigned tails are tiny here (components > 6 sd apart); the test is the binomial error.
    sd = (N * mix.weights * (1 - mix.weights)).sqrt()
    assert torch.all((counts - N * mix.weights).abs() < 4 * sd), (counts / N, mix.weights)


def test_ddpm_1000_reproduces_component_means_and_covariances(ddpm_samples):
    mix, x = ddpm_samples
    labels = mix._component_log_probs(x).argmax(1)
    for k in range(3):
        xk = x[labels == k]
        nk = xk.shape[0]
        cov = mix.covs[k]
        # mean: standard error sqrt(diag(S) / n)
        assert torch.all((xk.mean(0) - mix.means[k]).abs() < 4 * (cov.diagonal() / nk).sqrt()), k
        # covariance entries: Var(S_ij_hat) = (S_ii S_jj + S_ij^2) / (n - 1) for Gaussian data
        se = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / (nk - 1)).sqrt()
        assert torch.all((torch.cov(xk.T) - cov).abs() < 4 * se), (k, torch.cov(xk.T), cov)


def test_ddpm_1000_sliced_w2_is_at_the_real_vs_real_level(ddpm_samples):
    """SW2(samples, fresh data) against the spread of SW2(data, data) over 20 independent pairs."""
    mix, x = ddpm_samples
    proj = 0

    def sw(a, b):
        return sliced_wasserstein(a, b, n_projections=128, generator=torch.Generator().manual_seed(proj))

    real_vs_real = torch.tensor(
        [
            sw(mix.sample(N, torch.Generator().manual_seed(100 + 2 * i)),
               mix.sample(N, torch.Generator().manual_seed(101 + 2 * i)))
            for i in range(20)
        ]
    )
    fake = torch.tensor([sw(x, mix.sample(N, torch.Generator().manual_seed(200 + i))) for i in range(5)])
    margin = real_vs_real.mean() + 3 * real_vs_real.std()
    assert fake.mean() < margin, (fake, real_vs_real.mean(), real_vs_real.std())


# ----------------------------------------------------------------------------- fast samplers converge


@pytest.fixture(scope="module")
def ode_reference():
    """The probability-flow ODE solved with 999 DPM-Solver++ steps uniform in log-SNR."""
    mix = ring_mixture(8, 1.0, 0.1)
    x_T = torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(20))
    model = mix.as_model(SCHEDULE)
    return model, x_T, samplers.dpm_solver_sample(model, SCHEDULE, x_T, steps=999, spacing="logsnr")


@pytest.mark.parametrize(
    "name, run",
    [
        ("ddim", lambda m, x, n: samplers.ddim_sample(m, SCHEDULE, x, steps=n, spacing="linspace")),
        ("euler", lambda m, x, n: samplers.euler_sample(m, SCHEDULE, x, steps=n)),
        ("dpm_solver", lambda m, x, n: samplers.dpm_solver_sample(m, SCHEDULE, x, steps=n)),
        ("dpm_solver_logsnr", lambda m, x, n: samplers.dpm_solver_sample(m, SCHEDULE, x, steps=n, spacing="logsnr")),
    ],
)
def test_fast_samplers_approach_the_ode_solution(ode_reference, name, run):
    """Same x_T, deterministic samplers starting at t = T-1: the error to the reference falls."""
    model, x_T, ref = ode_reference
    errors = [(run(model, x_T, n) - ref).norm(dim=1).mean().item() for n in (10, 20, 50, 100)]
    assert all(b < a for a, b in zip(errors, errors[1:])), (name, errors)
    assert errors[-1] < errors[0] / 3, (name, errors)


def test_dpm_solver_default_squeezes_sharp_modes_and_logsnr_levels_fix_it():
    """The finding of notebook 07, pinned: on a ring of width 0.05, 50 DPM-Solver++ steps with
    diffusers' levels leave the typical sample far too close to its mode; log-SNR levels don't."""
    ring = ring_mixture(8, 1.0, 0.05)
    model = ring.as_model(SCHEDULE)
    x_T = torch.randn(1000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(30))
    truth = ring.nearest_mean_distance(ring.sample(20_000, torch.Generator().manual_seed(31))).median()

    def ratio(**options):
        out = samplers.dpm_solver_sample(model, SCHEDULE, x_T, steps=50, **options)
        return (ring.nearest_mean_distance(out).median() / truth).item()

    # The last evaluation sits at t = 20 (sigma 0.08 > 0.05): E[x0|x_t] shrinks by 0.05 / sqrt(0.05^2 + 0.08^2) = 0.53.
    assert ratio() < 0.6
    assert abs(ratio(spacing="logsnr") - 1) < 0.1

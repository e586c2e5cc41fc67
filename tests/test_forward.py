"""The forward process: the Markov chain, the closed-form jump and the posterior, checked with numbers."""
import math

import pytest
import torch

import ddpm_course as dc


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("schedule_fn", [dc.linear_schedule, dc.cosine_schedule], ids=["linear", "cosine"])
@pytest.mark.parametrize("k", [0, 9, 99])
def test_iterating_q_step_matches_the_jump(schedule_fn, k):
    """k+1 Markov steps from x0 have the mean and variance q(x_k | x0) says (Monte Carlo, 5 sigma)."""
    s = schedule_fn()
    n = 20_000
    x0 = torch.tensor([-1.0, -0.3, 0.4, 1.0], dtype=torch.float64)
    x = x0.expand(n, 4).clone()
    g = _gen(k)
    for t in range(k + 1):
        x = dc.q_step(s, x, t, generator=g)
    abar = s.alpha_bars[k].item()
    mean_err = (x.mean(0) - math.sqrt(abar) * x0).abs()
    var = 1 - abar
    assert torch.all(mean_err < 5 * math.sqrt(var / n)), mean_err
    var_err = (x.var(0) - var).abs()
    assert torch.all(var_err < 5 * var * math.sqrt(2 / n)), var_err
    # the same law from the jump itself
    x_jump, _ = dc.q_sample(s, x0.expand(n, 4).clone(), k, generator=_gen(100 + k))
    assert torch.all((x_jump.mean(0) - math.sqrt(abar) * x0).abs() < 5 * math.sqrt(var / n))


def test_q_step_is_the_formula():
    s = dc.linear_schedule(T=100)
    x = torch.randn(3, 5, generator=_gen(1), dtype=torch.float64)
    eps = torch.randn(3, 5, generator=_gen(2), dtype=torch.float64)
    t = torch.tensor([0, 50, 99])
    out = dc.q_step(s, x, t, noise=eps)
    expected = s.alphas[t, None].sqrt() * x + s.betas[t, None].sqrt() * eps
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)


def test_two_steps_merge_into_one_gaussian_step():
    """sqrt(a2) (sqrt(a1) x + sqrt(1-a1) e1) + sqrt(1-a2) e2 has noise variance 1 - a1 a2."""
    s = dc.linear_schedule(T=10, beta_start=0.05, beta_end=0.2)
    a1, a2 = s.alphas[0].item(), s.alphas[1].item()
    noise_var = a2 * (1 - a1) + (1 - a2)
    assert noise_var == pytest.approx(1 - a1 * a2, rel=1e-14)
    assert s.alpha_bars[1].item() == pytest.approx(a1 * a2, rel=1e-14)


def test_posterior_matches_bayes_rule_on_a_grid():
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), integrated numerically in 1-D."""
    s = dc.cosine_schedule(T=1000)
    x0, x_t = 0.7, -0.4
    for t in (1, 10, 400, 900):
        alpha, abar_prev = s.alphas[t].item(), s.alpha_bars_prev[t].item()
        grid = torch.linspace(-8, 8, 400_001, dtype=torch.float64)
        log_lik = -((x_t - math.sqrt(alpha) * grid) ** 2) / (2 * (1 - alpha))
        log_prior = -((grid - math.sqrt(abar_prev) * x0) ** 2) / (2 * (1 - abar_prev))
        w = torch.softmax(log_lik + log_prior, dim=0)
        grid_mean = (w * grid).sum().item()
        grid_var = (w * (grid - grid_mean) ** 2).sum().item()
        as_batch = {"dtype": torch.float64}
        mean, var = dc.q_posterior(s, torch.tensor([[x0]], **as_batch), torch.tensor([[x_t]], **as_batch), t)
        assert mean.item() == pytest.approx(grid_mean, abs=1e-6)
        assert var.item() == pytest.approx(grid_var, rel=1e-5)


def test_posterior_matches_regression_on_simulated_pairs():
    """Regress x_{t-1} on (x_0, x_t) over simulated triples: the fit is the posterior's mean and variance."""
    s = dc.linear_schedule()
    t, n = 300, 200_000
    g = _gen(3)
    # any data law works: the posterior is linear in (x0, x_t)
    x0 = torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 - 1
    x_prev, _ = dc.q_sample(s, x0, t - 1, generator=g)
    x_t = dc.q_step(s, x_prev, t, generator=g)
    design = torch.cat([x0, x_t], dim=1)  # (n, 2)
    coef = torch.linalg.lstsq(design, x_prev).solution.flatten()
    resid_var = (x_prev - design @ coef[:, None]).var().item()
    assert coef[0].item() == pytest.approx(s.posterior_mean_coef_x0[t].item(), abs=0.01)
    assert coef[1].item() == pytest.approx(s.posterior_mean_coef_xt[t].item(), abs=0.01)
    assert resid_var == pytest.approx(s.posterior_variance[t].item(), rel=0.02)


def test_posterior_at_t0_returns_the_data():
    s = dc.linear_schedule(T=10)
    x0 = torch.randn(2, 3, generator=_gen(4))
    x_t = torch.randn(2, 3, generator=_gen(5))
    mean, var = dc.q_posterior(s, x0, x_t, 0)
    torch.testing.assert_close(mean, x0)
    assert torch.all(var == 0)


def test_predict_x0_inverts_the_jump():
    s = dc.cosine_schedule()
    x0 = torch.rand(4, 1, 4, 4, generator=_gen(6), dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 10, 500, 990])
    x_t, eps = dc.q_sample(s, x0, t, generator=_gen(7))
    torch.testing.assert_close(dc.predict_x0(s, x_t, t, eps), x0, rtol=0, atol=1e-9)


def test_same_generator_same_noise():
    s = dc.linear_schedule()
    x0 = torch.zeros(2, 3, 4, 4)
    a, _ = dc.q_sample(s, x0, 500, generator=_gen(11))
    b, _ = dc.q_sample(s, x0, 500, generator=_gen(11))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_forward_input():
    s = dc.linear_schedule(T=100)
    img = torch.zeros(3, 8, 8)
    with pytest.raises(ValueError, match="x0 must have a batch dimension"):
        dc.q_sample(s, torch.zeros(8), 0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, T-1\] = \[0, 99\]"):
        dc.q_sample(s, img[None], torch.tensor([100]))
    with pytest.raises(ValueError, match="t has 2 entries but the batch has 1"):
        dc.q_sample(s, img[None], torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="noise must have the shape"):
        dc.q_sample(s, img[None], 5, noise=torch.zeros(1, 3, 4, 4))
    with pytest.raises(TypeError, match="x_prev must be a floating-point tensor"):
        dc.q_step(s, torch.zeros(2, 3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match=r"x_t must have the shape of x0 \(2, 3\)"):
        dc.q_posterior(s, torch.zeros(2, 3), torch.zeros(2, 4), 1)

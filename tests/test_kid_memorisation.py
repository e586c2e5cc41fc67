"""KID (the unbiased MMD^2 under the cubic polynomial kernel) and the memorisation check, against
independent references: a double loop over the pairs, the closed-form kernel expectations of
Gaussians, Monte Carlo, and a brute-force nearest neighbour."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ddpm_course as dc
from ddpm_course import metrics


def _double_loop_mmd2(x: np.ndarray, y: np.ndarray, degree: int) -> float:
    """MMD^2_u written as the three sums of Binkowski et al.'s estimator, one pair at a time."""
    f = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / f + 1.0) ** degree

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_mmd2_unbiased_matches_a_double_loop(degree):
    rng = np.random.default_rng(degree)
    x, y = rng.normal(size=(13, 4)), rng.normal(0.5, 1.5, size=(9, 4))
    expected = _double_loop_mmd2(x, y, degree)
    got = metrics.mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y), degree=degree)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)
    kernel = metrics.polynomial_kernel(torch.from_numpy(x), torch.from_numpy(y), degree=degree)
    assert kernel.shape == (13, 9)
    assert kernel[2, 5].item() == pytest.approx((x[2] @ y[5] / 4 + 1) ** degree, rel=1e-12)


def _moment_tensor(mu: np.ndarray, cov: np.ndarray, p: int) -> np.ndarray:
    """E[x^(tensor p)] of x ~ N(mu, cov), p <= 3 (Isserlis' theorem)."""
    if p == 1:
        return mu
    if p == 2:
        return cov + np.outer(mu, mu)
    return (np.einsum("i,j,k->ijk", mu, mu, mu) + np.einsum("i,jk->ijk", mu, cov)
            + np.einsum("j,ik->ijk", mu, cov) + np.einsum("k,ij->ijk", mu, cov))


def _closed_form_mmd2(mu_a, cov_a, mu_b, cov_b, degree: int) -> float:
    """Population MMD^2 of two Gaussians under (a . b / F + 1)^degree: expand the power, and
    E[(x . y)^p] = <E x^(p), E y^(p)> for independent x, y, so MMD^2 = sum_p C(d, p) F^-p
    |T_p(a) - T_p(b)|^2 with T_p the p-th moment tensor."""
    f = len(mu_a)
    return sum(math.comb(degree, p) / f**p
               * float(np.sum((_moment_tensor(mu_a, cov_a, p) - _moment_tensor(mu_b, cov_b, p)) ** 2))
               for p in range(1, degree + 1))


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_mmd2_unbiased_is_unbiased_at_small_n(degree):
    """The mean of many estimates from 12 against 15 samples lands on the closed form (within 4
    standard errors); the biased V-statistic (i = j terms kept) misses it by far more."""
    rng = np.random.default_rng(10 + degree)
    f = 3
    mu_a, mu_b = np.array([0.3, -0.2, 0.1]), np.array([0.0, 0.4, -0.3])
    l_a, l_b = rng.normal(size=(f, f)) * 0.5, rng.normal(size=(f, f)) * 0.5
    cov_a, cov_b = l_a @ l_a.T + 0.3 * np.eye(f), l_b @ l_b.T + 0.3 * np.eye(f)
    truth = _closed_form_mmd2(mu_a, cov_a, mu_b, cov_b, degree)
    estimates, biased = [], []
    for _ in range(4000):
        x = rng.multivariate_normal(mu_a, cov_a, size=12)
        y = rng.multivariate_normal(mu_b, cov_b, size=15)
        estimates.append(metrics.mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y), degree=degree))
        kxx, kyy, kxy = ((p @ q.T / f + 1) ** degree for p, q in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    se = np.std(estimates, ddof=1) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - truth) < 4 * se, (np.mean(estimates), truth, se)
    assert abs(np.mean(biased) - truth) > 10 * se


def test_kid_of_one_distribution_is_zero_in_mean_at_every_n():
    """Same law on both sides: KID's mean is 0 at n = 10 and n = 200 alike, while the Frechet
    distance of the same sets is biased upwards, more at the smaller n."""
    g = torch.Generator().manual_seed(0)
    for n in (10, 200):
        kids, fds = [], []
        for _ in range(300 if n == 10 else 60):
            a = torch.randn(n, 4, generator=g, dtype=torch.float64)
            b = torch.randn(n, 4, generator=g, dtype=torch.float64)
            kids.append(metrics.kid(a, b).value)
            fds.append(metrics.frechet_distance(a, b))
        se = np.std(kids, ddof=1) / np.sqrt(len(kids))
        assert abs(np.mean(kids)) < 4 * se, (n, np.mean(kids), se)
        assert np.mean(fds) > 10 * np.std(fds, ddof=1) / np.sqrt(len(fds))


def test_kid_subsets_and_whole_sets():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(60, 3, generator=g, dtype=torch.float64)
    b = torch.randn(50, 3, generator=g, dtype=torch.float64) + 1
    whole = metrics.kid(a, b)
    assert whole.value == metrics.mmd2_unbiased(a, b) and whole.std == 0.0 and whole.subsets == 1
    assert whole.subset_size == 50
    first = metrics.kid(a, b, subset_size=20, subsets=8, generator=torch.Generator().manual_seed(3))
    again = metrics.kid(a, b, subset_size=20, subsets=8, generator=torch.Generator().manual_seed(3))
    assert first == again and first.subsets == 8 and first.subset_size == 20 and first.std > 0
    # the subsets' mean estimates the same population value as the whole sets
    assert abs(first.value - whole.value) < 4 * first.std / np.sqrt(8)
    # float32 features give the same number to float32 precision
    assert metrics.kid(a.float(), b.float()).value == pytest.approx(whole.value, rel=1e-5)


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda a, b: metrics.kid(a, b, subset_size=1), "subset_size"),
    (lambda a, b: metrics.kid(a, b, subset_size=11), "subset_size"),
    (lambda a, b: metrics.kid(a, b, subsets=0), "subsets"),
    (lambda a, b: metrics.kid(a[:1], b), "feats_a needs at least 2 rows"),
    (lambda a, b: metrics.kid(a, b[:, :2]), "same feature dimension"),
    (lambda a, b: metrics.mmd2_unbiased(a, b, degree=0), "degree"),
    (lambda a, b: metrics.memorisation(a, b, b, quantile=1.0), "quantile"),
    (lambda a, b: metrics.nearest_distances(a, b[:, :2]), "same feature dimension"),
])
def test_bad_arguments_name_themselves(call, fragment):
    a, b = torch.randn(12, 3), torch.randn(10, 3)
    with pytest.raises(ValueError, match=fragment):
        call(a, b)


def test_kid_refuses_integer_features():
    with pytest.raises(TypeError, match="feats_a"):
        metrics.kid(torch.ones(5, 2, dtype=torch.int64), torch.randn(5, 2))


# ----------------------------------------------------------------------------------------------
# memorisation


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(4)
    x, train = rng.normal(size=(7, 1, 2, 3)), rng.normal(size=(11, 1, 2, 3))
    expected = [min(np.linalg.norm(a - b) for b in train) for a in x]
    got = metrics.nearest_distances(torch.from_numpy(x), torch.from_numpy(train), batch_size=3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_memorisation_tells_copies_from_new_data():
    train = dc.digits(16, split="train").images
    test = dc.digits(16, split="test").images
    copies = metrics.memorisation(train[:200], train, test)
    assert copies.samples_median == 0.0 and copies.ratio == 0.0 and copies.close_share == 1.0
    noisy_copies = metrics.memorisation(
        train[:200] + 0.05 * torch.randn(200, 1, 16, 16, generator=torch.Generator().manual_seed(0)), train, test)
    assert noisy_copies.ratio < 0.5 and noisy_copies.close_share > 0.9
    # new data from the same distribution: half the test set against the other half's distances
    fresh = metrics.memorisation(test[:182], train, test[182:])
    assert 0.8 < fresh.ratio < 1.25 and fresh.close_share < 0.15
    assert "ratio" in str(fresh) and fresh.quantile == 0.05


def test_evaluate_reports_kid_and_memorisation():
    train = dc.digits(16, split="train").images
    copies = metrics.evaluate(train[:100], generator=torch.Generator().manual_seed(0))
    assert copies.memorisation is not None and copies.memorisation.close_share == 1.0
    assert isinstance(copies.kid, metrics.Score)
    noise = torch.rand(100, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    bad = metrics.evaluate(noise, generator=torch.Generator().manual_seed(0))
    assert bad.kid.value > bad.kid.real + 20 * bad.kid.real_std
    assert bad.memorisation.ratio > 1.5  # noise is far from every training digit
    assert "memorisation:" in str(bad) and "kid" in str(bad)
    # 32x32 samples are compared with the 16x16 training images after resizing
    big = torch.nn.functional.interpolate(train[:50], size=(32, 32), mode="nearest")
    assert metrics.evaluate(big, generator=torch.Generator().manual_seed(0)).memorisation.ratio < 0.5


def test_cli_evaluate_prints_the_memorisation_line(capsys):
    from ddpm_course.cli import main

    argv = ["evaluate", "--model", "digits", "--sampler", "dpm_solver", "--steps", "5", "--n", "40", "--device", "cpu",
            "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "memorisation: median distance to the nearest training image" in out
    assert any(line.split()[:1] == ["kid"] for line in out.splitlines())


"""Frechet distance against scipy, the digit classifier, and digits_fd on real and broken data."""
import numpy as np
import pytest
import scipy.linalg
import torch

import ddpm_course as dc
from ddpm_course import metrics


def _scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


@pytest.mark.parametrize("dim, n", [(2, 50), (8, 200), (32, 400)])
def test_frechet_distance_matches_scipy(dim, n):
    g = torch.Generator().manual_seed(dim)
    mix = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    a = torch.randn(n, dim, generator=g, dtype=torch.float64) @ mix
    b = torch.randn(n + 17, dim, generator=g, dtype=torch.float64) * 1.5 + 0.3
    ours = metrics.frechet_distance(a, b)
    assert ours == pytest.approx(_scipy_fd(a.numpy(), b.numpy()), rel=1e-6, abs=1e-8)


def test_frechet_distance_closed_form_for_known_gaussians():
    # large samples of N(0, I) and N(m, 4 I) in 3-D: FD = |m|^2 + 3 * (1 + 4 - 2 * 2) = |m|^2 + 3
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    m = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    b = 2 * torch.randn(200_000, 3, generator=g, dtype=torch.float64) + m
    assert metrics.frechet_distance(a, b) == pytest.approx(2.0 + 3.0, abs=0.05)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_bad_input():
    with pytest.raises(ValueError, match="feature dimension"):
        metrics.frechet_distance(torch.randn(10, 3), torch.randn(10, 4))
    with pytest.raises(ValueError, match="feats_a"):
        metrics.frechet_distance(torch.randn(1, 3), torch.randn(10, 3))


def test_shipped_classifier_accuracy_on_held_out_digits():
    test = dc.digits(16, split="test")
    with torch.no_grad():
        accuracy = (metrics.digit_classifier()(test.images).argmax(1) == test.labels).double().mean().item()
    assert accuracy > 0.97, accuracy


def test_training_the_classifier_is_deterministic_and_learns():
    a = metrics.train_digit_classifier(epochs=3, seed=1)
    b = metrics.train_digit_classifier(epochs=3, seed=1)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    test = dc.digits(16, split="test")
    with torch.no_grad():
        accuracy = (a(test.images).argmax(1) == test.labels).double().mean().item()
    assert accuracy > 0.8, accuracy  # three epochs already; the shipped weights train twenty


def test_digit_features_shape_and_resize():
    x = dc.digits(16, split="test").images[:10]
    f16 = metrics.digit_features(x)
    assert f16.shape == (10, metrics.DigitClassifier.FEATURE_DIM) and f16.dtype == torch.float64
    f32 = metrics.digit_features(torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear"))
    assert f32.shape == f16.shape
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        metrics.digit_features(torch.zeros(4, 3, 16, 16))


def test_digits_fd_real_data_near_floor_and_noise_far_above():
    train = dc.digits(16, split="train").images
    g = torch.Generator().manual_seed(0)
    real = train[torch.randperm(train.shape[0], generator=g)[:300]]
    score = metrics.digits_fd(real, generator=torch.Generator().manual_seed(1))
    assert isinstance(score, metrics.DigitsFD)
    assert score.ratio == pytest.approx(score.fd / score.floor)
    assert 0.4 < score.ratio < 2.0, score  # real data: about 1, within the ~30% spread of one draw
    noise = torch.randn(300, 1, 16, 16, generator=g).clamp(-1, 1)
    assert metrics.digits_fd(noise, generator=torch.Generator().manual_seed(1)).ratio > 20
    blurred = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1)
    assert metrics.digits_fd(blurred, generator=torch.Generator().manual_seed(1)).ratio > 3


def test_digits_fd_bad_input():
    with pytest.raises(ValueError, match="n_ref"):
        metrics.digits_fd(torch.zeros(10, 1, 16, 16), n_ref=1)
    with pytest.raises(ValueError, match="at most"):
        metrics.digits_fd(torch.zeros(2000, 1, 16, 16))


# ----------------------------------------------------------------------------------------------
# The Frechet distance at infinitely many samples


def test_frechet_distance_is_zero_for_identical_sets():
    a = torch.randn(300, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert metrics.frechet_distance(a, a.clone()) == pytest.approx(0.0, abs=1e-9)


def _two_gaussians(n: int, m: int, g: torch.Generator, shift: float):
    """N(0, I_8) against N(shift, diag(s^2)): FD = 8 shift^2 + sum (1 - s_i)^2 in closed form."""
    s = torch.linspace(0.6, 1.4, 8, dtype=torch.float64)
    a = torch.randn(n, 8, generator=g, dtype=torch.float64)
    b = shift + s * torch.randn(m, 8, generator=g, dtype=torch.float64)
    return a, b, 8 * shift**2 + (1 - s).square().sum().item()


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_unbiased_form_recovers_the_true_distance(shift):
    """Over 60 independent sample sets of 200 against a reference of 20,000 (whose own bias is
    100 times smaller), the plain FD is biased upwards by more than 5 standard errors (about 10
    measured); the extrapolated form's mean lands on the closed form within 3 of its own."""
    g = torch.Generator().manual_seed(int(10 * shift))
    _, ref, truth = _two_gaussians(1, 20_000, g, shift)
    plain, unbiased = [], []
    for _ in range(60):
        a, _, _ = _two_gaussians(200, 1, g, shift)
        plain.append(metrics.frechet_distance(a, ref))
        unbiased.append(metrics.frechet_distance_unbiased(a, ref, generator=g).value)
    plain, unbiased = torch.tensor(plain), torch.tensor(unbiased)
    se_plain, se_unbiased = plain.std() / 60**0.5, unbiased.std() / 60**0.5
    assert (plain.mean() - truth) > 5 * se_plain, (plain.mean(), truth, se_plain)
    assert abs(unbiased.mean() - truth) < 3 * se_unbiased, (unbiased.mean(), truth, se_unbiased)


def test_unbiased_form_fits_a_line_through_its_points():
    g = torch.Generator().manual_seed(5)
    a, ref, _ = _two_gaussians(400, 2000, g, 0.2)
    fit = metrics.frechet_distance_unbiased(a, ref, sizes=[100, 200, 400], draws=3, generator=g)
    assert fit.sizes == (100, 200, 400) and len(fit.fds) == 3
    assert fit.fds[-1] == pytest.approx(metrics.frechet_distance(a, ref), rel=1e-9)  # the whole set once
    # least squares on (1/n, FD): the residuals are orthogonal to both columns
    residuals = [fd - (fit.value + fit.slope / n) for n, fd in zip(fit.sizes, fit.fds)]
    assert sum(residuals) == pytest.approx(0, abs=1e-9)
    assert sum(r / n for r, n in zip(residuals, fit.sizes)) == pytest.approx(0, abs=1e-11)
    assert fit.slope > 0  # fewer samples, larger distance
    default = metrics.frechet_distance_unbiased(a, ref, generator=g)
    assert default.sizes[0] == 100 and default.sizes[-1] == 400 and len(default.sizes) == 6


# ----------------------------------------------------------------------------------------------
# Precision, recall, density, coverage


def _brute_force_prdc(real: np.ndarray, fake: np.ndarray, k: int):
    """The four metrics from their definitions, with scikit-learn's neighbour search and loops."""
    from sklearn.neighbors import NearestNeighbors

    def radii(x):
        dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        return dist[:, k]  # column 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    inside_real = [[np.linalg.norm(f - r) <= rad for r, rad in zip(real, r_real)] for f in fake]  # (m, n)
    precision = np.mean([any(row) for row in inside_real])
    recall = np.mean([any(np.linalg.norm(r - f) <= rad for f, rad in zip(fake, r_fake)) for r in real])
    density = np.sum(inside_real) / (k * len(fake))
    coverage = np.mean([any(row[i] for row in inside_real) for i in range(len(real))])
    return precision, recall, density, coverage


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_density_coverage_match_their_definitions(k):
    g = torch.Generator().manual_seed(k)
    real = torch.randn(80, 3, generator=g, dtype=torch.float64)
    fake = 0.7 * torch.randn(60, 3, generator=g, dtype=torch.float64) + 0.4
    pr, dc_ = metrics.precision_recall(real, fake, k), metrics.density_coverage(real, fake, k)
    expected = _brute_force_prdc(real.numpy(), fake.numpy(), k)
    assert (pr.precision, pr.recall, dc_.density, dc_.coverage) == pytest.approx(expected, abs=1e-12)


def _modes(n: int, which: list[int], g: torch.Generator) -> torch.Tensor:
    """n points from the Gaussian modes ``which`` of 10 well-separated modes in 8-d (std 1, centres 30 apart)."""
    centres = 30 * torch.eye(10, 8, dtype=torch.float64)
    centres[8:] = -30 * torch.eye(2, 8, dtype=torch.float64)
    labels = torch.tensor(which)[torch.randint(0, len(which), (n,), generator=g)]
    return centres[labels] + torch.randn(n, 8, generator=g, dtype=torch.float64)


def test_precision_recall_on_identical_disjoint_and_mode_dropping_sets():
    g = torch.Generator().manual_seed(0)
    real = _modes(1000, list(range(10)), g)
    assert tuple(metrics.precision_recall(real, real.clone())) == (1.0, 1.0)
    assert tuple(metrics.precision_recall(real, real + 1000.0)) == (0.0, 0.0)
    assert tuple(metrics.density_coverage(real, real + 1000.0)) == (0.0, 0.0)
    perfect = metrics.precision_recall(real, _modes(1000, list(range(10)), g))
    half = metrics.precision_recall(real, _modes(1000, list(range(5)), g))
    # a perfect model scores what real data scores: not 1, since in 8-d the k = 3 balls miss the tails
    assert perfect.precision > 0.75 and abs(perfect.precision - perfect.recall) < 0.05, perfect
    assert half.precision > 0.97 * perfect.precision, (half, perfect)  # what it makes is still real
    assert abs(half.recall / perfect.recall - 0.5) < 0.05, (half, perfect)  # but it covers half the data
    coverage_half = metrics.density_coverage(real, _modes(1000, list(range(5)), g)).coverage
    assert abs(coverage_half - 0.5) < 0.05


def test_density_of_the_same_distribution_is_about_one():
    # each fake point falls in a given real point's k-NN ball with probability k / n: E[density] = 1
    g = torch.Generator().manual_seed(1)
    values = [metrics.density_coverage(torch.randn(500, 4, generator=g, dtype=torch.float64),
                                       torch.randn(500, 4, generator=g, dtype=torch.float64), k=5).density
              for _ in range(10)]
    mean, se = np.mean(values), np.std(values, ddof=1) / np.sqrt(10)
    assert abs(mean - 1) < 4 * se + 0.01, (mean, se)


# ----------------------------------------------------------------------------------------------
# evaluate: every metric next to what real data scores


def test_evaluate_features_floors_come_from_the_real_pool():
    g = torch.Generator().manual_seed(2)
    reference, pool = _modes(400, list(range(10)), g), _modes(1000, list(range(10)), g)
    good = metrics.evaluate_features(_modes(300, list(range(10)), g), reference, pool, generator=g)
    half = metrics.evaluate_features(_modes(300, list(range(5)), g), reference, pool, generator=g)
    assert good.n_samples == 300 and good.n_reference == 400 and good.n_real == 5 and good.k == 3
    for name in metrics.Evaluation.METRICS:
        assert isinstance(getattr(good, name), metrics.Score)
    # samples from the data distribution score like the real pool; half the modes does not
    assert abs(good.fd_unbiased.value - good.fd_unbiased.real) < 4 * good.fd_unbiased.real_std + 1.0
    assert half.fd.value > 10 * half.fd.real
    assert half.recall.value < 0.6 * half.recall.real and half.precision.value > 0.9 * half.precision.real
    text = str(good)
    assert all(name in text for name in metrics.Evaluation.METRICS) and "300 samples vs 400 reference" in text


def test_evaluate_digits_real_noise_and_blur():
    train = dc.digits(16, split="train").images
    real = train[torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(0))[:300]]
    score = metrics.evaluate(real, generator=torch.Generator().manual_seed(1))
    assert score.n_reference == 364 and score.n_samples == 300
    assert score.fd.value < score.fd.real + 4 * score.fd.real_std
    assert score.precision.value > score.precision.real - 4 * score.precision.real_std - 0.02
    noise = torch.rand(300, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    bad = metrics.evaluate(noise, generator=torch.Generator().manual_seed(1))
    assert bad.fd.value > 20 * bad.fd.real and bad.precision.value < 0.05
    blurred = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1)
    blur = metrics.evaluate(blurred, generator=torch.Generator().manual_seed(1))
    assert blur.fd.value > 3 * blur.fd.real and blur.precision.value < score.precision.value


# ----------------------------------------------------------------------------------------------
# ddpm-course evaluate


def test_cli_evaluate_prints_every_metric_with_its_floor(capsys):
    from ddpm_course.cli import main

    argv = ["evaluate", "--model", "digits", "--sampler", "dpm_solver", "--steps", "5", "--n", "40", "--device", "cpu",
            "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "digits: dpm_solver, 5 steps, seed 0" in out and "40 samples vs 364 reference images (k = 3)" in out
    assert "real images (mean +- std of 5 draws)" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and
            line.split()[0] in metrics.Evaluation.METRICS}
    assert sorted(rows) == sorted(metrics.Evaluation.METRICS)
    assert all(len(row) == 5 and row[3] == "+-" for row in rows.values())  # value, floor +- spread


@pytest.mark.parametrize(("argv", "status", "fragment"), [
    (["--n", "5000"], 2, "--n: must be an integer in [10, 1433]"),
    (["--n", "9"], 2, "--n: must be an integer in [10, 1433]"),
    (["--k", "0"], 2, "--k"),
    (["--n-real", "1"], 2, "--n-real"),
    (["--steps", "0"], 2, "--steps"),
    (["--sampler", "unipc"], 2, "--sampler"),
    (["--sampler", "euler", "--eta", "0.5"], 1, "--eta does not apply to --sampler euler"),
    (["--sampler", "ddim", "--order", "2"], 1, "--order does not apply to --sampler ddim"),
    (["--model", "toy2d"], 1, "evaluate scores grey images (1, H, W)"),
    (["--model", "no/such/checkpoint"], 1, "no/such/checkpoint"),
])
def test_cli_evaluate_refuses_bad_arguments_before_sampling(argv, status, fragment, capsys, monkeypatch):
    from ddpm_course import cli

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampling started")

    monkeypatch.setattr(cli.sample, "_draw", no_sampling)
    assert cli.main(["evaluate", "--device", "cpu", *argv]) == status
    err = capsys.readouterr().err.strip()
    assert err.startswith("ddpm-course: error:") and len(err.splitlines()) == 1 and fragment in err, err

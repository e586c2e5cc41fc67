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
    b = 2 * torch.randn(200_000, 3, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
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

"""The coverage criterion of lesson 11 that noise cannot pass: the core fractions against their
closed form (chi-square) and Monte Carlo, the controls a count with a low bar lets through
(a uniform smear, a uniform annulus), and the names of failed runs."""
import math

import pytest
import torch

from ddpm_course import compare
from ddpm_course.oracle import ring_mixture


def _annulus(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    r = low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)
    return torch.stack([r * angle.cos(), r * angle.sin()], 1)


def test_core_share_of_a_2d_gaussian_is_the_chi_square_cdf():
    # in 2-D, P(|z| <= r) = 1 - exp(-r^2 / 2): real data's core fraction is 1 on average
    ring = ring_mixture()
    g = torch.Generator().manual_seed(0)
    fractions = torch.stack([compare.core_fractions(ring.sample(2000, generator=g), ring) for _ in range(40)])
    mean, se = fractions.mean(), fractions.std() / math.sqrt(fractions.numel())
    assert abs(mean.item() - 1) < 4 * se.item()
    # the same at another radius, against the closed form by hand
    x = ring.sample(20_000, generator=g)
    counts = compare.mode_counts(x, ring, radius=2.0).double()
    hand = counts / (20_000 / 8 * (1 - math.exp(-2.0)))
    assert torch.allclose(compare.core_fractions(x, ring, radius=2.0), hand, rtol=1e-12)
    assert hand.mean().item() == pytest.approx(1, abs=0.02)


def test_real_data_reproduces_every_mode_and_noise_none():
    ring, grid = ring_mixture(), compare.grid_mixture()
    g = torch.Generator().manual_seed(1)
    for mix in (ring, grid):
        assert compare.modes_reproduced(mix.sample(1000, generator=g), mix) == mix.means.shape[0]
        smear = compare.nothing_learned(mix, 1000, g)
        # the old bar (a tenth of the fair share within 3 std) is passed by noise; the core test is not
        assert compare.modes_covered(compare.mode_counts(smear, mix), mix.weights, 1000) == mix.means.shape[0]
        assert compare.modes_reproduced(smear, mix) == 0
    band = _annulus(1000, 0.7, 1.3, g)  # uniform over the ring's 3-std band
    assert compare.modes_covered(compare.mode_counts(band, ring), ring.weights, 1000) == 8
    assert compare.modes_reproduced(band, ring) == 0


def test_dropped_and_blurred_modes_are_not_reproduced():
    ring = ring_mixture()
    g = torch.Generator().manual_seed(2)
    x, labels = ring.sample(2000, generator=g, return_labels=True)
    assert compare.modes_reproduced(x[labels < 4][:1000], ring) == 4
    blurred = ring.means[labels[:1000]] + 0.2 * torch.randn(1000, 2, generator=g, dtype=torch.float64)
    assert compare.modes_reproduced(blurred, ring) == 0  # twice too wide: a quarter of the peak height


def test_nothing_learned_fills_the_data_box():
    ring = ring_mixture()
    x = compare.nothing_learned(ring, 5000, torch.Generator().manual_seed(3))
    assert x.shape == (5000, 2) and x.dtype == torch.float64
    assert x.min().item() == pytest.approx(-1.3, abs=0.01) and x.max().item() == pytest.approx(1.3, abs=0.01)
    again = compare.nothing_learned(ring, 5000, torch.Generator().manual_seed(3))
    assert torch.equal(x, again)


@pytest.mark.parametrize(("p", "r", "verdict"), [
    (0.93, 0.95, "good"), (0.95, 0.01, "collapsed"), (0.49, 0.98, "blurred"), (0.10, 0.02, "failed"),
    (0.49, 0.01, "failed"),
])
def test_run_verdicts(p, r, verdict):
    assert compare.run_verdict(p, r, 0.95, 0.96) == verdict


def test_bad_arguments_name_themselves():
    ring = ring_mixture()
    with pytest.raises(ValueError, match="min_fraction"):
        compare.modes_reproduced(torch.zeros(3, 2), ring, min_fraction=0)
    with pytest.raises(ValueError, match="radius"):
        compare.core_fractions(torch.zeros(3, 2), ring, radius=0)
    with pytest.raises(ValueError, match="n must"):
        compare.nothing_learned(ring, 0)
    with pytest.raises(ValueError, match="keep"):
        compare.run_verdict(0.5, 0.5, 0.9, 0.9, keep=0)

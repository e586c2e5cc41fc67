"""The comparison of lesson 11: mode coverage on hand-made sets, the VAE's ELBO and the DDPM's
bound against independent references, and the whole comparison on a tiny budget."""
import math

import pytest
import torch

from ddpm_course import compare
from ddpm_course.oracle import GaussianMixture, ring_mixture
from ddpm_course.schedules import linear_schedule

pytestmark = pytest.mark.usefixtures("one_thread")


def test_grid_mixture_is_a_centred_square_grid():
    mix = compare.grid_mixture(5, spacing=0.5, std=0.05)
    assert mix.means.shape == (25, 2)
    assert torch.allclose(mix.mean(), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert sorted(set(mix.means[:, 0].tolist())) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert torch.allclose(mix.covs, 0.0025 * torch.eye(2, dtype=torch.float64).expand(25, 2, 2))
    with pytest.raises(ValueError, match="spacing"):
        compare.grid_mixture(spacing=0)


def test_mode_counts_on_hand_made_points():
    mix = ring_mixture()  # std 0.1, radius 3 std = 0.3
    m = mix.means
    radial = m / m.norm(dim=1, keepdim=True)  # (8, 2), unit vectors pointing outwards
    x = torch.cat([
        m[0].repeat(3, 1),  # three points on mode 0
        (m[2] + 0.29 * radial[2])[None],  # just inside mode 2's 3-std disc
        (m[5] + 0.31 * radial[5])[None],  # just outside mode 5's
        torch.zeros(1, 2, dtype=torch.float64),  # the centre: far from every mode
    ])
    counts = compare.mode_counts(x, mix)
    assert counts.tolist() == [3, 0, 1, 0, 0, 0, 0, 0]
    assert compare.mode_counts(x, mix, radius=3.2).tolist() == [3, 0, 1, 0, 0, 1, 0, 0]
    assert compare.high_quality(x, mix) == pytest.approx(4 / 6)


def test_a_point_counts_once_for_its_nearest_mode():
    means = torch.tensor([[0.0, 0.0], [0.1, 0.0]])
    mix = GaussianMixture(torch.tensor([0.5, 0.5]), means, torch.eye(2).expand(2, 2, 2))
    counts = compare.mode_counts(torch.tensor([[0.04, 0.0], [0.06, 0.0], [0.07, 0.0]]), mix)
    assert counts.tolist() == [1, 2]


def test_modes_covered_asks_for_a_share_of_the_fair_count():
    w = torch.full((4,), 0.25, dtype=torch.float64)
    # n = 400: fair share 100 per mode, 10% of it = 10 points to count as covered
    assert compare.modes_covered(torch.tensor([100, 100, 100, 100]), w, 400) == 4
    assert compare.modes_covered(torch.tensor([370, 10, 9, 0]), w, 400) == 2
    assert compare.modes_covered(torch.tensor([397, 1, 1, 1]), w, 400) == 1  # strays do not cover a mode
    assert compare.modes_covered(torch.tensor([1, 1, 0, 0]), w, 4) == 2  # tiny n: one point is enough
    with pytest.raises(ValueError, match="same shape"):
        compare.modes_covered(torch.tensor([1, 2]), w, 4)


def test_collapsed_and_blurred_sample_sets_read_as_such():
    """A sampler that drops half the modes keeps precision and loses recall; one that smears
    samples around the ring keeps recall and loses precision: the two failures the table separates."""
    mix = ring_mixture()
    real = mix.sample(800, generator=torch.Generator().manual_seed(0))
    x, labels = mix.sample(800, generator=torch.Generator().manual_seed(1), return_labels=True)
    collapsed = x[labels < 4]
    angle = torch.rand(800, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 * math.pi
    jitter = 0.1 * torch.randn(800, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    smeared = torch.stack([angle.cos(), angle.sin()], dim=1) + jitter  # all around the ring, between modes too
    from ddpm_course.metrics import precision_recall

    p_c, r_c = precision_recall(real, collapsed)
    p_s, r_s = precision_recall(real, smeared)
    assert compare.modes_covered(compare.mode_counts(collapsed, mix), mix.weights, collapsed.shape[0]) == 4
    assert p_c > 0.9 and r_c < 0.6
    assert compare.modes_covered(compare.mode_counts(smeared, mix), mix.weights, 800) == 8
    assert p_s < 0.8 and r_s > p_s
    assert compare.high_quality(smeared, mix) < 0.8


def test_loss_roughness_separates_settled_from_oscillating_curves():
    g = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(2000, generator=g, dtype=torch.float64)
    settled = 1.0 + noise
    step = torch.arange(2000, dtype=torch.float64)
    oscillating = 1.0 + 0.3 * torch.sin(2 * math.pi * step / 400) + noise
    # A constant curve has no wobble: 0 up to the float64 rounding of the least-squares fit (about
    # 1e-16; the exact bits depend on the CPU's lstsq kernels), far below the 0.014 of batch noise.
    assert compare.loss_roughness([1.0] * 400) < 1e-12
    descending = 2.0 - step / 2000 + noise  # a steady descent is not a wobble
    assert compare.loss_roughness(settled) < 0.03  # batch noise 0.1 / sqrt(50) = 0.014
    assert compare.loss_roughness(descending) < 0.03
    assert compare.loss_roughness(oscillating) > 0.15  # the sine's std, 0.3 / sqrt(2) = 0.21
    with pytest.raises(ValueError, match="at least"):
        compare.loss_roughness([1.0] * 250, window=50)


def test_vae_negative_elbo_against_torch_distributions():
    vae = compare.PointVAE(compare.PointVAEConfig(hidden=8, depth=2))
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    got = compare.vae_negative_elbo(vae, x, torch.Generator().manual_seed(1))
    mu, logvar = vae.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    D = torch.distributions
    recon = D.Normal(vae.decode(z), vae.log_sigma.exp()).log_prob(x).sum(1)
    kl = D.kl_divergence(D.Normal(mu, (0.5 * logvar).exp()), D.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(got, kl - recon, atol=1e-5)


def test_train_vae_lowers_its_loss_and_is_repeatable():
    data = ring_mixture().sample(512, generator=torch.Generator().manual_seed(0)).float()
    kw = dict(config=compare.PointVAEConfig(hidden=16, depth=2), steps=300, batch_size=64)
    a = compare.train_point_vae(data, generator=torch.Generator().manual_seed(0), **kw)
    b = compare.train_point_vae(data, generator=torch.Generator().manual_seed(0), **kw)
    assert a.losses == b.losses
    assert sum(a.losses[-50:]) / 50 < sum(a.losses[:50]) / 50 - 0.5
    x = compare.vae_sample(a.model, 5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 2)


@pytest.mark.parametrize("std", [1.0, 0.2])
def test_ddpm_bound_with_the_exact_model_reaches_the_entropy_of_a_gaussian(std):
    """For Gaussian data the exact reverse steps are Gaussian with variance close to beta_t, so the
    bound of the exact noise predictor equals -log p up to Monte Carlo error (and L_T, ~1e-4)."""
    mix = GaussianMixture(torch.ones(1), torch.zeros(1, 2), std**2 * torch.eye(2)[None])
    schedule = linear_schedule(1000)
    x = mix.sample(1000, generator=torch.Generator().manual_seed(0))
    bound = compare.ddpm_nll_bound(mix.as_model(schedule), schedule, x, torch.Generator().manual_seed(1))
    entropy = 1 + math.log(2 * math.pi * std**2)  # -E log N(x; 0, s^2 I) in 2-D
    se = bound.std().item() / math.sqrt(1000)
    assert abs(bound.mean().item() - entropy) < 4 * se + 0.01, (bound.mean().item(), entropy, se)
    # with sigma^2 = beta_tilde the small-t steps are too narrow: a looser bound
    loose = compare.ddpm_nll_bound(mix.as_model(schedule), schedule, x, torch.Generator().manual_seed(1), "posterior")
    assert loose.mean() > bound.mean() + 0.5


def test_ddpm_bound_with_the_exact_model_reaches_the_ring_s_likelihood():
    mix = ring_mixture()
    schedule = linear_schedule(1000)
    x = mix.sample(256, generator=torch.Generator().manual_seed(0))
    bound = compare.ddpm_nll_bound(mix.as_model(schedule), schedule, x, torch.Generator().manual_seed(1))
    truth = -mix.log_prob(x).mean().item()
    se = bound.std().item() / math.sqrt(256)
    assert abs(bound.mean().item() - truth) < 4 * se, (bound.mean().item(), truth, se)
    with pytest.raises(ValueError, match="variance"):
        compare.ddpm_nll_bound(mix.as_model(schedule), schedule, x, variance="learned")


TINY = compare.Budget(steps=300, batch_size=64, hidden=16, n_train=512, n_samples=200, n_likelihood=16,
                      seeds=(0, 1), lrs=(1e-3,), T=50)


def test_compare_on_a_tiny_budget_returns_every_measure():
    result = compare.compare(ring_mixture(), TINY, dataset="ring")
    assert list(result.models) == ["GAN", "VAE", "DDPM"]
    for name, m in result.models.items():
        assert m.samples.shape == (200, 2) and m.counts.shape == (8,)
        assert 0 <= m.modes_covered <= 8 and 0 <= m.high_quality <= 1
        assert 0 <= m.precision <= 1 and 0 <= m.recall <= 1
        assert m.nearest_mode_distance > 0 and m.seconds_per_1000 > 0
        assert m.parameters > 1000 and isinstance(m.network, torch.nn.Module)
        assert len(m.runs) == 2 and all(len(r.losses) == 300 and r.roughness >= 0 for r in m.runs)
        assert m.passes_per_sample == (50 if name == "DDPM" else 1)
        assert (m.nll_bound is None) == (name == "GAN")
        assert m.modes_covered == m.runs[0].modes_covered
    assert result.real_precision > 0.9 and result.real_recall > 0.9
    assert 0.9 < result.real_high_quality <= 1
    # the truth of a 2-D isotropic component: E|x - mu| = std sqrt(pi / 2)
    assert result.real_nearest_mode_distance == pytest.approx(0.1 * math.sqrt(math.pi / 2), rel=0.1)
    table = result.table()
    for row in ("modes covered (of 8", "modes reproduced (of 8",
                "precision", "recall", "distance to nearest mode", "runs covering all modes",
                "late-loss roughness", "network passes per sample", "seconds per 1000 samples", "-log p bound"):
        assert row in table
    assert len(table.splitlines()) == 15
    assert table.splitlines()[0].split()[-4:] == ["DDPM", "nothing", "real", "data"]  # the control, then real
    assert result.control.modes_reproduced == 0 and result.real_modes_reproduced == 8


def test_compare_is_repeatable_and_can_pick_models():
    budget = compare.Budget(steps=300, batch_size=32, hidden=8, n_train=256, n_samples=100, n_likelihood=8, T=20)
    a = compare.compare(ring_mixture(), budget, models=("GAN",))
    b = compare.compare(ring_mixture(), budget, models=("GAN",))
    assert list(a.models) == ["GAN"]
    assert torch.equal(a.models["GAN"].samples, b.models["GAN"].samples)
    assert a.models["GAN"].runs[0].losses == b.models["GAN"].runs[0].losses


def test_bad_arguments():
    with pytest.raises(TypeError, match="mixture"):
        compare.compare("ring")
    with pytest.raises(ValueError, match="models"):
        compare.compare(ring_mixture(), TINY, models=("NF",))
    with pytest.raises(ValueError, match="steps"):
        compare.Budget(steps=200)
    with pytest.raises(ValueError, match="seeds"):
        compare.Budget(seeds=())
    with pytest.raises(ValueError, match="lrs"):
        compare.Budget(lrs=(0.0,))
    with pytest.raises(ValueError, match="radius"):
        compare.mode_counts(torch.zeros(3, 2), ring_mixture(), radius=-1)
    with pytest.raises(ValueError, match="shape"):
        compare.mode_counts(torch.zeros(3, 3), ring_mixture())


def test_the_nll_bound_is_that_of_the_network_in_eval_mode_and_restores_its_mode():
    """Dropout would make the bound noisy and too high; the model's own mode is restored after."""
    from torch import nn

    from ddpm_course.models import MLPConfig, MLPDenoiser

    torch.manual_seed(0)

    class Dropped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.drop = MLPDenoiser(MLPConfig(hidden=16, depth=1, time_dim=8)), nn.Dropout(0.5)

        def forward(self, x, t):
            return self.drop(self.net(x, t))

    model = Dropped().train()
    schedule = linear_schedule(20)
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    in_train_mode = compare.ddpm_nll_bound(model, schedule, x0, generator=torch.Generator().manual_seed(2))
    assert model.training
    model.eval()
    in_eval_mode = compare.ddpm_nll_bound(model, schedule, x0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(in_train_mode, in_eval_mode)


def test_vae_sample_follows_the_vae_dtype():
    torch.manual_seed(0)
    vae = compare.PointVAE(compare.PointVAEConfig(hidden=8, depth=1)).double().train()
    x = compare.vae_sample(vae, 5, torch.Generator().manual_seed(0), decoder_noise=True)
    assert x.dtype == torch.float64 and x.shape == (5, 2) and vae.training

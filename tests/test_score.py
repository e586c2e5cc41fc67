"""Score matching and Langevin dynamics: the exact score, the DSM loss, annealed Langevin on the ring."""
import pytest
import torch

from ddpm_course import score as S
from ddpm_course.metrics import sliced_wasserstein
from ddpm_course.models import MLPConfig, MLPDenoiser
from ddpm_course.oracle import GaussianMixture, ring_mixture

pytestmark = pytest.mark.usefixtures("one_thread")

N = 800


def _sw(a, b):
    return sliced_wasserstein(a, b, n_projections=128, generator=torch.Generator().manual_seed(0))


def _unequal_ring() -> GaussianMixture:
    """The ring with alternating weights 0.2 and 0.05: the heavy modes hold 80% of the mass."""
    ring = ring_mixture()
    return GaussianMixture(torch.tensor([0.2, 0.05] * 4, dtype=torch.float64), ring.means, ring.covs)


def _heavy_share(mixture: GaussianMixture, x: torch.Tensor) -> float:
    nearest = torch.cdist(x.double(), mixture.means).argmin(1)
    return (nearest % 2 == 0).double().mean().item()


@pytest.mark.parametrize("sigma", [0.01, 0.3, 2.0])
def test_mixture_score_is_the_gradient_of_the_log_density(sigma):
    ring = ring_mixture()
    widened = GaussianMixture(ring.weights, ring.means, ring.covs + sigma**2 * torch.eye(2, dtype=torch.float64))
    x = (1.5 * torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))).requires_grad_()
    (grad,) = torch.autograd.grad(widened.log_prob(x).sum(), x)
    assert torch.allclose(S.mixture_score(ring, x.detach(), sigma), grad, rtol=1e-8, atol=1e-8)


def test_dsm_loss_by_hand_and_its_minimiser():
    ring = ring_mixture()
    sigmas = S.geometric_sigmas(1.0, 0.05, 4)
    gen = torch.Generator().manual_seed(1)
    x0 = ring.sample(4000, gen)
    level = torch.randint(0, 4, (4000,), generator=gen)
    z = torch.randn(4000, 2, generator=gen, dtype=torch.float64)
    sigma = sigmas[level][:, None]

    def exact(x, lv):  # z_hat = E[z | x~] = -sigma * score, level by level
        out = torch.empty_like(x)
        for i in lv.unique().tolist():
            out[lv == i] = -sigmas[i] * S.mixture_score(ring, x[lv == i], sigmas[i].item())
        return out

    loss = S.dsm_loss(exact, x0, sigmas, level=level, noise=z)
    assert torch.isclose(loss, (exact(x0 + sigma * z, level) - z).pow(2).mean(), rtol=1e-12)
    for c in (0.9, 1.1):
        assert S.dsm_loss(lambda x, lv, c=c: c * exact(x, lv), x0, sigmas, level=level, noise=z) > loss


def test_learned_score_reads_the_noise_prediction():
    sigmas = torch.tensor([1.0, 0.1], dtype=torch.float64)
    model = MLPDenoiser(MLPConfig(dim=2, hidden=8, depth=1)).double().eval()
    x = torch.randn(5, 2, dtype=torch.float64)
    with torch.no_grad():
        z_hat = model(x, torch.ones(5, dtype=torch.long))
    assert torch.allclose(S.learned_score(model, sigmas)(x, 1), -z_hat / 0.1, atol=1e-12)


def test_annealed_langevin_with_the_exact_score_reproduces_the_ring():
    ring = ring_mixture()
    fresh = ring.sample(N, torch.Generator().manual_seed(2))
    floors = torch.tensor([_sw(ring.sample(N, torch.Generator().manual_seed(100 + i)), fresh) for i in range(10)])
    sigmas = S.geometric_sigmas(1.0, 0.01, 8)
    start = 2 * torch.rand(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2 - 2
    x = S.annealed_langevin(lambda y, i: S.mixture_score(ring, y, sigmas[i].item()), start, sigmas, steps_per_level=50,
                            step_size=5e-5, generator=torch.Generator().manual_seed(4))
    assert _sw(x, fresh) < floors.mean() + 3 * floors.std(), (_sw(x, fresh), floors)
    assert _sw(start, fresh) > floors.mean() + 10 * floors.std()  # the start is far from the ring


def test_one_small_noise_level_gets_the_mode_weights_wrong():
    """Langevin at one small level cannot move mass between modes; annealing can (Song & Ermon 2019, fig. 3)."""
    mixture = _unequal_ring()
    start = 2 * torch.rand(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 2 - 2
    single = S.langevin(lambda y: S.mixture_score(mixture, y, 0.05), start, step_size=1e-3, steps=400,
                        generator=torch.Generator().manual_seed(6))
    sigmas = S.geometric_sigmas(1.0, 0.01, 8)
    annealed = S.annealed_langevin(lambda y, i: S.mixture_score(mixture, y, sigmas[i].item()), start, sigmas,
                                   steps_per_level=50, step_size=5e-5, generator=torch.Generator().manual_seed(6))
    se = (0.8 * 0.2 / N) ** 0.5
    assert abs(_heavy_share(mixture, annealed) - 0.8) < 4 * se
    assert _heavy_share(mixture, single) < 0.8 - 8 * se


def test_train_dsm_approaches_the_exact_minimum():
    """DSM cannot reach 0 (z is not a function of x~); training closes most of the gap to the exact score's loss."""
    ring = ring_mixture()
    sigmas = S.geometric_sigmas(1.0, 0.05, 4)
    points = ring.sample(2048, torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(8)
    x0, level = ring.sample(2000, gen), torch.randint(0, 4, (2000,), generator=gen)
    z = torch.randn(2000, 2, generator=gen, dtype=torch.float64)

    def exact(x, lv):
        out = torch.empty_like(x)
        for i in lv.unique().tolist():
            out[lv == i] = -sigmas[i] * S.mixture_score(ring, x[lv == i], sigmas[i].item())
        return out

    torch.manual_seed(0)
    model = MLPDenoiser(MLPConfig(dim=2, hidden=64, depth=2)).double()
    with torch.no_grad():
        best, before = (S.dsm_loss(m, x0, sigmas, level=level, noise=z).item() for m in (exact, model))
    S.train_dsm(model, points, sigmas, steps=400, batch_size=256)
    assert not model.training
    with torch.no_grad():
        after = S.dsm_loss(model, x0, sigmas, level=level, noise=z).item()
    assert after - best < 0.25 * (before - best), (best, before, after)


def test_bad_input():
    with pytest.raises(ValueError, match="decreasing"):
        S.dsm_loss(lambda x, i: x, torch.zeros(2, 2), torch.tensor([0.1, 0.5]))
    with pytest.raises(ValueError, match="sigma"):
        S.mixture_score(ring_mixture(), torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="step_size"):
        S.langevin(lambda x: x, torch.zeros(2, 2), step_size=-1.0, steps=3)
    with pytest.raises(ValueError, match="n"):
        S.geometric_sigmas(1.0, 0.1, 0)

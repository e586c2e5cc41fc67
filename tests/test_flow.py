"""Flow matching: the straight path, the DDPM correspondence, the exact velocity, the ODE solvers, training."""
import math

import pytest
import torch

from ddpm_course import flow, linear_schedule, q_sample
from ddpm_course import parametrization as P
from ddpm_course.metrics import sliced_wasserstein
from ddpm_course.models import MLPConfig, MLPDenoiser
from ddpm_course.oracle import ring_mixture
from ddpm_course.schedules import Schedule

pytestmark = pytest.mark.usefixtures("one_thread")


def _sw(a, b):
    return sliced_wasserstein(a, b, n_projections=128, generator=torch.Generator().manual_seed(0))


def test_path_and_target():
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 6, 1, 4, 4, generator=gen, dtype=torch.float64)
    assert torch.equal(flow.flow_path(x0, eps, 0.0), x0)
    assert torch.equal(flow.flow_path(x0, eps, 1.0), eps)
    t, h = torch.rand(6, generator=gen, dtype=torch.float64) * 0.8 + 0.1, 1e-6
    finite_diff = (flow.flow_path(x0, eps, t + h) - flow.flow_path(x0, eps, t - h)) / (2 * h)
    assert torch.allclose(flow.velocity_target(x0, eps), finite_diff, atol=1e-8)


def test_ddpm_correspondence():
    """A DDPM sample at step s, divided by sqrt(abar) + sqrt(1 - abar), is the straight path at flow_time(abar)."""
    schedule = linear_schedule()
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 8, 2, generator=gen, dtype=torch.float64)
    s = torch.tensor([0, 10, 100, 300, 500, 700, 900, 999])
    x_s, _ = q_sample(schedule, x0, s, noise=eps)
    abar = schedule.alpha_bars[s]
    t = flow.flow_time(abar)
    assert torch.allclose(flow.ddpm_to_flow(x_s, abar), flow.flow_path(x0, eps, t), atol=1e-12)
    assert torch.allclose(flow.flow_to_ddpm(flow.ddpm_to_flow(x_s, abar), t), x_s, atol=1e-12)
    assert torch.allclose(flow.flow_abar(t), abar, rtol=1e-12)
    assert torch.allclose(((1 - t) / t) ** 2, abar / (1 - abar), rtol=1e-9)  # the same signal-to-noise ratio
    for k in (3, 5):  # floats too
        a = abar[k].item()
        assert math.isclose(flow.flow_time(a), t[k].item(), rel_tol=1e-12)


@pytest.mark.parametrize("t", [0.02, 0.3, 0.5, 0.8, 0.98])
def test_mixture_velocity_matches_the_oracle(t):
    """The velocity derived from the mixture's posterior = the DDPM oracle's eps* at the matching abar, converted."""
    mixture = ring_mixture()
    x = 1.5 * torch.randn(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    abar = flow.flow_abar(t)
    one_step = Schedule.from_betas(torch.tensor([1 - abar], dtype=torch.float64))
    eps = mixture.eps(flow.flow_to_ddpm(x, t), 0, one_step)
    via_oracle = P.convert(eps, "eps", "velocity", x, *P.linear(t))
    assert torch.allclose(flow.mixture_velocity(mixture, x, t), via_oracle, atol=1e-9)


def test_mixture_velocity_at_the_ends():
    mixture = ring_mixture()
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(flow.mixture_velocity(mixture, x, 0.0), -x, atol=1e-12)  # E[eps - x0 | x0 = x] = -x
    assert torch.allclose(flow.mixture_velocity(mixture, x, 1.0), x - mixture.mean(), atol=1e-12)


def test_loss_by_hand_and_minimised_by_the_exact_velocity():
    mixture = ring_mixture()
    oracle = flow.VelocityOracle(mixture)
    gen = torch.Generator().manual_seed(4)
    x0 = mixture.sample(4000, gen)
    t = torch.rand(40, generator=gen, dtype=torch.float64).repeat(100)  # the oracle solves once per distinct t
    noise = torch.randn(4000, 2, generator=gen, dtype=torch.float64)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * noise
    by_hand = ((noise - x0) - oracle(x_t, t * flow.TIME_SCALE)).pow(2).mean()
    loss = flow.flow_matching_loss(oracle, x0, t=t, noise=noise)
    assert torch.isclose(loss, by_hand, rtol=1e-12)
    for scale in (0.95, 1.05):
        worse = flow.flow_matching_loss(lambda x, s, c=scale: c * oracle(x, s), x0, t=t, noise=noise)
        assert worse > loss


def test_sampler_with_the_exact_velocity_converges():
    """Euler (order 1) and Heun (order 2) approach the ODE's solution as the steps grow; the samples reach the ring."""
    mixture = ring_mixture()
    oracle = flow.VelocityOracle(mixture)
    x1 = torch.randn(600, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    reference = flow.flow_sample(oracle, x1, steps=200, method="heun")
    steps = [10, 20, 40, 80]
    err = {m: [(flow.flow_sample(oracle, x1, steps=n, method=m) - reference).norm(dim=1).mean().item() for n in steps]
           for m in flow.METHODS}
    for method, order in (("euler", 1.0), ("heun", 2.0)):
        assert all(a > b for a, b in zip(err[method], err[method][1:])), err
        slope = -math.log(err[method][-1] / err[method][1]) / math.log(steps[-1] / steps[1])
        assert abs(slope - order) < 0.3, (method, slope)
    fresh = mixture.sample(600, torch.Generator().manual_seed(6))
    floors = torch.tensor([_sw(mixture.sample(600, torch.Generator().manual_seed(100 + i)), fresh) for i in range(8)])
    assert _sw(flow.flow_sample(oracle, x1, steps=80), fresh) < floors.mean() + 3 * floors.std()


def test_train_flow_learns_the_ring():
    """A few hundred steps of flow matching on the ring: the loss falls and Euler samples sit near the modes."""
    mixture = ring_mixture()
    points = mixture.sample(4096, torch.Generator().manual_seed(7)).float()
    torch.manual_seed(0)
    model = MLPDenoiser(MLPConfig(dim=2, hidden=64, depth=2))
    result = flow.train_flow(model, points, steps=300, batch_size=256, lr=3e-3, warmup_steps=20, ema_decay=None,
                             progress=False)
    assert sum(result.losses[-30:]) / 30 < 0.8 * sum(result.losses[:30]) / 30
    x = flow.flow_sample(result.final_model, (1000, 2), steps=20, generator=torch.Generator().manual_seed(8))
    dist = mixture.nearest_mean_distance(x)
    untrained = mixture.nearest_mean_distance(torch.randn(1000, 2, generator=torch.Generator().manual_seed(8)))
    assert dist.median() < 0.5 * untrained.median()


def test_bad_input():
    oracle = flow.VelocityOracle(ring_mixture())
    with pytest.raises(ValueError, match="method"):
        flow.flow_sample(oracle, (4, 2), method="rk4")
    with pytest.raises(ValueError, match="steps"):
        flow.flow_sample(oracle, (4, 2), steps=0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        flow.flow_path(torch.zeros(2, 2), torch.zeros(2, 2), 1.5)
    with pytest.raises(ValueError, match="t"):
        flow.mixture_velocity(ring_mixture(), torch.zeros(3, 2), -0.1)
    model = MLPDenoiser(MLPConfig(dim=2, hidden=8, depth=1))
    flow.flow_sample(model.train(), (4, 2), steps=2)  # run in eval mode, then put back
    assert model.training
    with pytest.raises(ValueError, match="steps"):
        flow.train_flow(model, torch.zeros(10, 2), steps=0)


def test_shipped_model_loads_and_says_how_it_was_made():
    from pathlib import Path

    import ddpm_course as dc
    from ddpm_course.shipped import PRETRAINED

    shipped = dc.pretrained("digits-flow")
    weights = Path(dc.__file__).parent / "pretrained" / "digits-flow.safetensors"
    assert weights.stat().st_size < 5 * 2**20
    assert shipped.sample_shape == (1, 16, 16)
    assert shipped.record["command"].startswith(PRETRAINED["digits-flow"].split(": ", 1)[1])
    assert "flow matching" in shipped.record["objective"]
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert flow.flow_sample(shipped.model, x, steps=2).shape == x.shape

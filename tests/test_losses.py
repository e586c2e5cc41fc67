"""L_simple against a hand computation, the ELBO weights against Gaussian KLs, the loss-by-t and
eps-scale diagnostics."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import ddpm_course as dc
from ddpm_course.losses import LossByT, elbo_weights, eps_scale, l_simple, loss_by_t
from ddpm_course.models import MLPConfig, MLPDenoiser, UNet, UNetConfig


@pytest.fixture(scope="module")
def schedule():
    return dc.linear_schedule(1000)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp(num_classes: int | None = None) -> MLPDenoiser:
    torch.manual_seed(0)
    return MLPDenoiser(MLPConfig(hidden=32, depth=2, time_dim=16, num_classes=num_classes))


# --- L_simple ---------------------------------------------------------------------------

def test_l_simple_equals_hand_mse_for_fixed_t_and_noise(schedule):
    model = _mlp()
    x0 = torch.randn(6, 2, generator=_gen(0))
    noise = torch.randn(6, 2, generator=_gen(1))
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    abar = schedule.alpha_bars[t].float()[:, None]  # (B, 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    hand = ((model(x_t, t) - noise) ** 2).sum() / noise.numel()
    loss = l_simple(model, schedule, x0, t=t, noise=noise)
    assert loss.ndim == 0
    torch.testing.assert_close(loss, hand)
    torch.testing.assert_close(loss, F.mse_loss(model(x_t, t), noise))


def test_l_simple_on_images_with_a_unet(schedule):
    model = UNet(UNetConfig(base_channels=8, groups=4, dropout=0.0))
    x0 = torch.rand(3, 1, 8, 8, generator=_gen(0)) * 2 - 1
    noise = torch.randn(3, 1, 8, 8, generator=_gen(1))
    # the zero-initialised output predicts eps_hat = 0: the loss is the noise's mean square
    loss = l_simple(model, schedule, x0, t=torch.tensor([5, 50, 500]), noise=noise)
    torch.testing.assert_close(loss, noise.pow(2).mean())


def test_l_simple_draws_t_then_noise_from_the_generator(schedule):
    model = _mlp()
    x0 = torch.randn(8, 2, generator=_gen(0))
    g = _gen(42)
    t = torch.randint(0, schedule.T, (8,), generator=g)
    noise = torch.randn(8, 2, generator=g)
    expected = l_simple(model, schedule, x0, t=t, noise=noise)
    torch.testing.assert_close(l_simple(model, schedule, x0, generator=_gen(42)), expected)
    assert not torch.equal(l_simple(model, schedule, x0, generator=_gen(43)), expected)


def test_l_simple_carries_gradients_to_every_parameter(schedule):
    model = _mlp()
    l_simple(model, schedule, torch.randn(16, 2, generator=_gen(0)), generator=_gen(1)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_p_uncond_replaces_labels_by_the_null_label(schedule):
    model = _mlp(num_classes=3)
    x0 = torch.randn(64, 2, generator=_gen(0))
    noise = torch.randn(64, 2, generator=_gen(1))
    t = torch.randint(0, schedule.T, (64,), generator=_gen(2))
    y = torch.randint(0, 3, (64,), generator=_gen(3))
    null = torch.full_like(y, 3)
    all_null = l_simple(model, schedule, x0, y, t=t, noise=noise, p_uncond=1.0)
    torch.testing.assert_close(all_null, l_simple(model, schedule, x0, null, t=t, noise=noise))
    none_dropped = l_simple(model, schedule, x0, y, t=t, noise=noise, p_uncond=0.0)
    assert not torch.allclose(all_null, none_dropped)
    # p = 0.5: the drop mask is the generator's next draw, after t and noise (given here)
    drop = torch.rand(64, generator=_gen(9)) < 0.5
    assert 0 < drop.sum() < 64
    half = l_simple(model, schedule, x0, y, t=t, noise=noise, p_uncond=0.5, generator=_gen(9))
    torch.testing.assert_close(half, l_simple(model, schedule, x0, torch.where(drop, null, y), t=t, noise=noise))


def test_l_simple_rejects_bad_arguments(schedule):
    x0 = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"p_uncond must be a finite number in \[0.0, 1.0\]"):
        l_simple(_mlp(3), schedule, x0, torch.zeros(4, dtype=torch.long), p_uncond=1.5)
    with pytest.raises(ValueError, match="num_classes"):
        l_simple(_mlp(), schedule, x0, p_uncond=0.1)
    with pytest.raises(ValueError, match="needs labels y"):
        l_simple(_mlp(3), schedule, x0, p_uncond=0.1)
    with pytest.raises(ValueError, match="t must lie in"):
        l_simple(_mlp(), schedule, x0, t=torch.tensor([0, 1, 2, 1000]))
    with pytest.raises(ValueError, match="noise must have the shape"):
        l_simple(_mlp(), schedule, x0, t=torch.zeros(4, dtype=torch.long), noise=torch.randn(4, 3))
    with pytest.raises(ValueError, match="shape of x_t"):
        l_simple(lambda x, t: x[:, :1], schedule, x0)


# --- ELBO weights -----------------------------------------------------------------------

def _eps_model_mean(schedule, x_t, t, eps_hat):
    """mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(alpha_t), float64."""
    beta, alpha, abar = schedule.betas[t], schedule.alphas[t], schedule.alpha_bars[t]
    return (x_t - beta / math.sqrt(1 - abar) * eps_hat) / math.sqrt(alpha)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
@pytest.mark.parametrize("sched", ["linear", "cosine"])
def test_elbo_weights_match_the_kl_between_gaussians(variance, sched):
    # KL(q(x_{t-1}|x_t,x_0) || p_theta(x_{t-1}|x_t)) computed by torch.distributions for a
    # perfect and an imperfect eps: the difference must be lambda_t * ||eps - eps_hat||^2.
    schedule = dc.linear_schedule(200) if sched == "linear" else dc.cosine_schedule(200)
    weights = elbo_weights(schedule, variance)
    assert weights.shape == (200,) and weights.dtype == torch.float64
    g = _gen(0)
    x0 = torch.randn(1, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(1, 5, generator=g, dtype=torch.float64)
    delta = 0.3 * torch.randn(1, 5, generator=g, dtype=torch.float64)
    for t in (1, 2, 17, 100, 199):
        x_t, _ = dc.q_sample(schedule, x0, t, noise=eps)
        mean, var = dc.q_posterior(schedule, x0, x_t, t)
        sigma2 = (schedule.posterior_variance if variance == "posterior" else schedule.betas)[t]
        q = Normal(mean, var.sqrt())

        def kl(eps_hat, q=q, x_t=x_t, t=t, sigma2=sigma2):
            return kl_divergence(q, Normal(_eps_model_mean(schedule, x_t, t, eps_hat), sigma2.sqrt())).sum()

        excess = kl(eps + delta) - kl(eps)
        torch.testing.assert_close(excess, weights[t] * delta.pow(2).sum(), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_elbo_weight_at_t0_is_the_gaussian_decoder_term(schedule, variance):
    # -log N(x_0; mu_theta(x_1, 1), sigma^2 I): the excess over a perfect eps is lambda_0 ||delta||^2
    weights = elbo_weights(schedule, variance)
    sigma2 = schedule.posterior_variance[1] if variance == "posterior" else schedule.betas[0]
    g = _gen(1)
    x0, eps, delta = (torch.randn(1, 4, generator=g, dtype=torch.float64) for _ in range(3))
    x_t, _ = dc.q_sample(schedule, x0, 0, noise=eps)

    def nll(eps_hat):
        return -Normal(_eps_model_mean(schedule, x_t, 0, eps_hat), sigma2.sqrt()).log_prob(x0).sum()

    torch.testing.assert_close(nll(eps + delta) - nll(eps), weights[0] * delta.pow(2).sum(), rtol=1e-7, atol=1e-12)
    assert torch.isfinite(weights).all() and (weights > 0).all()


def test_elbo_weights_linear_schedule_shape(schedule):
    # For the linear schedule the bound puts most weight on the first steps: L_simple flattens that.
    w = elbo_weights(schedule, "beta")
    assert w.argmax() == 0 and w[0] > 10 * w[500] and w[0] > 10 * w[999]
    torch.testing.assert_close(w[0], 1 / (2 * schedule.alphas[0]))


def test_elbo_weights_rejects_unknown_variance(schedule):
    with pytest.raises(ValueError, match="variance must be"):
        elbo_weights(schedule, "learned")


# --- loss by t --------------------------------------------------------------------------

def test_loss_by_t_buckets_and_steps(schedule):
    seen = []

    def recorder(x_t, t):
        seen.append(t.clone())
        return torch.zeros_like(x_t)

    x0 = torch.randn(7, 2, generator=_gen(0))
    result = loss_by_t(recorder, schedule, x0, n_buckets=4, generator=_gen(1))
    assert isinstance(result, LossByT)
    assert result.edges.tolist() == [0, 250, 500, 750, 1000]
    assert result.loss.shape == (4,)
    for t, lo, hi in zip(seen, result.edges[:-1], result.edges[1:]):
        assert t.shape == (7,) and t.min() >= lo and t.max() < hi
        assert t.unique().numel() == 7 and t.max() - t.min() >= (hi - lo) * 5 // 7  # spread
    # a zero model's error is the mean square of the shared noise, the same in every bucket
    noise = torch.randn(7, 2, generator=_gen(1))
    torch.testing.assert_close(result.loss, noise.pow(2).mean().expand(4))


def test_loss_by_t_oracle_beats_zero_model(schedule):
    mixture = dc.oracle.ring_mixture()
    x0 = mixture.sample(512, generator=_gen(0)).float()
    oracle = loss_by_t(mixture.as_model(schedule), schedule, x0, generator=_gen(1))
    zero = loss_by_t(lambda x, t: torch.zeros_like(x), schedule, x0, generator=_gen(1))
    assert (oracle.loss < zero.loss).all()
    assert oracle.loss.mean() < 0.5 * zero.loss.mean()
    # the oracle's error shrinks towards pure noise, where E[eps | x_t] is almost x_t itself
    assert oracle.loss[-1] < 0.01 * oracle.loss[0]


def test_loss_by_t_uses_eval_mode_and_restores_it(schedule):
    model = _mlp()
    model.train()
    modes = []
    model.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    loss_by_t(model, schedule, torch.randn(4, 2), n_buckets=2, generator=_gen(0))
    assert modes == [False, False] and model.training
    with pytest.raises(ValueError, match="n_buckets"):
        loss_by_t(model, schedule, torch.randn(4, 2), n_buckets=0)


# --- eps_scale ---------------------------------------------------------------------------

def test_eps_scale_of_the_oracle_is_one_at_high_noise_and_scales_with_the_model(schedule):
    mixture = dc.oracle.ring_mixture()
    x0 = mixture.sample(512, generator=_gen(0))
    oracle = mixture.as_model(schedule)
    exact = eps_scale(oracle, schedule, x0, 999, generator=_gen(1))
    # E[eps | x_t] differs from eps by sqrt(abar_t) (x0 - E[x0 | x_t]) / sqrt(1 - abar_t): ~0.6% at t = 999
    assert abs(exact - 1) < 0.01
    short = eps_scale(lambda x, t: 0.965 * oracle(x, t), schedule, x0, 999, generator=_gen(1))
    assert short == pytest.approx(0.965 * exact, rel=1e-12)
    assert eps_scale(lambda x, t: torch.zeros_like(x), schedule, x0, 500, generator=_gen(1)) == 0.0
    # at low noise E[eps | x_t] cannot recover the part of eps tangled with the data: shorter
    assert eps_scale(oracle, schedule, x0, 0, generator=_gen(1)) < 0.9


def test_eps_scale_bad_arguments(schedule):
    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="t"):
        eps_scale(_mlp(), schedule, x0, 1000)
    with pytest.raises(TypeError, match="t must be an int"):
        eps_scale(_mlp(), schedule, x0, 1.5)
    with pytest.raises(ValueError, match="x0"):
        eps_scale(_mlp(), schedule, torch.zeros(4), 10)


def test_eps_scale_uses_eval_mode_and_restores_it(schedule):
    model = _mlp().train()
    seen = []
    original = model.forward

    def spy(*args):
        seen.append(model.training)
        return original(*args)

    model.forward = spy
    eps_scale(model, schedule, torch.zeros(4, 2), 10, generator=_gen(0))
    assert seen == [False] and model.training


# --- device and dtype follow the model ----------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_losses_run_with_the_model_dtype_on_every_device(schedule, dtype, device):
    if device.type == "mps" and dtype == torch.float64:
        pytest.skip("MPS has no float64")
    model = _mlp().to(device=device, dtype=dtype)
    x0 = torch.randn(8, 2, generator=_gen(0)).to(device=device, dtype=dtype)
    reference = _mlp().double()  # the same weights in float64 on the CPU
    t = torch.randint(0, schedule.T, (8,), generator=_gen(1))
    noise = torch.randn(8, 2, generator=_gen(2))
    loss = l_simple(model, schedule, x0, t=t.to(device), noise=noise.to(device=device, dtype=dtype))
    expected = l_simple(reference, schedule, x0.cpu().double(), t=t, noise=noise.to(x0.cpu().dtype).double())
    assert loss.dtype == dtype and loss.device.type == device.type
    tol = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 2e-2}[dtype]  # bfloat16: 8-bit mantissa
    assert abs(loss.item() - expected.item()) <= tol * expected.item()
    by_t = loss_by_t(model, schedule, x0, n_buckets=4, generator=_gen(2))
    assert by_t.loss.device.type == "cpu" and torch.isfinite(by_t.loss).all()
    assert math.isfinite(eps_scale(model, schedule, x0, 900, generator=_gen(3)))


def test_a_float32_batch_reaches_a_float64_model(schedule):
    model = _mlp().double()
    loss = l_simple(model, schedule, torch.randn(8, 2, generator=_gen(0)), generator=_gen(1))
    assert loss.dtype == torch.float64 and torch.isfinite(loss)

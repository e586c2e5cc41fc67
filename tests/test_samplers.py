"""Samplers: identities between them, reproducibility, the loop contract and bad input."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

import ddpm_course as dc
from ddpm_course import samplers
from ddpm_course.forward import predict_x0
from ddpm_course.oracle import ring_mixture

SCHEDULE = dc.linear_schedule()


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py
T = SCHEDULE.T


def gaussian_eps(m=(0.6, -0.3), s=0.2):
    """Exact eps when the data is N(m, s^2 I) in 2-D: a cheap, smooth stand-in for a network."""
    m = torch.tensor(m, dtype=torch.float64)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = SCHEDULE.alpha_bars[t.cpu()][:, None]  # (B, 1)
        return ((1 - a).sqrt() * (x.double() - a.sqrt() * m) / (a * s**2 + 1 - a)).to(x.dtype)

    return model


def start(n=64, seed=0, dtype=torch.float64):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


ALL = {
    "ddpm": lambda model, shape, **kw: samplers.ddpm_sample(model, SCHEDULE, shape, **kw),
    "ddim": lambda model, shape, **kw: samplers.ddim_sample(model, SCHEDULE, shape, steps=10, **kw),
    "ddim_eta1": lambda model, shape, **kw: samplers.ddim_sample(model, SCHEDULE, shape, steps=10, eta=1.0, **kw),
    "euler": lambda model, shape, **kw: samplers.euler_sample(model, SCHEDULE, shape, steps=10, **kw),
    "dpm_solver": lambda model, shape, **kw: samplers.dpm_solver_sample(model, SCHEDULE, shape, steps=10, **kw),
}


# ----------------------------------------------------------------------------- identities


def test_ddim_eta1_over_all_steps_is_ddpm_with_posterior_variance():
    model = gaussian_eps()
    ddpm = samplers.ddpm_sample(model, SCHEDULE, start(), generator=torch.Generator().manual_seed(5), variance="posterior")
    ddim = samplers.ddim_sample(model, SCHEDULE, start(), steps=T, eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ddim, ddpm, atol=1e-10, rtol=0)


def test_ddpm_step_mean_is_the_eps_form_of_the_posterior_mean():
    """mu = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t), the form in Ho et al. (eq. 11)."""
    x, eps = start(), start(seed=1)
    for t in (999, 500, 1):
        out = samplers.ddpm_step(SCHEDULE, x, t, eps, torch.zeros_like(x))
        beta, abar = SCHEDULE.betas[t].item(), SCHEDULE.alpha_bars[t].item()
        mu = (x - beta / math.sqrt(1 - abar) * eps) / math.sqrt(1 - beta)
        torch.testing.assert_close(out.x_prev, mu, atol=1e-12, rtol=0)
        torch.testing.assert_close(out.x0_hat, predict_x0(SCHEDULE, x, t, eps), atol=1e-12, rtol=0)


def test_ddpm_step_noise_scale_per_variance():
    x, eps, noise = start(), start(seed=1), start(seed=2)
    t = 300
    base = samplers.ddpm_step(SCHEDULE, x, t, eps, torch.zeros_like(x)).x_prev
    for variance, var in (("beta", SCHEDULE.betas[t]), ("posterior", SCHEDULE.posterior_variance[t])):
        out = samplers.ddpm_step(SCHEDULE, x, t, eps, noise, variance=variance).x_prev
        torch.testing.assert_close(out - base, var.sqrt().item() * noise, atol=1e-12, rtol=0)


@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing", "logsnr"])
def test_euler_in_sigma_space_is_ddim_eta0(spacing):
    model = gaussian_eps()
    a = samplers.euler_sample(model, SCHEDULE, start(), steps=25, spacing=spacing)
    b = samplers.ddim_sample(model, SCHEDULE, start(), steps=25, spacing=spacing)
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_dpm_solver_order1_is_ddim():
    model = gaussian_eps()
    a = samplers.dpm_solver_sample(model, SCHEDULE, start(), steps=15, order=1)
    ts = samplers.dpm_solver_timesteps(SCHEDULE, 15)
    x = start()
    for t, t_prev in zip(ts.tolist(), ts.tolist()[1:] + [-1]):
        x = samplers.ddim_step(SCHEDULE, x, t, model(x, torch.full((64,), t)), t_prev=t_prev).x_prev
    torch.testing.assert_close(a, x, atol=1e-10, rtol=0)


def test_point_mass_data_is_solved_exactly_by_every_ode_sampler():
    """If x_0 is a single point c, the ODE is x_t = sqrt(abar_t) c + sqrt(1 - abar_t) eps exactly."""
    c = torch.tensor([0.3, -0.7], dtype=torch.float64)

    def model(x, t):
        a = SCHEDULE.alpha_bars[t][:, None]
        return (x - a.sqrt() * c) / (1 - a).sqrt()

    for out in (
        samplers.ddim_sample(model, SCHEDULE, start(), steps=3),
        samplers.euler_sample(model, SCHEDULE, start(), steps=3),
        samplers.dpm_solver_sample(model, SCHEDULE, start(), steps=3),
        samplers.dpm_solver_sample(model, SCHEDULE, start(), steps=3, spacing="logsnr", lower_order_final=1, drop_t0=False),
    ):
        torch.testing.assert_close(out, c.expand(64, 2), atol=1e-9, rtol=0)


def test_dpm_solver_second_order_converges_faster_than_first():
    """On one Gaussian, the error against a 999-step solution falls ~4x per doubling for
    order 2 and ~2x for order 1 (logsnr spacing, so every step size shrinks)."""
    model = gaussian_eps(s=0.05)
    ref = samplers.dpm_solver_sample(model, SCHEDULE, start(), steps=999, spacing="logsnr")

    def err(order, steps):
        out = samplers.dpm_solver_sample(model, SCHEDULE, start(), steps=steps, order=order, spacing="logsnr")
        return (out - ref).abs().max().item()

    slope1 = math.log2(err(1, 10) / err(1, 20))
    slope2 = math.log2(err(2, 10) / err(2, 20))
    assert 0.7 < slope1 < 1.4, slope1
    assert slope2 > 1.6, slope2


# ----------------------------------------------------------------------------- timesteps


@pytest.mark.parametrize("spacing", samplers.SPACINGS)
@pytest.mark.parametrize("steps", [1, 2, 10, 50])
def test_timesteps_are_decreasing_and_in_range(spacing, steps):
    ts = samplers.timesteps(SCHEDULE, steps, spacing)
    assert ts.dtype == torch.long and ts.ndim == 1 and 1 <= len(ts) <= steps
    assert ts.min() >= 0 and ts.max() <= T - 1
    assert torch.all(ts[1:] < ts[:-1])
    if spacing in ("linspace", "leading", "trailing"):
        assert len(ts) == steps


@pytest.mark.parametrize("spacing", ["logsnr", "karras"])
def test_logsnr_and_karras_span_the_whole_range(spacing):
    ts = samplers.timesteps(SCHEDULE, 20, spacing)
    assert ts[0] == T - 1 and ts[-1] == 0 and len(ts) == 20


def test_logsnr_spacing_is_uniform_in_log_snr():
    ts = samplers.timesteps(SCHEDULE, 20, "logsnr")
    lam = SCHEDULE.snr.log()[ts]
    gaps = lam[1:] - lam[:-1]
    # rounding to whole steps moves each point by at most half a step in t
    assert (gaps.max() - gaps.min()) / gaps.mean() < 0.5


def test_dpm_solver_timesteps_drop_t0():
    assert samplers.dpm_solver_timesteps(SCHEDULE, 20)[-1] == 50
    assert samplers.dpm_solver_timesteps(SCHEDULE, 20, drop_t0=False).tolist() == samplers.timesteps(SCHEDULE, 20, "linspace").tolist()


# ----------------------------------------------------------------------------- loop contract


@pytest.mark.parametrize("name", list(ALL))
def test_same_seed_same_samples(name):
    model = gaussian_eps()
    a = ALL[name](model, (16, 2), generator=torch.Generator().manual_seed(3))
    b = ALL[name](model, (16, 2), generator=torch.Generator().manual_seed(3))
    c = ALL[name](model, (16, 2), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (16, 2) and a.dtype == torch.float32


@pytest.mark.parametrize("name", list(ALL))
def test_tensor_start_is_not_modified_and_keeps_dtype(name):
    x = start(8)
    before = x.clone()
    out = ALL[name](gaussian_eps(), x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, before) and out.dtype == torch.float64


def test_tuple_shape_draws_x_T_from_the_generator():
    """With a tuple, x_T is the first draw from the generator: the same as passing it."""
    model = gaussian_eps()
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(9))
    a = samplers.ddim_sample(model, SCHEDULE, (8, 2), steps=5, generator=torch.Generator().manual_seed(9))
    b = samplers.ddim_sample(model, SCHEDULE, x_T, steps=5)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name, n_calls", [("ddpm", T), ("ddim", 10), ("euler", 10), ("dpm_solver", 10)])
def test_callback_sees_every_evaluation(name, n_calls):
    model = gaussian_eps()
    seen = []

    def callback(i, t, x_t, x0_hat):
        seen.append((i, t))
        torch.testing.assert_close(x0_hat, predict_x0(SCHEDULE, x_t, t, model(x_t, torch.full((x_t.shape[0],), t))))

    ALL[name](model, start(4), generator=torch.Generator().manual_seed(0), callback=callback)
    assert [i for i, _ in seen] == list(range(n_calls))
    ts = [t for _, t in seen]
    assert ts == sorted(ts, reverse=True) and len(set(ts)) == n_calls


@pytest.mark.parametrize("name", list(ALL))
def test_labels_reach_a_conditional_model(name):
    base = gaussian_eps()
    got = []

    def model(x, t, y):
        got.append(y.clone())
        return base(x, t) + 0.0 * y[:, None]

    y = torch.arange(8) % 3
    ALL[name](model, start(8), generator=torch.Generator().manual_seed(0), y=y)
    assert got and all(torch.equal(v, y) for v in got)


def test_module_mode_is_left_alone_and_no_graph_is_built():
    net = torch.nn.Linear(2, 2).double()
    model = lambda x, t: net(x)  # noqa: E731
    net.train()
    out = samplers.ddim_sample(model, SCHEDULE, start(4), steps=3)
    assert net.training and not out.requires_grad


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x, t):
        return self.lin(x)


def test_training_mode_module_warns_but_stays_in_training_mode():
    net = TinyNet()
    with pytest.warns(UserWarning, match="eval"):
        samplers.ddim_sample(net, SCHEDULE, (4, 2), steps=2, generator=torch.Generator().manual_seed(0))
    assert net.training
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = samplers.ddim_sample(net, SCHEDULE, (4, 2), steps=2, generator=torch.Generator().manual_seed(0))
    assert not net.training and not out.requires_grad


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("steps", [0, -3, T + 1])
def test_steps_out_of_range(steps):
    for fn in (samplers.ddim_sample, samplers.euler_sample, samplers.dpm_solver_sample):
        with pytest.raises(ValueError, match=r"steps must lie in \[1, "):
            fn(gaussian_eps(), SCHEDULE, (2, 2), steps=steps)


def test_steps_must_be_int():
    with pytest.raises(TypeError, match="steps must be an integer"):
        samplers.timesteps(SCHEDULE, 10.0)
    with pytest.raises(TypeError, match="steps must be an integer"):
        samplers.timesteps(SCHEDULE, True)


def test_dpm_solver_linspace_needs_one_spare_step():
    with pytest.raises(ValueError, match=r"\[1, T - 1\]"):
        samplers.dpm_solver_sample(gaussian_eps(), SCHEDULE, (2, 2), steps=T)


def test_unknown_spacing_variance_order():
    with pytest.raises(ValueError, match="spacing must be one of"):
        samplers.ddim_sample(gaussian_eps(), SCHEDULE, (2, 2), spacing="uniform")
    with pytest.raises(ValueError, match="variance must be one of"):
        samplers.ddpm_sample(gaussian_eps(), SCHEDULE, (2, 2), variance="large")
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        samplers.dpm_solver_sample(gaussian_eps(), SCHEDULE, (2, 2), order=3)
    with pytest.raises(ValueError, match="lower_order_final"):
        samplers.dpm_solver_sample(gaussian_eps(), SCHEDULE, (2, 2), lower_order_final=0)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        samplers.ddim_sample(gaussian_eps(), SCHEDULE, (2, 2), eta=-0.5)


def test_model_output_shape_mismatch():
    def bad(x, t):
        return x[:, :1]

    for name in ALL:
        with pytest.raises(ValueError, match="shape of x_t"):
            ALL[name](bad, (4, 2), generator=torch.Generator().manual_seed(0))


def test_bad_shape_and_labels():
    with pytest.raises(ValueError, match="shape must be a tuple"):
        samplers.ddim_sample(gaussian_eps(), SCHEDULE, (4,))
    with pytest.raises(ValueError, match="shape must be a tuple"):
        samplers.ddim_sample(gaussian_eps(), SCHEDULE, (4, 0))
    with pytest.raises(ValueError, match="y must be a"):
        samplers.ddim_sample(gaussian_eps(), SCHEDULE, (4, 2), y=torch.zeros(3, dtype=torch.long))


def test_step_functions_check_their_steps():
    x = start(2)
    with pytest.raises(ValueError, match="t_prev must lie in"):
        samplers.ddim_step(SCHEDULE, x, 10, x, t_prev=10)
    with pytest.raises(ValueError, match=r"t must lie in \[0, T-1\]"):
        samplers.euler_step(SCHEDULE, x, T, x, t_prev=3)
    with pytest.raises(ValueError, match="needs noise"):
        samplers.ddpm_step(SCHEDULE, x, 10, x)
    with pytest.raises(ValueError, match="first order"):
        samplers.dpm_solver_step(SCHEDULE, x, 10, x, t_prev=-1, last=(20, x))
    with pytest.raises(ValueError, match="shape of x_t"):
        samplers.ddim_step(SCHEDULE, x, 10, x[:1], t_prev=5)


def test_oracle_works_as_a_model_with_every_sampler():
    model = ring_mixture().as_model(SCHEDULE)
    for name in ("ddim", "ddim_eta1", "euler", "dpm_solver"):  # DDPM with the oracle: tests/test_oracle.py
        out = ALL[name](model, start(8), generator=torch.Generator().manual_seed(0))
        assert out.shape == (8, 2) and torch.isfinite(out).all()

"""Schedules: closed forms, agreement with diffusers, and clear errors on bad input."""
import dataclasses
import math

import pytest
import torch
from diffusers import DDPMScheduler

import ddpm_course as dc
from ddpm_course.schedules import Schedule, broadcast, check_timesteps


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: dc.linear_schedule(), dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)),
        (lambda: dc.cosine_schedule(), dict(beta_schedule="squaredcos_cap_v2")),
        (lambda: dc.linear_schedule(T=50, beta_start=1e-3, beta_end=0.2),
         dict(num_train_timesteps=50, beta_start=1e-3, beta_end=0.2)),
    ],
    ids=["linear", "cosine", "linear-short"],
)
def test_tables_match_diffusers(ours, theirs):
    schedule = ours()
    ref = DDPMScheduler(**theirs)
    assert schedule.T == ref.config.num_train_timesteps
    torch.testing.assert_close(schedule.betas, ref.betas.double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(schedule.alpha_bars, ref.alphas_cumprod.double(), atol=1e-6, rtol=0)
    # diffusers' "fixed_small" variance is the posterior variance beta-tilde (clamped at 1e-20 for t=0)
    theirs_var = torch.stack([ref._get_variance(t, variance_type="fixed_small") for t in range(schedule.T)]).double()
    torch.testing.assert_close(schedule.posterior_variance.clamp(min=1e-20), theirs_var, atol=1e-6, rtol=0)


def test_q_sample_matches_diffusers_add_noise():
    schedule = dc.cosine_schedule()
    ref = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    x_t, returned = dc.q_sample(schedule, x0, t, noise=noise)
    assert returned is noise
    torch.testing.assert_close(x_t, ref.add_noise(x0, noise, t), atol=1e-6, rtol=0)


def test_derived_tables_follow_their_definitions():
    s = dc.linear_schedule(T=10, beta_start=0.01, beta_end=0.3)
    for t in range(s.T):
        abar = math.prod(1 - s.betas[i].item() for i in range(t + 1))
        abar_prev = math.prod(1 - s.betas[i].item() for i in range(t))
        assert s.alpha_bars[t].item() == pytest.approx(abar, rel=1e-12)
        assert s.alpha_bars_prev[t].item() == pytest.approx(abar_prev, rel=1e-12)
        assert s.snr[t].item() == pytest.approx(abar / (1 - abar), rel=1e-12)
        beta = s.betas[t].item()
        expected = beta * (1 - abar_prev) / (1 - abar)
        assert s.posterior_variance[t].item() == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert s.posterior_variance[0].item() == 0.0  # x_{t-1} at t=0 is the data itself


def test_cosine_alpha_bar_follows_the_cosine_until_the_cap():
    T, s_off = 1000, 0.008
    s = dc.cosine_schedule(T=T, s=s_off)

    def f(u):
        return math.cos((u + s_off) / (1 + s_off) * math.pi / 2) ** 2

    for t in (0, 10, 500, 900, 990):
        assert s.alpha_bars[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert s.betas.max().item() == pytest.approx(0.999)  # the last beta is clipped


def test_schedule_is_float64_and_to_returns_a_new_one():
    s = dc.linear_schedule(T=20)
    assert s.betas.dtype == torch.float64
    s32 = s.to(dtype=torch.float32)
    assert s32 is not s and s32.betas.dtype == torch.float32 and s.betas.dtype == torch.float64
    assert s32.T == 20 and s32.name == "linear"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"  # frozen


def test_broadcast_and_check_timesteps():
    s = dc.linear_schedule(T=10)
    x = torch.zeros(3, 2, 4, 4)
    t = torch.tensor([0, 4, 9])
    b = broadcast(s.alpha_bars, t, x)
    assert b.shape == (3, 1, 1, 1) and b.dtype == torch.float32
    torch.testing.assert_close(b.flatten().double(), s.alpha_bars[t], atol=1e-7, rtol=0)
    assert check_timesteps(s, 3, batch=4).tolist() == [3, 3, 3, 3]


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: dc.linear_schedule(T=0), "T must be an integer >= 1"),
        (lambda: dc.linear_schedule(T=2.5), "T must be an integer >= 1"),
        (lambda: dc.cosine_schedule(T=-3), "T must be an integer >= 1"),
        (lambda: dc.linear_schedule(beta_start=0.0), r"beta_start must be a finite number in \(0.0, 1.0\)"),
        (lambda: dc.linear_schedule(beta_end=1.0), r"beta_end must be a finite number in \(0.0, 1.0\)"),
        (lambda: dc.linear_schedule(beta_start=0.02, beta_end=1e-4), "beta_start must be <= beta_end"),
        (lambda: dc.cosine_schedule(max_beta=1.5), r"max_beta must be a finite number in \(0.0, 1.0\)"),
        (lambda: Schedule.from_betas(torch.tensor([0.1, 1.2])), "strictly inside"),
        (lambda: Schedule.from_betas(torch.tensor([])), "T >= 1"),
    ],
)
def test_bad_schedule_arguments_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_timesteps():
    s = dc.linear_schedule(T=10)
    with pytest.raises(ValueError, match=r"t must lie in \[0, T-1\] = \[0, 9\]"):
        check_timesteps(s, torch.tensor([10]))
    with pytest.raises(ValueError, match=r"t must lie in"):
        check_timesteps(s, torch.tensor([-1]))
    with pytest.raises(TypeError, match="integer steps"):
        check_timesteps(s, torch.tensor([1.5]))
    with pytest.raises(ValueError, match="batch has 2"):
        check_timesteps(s, torch.tensor([1, 2, 3]), batch=2)

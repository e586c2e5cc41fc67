"""Our samplers against diffusers' schedulers, step by step.

Each test runs one of our step functions and the matching diffusers scheduler side by side:
at every step both get the same state x_t (ours), the same model output and the same noise,
and their next states must agree to 1e-5. diffusers keeps its tables in float32, so our
schedule is rebuilt from diffusers' own ``alphas_cumprod`` (:func:`same_tables`) and what
remains is float32 arithmetic. One more float32 effect: diffusers' DDPM step forms
beta_t = 1 - abar_t / abar_{t-1} in float32, which loses about three digits when beta_t ~ 1e-4
(one-step differences reach 1e-4 near t = 0), so the DDPM tests promote diffusers' tables to
float64 (:func:`promote`); DDIM, Euler and DPM-Solver++ run on diffusers' untouched tables.
Feeding each side its own state instead lets float32 round-off
accumulate: diffusers forms beta_t = 1 - abar_t / abar_{t-1} in float32, which loses about
three digits when beta_t ~ 1e-4, and 1000 DDPM steps drift apart by ~3e-4. The whole-loop
tests therefore run 20-step loops in float32, and the 1000-step DDPM loop with diffusers'
tables promoted to float64.

Known differences in diffusers' spacings, each pinned by a test below:
- ``DDIMScheduler`` steps from t to ``t - T // steps`` whatever the spacing, so with
  ``linspace`` (and ``trailing`` when steps does not divide T) it does not land on the next
  timestep of its own list; our ``ddim_step`` reproduces it when handed that ``t_prev``.
- ``EulerDiscreteScheduler`` keeps ``linspace`` timesteps unrounded (fractional t, sigma
  interpolated); our model contract wants whole steps, so parity is checked where linspace
  lands on integers (steps - 1 divides T - 1, e.g. 10 steps on T = 1000).
- ``DDPMScheduler`` with ``variance_type="fixed_large"`` adds noise at the final step whenever
  the last timestep is above 0 (``trailing``); DDPM adds none at the step to the data.
"""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("diffusers")
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler  # noqa: E402

from ddpm_course import samplers  # noqa: E402
from ddpm_course.schedules import Schedule  # noqa: E402

T = 1000
B = 64
ATOL = 1e-5
COMMON = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")


def same_tables(scheduler) -> Schedule:
    """Our Schedule whose alpha-bars equal diffusers' float32 ``alphas_cumprod``."""
    abar = scheduler.alphas_cumprod.double()
    betas = 1 - abar / torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    return Schedule.from_betas(betas, name="diffusers")


def promote(scheduler, schedule: Schedule) -> None:
    """Give a DDPMScheduler float64 alpha-bars (the same values), so its steps run in float64."""
    scheduler.alphas_cumprod = schedule.alpha_bars.clone()
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)


@pytest.fixture(scope="module")
def model():
    """A cheap, realistic noise predictor: the exact eps when the data is N(m, s^2 I) in 2-D."""
    abar = torch.linspace(1e-4, 0.02, T, dtype=torch.float64).neg().add(1).cumprod(0)
    m, s2 = torch.tensor([0.6, -0.3], dtype=torch.float64), 0.2**2

    def eps(x: torch.Tensor, t: int) -> torch.Tensor:
        a = abar[int(t)]
        out = (1 - a).sqrt() * (x.double() - a.sqrt() * m) / (a * s2 + 1 - a)
        return out.to(x.dtype)

    return eps


def x_T(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, 2, generator=torch.Generator().manual_seed(seed))


def peek_noise(generator: torch.Generator, shape) -> torch.Tensor:
    """The noise diffusers will draw next from ``generator``, without consuming it."""
    copy = torch.Generator().set_state(generator.get_state())
    return torch.randn(shape, generator=copy)


# ----------------------------------------------------------------------------- timesteps


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 10, 20, 50, 333, 1000])
def test_timesteps_match_ddim_and_ddpm(spacing, steps):
    ours = samplers.timesteps(same_tables(DDIMScheduler(**COMMON)), steps, spacing)
    for cls in (DDIMScheduler, DDPMScheduler):
        s = cls(**COMMON, timestep_spacing=spacing)
        s.set_timesteps(steps)
        assert ours.tolist() == s.timesteps.tolist(), cls.__name__


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 10, 20, 50, 100])
def test_timesteps_match_dpm_solver(spacing, steps):
    s = DPMSolverMultistepScheduler(**COMMON, timestep_spacing=spacing)
    s.set_timesteps(steps)
    assert samplers.dpm_solver_timesteps(same_tables(s), steps, spacing).tolist() == s.timesteps.tolist()


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [10, 20, 50])
def test_timesteps_match_euler(spacing, steps):
    s = EulerDiscreteScheduler(**COMMON, timestep_spacing=spacing)
    s.set_timesteps(steps)
    assert samplers.timesteps(same_tables(s), steps, spacing).tolist() == s.timesteps.tolist()


def test_euler_linspace_is_fractional_in_diffusers():
    """Known difference: diffusers' Euler linspace keeps fractional t; ours rounds (equal when integral)."""
    s = EulerDiscreteScheduler(**COMMON, timestep_spacing="linspace")
    s.set_timesteps(20)
    assert not torch.equal(s.timesteps, s.timesteps.round())
    assert samplers.timesteps(same_tables(s), 20, "linspace").tolist() == s.timesteps.round().long().tolist()
    s.set_timesteps(10)
    assert samplers.timesteps(same_tables(s), 10, "linspace").tolist() == s.timesteps.tolist()


# ----------------------------------------------------------------------------- DDPM


@pytest.mark.parametrize(
    "variance_type, ours", [("fixed_large", "beta"), ("fixed_small", "posterior")]
)
@pytest.mark.parametrize("spacing, steps", [("leading", 1000), ("leading", 50), ("linspace", 50), ("trailing", 50)])
def test_ddpm_step_parity(model, variance_type, ours, spacing, steps):
    sched = DDPMScheduler(**COMMON, variance_type=variance_type, clip_sample=False, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    schedule = same_tables(sched)
    promote(sched, schedule)
    ts = [int(t) for t in sched.timesteps]
    assert ts == samplers.timesteps(schedule, steps, spacing).tolist()
    gen = torch.Generator().manual_seed(1)
    x_ours = x_T()
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps = model(x_ours, t)
        noise = peek_noise(gen, x_ours.shape) if t > 0 else None
        x_before = x_ours
        step_noise = noise if t_prev >= 0 else None
        x_ours = samplers.ddpm_step(schedule, x_ours, t, eps, step_noise, t_prev=t_prev, variance=ours).x_prev
        x_theirs = sched.step(eps, t, x_before, generator=gen).prev_sample
        if t_prev < 0 and t > 0:
            # Step to the data from t > 0 (trailing): diffusers still adds noise there.
            extra = 0.0 if variance_type == "fixed_small" else math.sqrt(1 - float(schedule.alpha_bars[t]))
            torch.testing.assert_close(x_theirs - x_ours, extra * noise, atol=ATOL, rtol=0)
        else:
            torch.testing.assert_close(x_ours, x_theirs, atol=ATOL, rtol=0, msg=f"step {i}, t={t}")


@pytest.mark.parametrize("variance_type, ours", [("fixed_large", "beta"), ("fixed_small", "posterior")])
def test_ddpm_sample_matches_diffusers_loop(model, variance_type, ours):
    """The whole 1000-step loop in float64, noise drawn from the same seed in the same order."""
    sched = DDPMScheduler(**COMMON, variance_type=variance_type, clip_sample=False)
    schedule = same_tables(sched)
    promote(sched, schedule)

    def model64(x, t):
        return model(x, t).double()

    start = x_T().double()
    out = samplers.ddpm_sample(
        lambda x, t: model64(x, int(t[0])), schedule, start, generator=torch.Generator().manual_seed(2), variance=ours
    )
    gen, x = torch.Generator().manual_seed(2), start.clone()
    for t in sched.timesteps:
        x = sched.step(model64(x, int(t)), int(t), x, generator=gen).prev_sample
    torch.testing.assert_close(out, x, atol=1e-9, rtol=0)


# ----------------------------------------------------------------------------- DDIM


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize(
    "spacing, steps",
    [("leading", 50), ("leading", 7), ("trailing", 50), ("trailing", 7), ("linspace", 50), ("leading", 1000)],
)
def test_ddim_step_parity(model, eta, spacing, steps):
    sched = DDIMScheduler(**COMMON, clip_sample=False, set_alpha_to_one=True, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    schedule = same_tables(sched)
    gen = torch.Generator().manual_seed(3)
    x_ours = x_T()
    for t in [int(v) for v in sched.timesteps]:
        t_prev = max(t - T // steps, -1)  # diffusers' rule, whatever the spacing
        eps = model(x_ours, t)
        noise = torch.randn(x_ours.shape, generator=gen)
        x_before = x_ours
        x_ours = samplers.ddim_step(schedule, x_ours, t, eps, noise, t_prev=t_prev, eta=eta).x_prev
        x_theirs = sched.step(eps, t, x_before, eta=eta, variance_noise=noise).prev_sample
        torch.testing.assert_close(x_ours, x_theirs, atol=ATOL, rtol=0, msg=f"t={t}")


@pytest.mark.parametrize(
    "spacing, steps, follows_list",
    [("leading", 50, True), ("trailing", 50, True), ("trailing", 7, False), ("linspace", 50, False)],
)
def test_ddim_previous_step_rule(spacing, steps, follows_list):
    """Known difference: diffusers' DDIM goes to t - T // steps, the next listed step only for
    leading spacing and for trailing when steps divides T. Our loops follow the list."""
    sched = DDIMScheduler(**COMMON, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    ts = [int(v) for v in sched.timesteps]
    nxt = ts[1:] + [-1]
    diffusers_prev = [t - T // steps if t - T // steps >= 0 else -1 for t in ts]
    assert (diffusers_prev == nxt) == follows_list


def test_ddim_sample_matches_diffusers_loop(model):
    sched = DDIMScheduler(**COMMON, clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(20)
    schedule = same_tables(sched)
    ours = samplers.ddim_sample(lambda x, t: model(x, int(t[0])), schedule, x_T(), steps=20)
    x = x_T()
    for t in sched.timesteps:
        x = sched.step(model(x, int(t)), int(t), x, eta=0.0).prev_sample
    torch.testing.assert_close(ours, x, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- Euler


@pytest.mark.parametrize("spacing, steps", [("leading", 20), ("trailing", 20), ("linspace", 10), ("trailing", 50)])
def test_euler_step_parity(model, spacing, steps):
    """diffusers integrates in sigma space: sample = x_t * sqrt(1 + sigma^2), the model sees
    ``scale_model_input(sample) = x_t``; we compare in our (variance-preserving) coordinates."""
    sched = EulerDiscreteScheduler(**COMMON, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    schedule = same_tables(sched)
    ts = [int(v) for v in sched.timesteps]
    assert ts == samplers.timesteps(schedule, steps, spacing).tolist()
    sigmas = sched.sigmas.double()
    x_ours = x_T()
    for i, t in enumerate(ts):
        sample = x_ours * math.sqrt(1 + sigmas[i].item() ** 2)
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        torch.testing.assert_close(sched.scale_model_input(sample, sched.timesteps[i]), x_ours, atol=ATOL, rtol=0)
        eps = model(x_ours, t)
        x_ours = samplers.euler_step(schedule, x_ours, t, eps, t_prev=t_prev).x_prev
        sample = sched.step(eps, sched.timesteps[i], sample).prev_sample
        theirs = sample / math.sqrt(1 + sigmas[i + 1].item() ** 2)
        torch.testing.assert_close(x_ours, theirs, atol=ATOL, rtol=0, msg=f"t={t}")


# ----------------------------------------------------------------------------- DPM-Solver++


@pytest.mark.parametrize(
    "spacing, steps", [("linspace", 20), ("linspace", 10), ("leading", 20), ("trailing", 20), ("linspace", 100)]
)
def test_dpm_solver_step_parity(model, spacing, steps):
    sched = DPMSolverMultistepScheduler(
        **COMMON, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing=spacing
    )
    sched.set_timesteps(steps)
    schedule = same_tables(sched)
    ts = [int(v) for v in sched.timesteps]
    assert ts == samplers.dpm_solver_timesteps(schedule, steps, spacing).tolist()
    x_ours = x_T()
    last = None
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps = model(x_ours, t)
        history = (last,) if last is not None and t_prev >= 0 else ()
        step = samplers.dpm_solver_step(schedule, x_ours, t, eps, t_prev=t_prev, history=history)
        x_theirs = sched.step(eps, sched.timesteps[i], x_ours).prev_sample  # its history holds x0_hat from our states
        last, x_ours = (t, step.x0_hat), step.x_prev
        torch.testing.assert_close(x_ours, x_theirs, atol=ATOL, rtol=0, msg=f"t={t}")


def test_dpm_solver_sample_matches_diffusers_loop(model):
    sched = DPMSolverMultistepScheduler(**COMMON, algorithm_type="dpmsolver++", solver_order=2)
    sched.set_timesteps(20)
    schedule = same_tables(sched)
    ours = samplers.dpm_solver_sample(lambda x, t: model(x, int(t[0])), schedule, x_T(), steps=20)
    x = x_T()
    for t in sched.timesteps:
        x = sched.step(model(x, int(t)), t, x).prev_sample
    torch.testing.assert_close(ours, x, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- Heun with Karras sigmas (lesson 13)

from diffusers import HeunDiscreteScheduler  # noqa: E402


def karras_grid_schedule(sigmas: torch.Tensor) -> Schedule:
    """A schedule whose steps 0 .. n-1 are the given noise levels (increasing with the step):
    abar = 1 / (1 + sigma^2). diffusers' Heun evaluates at fractional training steps; our model
    contract wants whole steps, so the step rule is checked on diffusers' own sigmas this way."""
    abar = 1 / (1 + sigmas.double().flip(0) ** 2)  # (n,), step 0 = the smallest sigma
    betas = 1 - abar / torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    return Schedule.from_betas(betas, name="karras-grid")


def gaussian_eps_at(abar: float, x: torch.Tensor) -> torch.Tensor:
    """The exact eps for data N(m, s^2 I) in 2-D at a noise level given by its abar."""
    m, s2 = torch.tensor([0.6, -0.3], dtype=torch.float64), 0.2**2
    return ((1 - abar) ** 0.5 * (x.double() - abar**0.5 * m) / (abar * s2 + 1 - abar)).to(x.dtype)


@pytest.mark.parametrize("steps", [5, 10, 25])
def test_heun_karras_step_parity(steps):
    """Every diffusers call (2 * steps - 1 of them) against our heun_step, on diffusers' sigmas."""
    sched = HeunDiscreteScheduler(**COMMON, use_karras_sigmas=True)
    sched.set_timesteps(steps)
    levels = sched.sigmas[0::2]  # (steps,): s_0 > ... > s_{n-1}; sched.sigmas interleaves them, then 0
    grid = karras_grid_schedule(levels)
    abar = grid.alpha_bars.double()
    n = len(levels)
    x_ours = x_T()
    calls = iter(range(len(sched.timesteps)))
    for i in range(n):
        t, t_prev = n - 1 - i, n - 2 - i  # our steps on the grid schedule; t_prev = -1 is the data
        sigma = levels[i].item()
        sample = x_ours * math.sqrt(1 + sigma**2)  # diffusers' variance-exploding state
        eps = gaussian_eps_at(abar[t].item(), x_ours)
        seen = []

        def predict(x, step, seen=seen):
            seen.append(x)
            return gaussian_eps_at(abar[step].item(), x)

        step = samplers.heun_step(grid, x_ours, t, eps, t_prev=t_prev, predict=predict)
        k = next(calls)
        out = sched.step(eps, sched.timesteps[k], sample).prev_sample
        if t_prev >= 0:  # diffusers' second call: the corrector at the Euler-predicted state
            sigma_next = levels[i + 1].item()
            torch.testing.assert_close(sched.scale_model_input(out, sched.timesteps[k + 1]), seen[0], atol=ATOL, rtol=0)
            k = next(calls)
            out = sched.step(gaussian_eps_at(abar[t_prev].item(), seen[0]), sched.timesteps[k], out).prev_sample
            theirs = out / math.sqrt(1 + sigma_next**2)
        else:
            theirs = out  # sigma = 0: the data itself
        x_ours = step.x_prev
        torch.testing.assert_close(x_ours, theirs, atol=ATOL, rtol=0, msg=f"level {i} of {n}")
    assert next(calls, None) is None  # every diffusers call was matched


@pytest.mark.parametrize("steps", [5, 10, 25])
def test_karras_sigmas_and_rounded_steps_match_diffusers(steps):
    """Our karras_sigmas are diffusers' (float32) levels; ``timesteps(..., "karras")`` is their
    fractional training steps rounded (known difference: diffusers feeds the network fractional t)."""
    sched = HeunDiscreteScheduler(**COMMON, use_karras_sigmas=True)
    sched.set_timesteps(steps)
    schedule = same_tables(sched)
    torch.testing.assert_close(samplers.karras_sigmas(schedule, steps), sched.sigmas[0::2].double(), rtol=1e-5, atol=0)
    fractional = torch.cat([sched.timesteps[:1], sched.timesteps[1::2]])  # (steps,), undo the interleaving
    assert not torch.equal(fractional, fractional.round())
    assert samplers.timesteps(schedule, steps, "karras").tolist() == fractional.round().long().unique().flip(0).tolist()


def test_euler_karras_levels_equal_heun_karras_levels():
    """EulerDiscreteScheduler(use_karras_sigmas=True) walks the same levels, one evaluation each."""
    euler = EulerDiscreteScheduler(**COMMON, use_karras_sigmas=True)
    heun = HeunDiscreteScheduler(**COMMON, use_karras_sigmas=True)
    euler.set_timesteps(12)
    heun.set_timesteps(12)
    torch.testing.assert_close(euler.sigmas[:-1], heun.sigmas[0::2], atol=0, rtol=1e-6)


# ----------------------------------------------------------------------------- DPM-Solver++ 3M (lesson 13)


@pytest.mark.parametrize("spacing, steps", [("linspace", 20), ("linspace", 10), ("linspace", 5), ("trailing", 12)])
def test_dpm_solver_3m_step_parity(model, spacing, steps):
    sched = DPMSolverMultistepScheduler(
        **COMMON, algorithm_type="dpmsolver++", solver_order=3, timestep_spacing=spacing
    )
    sched.set_timesteps(steps)
    schedule = same_tables(sched)
    ts = [int(v) for v in sched.timesteps]
    assert ts == samplers.dpm_solver_timesteps(schedule, steps, spacing).tolist()
    orders = samplers.multistep_orders(len(ts), 3)
    x_ours, seen = x_T(), []
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps = model(x_ours, t)
        keep = orders[i] - 1
        history = tuple(seen[len(seen) - keep:]) if keep else ()
        step = samplers.dpm_solver_3m_step(schedule, x_ours, t, eps, t_prev=t_prev, history=history)
        x_theirs = sched.step(eps, sched.timesteps[i], x_ours).prev_sample
        seen.append(samplers.PastEstimate(t, step.x0_hat))
        x_ours = step.x_prev
        torch.testing.assert_close(x_ours, x_theirs, atol=ATOL, rtol=0, msg=f"step {i}, t={t}, order {orders[i]}")


@pytest.mark.parametrize("steps", [20, 8])
def test_dpm_solver_3m_sample_matches_diffusers_loop(model, steps):
    sched = DPMSolverMultistepScheduler(**COMMON, algorithm_type="dpmsolver++", solver_order=3)
    sched.set_timesteps(steps)
    schedule = same_tables(sched)
    ours = samplers.dpm_solver_3m_sample(lambda x, t: model(x, int(t[0])), schedule, x_T(), steps=steps)
    x = x_T()
    for t in sched.timesteps:
        x = sched.step(model(x, int(t)), t, x).prev_sample
    torch.testing.assert_close(ours, x, atol=ATOL, rtol=0)

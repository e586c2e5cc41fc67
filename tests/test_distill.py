"""Distillation: the EDM-preconditioned student, the teacher's paths, the targets and the loop."""
from __future__ import annotations

import math

import pytest
import torch

import ddpm_course as dc
from ddpm_course import distill, samplers
from ddpm_course.checkpoint import load_checkpoint, save_checkpoint
from ddpm_course.models import EDMPrecond, EDMUNet, EDMUNetConfig, MLPConfig, MLPDenoiser, UNet, UNetConfig
from ddpm_course.models.edm import edm_coefficients
from ddpm_course.oracle import ring_mixture

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py
SCHEDULE = dc.linear_schedule()
TINY = dict(base_channels=8, channel_mults=(1, 2), attention_levels=(), groups=4, dropout=0.0)


def point_mass_eps(c):
    """Exact eps when the data is the single point c: the ODE is solved exactly by every sampler."""

    def model(x, t, y=None):
        a = SCHEDULE.alpha_bars[t.cpu()].reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return (x - a.sqrt() * c) / (1 - a).sqrt()

    return model


def test_edm_coefficients_limits_and_the_unit_variance_target():
    sig = torch.tensor([1e-4, 1.0, 1e4], dtype=torch.float64)
    c_skip, c_out = edm_coefficients(sig, 0.5)
    assert c_skip[0] > 0.9999 and c_skip[-1] < 1e-8  # the skip carries everything at low noise, nothing at high
    torch.testing.assert_close(c_out[[0, 2]], torch.tensor([1e-4, 0.5], dtype=torch.float64), rtol=1e-6, atol=0)
    # Monte Carlo: x0 with std sd, z = x0 + sigma n; F's target (c_skip z - x0) / c_out has unit variance.
    g = torch.Generator().manual_seed(0)
    x0, n = 0.5 * torch.randn(200_000, generator=g, dtype=torch.float64), torch.randn(200_000, generator=g,
                                                                                      dtype=torch.float64)
    for s, cs, co in zip(sig, c_skip, c_out):
        target = (cs * (x0 + s * n) - x0) / co
        assert abs(target.var().item() - 1) < 0.02, (s, target.var())


def test_edm_unet_returns_the_eps_whose_x0_hat_is_its_denoiser():
    model = EDMUNet(EDMUNetConfig(**TINY)).set_schedule(SCHEDULE.alpha_bars.float()).eval()
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 10, 500, 999])
    eps, d = model(x, t), model.denoise(x, t)
    abar = SCHEDULE.alpha_bars[t].float()[:, None, None, None]
    torch.testing.assert_close((x - (1 - abar).sqrt() * eps) / abar.sqrt(), d, atol=1e-4, rtol=0)


def test_a_student_started_from_the_teacher_matches_it_at_low_noise():
    """At sigma -> 0, c_skip -> 1 and c_out -> sigma, so D -> the teacher's z - sigma eps."""
    torch.manual_seed(0)
    teacher = UNet(UNetConfig(**TINY)).eval()
    student = distill.student_from_teacher(teacher, SCHEDULE).eval()
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.zeros(3, dtype=torch.long)
    abar = SCHEDULE.alpha_bars[0].item()
    x0_teacher = (x - math.sqrt(1 - abar) * teacher(x, t)) / math.sqrt(abar)
    assert (student.denoise(x, t) - x0_teacher).abs().max() < 2e-3
    with pytest.raises(TypeError, match="EDMUNetConfig"):
        EDMUNet(UNetConfig())


def test_edm_unet_round_trips_through_a_checkpoint(tmp_path):
    model = EDMUNet(EDMUNetConfig(**TINY, sigma_data=0.7)).set_schedule(SCHEDULE.alpha_bars.float()).eval()
    save_checkpoint(tmp_path / "s", model, SCHEDULE, sample_shape=(1, 16, 16), record={"x": 1})
    loaded = load_checkpoint(tmp_path / "s")
    assert type(loaded.model) is EDMUNet and loaded.model.sigma_data == 0.7
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 900])
    torch.testing.assert_close(loaded.model(x, t), model(x, t), atol=0, rtol=0)
    torch.testing.assert_close(loaded.model.alpha_bars, SCHEDULE.alpha_bars.float())


def test_student_times_are_the_nested_trailing_grids():
    times = distill.student_times(SCHEDULE).tolist()
    assert times == [999, 899, 799, 749, 699, 599, 499, 399, 299, 249, 199, 99]
    for k in (1, 2, 4, 10):
        assert set(samplers.timesteps(SCHEDULE, k, "trailing").tolist()) <= set(times)


def test_teacher_paths_start_at_x_T_and_end_where_the_solver_lands():
    mix = ring_mixture(8, 1.0, 0.1)
    teacher = mix.as_model(SCHEDULE)
    paths = distill.teacher_paths(teacher, SCHEDULE, 40, (2,), steps=10, batch_size=16,
                                  generator=torch.Generator().manual_seed(3))
    assert paths.states.shape == (12, 40, 2) and paths.ends.shape == (40, 2)
    x_T = torch.cat([torch.randn((b, 2), generator=g) for g in [torch.Generator().manual_seed(3)] for b in (16, 16, 8)])
    torch.testing.assert_close(paths.states[0], x_T)
    grid = distill._teacher_grid(SCHEDULE, paths.times, 10)
    assert paths.teacher_steps == len(grid) and set(paths.times.tolist()) <= set(grid.tolist())
    ends = samplers.sample(teacher, SCHEDULE, x_T, samplers.dpm_solver_step, grid, memory=1, lower_order_final=1)
    torch.testing.assert_close(paths.ends, ends)
    # The state stored at t = 499 is on the path: solved on finely from there, it lands where a
    # fine solve from x_T lands (and not where another path does).
    j = paths.times.tolist().index(499)
    fine = samplers.dpm_solver_sample(teacher, SCHEDULE, x_T.double(), steps=200, spacing="logsnr")
    rest = samplers.sample(teacher, SCHEDULE, paths.states[j].double(), samplers.dpm_solver_step,
                           torch.arange(499, -1, -5), memory=1, lower_order_final=1)  # from t = 499 on
    gap = (rest - fine).norm(dim=1).mean().item()
    assert gap < 0.02 and gap < (fine - fine.roll(1, 0)).norm(dim=1).mean().item() / 20, gap


def test_endpoint_loss_is_the_c_out_weighted_squared_error():
    x, target = torch.randn(6, 2), torch.randn(6, 2)
    t = torch.tensor([0, 100, 300, 600, 900, 999])
    d = torch.randn(6, 2)
    loss = distill.endpoint_loss(lambda x_, t_: d, SCHEDULE, x, t, target, sigma_data=0.5)
    abar = SCHEDULE.alpha_bars[t].double()
    c_out = edm_coefficients(((1 - abar) / abar).sqrt(), 0.5)[1][:, None]
    assert math.isclose(loss.item(), (((d.double() - target) / c_out) ** 2).mean().item(), rel_tol=1e-5)
    assert distill.endpoint_loss(lambda x_, t_: target, SCHEDULE, x, t, target).item() == 0.0


def test_consistency_target_is_exact_for_an_exact_teacher_and_student():
    """Point-mass data: the teacher's DDIM step stays on the path, and the exact student returns c."""
    c = torch.tensor([0.3, -0.7])
    teacher = point_mass_eps(c)
    x = 0.2 * torch.randn(5, 2) + c * SCHEDULE.alpha_bars[600].sqrt() + torch.randn(5, 2)
    exact = lambda x_, t_: c.expand_as(x_)  # noqa: E731
    torch.testing.assert_close(distill.consistency_target(teacher, exact, SCHEDULE, x, 600, 550), c.expand(5, 2))
    # To the data (t_next = -1) the teacher's step itself is the target: its x0_hat.
    torch.testing.assert_close(distill.consistency_target(teacher, None, SCHEDULE, x, 600, -1), c.expand(5, 2),
                               atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="t_next"):
        distill.consistency_target(teacher, exact, SCHEDULE, x, 600, 600)


def test_consistency_step_renoises_with_fresh_noise():
    x, e, z = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    step = distill.consistency_step(SCHEDULE, x, 700, e, z, t_prev=300)
    x0 = samplers.ddim_step(SCHEDULE, x, 700, e, t_prev=300).x0_hat
    a = SCHEDULE.alpha_bars[300].item()
    torch.testing.assert_close(step.x_prev, math.sqrt(a) * x0 + math.sqrt(1 - a) * z)
    assert torch.equal(distill.consistency_step(SCHEDULE, x, 700, e, t_prev=-1).x_prev, x0)
    with pytest.raises(ValueError, match="needs noise"):
        distill.consistency_step(SCHEDULE, x, 700, e, t_prev=300)


@pytest.mark.parametrize("steps", [1, 2, 4, 10])
def test_student_sample_with_an_exact_student_lands_on_the_data(steps):
    c = torch.tensor([0.3, -0.7])
    out = distill.student_sample(point_mass_eps(c), SCHEDULE, (16, 2), steps=steps,
                                 generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, c.expand(16, 2), atol=2e-3, rtol=0)  # float32 through 1 / sqrt(abar_999)


def test_distill_fits_the_path_ends_and_is_reproducible():
    """A 2-D MLP student of the exact ring oracle: 150 steps halve the endpoint loss; same seed, same weights."""
    teacher = ring_mixture(8, 1.0, 0.1).as_model(SCHEDULE)
    paths = distill.teacher_paths(teacher, SCHEDULE, 256, (2,), steps=10, generator=torch.Generator().manual_seed(4))

    def run():
        torch.manual_seed(0)
        student = EDMPrecond(MLPDenoiser(MLPConfig(hidden=64, depth=2, time_dim=32)), SCHEDULE.alpha_bars)
        return distill.distill(student, SCHEDULE, paths, steps=150, batch_size=128, lr=3e-3, warmup_steps=10,
                               generator=torch.Generator().manual_seed(5))

    a, b = run(), run()
    first, last = sum(a.losses[:10]) / 10, sum(a.losses[-10:]) / 10
    assert last < first / 2, (first, last)
    for p, q in zip(a.student.parameters(), b.student.parameters()):
        assert torch.equal(p, q)
    assert not a.student.training


def test_bad_inputs():
    with pytest.raises(ValueError, match="times must start"):
        distill.teacher_paths(point_mass_eps(torch.zeros(2)), SCHEDULE, 2, (2,), times=torch.tensor([500, 100]))
    with pytest.raises(ValueError, match="sigma_data"):
        EDMUNetConfig(sigma_data=0.0)
    with pytest.raises(ValueError, match="steps"):
        distill.student_times(SCHEDULE, (0,))
    with pytest.raises(ValueError, match="must agree"):
        distill.Paths(torch.tensor([999]), torch.zeros(2, 3, 2), torch.zeros(3, 2), 5)


def test_the_shipped_student_loads_and_follows_its_teacher():
    """digits-fast: an EDMUNet whose record names its command, teacher and time; in one evaluation it
    lands much nearer the teacher's own ODE end (DPM-Solver++ 2M, 20 log-SNR steps) than the teacher's
    one-step guess (DDIM from t = 999, the average image): measured 0.052 against 1.87 (RMS)."""
    from ddpm_course.shipped import PRETRAINED

    student, teacher = dc.pretrained("digits-fast"), dc.pretrained("digits")
    assert type(student.model).__name__ == "EDMUNet" and student.sample_shape == (1, 16, 16)
    record = student.record
    assert record["command"].startswith(PRETRAINED["digits-fast"].split(": ", 1)[1])
    assert record["teacher"].startswith("digits") and record["total_seconds"] > 0
    torch.testing.assert_close(student.model.alpha_bars, teacher.schedule.alpha_bars.float())
    x_T = torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    end = samplers.dpm_solver_sample(teacher.model, teacher.schedule, x_T, steps=20, spacing="logsnr")
    one = distill.student_sample(student.model, student.schedule, x_T, steps=1)
    guess = samplers.ddim_sample(teacher.model, teacher.schedule, x_T, steps=1, spacing="trailing")
    err_student, err_teacher = ((one - end).square().mean().sqrt().item(),
                                (guess - end).square().mean().sqrt().item())
    assert err_student < 0.1 * err_teacher, (err_student, err_teacher)  # at least ten times nearer


def test_endpoint_regression_states_its_one_piece_of_state():
    """The objective's only state is the Paths bound by examples(); loss before that says so."""
    objective = distill.EndpointRegression(SCHEDULE)
    assert objective.paths is None
    student = distill.student_from_teacher(UNet(UNetConfig(**TINY)), SCHEDULE)
    with pytest.raises(RuntimeError, match=r"call examples\(paths, model\) first"):
        objective.loss(student, (torch.arange(2),), torch.Generator())
    paths = distill.Paths(torch.tensor([999, 499]), torch.zeros(2, 3, 1, 8, 8), torch.zeros(3, 1, 8, 8), 4)
    assert len(objective.examples(paths, student)) == 6 and objective.paths is paths

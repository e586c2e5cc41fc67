"""The explorers: moving a slider gives the pure function's value, computed here independently."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import ddpm_course as dc
from ddpm_course import widgets as W


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _linear_alpha_bars(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def _cosine_alpha_bars(T: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    betas = [min(1 - f[t + 1] / f[t], max_beta) for t in range(T)]
    return np.cumprod(1.0 - np.array(betas))


@pytest.fixture
def image_and_noise():
    x0 = dc.photo("flower", size=16).double()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return x0, noise


# ------------------------------------------------------------------------------- fog explorer


@pytest.mark.parametrize("t", [0, 99, 500, 999])
def test_fog_slider_gives_the_closed_form_frame(image_and_noise, t):
    x0, noise = image_and_noise
    explorer = W.fog_explorer(x0, dc.linear_schedule(), noise=noise)
    explorer.children[0].value = t
    frame = explorer.result

    abar = _linear_alpha_bars(1000, 1e-4, 0.02)[t]
    expected = math.sqrt(abar) * x0.numpy() + math.sqrt(1 - abar) * noise.numpy()
    np.testing.assert_allclose(frame.x_t.numpy(), expected, rtol=0, atol=1e-12)
    assert frame.signal == pytest.approx(math.sqrt(abar), rel=1e-12)
    assert frame.noise_std == pytest.approx(math.sqrt(1 - abar), rel=1e-12)
    assert frame.snr == pytest.approx(abar / (1 - abar), rel=1e-9)
    corr = np.corrcoef(x0.numpy().ravel(), expected.ravel())[0, 1]
    assert frame.correlation == pytest.approx(corr, abs=1e-12)


def test_fog_slider_matches_the_pure_function_and_keeps_its_noise(image_and_noise):
    x0, noise = image_and_noise
    schedule = dc.cosine_schedule(200)
    explorer = W.fog_explorer(x0, schedule, noise=noise)
    for t in (150, 3, 199):
        explorer.children[0].value = t
        direct = W.fog_frame(x0, schedule, t, noise)
        assert torch.equal(explorer.result.x_t, direct.x_t)
        assert explorer.result[1:] == direct[1:]
    assert explorer.children[0].max == schedule.T - 1


def test_fog_explorer_redraws_its_picture(image_and_noise):
    x0, noise = image_and_noise
    explorer = W.fog_explorer(x0, dc.linear_schedule(), noise=noise)
    picture = explorer.children[-1]
    first = bytes(picture.value)
    assert first.startswith(b"\x89PNG")
    explorer.children[0].value = 700
    assert bytes(picture.value).startswith(b"\x89PNG") and bytes(picture.value) != first


def test_fog_explorer_draws_noise_from_its_generator():
    x0 = dc.photo("china", size=8)
    a = W.fog_explorer(x0, dc.linear_schedule(), generator=torch.Generator().manual_seed(3))
    b = W.fog_explorer(x0, dc.linear_schedule(), generator=torch.Generator().manual_seed(3))
    a.children[0].value = b.children[0].value = 400
    assert torch.equal(a.result.x_t, b.result.x_t)
    assert not torch.equal(a.result.x_t, x0)


def test_fog_correlation_falls_with_t(image_and_noise):
    x0, noise = image_and_noise
    schedule = dc.linear_schedule()
    corrs = [W.fog_frame(x0, schedule, t, noise).correlation for t in (0, 99, 499, 999)]
    assert corrs == sorted(corrs, reverse=True)
    assert corrs[0] > 0.99 and abs(corrs[-1]) < 0.1


@pytest.mark.parametrize("t", [-1, 1000])
def test_fog_frame_rejects_a_step_out_of_range(image_and_noise, t):
    x0, noise = image_and_noise
    with pytest.raises(ValueError, match=r"t must be an integer in \[0, 999\] \(steps are 0-based\)"):
        W.fog_frame(x0, dc.linear_schedule(), t, noise)


def test_fog_rejects_bad_input(image_and_noise):
    x0, noise = image_and_noise
    schedule = dc.linear_schedule()
    with pytest.raises(ValueError, match="x0 must be one image of shape"):
        W.fog_explorer(x0[None], schedule)  # a batch, not one image
    with pytest.raises(TypeError, match="x0 must be a tensor"):
        W.fog_explorer(x0.numpy(), schedule)
    with pytest.raises(ValueError, match=r"noise must have the shape of x0 \(3, 16, 16\)"):
        W.fog_explorer(x0, schedule, noise=noise[:, :8])
    with pytest.raises(TypeError, match="noise must be a tensor with the shape of x0"):
        W.fog_explorer(x0, schedule, noise=noise.numpy())
    with pytest.raises(TypeError, match="t must be an int"):
        W.fog_frame(x0, schedule, 1.5, noise)
    with pytest.raises(TypeError, match="schedule must be a Schedule"):
        W.fog_frame(x0, "linear", 0, noise)


# -------------------------------------------------------------------------- schedule explorer


def _expected_stats(alpha_bars: np.ndarray) -> tuple[float, float, int, float]:
    abar_T = float(alpha_bars[-1])
    half = next((t for t, a in enumerate(alpha_bars) if a < 0.5), len(alpha_bars))
    # KL(N(m, v) || N(0, 1)) from torch.distributions, maximised over x_0 on a grid in [-1, 1]
    x0 = torch.linspace(-1, 1, 201, dtype=torch.float64)
    q = torch.distributions.Normal(math.sqrt(abar_T) * x0, math.sqrt(1 - abar_T))
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).max().item()
    return abar_T, abar_T / (1 - abar_T), half, kl


def test_schedule_sliders_give_the_linear_schedule_stats():
    explorer = W.schedule_explorer()
    kind, T, beta_start, beta_end, s = explorer.children[:5]
    T.value = 100
    stats = explorer.result
    abar_T, snr_T, half, kl = _expected_stats(_linear_alpha_bars(100, 1e-4, 0.02))
    assert stats.schedule.T == 100
    assert stats.alpha_bar_T == pytest.approx(abar_T, rel=1e-12)
    assert stats.snr_T == pytest.approx(snr_T, rel=1e-9)
    assert stats.half_step == half
    assert stats.prior_kl == pytest.approx(kl, rel=1e-9)

    beta_end.value = 0.2
    stats = explorer.result
    abar_T, snr_T, half, kl = _expected_stats(_linear_alpha_bars(100, 1e-4, 0.2))
    assert stats.alpha_bar_T == pytest.approx(abar_T, rel=1e-9)
    assert stats.half_step == half
    assert stats.prior_kl == pytest.approx(kl, rel=1e-6)


def test_schedule_sliders_give_the_cosine_schedule_stats():
    explorer = W.schedule_explorer()
    explorer.children[0].value = "cosine"
    explorer.children[1].value = 500
    stats = explorer.result
    abar_T, snr_T, half, kl = _expected_stats(_cosine_alpha_bars(500))
    assert stats.schedule.name == "cosine"
    assert stats.alpha_bar_T == pytest.approx(abar_T, rel=1e-9)
    assert stats.snr_T == pytest.approx(snr_T, rel=1e-9)
    assert stats.half_step == half
    # the pure function is what the slider stores
    beta_start, beta_end, s = (explorer.children[i].value for i in (2, 3, 4))
    direct = W.schedule_stats("cosine", 500, beta_start, beta_end, s)
    assert stats[1:] == direct[1:]
    assert torch.equal(stats.schedule.alpha_bars, direct.schedule.alpha_bars)


def test_schedule_explorer_shows_invalid_settings_instead_of_failing():
    explorer = W.schedule_explorer()
    explorer.children[2].value = 0.1  # beta_start above beta_end = 0.02
    assert explorer.result is None
    message, picture = explorer.children[-2:]
    assert "beta_start must be &lt;= beta_end" in message.value and bytes(picture.value) == b""
    assert picture.layout.display == "none"  # no broken-image icon under the message
    with pytest.raises(ValueError, match="beta_start must be <= beta_end"):
        W.schedule_stats("linear", 1000, 0.1, 0.02)
    explorer.children[2].value = 1e-4
    assert explorer.result is not None
    assert "invalid" not in message.value and f"alpha_bar_T = {explorer.result.alpha_bar_T:.3e}" in message.value
    assert bytes(picture.value).startswith(b"\x89PNG") and picture.layout.display is None


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk (bytes 16-24), read independently of matplotlib."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _explorers():
    x0 = dc.photo("flower", size=16)
    yield "fog", W.fog_explorer(x0, dc.linear_schedule(1000), generator=torch.Generator().manual_seed(0)), (5.0, 2.8)
    yield "schedule", W.schedule_explorer(), None


@pytest.mark.parametrize("which", ["fog", "schedule"])
def test_each_explorer_renders_sharp_at_its_natural_size(which):
    name, explorer, size_in = next(e for e in _explorers() if e[0] == which)
    picture = explorer.children[-1]
    width, height = _png_size(bytes(picture.value))
    css_w, css_h = (int(v.removesuffix("px")) for v in (picture.layout.width, picture.layout.height))
    assert picture.layout.align_self == "flex-start"  # not stretched to the cell's width
    assert abs(width / css_w - W.DPI / 96) < 0.02 and abs(height / css_h - W.DPI / 96) < 0.02  # 1.5 px per CSS px
    assert css_w >= 400, (name, css_w)  # a readable size, not a thumbnail
    if size_in is not None:  # the figure's inches at DPI
        assert (width, height) == (round(size_in[0] * W.DPI), round(size_in[1] * W.DPI))


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="kind must be one of"):
        W.schedule_stats("sigmoid", 1000)
    with pytest.raises(ValueError, match="kind must be one of"):
        W.schedule_explorer(kind="quadratic")
    with pytest.raises(ValueError, match="T must be an integer in"):
        W.schedule_explorer(T=0)
    with pytest.raises(ValueError, match="T must be an integer"):
        W.schedule_stats("cosine", 0)


def test_plot_schedules_checks_its_labels():
    fig = dc.viz.plot_schedules([dc.linear_schedule(), dc.cosine_schedule(100)])
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="labels must have one entry per schedule"):
        dc.viz.plot_schedules([dc.linear_schedule()], labels=["a", "b"])


def test_viz_functions_return_their_figure_and_single_panels_draw_on_a_given_ax():
    import matplotlib.pyplot as plt

    images = torch.zeros(4, 1, 8, 8)
    points = torch.zeros(10, 2)
    fig, axes = plt.subplots(1, 2)
    assert dc.viz.show_images(images, ax=axes[0]) is fig
    assert dc.viz.plot_points(points, ax=axes[1]) is fig
    plt.close(fig)
    for made in (
        dc.viz.show_images(images),
        dc.viz.plot_points(points),
        dc.viz.plot_schedules([dc.linear_schedule(10)]),
        dc.viz.show_strip(images, ["a", "b", "c", "d"]),
        dc.viz.plot_chain([points, points], [points, points], [9, 0]),
    ):
        assert isinstance(made, plt.Figure)
        plt.close(made)
    assert dc.viz.image_grid(images, nrow=2).shape == (8 + 8 + 3, 8 + 8 + 3, 3)

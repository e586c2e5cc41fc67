"""Interactive explorers for the notebooks: each one a pure function plus an ipywidgets wrapper.

The pure function does the maths and returns a NamedTuple; the builder wraps it in
``ipywidgets.interactive``, so moving a slider calls the function, draws a figure and stores
the function's value in ``explorer.result``. The figure goes into an ``ipywidgets.Image``
appended to the explorer's children (after the controls and the output area) instead of
being displayed, so a notebook cell that drives a slider keeps its own output clean. The
figure is rendered at ``DPI`` = 144 dots per inch and shown at its natural size in CSS
pixels (``width`` = figure inches x 96), not stretched to the cell's width: sharp on
high-density screens, and the same size as a figure in a cell. While an explorer's settings
are invalid its image is hidden, so only the message shows. Tests
and notebooks drive the sliders through ``explorer.children[i].value = ...`` and compare
``.result`` with the pure function.

Notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"; cosine schedule from
Nichol & Dhariwal 2021). Steps are 0-based as in ``schedules.py``: the slider's code step t
is the math's step t+1, and abar below means ``alpha_bars[t]``, the math's alpha-bar_{t+1}.

| math                                   | code                    | meaning                                   |
|----------------------------------------|-------------------------|-------------------------------------------|
| x_0                                    | ``x0``                  | a clean image, (C, H, W) in [-1, 1]       |
| eps                                    | ``noise``               | standard Gaussian noise, shape of x_0     |
| sqrt(abar) x_0 + sqrt(1 - abar) eps    | ``FogFrame.x_t``        | the image after code step t               |
| sqrt(abar)                             | ``FogFrame.signal``     | fraction of the image's amplitude kept    |
| sqrt(1 - abar)                         | ``FogFrame.noise_std``  | standard deviation of the noise added     |
| abar / (1 - abar)                      | ``FogFrame.snr``        | signal-to-noise ratio                     |
| KL(q(x_T | x_0) || N(0, 1))            | ``ScheduleStats.prior_kl`` | how far x_T is from pure noise, per pixel |

Explorers: :func:`fog_explorer` (lesson 01, a slider over t) and :func:`schedule_explorer`
(lesson 03, the shape of a linear or cosine schedule).
"""
from __future__ import annotations

import html
import io
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ._checks import int_in_range, one_of, same_shape
from .forward import noise_like, q_sample
from .schedules import Schedule, check_step, cosine_schedule, linear_schedule

__all__ = [
    "DPI", "FogFrame", "fog_frame", "fog_explorer", "picture_widget", "show_figure",
    "SCHEDULE_KINDS", "ScheduleStats", "make_schedule", "schedule_stats", "schedule_explorer",
]

SCHEDULE_KINDS = ("linear", "cosine")
DPI = 144  # dots per inch of the rendered figure; shown at 96 CSS pixels per inch (1.5 pixels per CSS pixel)
CSS_DPI = 96


def interactive(view: Callable[..., Any], **controls: widgets.Widget) -> widgets.interactive:
    """``ipywidgets.interactive(view, **controls)`` that has already run ``view`` once.

    ipywidgets 8 calls the function when the explorer is made, 7 only when it is displayed;
    running it here makes ``explorer.result`` (what the tests read) the same under both.
    """
    explorer = widgets.interactive(view, **controls)
    if explorer.result is None:  # ipywidgets 7
        explorer.update()
    return explorer


def _check_image(x0: Tensor, name: str = "x0") -> None:
    if not isinstance(x0, Tensor):
        raise TypeError(f"{name} must be a tensor of shape (C, H, W); got {type(x0).__name__}")
    if x0.ndim != 3:
        raise ValueError(f"{name} must be one image of shape (C, H, W); got shape {tuple(x0.shape)}")
    if not x0.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x0.dtype}")


def _to_png(fig: plt.Figure, dpi: int = DPI) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def picture_widget() -> widgets.Image:
    """An empty ``ipywidgets.Image`` that keeps its own size in the explorer's column
    (``align_self="flex-start"``: not stretched to the cell's width)."""
    return widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))


def show_figure(picture: widgets.Image, fig: plt.Figure | None) -> None:
    """Render ``fig`` into ``picture`` at :data:`DPI`, shown at its natural size; None hides the picture."""
    if fig is None:
        picture.value = b""
        picture.layout.display = "none"
        return
    width_in, height_in = fig.get_size_inches()
    picture.value = _to_png(fig)
    picture.layout.width = f"{round(width_in * CSS_DPI)}px"
    picture.layout.height = f"{round(height_in * CSS_DPI)}px"
    picture.layout.display = None


# --------------------------------------------------------------------------- lesson 01: the fog


class FogFrame(NamedTuple):
    """One frame of the forward process: the noisy image and how much of x_0 it still holds."""

    x_t: Tensor  # (C, H, W)
    signal: float  # sqrt(alpha_bar)
    noise_std: float  # sqrt(1 - alpha_bar)
    snr: float  # alpha_bar / (1 - alpha_bar)
    correlation: float  # Pearson correlation of x_t with x_0 over all pixels


def fog_frame(x0: Tensor, schedule: Schedule, t: int, noise: Tensor) -> FogFrame:
    """The image after code step ``t`` (math step t+1), with a fixed noise draw.

    x0, noise: (C, H, W); t: an int in [0, T-1]. The correlation is computed in float64.
    """
    _check_image(x0)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule; got {type(schedule).__name__}")
    t = check_step(schedule, t)
    same_shape("noise", noise, x0, "x0")
    x_t, _ = q_sample(schedule, x0[None], t, noise=noise[None])
    x_t = x_t[0]  # (C, H, W)
    a, b = x0.double().flatten(), x_t.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    correlation = (a @ b / (a.norm() * b.norm())).item()
    alpha_bar = schedule.alpha_bars[t].item()
    return FogFrame(
        x_t=x_t,
        signal=math.sqrt(alpha_bar),
        noise_std=math.sqrt(1.0 - alpha_bar),
        snr=schedule.snr[t].item(),
        correlation=correlation,
    )


def fog_explorer(
    x0: Tensor,
    schedule: Schedule,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> widgets.interactive:
    """A slider over the 0-based step t showing x_t next to x_0 (one noise draw for every t).

    x0: (C, H, W) in [-1, 1]. children: [t slider, output, picture]; ``.result`` is a
    :class:`FogFrame`.
    """
    _check_image(x0)
    if noise is None:
        noise = noise_like(x0, generator)
    fog_frame(x0, schedule, 0, noise)  # fail here, not inside the widget, on bad input
    from .viz import show_images

    picture = picture_widget()

    def view(t: int) -> FogFrame:
        frame = fog_frame(x0, schedule, t, noise)
        fig, axes = plt.subplots(1, 2, figsize=(5.0, 2.8))
        show_images(x0, nrow=1, ax=axes[0], title="x_0")
        show_images(frame.x_t, nrow=1, ax=axes[1], title=f"code t={t} (math step {t + 1})")
        fig.suptitle(
            f"signal kept {frame.signal:.3f} | noise std {frame.noise_std:.3f} | "
            f"corr(x_t, x_0) {frame.correlation:.3f}",
            fontsize=10,
        )
        fig.tight_layout()
        show_figure(picture, fig)
        return frame

    slider = widgets.IntSlider(value=0, min=0, max=schedule.T - 1, step=1, description="t", continuous_update=False)
    explorer = interactive(view, t=slider)
    explorer.children = (*explorer.children, picture)
    return explorer


# --------------------------------------------------------------------- lesson 03: the schedule


class ScheduleStats(NamedTuple):
    """What a schedule does, in a few numbers."""

    schedule: Schedule
    alpha_bar_T: float  # signal variance left at the last step
    snr_T: float  # terminal signal-to-noise ratio
    half_step: int  # first 0-based t with alpha_bar < 0.5 (T if never)
    prior_kl: float  # worst-case KL(q(x_T | x_0) || N(0, 1)) per pixel, at |x_0| = 1


def make_schedule(kind: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02, s: float = 0.008) -> Schedule:
    """``linear_schedule(T, beta_start, beta_end)`` or ``cosine_schedule(T, s)`` by name."""
    one_of("kind", kind, SCHEDULE_KINDS)
    if kind == "linear":
        return linear_schedule(T, beta_start, beta_end)
    return cosine_schedule(T, s)


def schedule_stats(
    kind: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02, s: float = 0.008
) -> ScheduleStats:
    """Build a schedule and summarise it (beta_start/beta_end apply to "linear", s to "cosine").

    For a pixel x_0 and the last step, q(x_T | x_0) = N(sqrt(abar) x_0, 1 - abar), whose KL to
    N(0, 1) is (abar x_0^2 - abar - log(1 - abar)) / 2; over x_0 in [-1, 1] it peaks at
    |x_0| = 1, where it is -log(1 - abar) / 2.
    """
    schedule = make_schedule(kind, T, beta_start, beta_end, s)
    alpha_bar_T = schedule.alpha_bars[-1].item()
    below = (schedule.alpha_bars < 0.5).nonzero()
    return ScheduleStats(
        schedule=schedule,
        alpha_bar_T=alpha_bar_T,
        snr_T=schedule.snr[-1].item(),
        half_step=int(below[0].item()) if below.numel() else schedule.T,
        prior_kl=-0.5 * math.log1p(-alpha_bar_T),
    )


def _log_slider(value: float, low: float, high: float, description: str) -> widgets.FloatLogSlider:
    """A base-10 log slider from 10**low to 10**high in steps of 0.1 in the exponent."""
    return widgets.FloatLogSlider(
        value=value, base=10, min=low, max=high, step=0.1, description=description, continuous_update=False
    )


def schedule_explorer(kind: str = "linear", T: int = 1000) -> widgets.interactive:
    """Sliders over a schedule's settings, plotting alpha-bar and log SNR against t/T.

    children: [kind, T, beta_start, beta_end, s, output, message, picture]; ``.result`` is a
    :class:`ScheduleStats`, or None while the settings are invalid (beta_start > beta_end,
    say). ``message`` shows the numbers, or why the settings are invalid.
    """
    one_of("kind", kind, SCHEDULE_KINDS)
    int_in_range("T", T, 1, 4000, hint="the slider's range")
    from .viz import plot_schedules

    message = widgets.HTML()
    picture = picture_widget()

    def view(kind: str, T: int, beta_start: float, beta_end: float, s: float) -> ScheduleStats | None:
        try:
            stats = schedule_stats(kind, T, beta_start, beta_end, s)
        except ValueError as err:
            message.value = f"<b>invalid settings:</b> {html.escape(str(err))}"
            show_figure(picture, None)
            return None
        message.value = (
            f"{kind}, T={T}: alpha_bar_T = {stats.alpha_bar_T:.3e}, SNR_T = {stats.snr_T:.3e}, "
            f"alpha_bar &lt; 1/2 from t = {stats.half_step} (0-based), "
            f"worst KL(q(x_T|x_0) || N(0,1)) per pixel = {stats.prior_kl:.3e}"
        )
        fig = plot_schedules([stats.schedule])
        fig.tight_layout()
        show_figure(picture, fig)
        return stats

    explorer = interactive(
        view,
        kind=widgets.Dropdown(options=list(SCHEDULE_KINDS), value=kind, description="kind"),
        T=widgets.IntSlider(value=T, min=1, max=4000, step=1, description="T", continuous_update=False),
        beta_start=_log_slider(1e-4, -6, -0.5, "beta_start"),
        beta_end=_log_slider(0.02, -4, -0.01, "beta_end"),
        s=_log_slider(0.008, -4, 0, "s (cosine)"),
    )
    explorer.children = (*explorer.children, message, picture)
    return explorer

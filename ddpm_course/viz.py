"""Plotting helpers for the notebooks (matplotlib; grids from torchvision).

Images arrive as tensors in [-1, 1]: (C, H, W) for one image, (B, C, H, W) for a batch.

| function          | draws on                                   | returns        |
|-------------------|--------------------------------------------|----------------|
| ``image_grid``    | nothing: tiles images for ``imshow``        | (H', W', 3) tensor in [0, 1] |
| ``show_images``   | a given ``ax`` or a new figure              | the figure     |
| ``plot_points``   | a given ``ax`` or a new figure              | the figure     |
| ``plot_schedules``| two given ``axes`` or a new figure          | the figure     |
| ``show_strip``    | a new figure, one panel per image           | the figure     |
| ``plot_chain``    | a new figure, two rows of frames            | the figure     |

The single-panel functions take ``ax`` so that a notebook can place them in its own layout;
the multi-panel ones make their figure. Every plotting function returns its figure, so tests
can call them headless.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import Tensor
from torchvision.utils import make_grid

from ._checks import int_at_least
from .data import to_unit

__all__ = ["image_grid", "show_images", "show_strip", "plot_points", "plot_schedules", "plot_chain"]


def image_grid(images: Tensor, nrow: int = 8, padding: int = 1) -> Tensor:
    """Tile (B, C, H, W) images in [-1, 1] into one (H', W', C) array in [0, 1] for imshow."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a tensor (B, C, H, W) or (C, H, W); got {type(images).__name__}")
    int_at_least("nrow", nrow, 1)
    int_at_least("padding", padding, 0)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W) or (C, H, W); got {tuple(images.shape)}")
    grid = make_grid(to_unit(images.detach().float().cpu()), nrow=nrow, padding=padding, pad_value=1.0)  # (3, H', W')
    return grid.permute(1, 2, 0)  # (H', W', 3)


def show_images(
    images: Tensor, nrow: int = 8, title: str | None = None, ax: plt.Axes | None = None, size: float = 4.0
) -> plt.Figure:
    """Show a batch of images as one grid."""
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(image_grid(images, nrow=nrow).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def show_strip(images: Tensor, labels: list[str], title: str | None = None, size: float = 1.8) -> plt.Figure:
    """Show (N, C, H, W) images side by side, one caption each (a forward-process strip, say)."""
    if len(labels) != images.shape[0]:
        raise ValueError(f"labels must have one entry per image ({images.shape[0]}); got {len(labels)}")
    fig, axes = plt.subplots(1, len(labels), figsize=(size * len(labels), size * 1.15), squeeze=False)
    for ax, img, label in zip(axes[0], images, labels):
        show_images(img, nrow=1, ax=ax)
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_points(
    points: Tensor, ax: plt.Axes | None = None, title: str | None = None, lim: float = 2.0, **style
) -> plt.Figure:
    """Scatter (n, 2) points on a square canvas."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.5, 3.5))
    pts = torch.as_tensor(points).detach().cpu().float()
    ax.scatter(pts[:, 0], pts[:, 1], s=style.pop("s", 3), alpha=style.pop("alpha", 0.5), **style)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax.figure


def plot_schedules(schedules: list, labels: list[str] | None = None, axes: list[plt.Axes] | None = None) -> plt.Figure:
    """Two panels against the time fraction (t+1)/T: alpha-bar, and log10 of the SNR.

    schedules: a list of ``Schedule``; labels default to each schedule's name and T. Putting
    schedules with different T on one time axis shows how the shape, not the count, matters.
    """
    if labels is None:
        labels = [f"{s.name}, T={s.T}" for s in schedules]
    if len(labels) != len(schedules):
        raise ValueError(f"labels must have one entry per schedule ({len(schedules)}); got {len(labels)}")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for schedule, label in zip(schedules, labels):
        frac = torch.arange(1, schedule.T + 1, dtype=torch.float64) / schedule.T  # (T,)
        axes[0].plot(frac, schedule.alpha_bars.cpu(), label=label)
        axes[1].plot(frac, schedule.snr.cpu().log10(), label=label)
    axes[0].set_ylabel("alpha_bar")
    axes[0].set_title("signal variance kept", fontsize=9)
    axes[1].set_ylabel("log10 SNR")
    axes[1].set_title("SNR = alpha_bar / (1 - alpha_bar)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("time fraction t/T (math steps t = 1..T)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes[0].figure



def plot_chain(
    x_ts: list[Tensor], x0_hats: list[Tensor], ts: list[int], lim: float = 2.0, size: float = 1.9
) -> plt.Figure:
    """A sampling chain in two rows: the state x_t (top) and the model's x0_hat (bottom) at steps ``ts``.

    Each frame is (B, 2) points, drawn as a scatter, or (B, C, H, W) images, drawn as a grid.
    """
    if not len(x_ts) == len(x0_hats) == len(ts):
        raise ValueError(f"x_ts, x0_hats and ts must have the same length; got {len(x_ts)}, {len(x0_hats)}, {len(ts)}")
    fig, axes = plt.subplots(2, len(ts), figsize=(size * len(ts), size * 2.1), squeeze=False)
    for col, (x_t, x0_hat, t) in enumerate(zip(x_ts, x0_hats, ts)):
        for row, (frame, name) in enumerate(((x_t, "x_t"), (x0_hat, "x0_hat"))):
            ax = axes[row, col]
            if frame.ndim == 2:
                plot_points(frame, ax=ax, lim=lim, s=1)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                show_images(frame.clamp(-1, 1), nrow=max(1, int(frame.shape[0] ** 0.5)), ax=ax)
            ax.set_title(f"{name}, t={t}", fontsize=8)
    fig.tight_layout()
    return fig

"""Reference answers to lesson 08's exercises ("Your turn" in notebooks/08_guidance.ipynb)."""
from __future__ import annotations

import torch
from torch import Tensor


def cfg_loss(model, x0: Tensor, y: Tensor, t: Tensor, noise: Tensor, drop: Tensor, null: int, schedule) -> Tensor:
    """One classifier-free training loss: drop the label to null where ``drop``, noise x0 to x_t, regress the noise."""
    labels = torch.where(drop, torch.full_like(y, null), y)  # (B,)
    abar = schedule.alpha_bars.to(x0.dtype)[t].reshape(-1, *[1] * (x0.ndim - 1))  # (B, 1, ...), 0-based t
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    return ((model(x_t, t, labels) - noise) ** 2).mean()


def cfg_combine(eps_cond: Tensor, eps_uncond: Tensor, s: float) -> Tensor:
    """Start from the unconditional prediction and go s times the way to the conditional one."""
    return eps_uncond + s * (eps_cond - eps_uncond)


def guided_model(model, x_t: Tensor, t: Tensor, y: Tensor, s: float, null: int) -> Tensor:
    """Both passes in one forward call: the batch twice, with the labels and with the null label."""
    b = x_t.shape[0]
    eps = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))  # (2B, ...)
    return cfg_combine(eps[:b], eps[b:], s)


def scale_from_w() -> float:
    """(1 + w) eps_cond - w eps_uncond = eps_uncond + (1 + w)(eps_cond - eps_uncond): s = 1 + w = 1.3."""
    return 1 + 0.3


ANSWERS = {"08.cfg_loss": cfg_loss, "08.cfg_combine": cfg_combine, "08.guided_model": guided_model,
           "08.scale_from_w": scale_from_w()}

"""The course U-Net with the preconditioning of Karras et al. 2022 (EDM), read out as noise.

EDM writes a noisy sample in the "variance exploding" view z = x_t / alpha_t = x0 + sigma n,
sigma_t = sqrt((1 - abar_t) / abar_t), and asks the network F for the clean image through

    D(z, sigma) = c_skip(sigma) z + c_out(sigma) F(c_in(sigma) z, t),

with c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2) (sd = the data's
scale, ``sigma_data``), chosen so that F's target has unit variance at every noise level and an
error in F is never amplified. Against the course's eps-prediction, D = z - sigma eps: there
c_skip = 1 and c_out = -sigma, so at sigma_999 = 156 (the linear schedule) an error of 0.01 in
eps is an error of 1.6 in the clean image; EDM's c_out stays below sd. That is harmless for a
1000-step sampler, which never trusts one evaluation much, and fatal for a one-step student.

The VP input x_t = alpha_t z already has about unit variance, so c_in z = x_t here (the
network reads what the teacher read). The sign is flipped (D = c_skip z - c_out F) so that at
low noise F's target is the noise eps (the teacher's own output); at high noise it is -x0 / sd:
F is v-prediction (Salimans & Ho 2022) up to scale.

| math            | code           | shape / meaning                                  |
|-----------------|----------------|--------------------------------------------------|
| abar_t          | ``alpha_bars`` | (T,) buffer, the schedule the student runs on    |
| sd              | ``sigma_data`` | float, 0.5 for images in [-1, 1] (EDM's choice)  |
| D(x_t, t)       | ``denoise``    | (B, C, H, W) clean-image estimate                |
| eps             | ``forward``    | (B, C, H, W) = (x_t - sqrt(abar) D) / sqrt(1 - abar), the model contract |

``forward(x_t, t)`` returns eps, so every sampler of the course runs the model unchanged; a
sampler's x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar) then gives back D up to rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import finite_float, int_at_least
from .unet import UNet, UNetConfig

__all__ = ["EDMUNet", "EDMUNetConfig", "EDMPrecond", "edm_coefficients", "edm_denoise"]


@dataclass(frozen=True)
class EDMUNetConfig(UNetConfig):
    """A :class:`UNetConfig` plus the data scale ``sigma_data`` and the schedule length ``T``."""

    sigma_data: float = 0.5
    T: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        finite_float("sigma_data", self.sigma_data, low=0.0, low_open=True)
        int_at_least("T", self.T, 1)


def edm_coefficients(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor]:
    """(c_skip, c_out) of EDM at noise levels sigma (any shape): sd^2 / (sigma^2 + sd^2), sigma sd / sqrt(...)."""
    s2 = sigma.square() + sigma_data**2
    return sigma_data**2 / s2, sigma * sigma_data / s2.sqrt()


def edm_denoise(f: Tensor, x_t: Tensor, abar: Tensor, sigma_data: float) -> tuple[Tensor, Tensor]:
    """(D, eps) in float64 from the network output f and x_t (B, ...) at abar (B, 1, ...):
    D = c_skip z - c_out f with z = x_t / sqrt(abar), and eps = (x_t - sqrt(abar) D) / sqrt(1 - abar)."""
    abar = abar.to(torch.float64)
    sigma = ((1 - abar) / abar).sqrt()
    c_skip, c_out = edm_coefficients(sigma, sigma_data)
    x = x_t.to(torch.float64)
    d = c_skip * x / abar.sqrt() - c_out * f.to(torch.float64)
    return d, (x - abar.sqrt() * d) / (1 - abar).sqrt()


class EDMPrecond(nn.Module):
    """Any network ``net(x_t, t)`` (B, ...) wrapped in EDM's preconditioning, ``forward -> eps``.

    The unregistered twin of :class:`EDMUNet` for small experiments (an MLP on 2-D points);
    ``alpha_bars`` (T,) is the schedule the wrapper reads sigma from.
    """

    def __init__(self, net: nn.Module, alpha_bars: Tensor, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.net = net
        self.sigma_data = finite_float("sigma_data", sigma_data, low=0.0, low_open=True)
        self.register_buffer("alpha_bars", alpha_bars.detach().clone().float())

    def _abar(self, t: Tensor, like: Tensor) -> Tensor:
        return self.alpha_bars[t.long()].reshape(-1, *([1] * (like.ndim - 1)))  # (B, 1, ...)

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """D(x_t, t): the clean-data estimate, x_t's shape and dtype."""
        return edm_denoise(self.net(x_t, t), x_t, self._abar(t, x_t), self.sigma_data)[0].to(x_t.dtype)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return edm_denoise(self.net(x_t, t), x_t, self._abar(t, x_t), self.sigma_data)[1].to(x_t.dtype)


class EDMUNet(UNet):
    """The course U-Net wrapped in EDM's preconditioning; ``forward(x_t, t[, y]) -> eps`` (B, C, H, W).

    ``alpha_bars`` (T,) is a buffer: it is saved with the weights, so a loaded student carries
    the schedule it was distilled on. :meth:`set_schedule` fills it.
    """

    def __init__(self, config: EDMUNetConfig | None = None) -> None:
        config = EDMUNetConfig() if config is None else config
        if not isinstance(config, EDMUNetConfig):
            raise TypeError(f"config must be an EDMUNetConfig; got {type(config).__name__}")
        super().__init__(config)
        self.register_buffer("alpha_bars", torch.full((config.T,), 0.5))

    def set_schedule(self, alpha_bars: Tensor) -> "EDMUNet":
        """Copy a schedule's alpha_bars (T,) into the buffer; returns self."""
        if not isinstance(alpha_bars, Tensor) or alpha_bars.shape != self.alpha_bars.shape:
            got = getattr(alpha_bars, "shape", alpha_bars)
            raise ValueError(f"alpha_bars must be a ({self.config.T},) tensor; got {got}")
        with torch.no_grad():
            self.alpha_bars.copy_(alpha_bars)
        return self

    @property
    def sigma_data(self) -> float:
        return self.config.sigma_data

    def _both(self, x_t: Tensor, t: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        f = super().forward(x_t, t, y)  # (B, C, H, W); UNet.forward checks x_t and t
        return edm_denoise(f, x_t, self.alpha_bars[t.long()][:, None, None, None], self.config.sigma_data)

    def denoise(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """D(x_t, t): the clean-image estimate, (B, C, H, W) in x_t's dtype."""
        return self._both(x_t, t, y)[0].to(x_t.dtype)

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return self._both(x_t, t, y)[1].to(x_t.dtype)

"""A small DCGAN (Radford et al. 2016) for small square images: lesson 11's GAN on the 16x16 digits.

The paper's conventions, scaled down: G projects z to a 4x4 map with a transposed convolution
and doubles the side with strided transposed convolutions, each followed by BatchNorm and
ReLU, and ends in tanh (images in [-1, 1], the course's range); D halves the side with
strided convolutions and LeakyReLU(0.2), BatchNorm on every layer but the first, no pooling
and no fully connected layer, down to one logit. Weights start from N(0, 0.02) (BatchNorm
scales from N(1, 0.02)), as in the paper.

| symbol | code                          | shape                                      |
|--------|-------------------------------|--------------------------------------------|
| z      | ``z``                         | (B, latent) noise                          |
| G(z)   | ``DCGANGenerator(config)(z)`` | (B, channels, image_size, image_size) in [-1, 1] |
| l(x)   | ``DCGANDiscriminator(config)(x)`` | (B,) the logit "real"                  |
| w      | ``config.width``              | channels of the widest layer next to 4x4 is w * 2^(levels - 1) |

``levels`` = log2(image_size / 4) doublings: 2 for 16x16 (4 -> 8 -> 16). The losses and the
training loop are the lesson's (``ddpm_course.gan``).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .._checks import int_at_least, one_of

__all__ = ["DCGANConfig", "DCGANDiscriminator", "DCGANGenerator", "IMAGE_SIZES"]

IMAGE_SIZES = (8, 16, 32, 64)  # square sides a DCGAN of this module builds: 4 * 2^levels


@dataclass(frozen=True)
class DCGANConfig:
    """Image side and channels, noise dimension, and ``width``: the channels of G's last hidden
    layer and of D's first (each level towards 4x4 doubles them)."""

    image_size: int = 16
    channels: int = 1
    latent: int = 32
    width: int = 32

    def __post_init__(self) -> None:
        one_of("image_size", self.image_size, IMAGE_SIZES)
        for name in ("channels", "latent", "width"):
            int_at_least(name, getattr(self, name), 1)

    @property
    def levels(self) -> int:
        """Doublings between the 4x4 map and the image: log2(image_size / 4)."""
        return self.image_size.bit_length() - 3


def _init(module: nn.Module) -> None:
    """The DCGAN initialisation: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """G: z (B, latent) -> images (B, channels, image_size, image_size) in [-1, 1].

    z -> ConvT 4x4 to (w * 2^(L-1), 4, 4), then L strided ConvT (4x4 kernels, stride 2), each
    halving the channels and doubling the side; BatchNorm + ReLU after every layer but the
    last, tanh after it.
    """

    def __init__(self, config: DCGANConfig | None = None) -> None:
        super().__init__()
        self.config = DCGANConfig() if config is None else config
        c = self.config
        ch = c.width * 2 ** (c.levels - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(c.latent, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
        for _ in range(c.levels - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, c.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent:
            raise ValueError(f"z must have shape (B, latent) = (B, {self.config.latent}); got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])  # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """D: images (B, channels, image_size, image_size) -> logits (B,).

    L strided convolutions (4x4 kernels, stride 2) from ``width`` channels, doubling them and
    halving the side down to 4x4, LeakyReLU(0.2) after each and BatchNorm on all but the
    first; then a 4x4 convolution to one logit.
    """

    def __init__(self, config: DCGANConfig | None = None) -> None:
        super().__init__()
        self.config = DCGANConfig() if config is None else config
        c = self.config
        ch = c.width
        layers: list[nn.Module] = [nn.Conv2d(c.channels, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        for _ in range(c.levels - 1):
            layers += [nn.Conv2d(ch, 2 * ch, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ch), nn.LeakyReLU(0.2)]
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, x: Tensor) -> Tensor:
        c = self.config
        expected = (c.channels, c.image_size, c.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, C, H, W) = (B, {', '.join(map(str, expected))}); "
                             f"got {tuple(x.shape)}")
        return self.net(x).flatten()  # (B,)

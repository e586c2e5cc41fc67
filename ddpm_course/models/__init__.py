"""Every network of the course (noise predictors eps_theta(x_t, t[, y]) and the rest) and a
registry to rebuild them from JSON. It imports nothing above its floor (docs/DESIGN.md).

| name          | module            | what                                                  |
|---------------|-------------------|-------------------------------------------------------|
| TimeEmbedding | ``embeddings``    | sinusoidal timestep code + MLP                        |
| SimpleUNet    | ``simple_unet``   | the article's one-level U-Net                         |
| UNet          | ``unet``          | the course U-Net: GroupNorm, levels, attention, labels|
| MLPDenoiser   | ``mlp``           | a residual MLP for 2-D toy data                       |
| PromptUNet    | ``text``          | the U-Net reading prompts through cross-attention     |
| EDMUNet       | ``edm``           | the U-Net in EDM's preconditioning (few-step students)|
| VAE           | ``vae``           | the convolutional VAE of latent diffusion (lesson 09) |
| DigitClassifier | ``classifier``  | the digit classifier behind the metrics' features     |
| Generator, Discriminator, PointVAE | ``toy`` | lesson 11's GAN and VAE on 2-D points      |
| DCGANGenerator, DCGANDiscriminator | ``dcgan`` | lesson 11's DCGAN on 16x16 digits          |

``model_spec(model)`` gives ``(arch, config_dict)``, plain JSON, and
``build_model(arch, config_dict)`` rebuilds an identical (freshly initialised) network: that
is how a checkpoint stores a model without pickling code.
"""
from __future__ import annotations

import dataclasses
import typing

from torch import nn

from .classifier import DigitClassifier
from .dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator
from .edm import EDMPrecond, EDMUNet, EDMUNetConfig
from .embeddings import TimeEmbedding, sinusoidal_embedding
from .mlp import MLPConfig, MLPDenoiser
from .simple_unet import SimpleUNet, SimpleUNetConfig
from .text import PromptUNet, PromptUNetConfig
from .toy import Discriminator, GANConfig, Generator, PointVAE, PointVAEConfig
from .unet import UNet, UNetConfig
from .vae import VAE, VAEConfig

__all__ = [
    "sinusoidal_embedding", "TimeEmbedding",
    "SimpleUNet", "SimpleUNetConfig", "UNet", "UNetConfig", "MLPDenoiser", "MLPConfig",
    "EDMUNet", "EDMUNetConfig", "EDMPrecond", "VAE", "VAEConfig", "PromptUNet", "PromptUNetConfig",
    "DigitClassifier", "Generator", "Discriminator", "GANConfig", "PointVAE", "PointVAEConfig",
    "DCGANGenerator", "DCGANDiscriminator", "DCGANConfig",
    "ARCHITECTURES", "build_model", "model_spec", "count_parameters",
]

ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {
    "SimpleUNet": (SimpleUNet, SimpleUNetConfig),
    "UNet": (UNet, UNetConfig),
    "MLPDenoiser": (MLPDenoiser, MLPConfig),
    "VAE": (VAE, VAEConfig),  # the autoencoder of latent diffusion (lesson 09)
    "PromptUNet": (PromptUNet, PromptUNetConfig),
    "EDMUNet": (EDMUNet, EDMUNetConfig),  # lesson 13's distilled student
    "DCGANGenerator": (DCGANGenerator, DCGANConfig),  # lesson 11's GAN on digits (G only: D is not shipped)
}


def build_model(arch: str, config: dict) -> nn.Module:
    """A new model of architecture ``arch`` (a key of ``ARCHITECTURES``) from a config dict.

    ``config`` must name every field of that architecture's config dataclass, and nothing
    else; JSON lists are turned back into tuples where the field is a tuple.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}; got {arch!r}")
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of {arch} config fields; got {type(config).__name__}")
    model_cls, config_cls = ARCHITECTURES[arch]
    names = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(config) - set(names))
    missing = [n for n in names if n not in config]
    if unknown or missing:
        raise ValueError(
            f"config for {arch} must have exactly the keys {names}; "
            f"unknown: {unknown or 'none'}, missing: {missing or 'none'}"
        )
    hints = typing.get_type_hints(config_cls)
    values = {
        n: tuple(v) if isinstance(v, list) and typing.get_origin(hints[n]) is tuple else v
        for n, v in config.items()
    }
    return model_cls(config_cls(**values))


def model_spec(model: nn.Module) -> tuple[str, dict]:
    """``(arch, config_dict)`` for a model of a registered architecture; the dict is JSON-ready."""
    for arch, (model_cls, _) in ARCHITECTURES.items():
        if type(model) is model_cls:
            config = dataclasses.asdict(model.config)
            return arch, {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    wrapped = isinstance(getattr(model, "module", None), nn.Module)
    hint = " (a wrapper such as an EMA AveragedModel: pass its .module)" if wrapped else ""
    raise TypeError(
        f"model must be one of the registered architectures {sorted(ARCHITECTURES)}; "
        f"got {type(model).__name__}{hint}"
    )


def count_parameters(model: nn.Module) -> int:
    """The number of scalar parameters (trainable or not) in ``model``."""
    return sum(p.numel() for p in model.parameters())

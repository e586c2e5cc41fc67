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
is how a checkpoint stores a model without pickling code (``registry.py``). This file only
re-exports.
"""
from __future__ import annotations

from .classifier import DigitClassifier
from .dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator
from .edm import EDMPrecond, EDMUNet, EDMUNetConfig
from .embeddings import TimeEmbedding, sinusoidal_embedding
from .mlp import MLPConfig, MLPDenoiser
from .registry import ARCHITECTURES, build_model, count_parameters, model_spec
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


"""The registry of architectures: how a checkpoint names a network and rebuilds it from JSON.

| name                        | what                                                          |
|-----------------------------|---------------------------------------------------------------|
| ``ARCHITECTURES``           | arch name -> (network class, its config dataclass)            |
| ``model_spec(model)``       | ``(arch, config_dict)``, plain JSON                           |
| ``build_model(arch, cfg)``  | a freshly initialised network of that architecture and config |
| ``count_parameters(model)`` | the number of scalar parameters                               |
"""
from __future__ import annotations

import dataclasses
import typing

from torch import nn

from .dcgan import DCGANConfig, DCGANGenerator
from .edm import EDMUNet, EDMUNetConfig
from .mlp import MLPConfig, MLPDenoiser
from .simple_unet import SimpleUNet, SimpleUNetConfig
from .text import PromptUNet, PromptUNetConfig
from .unet import UNet, UNetConfig
from .vae import VAE, VAEConfig

__all__ = ["ARCHITECTURES", "build_model", "model_spec", "count_parameters"]

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

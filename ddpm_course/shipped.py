"""The shipped models, by name and family: one registry that every command and sampler consults.

A network's *kind* says what its output means, and so how to sample it. Each checkpoint's JSON
declares it (``"kind"``); :func:`~ddpm_course.checkpoint.load_checkpoint` reads it (or infers it
for an older file) and tags the model, and the samplers refuse a model of another kind,
naming what to use instead.

| kind           | the network                                 | how to sample it                                   |
|----------------|---------------------------------------------|----------------------------------------------------|
| ``eps``        | a noise predictor eps_theta(x_t, t[, y])    | ``samplers.SAMPLERS`` (ddpm, ddim, euler, dpm_solver) |
| ``velocity``   | a flow-matching velocity u_theta(x, t*999)  | ``flow.flow_sample``                               |
| ``latent``     | a noise predictor on a VAE's scaled latents | ``autoencoder.load_latent``, a sampler, decode     |
| ``vae``        | a VAE (encoder and decoder)                 | ``autoencoder.load_elbo_vae``; decode z ~ N(0, I)  |
| ``generator``  | a GAN generator G(z) -> image (DCGAN)       | ``gan.gan_sample``: one pass on z ~ N(0, I)        |
| ``classifier`` | the digit classifier of the metrics         | not a generator: ``metrics.digit_classifier()``    |

:data:`SHIPPED` lists every model in ``ddpm_course/pretrained/``: its name, kind, what it is and
the command that makes it. To ship a new model, save it there with ``save_checkpoint(...,
kind=...)`` and add one :class:`Shipped` entry to :data:`SHIPPED` (or call :func:`register`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ._model import KINDS, SAMPLER_KINDS, infer_kind, kind_of, require_kind, tag
from .checkpoint import Checkpoint, load_checkpoint
from .models.classifier import DigitClassifier
from .models.vae import VAE

__all__ = [
    "KINDS", "SAMPLER_KINDS", "Shipped", "SHIPPED", "PRETRAINED", "register", "folder", "path", "load", "pretrained",
    "LatentPipeline", "load_latent", "load_elbo_vae", "load_classifier", "kind_of", "tag", "require_kind",
    "infer_kind",
]

@dataclass(frozen=True)
class Shipped:
    """One shipped model: ``name`` (also its file name in ``pretrained/``), ``kind`` (a key of
    :data:`KINDS`), ``description``, ``command`` (what makes it) and, for a latent model,
    ``decoder`` (the shipped VAE that decodes its samples)."""

    name: str
    kind: str
    description: str
    command: str
    decoder: str | None = None
    file: str | None = None  # the file in pretrained/ when it is not NAME.safetensors + NAME.json

    @property
    def summary(self) -> str:
        """``description: command``, as :data:`PRETRAINED` lists it."""
        return f"{self.description}: {self.command}"


SHIPPED: dict[str, Shipped] = {}


def register(entry: Shipped) -> Shipped:
    """Add a shipped model to :data:`SHIPPED` (its kind checked); returns it."""
    if not isinstance(entry, Shipped):
        raise TypeError(f"entry must be a Shipped; got {type(entry).__name__}")
    if entry.kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}; got {entry.kind!r}")
    SHIPPED[entry.name] = entry
    return entry


for _entry in (
    Shipped("digits", "eps", "the course U-Net on 16x16 digits (EMA weights)",
            "ddpm-course train --preset digits"),
    Shipped("digits-flow", "velocity", "the course U-Net on 16x16 digits trained by flow matching (velocity, input "
            "t * 999; sample with ddpm_course.flow.flow_sample)",
            "python -m ddpm_course.flow --out ddpm_course/pretrained/digits-flow --steps 450"),
    Shipped("toy2d", "eps", "an MLP noise predictor on the 2-D ring mixture", "ddpm-course train --preset toy2d"),
    Shipped("digits-cond", "eps", "a small U-Net on 16x16 digits with labels and a learned null label, for guidance",
            "python -m ddpm_course.guidance digits-cond --out ddpm_course/pretrained/digits-cond --threads 1"),
    Shipped("digits-cond-short", "eps", "digits-cond trained for 700 steps only, to show what undertraining "
            "does to samples",
            "python -m ddpm_course.guidance digits-cond --out ddpm_course/pretrained/digits-cond-short --steps 700 "
            "--ema-decay 0.995 --threads 1"),
    Shipped("digits-prompt", "eps", "a small U-Net reading prompts ('thin seven') through cross-attention",
            "python -m ddpm_course.guidance digits-prompt --out ddpm_course/pretrained/digits-prompt --steps 700 "
            "--ema-decay 0.995 --threads 1"),
    Shipped("digits-fast", "eps", "a few-step student of digits (1-4 evaluations; an EDMUNet, sample with "
            "ddpm_course.distill.student_sample)",
            "python -m ddpm_course.distill --out ddpm_course/pretrained/digits-fast --paths 4096 --steps 1000 "
            "--lr 5e-4 --threads 1"),
    Shipped("digits-latent", "latent", "the course U-Net on 8x8x4 latents of 32x32 digits, decoded by the VAE "
            "digits-latent-vae (load both with ddpm_course.autoencoder.load_latent)",
            "python -m ddpm_course.autoencoder --out ddpm_course/pretrained/digits-latent",
            decoder="digits-latent-vae"),
    Shipped("digits-latent-vae", "vae", "the VAE of digits-latent (32x32 digits to 8x8x4 latents, small KL)",
            "python -m ddpm_course.autoencoder --out ddpm_course/pretrained/digits-latent"),
    Shipped("digits-latent-elbo-vae", "vae", "the same VAE trained with the full ELBO weight, a generator itself",
            "python -m ddpm_course.autoencoder --out ddpm_course/pretrained/digits-latent"),
    Shipped("digits-gan", "generator", "a small DCGAN generator on 16x16 digits, lesson 11's GAN (sample with "
            "ddpm_course.gan.gan_sample)",
            "python -m ddpm_course.gan --out ddpm_course/pretrained/digits-gan --steps 8000 --threads 1"),
    Shipped("digit-classifier", "classifier", "the digit classifier behind the Frechet distance's features",
            "python -m ddpm_course.metrics", file="digit_classifier.safetensors"),
):
    register(_entry)

# name -> "what it is: the command that makes it", for every shipped checkpoint (the classifier is a bare file)
PRETRAINED = {name: entry.summary for name, entry in SHIPPED.items() if entry.kind != "classifier"}


def folder() -> Path:
    """The folder of the shipped files (``ddpm_course/pretrained``)."""
    return Path(__file__).resolve().parent / "pretrained"


def _entry_for(name: str) -> Shipped:
    if name not in SHIPPED:
        raise ValueError(f"name must be one of {sorted(SHIPPED)}; got {name!r}")
    return SHIPPED[name]


def path(name: str) -> Path:
    """The checkpoint path (without extension) of a shipped model; FileNotFoundError, saying the
    command that makes it, when its files are missing."""
    entry = _entry_for(name)
    base = folder() / (entry.file or name)
    weights = base if entry.file else base.with_name(base.name + ".safetensors")
    if not weights.exists():
        raise FileNotFoundError(f"the shipped model {name!r} is missing from {folder()}; make it with: "
                                f"ddpm-course make {name} (it runs: {entry.command})")
    return base


def pretrained(name: str = "digits", device: torch.device | str = "cpu") -> Checkpoint:
    """A shipped checkpoint by name (``dc.pretrained``): "digits" (16x16 digits), "toy2d" (the 2-D
    ring mixture), "digits-cond", "digits-prompt", "digits-flow" (a velocity model), "digits-fast"
    (a few-step student), "digits-latent" (a latent U-Net; :func:`load_latent` gives it with its
    decoder), the VAEs "digits-latent-vae" and "digits-latent-elbo-vae", and "digits-gan" (a DCGAN generator:
    sample it with ``gan.gan_sample``).

    Returns a :class:`~ddpm_course.checkpoint.Checkpoint` (alias ``Pretrained``) with ``.name``,
    ``.kind``, ``.model`` in eval mode, ``.schedule``, ``.image_size``, ``.sample_shape`` and ``.record``.
    """
    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {sorted(PRETRAINED)}; got {name!r}")
    ckpt = load_checkpoint(path(name), device=device)
    ckpt.name = name
    return ckpt


class LatentPipeline(NamedTuple):
    """The shipped latent diffusion model: ``vae`` (with its scale factor), ``unet`` (a noise
    predictor on scaled latents of ``latent_shape``), ``schedule`` and the two training records."""

    vae: VAE
    unet: nn.Module
    schedule: object
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    record: dict
    vae_record: dict


def _vae(path_: str | Path, device: torch.device | str) -> Checkpoint:
    ckpt = load_checkpoint(path_, device)
    if not isinstance(ckpt.model, VAE):
        raise TypeError(f"{path_} holds a {ckpt.arch}, not a VAE")
    return ckpt


def load_latent(path_: str | Path | None = None, device: torch.device | str = "cpu") -> LatentPipeline:
    """Load ``PATH`` (the latent U-Net) and ``PATH-vae`` (its decoder); default: the shipped ``digits-latent``."""
    path_ = path("digits-latent") if path_ is None else path_
    unet, vae = load_checkpoint(path_, device), _vae(f"{path_}-vae", device)
    return LatentPipeline(
        vae.model, unet.model, unet.schedule, unet.sample_shape, vae.sample_shape, unet.record, vae.record
    )


def load_elbo_vae(path_: str | Path | None = None, device: torch.device | str = "cpu") -> Checkpoint:
    """The stand-alone VAE trained with the full ELBO weight (default: the shipped
    ``digits-latent-elbo-vae``), as a Checkpoint (``.model``, ``.record``)."""
    return _vae(path("digits-latent-elbo-vae") if path_ is None else path_, device)


def load_classifier() -> DigitClassifier:
    """The shipped digit classifier behind the metrics' features, in eval mode (FileNotFoundError
    naming its command when the file is missing)."""
    from safetensors.torch import load_file

    model = DigitClassifier()
    model.load_state_dict(load_file(str(path("digit-classifier"))), strict=True)
    return tag(model.eval(), "classifier")


def load(name: str, device: Any = "cpu"):
    """Load a shipped model the way its kind needs: a :class:`~ddpm_course.checkpoint.Checkpoint`
    (``eps``, ``velocity``, ``vae``, ``generator``), a :class:`LatentPipeline` (``latent``: the U-Net and its
    decoder) or the classifier module (on the CPU)."""
    entry = _entry_for(name)
    if entry.kind == "classifier":
        return load_classifier()
    if entry.kind == "latent":
        return load_latent(path(name), device)
    return pretrained(name, device=device)

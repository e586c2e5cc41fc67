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
| ``classifier`` | the digit classifier of the metrics         | not a generator: ``metrics.digit_classifier()``    |

:data:`SHIPPED` lists every model in ``ddpm_course/pretrained/``: its name, kind, what it is and
the command that makes it. To ship a new model, save it there with ``save_checkpoint(...,
kind=...)`` and add one :class:`Shipped` entry to :data:`SHIPPED` (or call :func:`register`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KINDS", "SAMPLER_KINDS", "Shipped", "SHIPPED", "register", "folder", "path", "load", "kind_of", "tag",
    "require_kind", "infer_kind",
]

KINDS: dict[str, str] = {
    "eps": "a noise predictor eps_theta(x_t, t): sample it with the DDPM samplers (ddpm_course.samplers, "
    "ddpm-course sample)",
    "velocity": "a flow-matching velocity model: sample it with ddpm_course.flow.flow_sample(model, shape, steps=20)",
    "latent": "a noise predictor on VAE latents: load it with ddpm_course.autoencoder.load_latent(path), sample "
    "pipe.unet at pipe.latent_shape, then decode with pipe.vae.decode_scaled (ddpm-course sample does all this)",
    "vae": "a VAE, not a diffusion model: load it with ddpm_course.autoencoder.load_elbo_vae(path) and decode "
    "z ~ N(0, I)",
    "classifier": "the digit classifier behind the metrics, not a generator: ddpm_course.metrics.digit_classifier()",
}
SAMPLER_KINDS = ("eps", "latent")  # what the DDPM samplers can run: noise predictors, on images or on latents
_ATTRIBUTE = "model_kind"  # where a loaded module carries its kind


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
        """``description: command``, the form ``checkpoint.PRETRAINED`` has always had."""
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
            "python benchmarks/train_guided.py digits-cond"),
    Shipped("digits-cond-short", "eps", "digits-cond trained for 700 steps only, to show what undertraining "
            "does to samples", "python benchmarks/train_guided.py digits-cond --steps 700 --ema-decay 0.995"),
    Shipped("digits-prompt", "eps", "a small U-Net reading prompts ('thin seven') through cross-attention",
            "python benchmarks/train_guided.py digits-prompt --steps 700 --ema-decay 0.995"),
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
    Shipped("digit-classifier", "classifier", "the digit classifier behind the Frechet distance's features",
            "python -m ddpm_course.metrics", file="digit_classifier.safetensors"),
):
    register(_entry)


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
        raise FileNotFoundError(f"the shipped model {name!r} is missing from {folder()}; make it with: {entry.command}")
    return base


def load(name: str, device: Any = "cpu"):
    """Load a shipped model the way its kind needs: a :class:`~ddpm_course.checkpoint.Checkpoint`
    (``eps``, ``velocity``, ``vae``), a :class:`~ddpm_course.autoencoder.LatentPipeline`
    (``latent``: the U-Net and its decoder) or the classifier module."""
    entry = _entry_for(name)
    if entry.kind == "classifier":
        from .metrics import digit_classifier

        return tag(digit_classifier(), "classifier")
    if entry.kind == "latent":
        from .autoencoder import load_latent

        return load_latent(str(path(name)), device)
    from .checkpoint import pretrained

    return pretrained(name, device=device)


# ----------------------------------------------------------------------------- kinds


def tag(model: Any, kind: str) -> Any:
    """Mark a module with its kind (what :func:`kind_of` reads); returns it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}; got {kind!r}")
    try:
        object.__setattr__(model, _ATTRIBUTE, kind)
    except (AttributeError, TypeError):
        pass  # a callable that takes no attributes stays untagged: nothing is checked for it
    return model


def kind_of(model: Any) -> str | None:
    """The kind a loaded model carries, or None (a model built in code, a lambda, the oracle)."""
    kind = getattr(model, _ATTRIBUTE, None)
    return kind if isinstance(kind, str) else None


def require_kind(model: Any, allowed: tuple[str, ...], what: str, name: str = "model") -> None:
    """Refuse a model whose declared kind is not in ``allowed``, saying what to use instead;
    an untagged model passes (only loaded checkpoints declare a kind)."""
    kind = kind_of(model)
    if kind is None or kind in allowed:
        return
    raise ValueError(f"{name} is {KINDS[kind]} ({what}: for {' or '.join(allowed)} models only)")


def infer_kind(arch: str, record: dict[str, Any]) -> str:
    """The kind of a checkpoint saved before checkpoints declared one, from its architecture and
    record: a VAE, a flow-matching model (its record's objective or command says so), a latent
    model (its record names the VAE that decodes it), otherwise a noise predictor."""
    if arch == "VAE":
        return "vae"
    command = str(record.get("command", ""))
    if "flow matching" in str(record.get("objective", "")) or "ddpm_course.flow" in command:
        return "velocity"
    if "decode_with" in record or "ddpm_course.autoencoder" in command:
        return "latent"
    return "eps"


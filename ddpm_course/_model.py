"""How the package calls a noise predictor: one place for the optional label, the output check,
eval mode, and the device and dtype a model lives in.

The model contract (docs/DESIGN.md, "The model contract"): ``model(x_t, t) -> eps_hat`` and, class-conditional,
``model(x_t, t, y)``, with x_t (B, ...), t (B,) and an output of x_t's shape. A "model" may
be an ``nn.Module`` or any callable (the Gaussian-mixture oracle, a lambda); only a module
has a mode, parameters and so a device and dtype of its own.

| helper                | what it does                                                        |
|-----------------------|---------------------------------------------------------------------|
| ``device_and_dtype``  | (device, dtype) of a module's first floating parameter or buffer    |
| ``call_model``        | the call with or without ``y``, x_t cast to the model's dtype, output checked |
| ``eval_mode``         | a context: the module in eval mode inside, its previous mode after  |
| ``num_classes``       | a conditional model's class count (its null label), None otherwise  |
| ``KINDS``, ``tag``    | a model's family (what its output means, how to sample it), carried |
| ``kind_of``           | by a loaded module; ``require_kind`` refuses a model of another kind |
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import torch
from torch import Tensor, nn

__all__ = [
    "device_and_dtype", "call_model", "eval_mode", "num_classes",
    "KINDS", "SAMPLER_KINDS", "tag", "kind_of", "require_kind", "infer_kind",
]


def device_and_dtype(model: Callable) -> tuple[torch.device | None, torch.dtype | None]:
    """Where a module's weights live and their floating dtype; (None, None) for a plain callable
    or a module without floating parameters or buffers."""
    if isinstance(model, nn.Module):
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            if tensor.dtype.is_floating_point:
                return tensor.device, tensor.dtype
    return None, None


def call_model(model: Callable, x_t: Tensor, t: Tensor, y: Tensor | None = None, *, what: str = "eps") -> Tensor:
    """``model(x_t, t)`` or ``model(x_t, t, y)``, checked to return a tensor of x_t's shape.

    x_t: (B, ...); t: (B,); y: (B,) or None. A module whose weights have another floating
    dtype than x_t gets x_t cast to its dtype (a float64 chain around a float32 network); the
    output keeps the model's dtype. ``what`` names the prediction in the error message.
    """
    _, dtype = device_and_dtype(model)
    if dtype is not None and x_t.dtype != dtype:
        x_t = x_t.to(dtype)
    out = model(x_t, t) if y is None else model(x_t, t, y)
    if not isinstance(out, Tensor) or out.shape != x_t.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model must return {what} with the shape of x_t {tuple(x_t.shape)}; got {got}")
    return out


@contextmanager
def eval_mode(model: Callable) -> Iterator[None]:
    """Run the block with a module in eval mode (no dropout, running statistics), then put it
    back in the mode it had. Plain callables are left alone."""
    was_training = isinstance(model, nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def num_classes(model: Callable) -> int | None:
    """``model.config.num_classes``: the class count of a conditional model, which is also its null
    label ("no label", for classifier-free guidance); None for an unconditional model or a callable
    without a config."""
    value = getattr(getattr(model, "config", None), "num_classes", None)
    return None if value is None else int(value)


# ----------------------------------------------------------------------------- kinds

#: every model family a checkpoint can declare, and how to sample it (see ``ddpm_course.shipped``)
KINDS: dict[str, str] = {
    "eps": "a noise predictor eps_theta(x_t, t): sample it with the DDPM samplers (ddpm_course.samplers, "
    "ddpm-course sample)",
    "velocity": "a flow-matching velocity model: sample it with ddpm_course.flow.flow_sample(model, shape, steps=20)",
    "latent": "a noise predictor on VAE latents: load it with ddpm_course.autoencoder.load_latent(path), sample "
    "pipe.unet at pipe.latent_shape, then decode with pipe.vae.decode_scaled (ddpm-course sample does all this)",
    "vae": "a VAE, not a diffusion model: load it with ddpm_course.autoencoder.load_elbo_vae(path) and decode "
    "z ~ N(0, I)",
    "generator": "a GAN generator G(z) -> image, not a diffusion model: sample it with "
    "ddpm_course.gan.gan_sample(model, n) (one pass on z ~ N(0, I))",
    "classifier": "the digit classifier behind the metrics, not a generator: ddpm_course.metrics.digit_classifier()",
}
SAMPLER_KINDS = ("eps", "latent")  # what the DDPM samplers can run: noise predictors, on images or on latents
_ATTRIBUTE = "model_kind"  # where a loaded module carries its kind


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


ARCH_KINDS = {"VAE": "vae", "DCGANGenerator": "generator"}  # architectures that are one kind whatever their record


def infer_kind(arch: str, record: dict[str, Any]) -> str:
    """The kind of a checkpoint saved before checkpoints declared one, from its architecture and
    record: a VAE, a flow-matching model (its record's objective or command says so), a latent
    model (its record names the VAE that decodes it), otherwise a noise predictor."""
    if arch in ARCH_KINDS:
        return ARCH_KINDS[arch]
    command = str(record.get("command", ""))
    if "flow matching" in str(record.get("objective", "")) or "ddpm_course.flow" in command:
        return "velocity"
    if "decode_with" in record or "ddpm_course.autoencoder" in command:
        return "latent"
    return "eps"


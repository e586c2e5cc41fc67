"""A small variational autoencoder (VAE) for latent diffusion.

Rombach et al. (2022), "High-Resolution Image Synthesis with Latent Diffusion Models" (Stable
Diffusion): compress the images once with an autoencoder, run the whole diffusion (training
and sampling) on its small latent grid, decode at the end. Kingma & Welling (2014),
"Auto-Encoding Variational Bayes": the encoder outputs a Gaussian q(z | x), the reparameterised
sample z = mean + std * eps keeps it differentiable, and a KL term pulls q(z | x) towards N(0, I).

| symbol      | code                     | shape / meaning                                             |
|-------------|--------------------------|-------------------------------------------------------------|
| x           | ``x``                    | (B, C, H, W) images in [-1, 1]                              |
| mu, log s^2 | ``mean, logvar``         | (B, c, H/f, W/f): q(z \\| x) = N(mu, diag(s^2)), f = factor  |
| z           | ``latent(x, generator)`` | mu + s * eps, eps ~ N(0, I), drawn on the CPU                |
| x_hat       | ``decode(z)``            | (B, C, H, W), the reconstruction                            |
| KL          | :func:`kl_divergence`    | sum over latent entries of (mu^2 + s^2 - 1 - log s^2) / 2   |
| beta        | ``kl_weight``            | loss = sum of squared pixel errors + beta * KL, per image   |
| scale       | ``vae.scale_factor``     | 1 / std(z) on the training data (Stable Diffusion: 0.18215) |

With beta = 1 the loss is the negative ELBO of a decoder N(x_hat, 1/2 I) up to a constant; a
small beta (the default) keeps the KL as a gentle regulariser, so the latent is a faithful
"sketch" of the image rather than a sample of N(0, I). Its spread is then arbitrary, which the
scale factor fixes: the diffusion model sees ``z * scale``, of variance 1 like the data the
schedules were designed for, and ``decode(z / scale)`` maps a sample back.

``python -m ddpm_course.autoencoder --out ddpm_course/pretrained/digits-latent`` makes the shipped
pair: ``digits-latent-vae`` (this VAE, 32x32 digits to 8x8x4) and ``digits-latent`` (the course
U-Net trained on its scaled latents with ``train.train``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ._checks import batch_tensor, finite_float, int_at_least, same_shape
from ._compat import renamed_arguments
from .models.vae import VAE, VAEConfig
from .shipped import LatentPipeline, load_elbo_vae, load_latent
from .train import Examples, Objective, fit, image_examples

__all__ = [
    "LATENT_UNET_CONFIG", "VAE", "LatentPipeline", "VAEConfig", "VAELoss", "VAEObjective", "VAETrainResult",
    "encode_dataset", "estimate_scale_factor", "kl_divergence", "load_elbo_vae", "load_latent", "train_vae", "vae_loss",
]

#: the latent U-Net of the shipped ``digits-latent``: the course U-Net on 4 channels at 8x8
LATENT_UNET_CONFIG = {
    "in_channels": 4, "base_channels": 32, "channel_mults": [1, 2], "num_res_blocks": 1,
    "attention_levels": [1], "dropout": 0.1, "num_classes": None, "groups": 8, "time_dim": None,
}


def kl_divergence(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per image, summed over the latent entries: (B, ...) -> (B,).

    Each entry contributes (mean^2 + exp(logvar) - 1 - logvar) / 2, the closed form for two
    one-dimensional Gaussians; the entries are independent, so the KLs add.
    """
    # shapes only: mean and logvar are the encoder's outputs, and inside training a NaN there must
    # reach the loss, where train.fit names the step (NonFiniteLossError) before any update
    mean = batch_tensor("mean", mean)
    same_shape("logvar", batch_tensor("logvar", logvar), mean, "mean")
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).sum(1)


class VAELoss(NamedTuple):
    """Per-batch means: ``total`` (what is minimised), ``recon`` (sum of squared pixel errors per
    image), ``kl`` (per image), ``mse`` (mean squared error per pixel)."""

    total: Tensor
    recon: Tensor
    kl: Tensor
    mse: Tensor


@renamed_arguments(vae="model")
def vae_loss(model: VAE, x: Tensor, kl_weight: float, generator: torch.Generator | None = None) -> VAELoss:
    """The loss of the VAE ``model`` on a batch x (B, C, H, W): mean over images of |x - x_hat|^2 + kl_weight * KL."""
    x_hat, mean, logvar = model.reconstruct(x, generator)
    sq = (x_hat - x).square().flatten(1)  # (B, C*H*W)
    recon, kl = sq.sum(1).mean(), kl_divergence(mean, logvar).mean()
    return VAELoss(recon + kl_weight * kl, recon, kl, sq.mean())


@dataclass
class VAETrainResult:
    """What :func:`train_vae` returns: the raw and EMA models (eval mode), per-step per-pixel MSE
    and KL, the steps done and the wall time."""

    model: VAE
    ema_model: VAE | None
    mse: list[float]
    kl: list[float]
    steps: int
    seconds: float

    @property
    def final_model(self) -> VAE:
        return self.ema_model if self.ema_model is not None else self.model


class VAEObjective(Objective):
    """The VAE's loss for ``train.fit``: :func:`vae_loss` with weight ``kl_weight`` on the KL, the
    latent noise from the generator; logs the per-pixel MSE and the KL of every step."""

    name = "vae"

    def __init__(self, kl_weight: float):
        self.kl_weight = finite_float("kl_weight", kl_weight, 0)

    def examples(self, data: Tensor, model: nn.Module) -> Examples:
        if not isinstance(model, VAE):
            raise TypeError(f"model must be an autoencoder.VAE; got {type(model).__name__}")
        model._check_images(data)
        return image_examples(data, model)

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, Tensor]]:
        out = vae_loss(net, batch[0], self.kl_weight, generator)
        return out.total, {"mse": out.mse.detach(), "kl": out.kl.detach()}


@renamed_arguments(vae="model")
def train_vae(
    model: VAE,
    images: Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    kl_weight: float = 1e-3,
    warmup_steps: int = 50,
    ema_decay: float | None = 0.995,
    grad_clip: float = 1.0,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> VAETrainResult:
    """Train the VAE ``model`` in place on images (N, C, H, W) in [-1, 1] for ``steps`` AdamW steps.

    ``train.fit`` with :class:`VAEObjective`: the loop of :func:`ddpm_course.train.train` (linear
    warm-up then a half-cosine decay of the learning rate, gradient clipping, an EMA of the weights
    with a warm-up, a tqdm bar, a stop with a message on a non-finite loss before any weight
    changes, Ctrl-C). Batches and latent noise come from ``generator``.
    """
    run = fit(model, VAEObjective(kl_weight), images, steps=steps, batch_size=batch_size, lr=lr,
              warmup_steps=warmup_steps, grad_clip=grad_clip, ema_decay=ema_decay, generator=generator,
              progress=progress)
    return VAETrainResult(run.model, run.ema_model, run.logs["mse"], run.logs["kl"], run.steps, run.seconds)


@renamed_arguments(vae="model")
@torch.no_grad()
def encode_dataset(model: VAE, images: Tensor, generator: torch.Generator | None = None, draws: int = 1,
                   batch_size: int = 256) -> Tensor:
    """Sampled, unscaled latents of every image under the VAE ``model``, ``draws`` independent
    samples each: (draws * N, c, h, w)."""
    draws = int_at_least("draws", draws, 1)
    model._check_images(images, "images")
    starts = range(0, len(images), batch_size)
    out = [model.latent(images[i : i + batch_size], generator) for _ in range(draws) for i in starts]
    return torch.cat(out)


@renamed_arguments(vae="model")
@torch.no_grad()
def estimate_scale_factor(model: VAE, images: Tensor, generator: torch.Generator | None = None,
                          draws: int = 4) -> float:
    """1 / std of the sampled latents of ``images`` under the VAE ``model`` (over every entry), as
    Stable Diffusion's 0.18215 was estimated. The caller stores it with ``model.scale_factor.fill_(s)``."""
    z = encode_dataset(model, images, generator, draws)
    return 1.0 / z.double().std().item()


_PROG = "python -m ddpm_course.autoencoder"


def _parser():
    """The maker's options: the common ones of :func:`._records.maker_parser` and the four of this recipe."""
    from ._records import maker_parser

    p = maker_parser(_PROG, (
        "Train the shipped latent diffusion model on 32x32 digits (train split): a VAE (OUT-vae), the same "
        "VAE with the full ELBO weight as a stand-alone generator (OUT-elbo-vae), and the course U-Net on "
        "the first VAE's scaled latents (OUT)."))
    p.add_argument("--vae-steps", type=int, default=150, help="AdamW steps of each VAE (default 150)")
    p.add_argument("--unet-steps", type=int, default=800, help="steps of the latent U-Net (default 800)")
    p.add_argument("--kl-weight", type=float, default=1e-3, help="beta of the latent VAE (default 1e-3: a small KL)")
    p.add_argument("--elbo-kl-weight", type=float, default=1.0,
                   help="beta of the stand-alone VAE (default 1: the ELBO)")
    return p


def _vae_record(run: VAETrainResult, vae: VAE, kl_weight: float, batch_size: int, test: Tensor) -> dict:
    with torch.no_grad():
        mean, logvar = vae.encode(test)
        mse = (vae.decode(mean) - test).square().mean().item()
        kl = kl_divergence(mean, logvar).mean().item()
    return {"steps": run.steps, "batch_size": batch_size, "kl_weight": kl_weight,
            "train_seconds": round(run.seconds, 1), "weights": "ema",
            "test_mse_of_mean": round(mse, 6), "test_kl": round(kl, 2),
            "scale_factor": float(vae.scale_factor)}


def main(argv: list[str] | None = None) -> None:
    """Make ``digits-latent`` and its two VAEs: see :func:`_parser` for the options."""
    from ._records import run_record
    from .checkpoint import checkpoint_paths, save_checkpoint
    from .data import digits
    from .models import build_model
    from .schedules import linear_schedule
    from .train import train

    args = _parser().parse_args(argv)
    out = str(checkpoint_paths(args.out)[0].with_suffix(""))
    targets = [out, f"{out}-vae", f"{out}-elbo-vae"]
    if not args.overwrite and any(p.exists() for t in targets for p in checkpoint_paths(t)):
        raise SystemExit(f"a checkpoint among {targets} exists; pass --overwrite to replace it")
    torch.set_num_threads(args.threads)
    train_x, test_x = digits(32, split="train").images, digits(32, split="test").images
    vb, common = 32, run_record(_PROG, argv, seed=args.seed, data="digits 32x32, train split")
    vaes, schedule = {}, linear_schedule(1000)  # the VAEs' checkpoints carry the schedule of the latent model
    for name, beta in (("vae", args.kl_weight), ("elbo-vae", args.elbo_kl_weight)):
        torch.manual_seed(args.seed)
        run = train_vae(VAE(), train_x, steps=args.vae_steps, batch_size=vb, kl_weight=beta,
                        generator=torch.Generator().manual_seed(args.seed), progress=not args.no_progress)
        vae = run.final_model
        vae.scale_factor.fill_(estimate_scale_factor(vae, train_x, torch.Generator().manual_seed(args.seed + 1)))
        vaes[name] = (vae, _vae_record(run, vae, beta, vb, test_x))
        save_checkpoint(f"{out}-{name}", vae, schedule, sample_shape=(1, 32, 32), overwrite=args.overwrite,
                        record={**common, **vaes[name][1], "role": name})
        print(f"{name}: {vaes[name][1]}")
    vae = vaes["vae"][0]
    latents = encode_dataset(vae, train_x, torch.Generator().manual_seed(args.seed + 2), draws=4) * vae.scale_factor
    torch.manual_seed(args.seed)
    unet = build_model("UNet", LATENT_UNET_CONFIG)
    settings = {"batch_size": 64, "lr": 1e-3, "warmup_steps": 50, "ema_decay": 0.995}
    run = train(unet, schedule, latents, steps=args.unet_steps, generator=torch.Generator().manual_seed(args.seed),
                progress=not args.no_progress, **settings)
    print(f"latent U-Net: {run.steps} steps in {run.seconds:.0f} s, final loss {sum(run.losses[-50:]) / 50:.4f}")
    record = {**common, "steps": run.steps, "train_seconds": round(run.seconds, 1), "weights": "ema",
              "final_loss": round(sum(run.losses[-50:]) / 50, 5), "train_settings": settings,
              "data": f"scaled latents of {out}-vae (4 draws per train image, scale {float(vae.scale_factor):.5f})",
              "vae_train_seconds": vaes["vae"][1]["train_seconds"], "decode_with": f"{out}-vae"}
    save_checkpoint(out, run.final_model, schedule, sample_shape=tuple(latents.shape[1:]), record=record,
                    weights_dtype=torch.float16, overwrite=args.overwrite, kind="latent")
    print(f"wrote {out}, {out}-vae, {out}-elbo-vae")


if __name__ == "__main__":
    main()

"""Latent vs pixel diffusion on 32x32 digits: the cost of a U-Net pass, of a sample, and the quality.

    python benchmarks/latent.py [--threads 1] [--n-samples 200] [--pixel-minutes M] [--skip-quality]

Prints three markdown tables:

1. cost of one pass of the course U-Net (the ``digits`` preset) at 16, 32 and 64 pixels and of
   the latent U-Net of ``digits-latent`` on its 8x8x4 latents: FLOPs per image (counted by
   ``torch.utils.flop_counter``, independent of the machine) and measured milliseconds per
   image in a batch of 64 (median of 5);
2. cost per sample: 20-step DPM-Solver++, 50-step DDIM and 1000-step DDPM, latent (plus one VAE decode)
   against pixels at the same 32x32 resolution;
3. quality: Frechet distance on digit-classifier features (``metrics.digits_fd``; 32x32 images
   are downsampled to 16x16, the classifier's size, with antialiasing) of latent diffusion, of
   pixel diffusion at 32x32 and of the two shipped VAEs' prior samples, with the real-vs-real
   floor. The pixel model is trained here with ``train.train`` for as many minutes as the
   latent pipeline's training took (the VAE it uses plus the latent U-Net, from the shipped
   records): equal budgets. The shipped 16x16 ``digits`` model, trained far longer, is scored
   too, as what pixel diffusion reaches with ample compute at this scale. Timings depend on
   the machine's load; say so when quoting.
"""
from __future__ import annotations

import argparse

import torch

import ddpm_course as dc
from ddpm_course import metrics, models, samplers
from ddpm_course.autoencoder import load_elbo_vae, load_latent
from ddpm_course.timing import count_flops, ms_per_image
from ddpm_course.train import PRESETS, train


def flops(fn) -> int:
    with torch.no_grad():
        return count_flops(fn)


def cost_tables(pipe, batch: int = 64) -> dict[str, float]:
    pixel = models.build_model("UNet", PRESETS["digits"].model_config).eval()
    t1, tb = torch.zeros(1, dtype=torch.long), torch.zeros(batch, dtype=torch.long)
    rows, per = [], {}
    print("| network | input | FLOPs per pass (M) | ms per image per pass |")
    print("|---|---|---:|---:|")
    for size in (16, 32, 64):
        f = flops(lambda s=size: pixel(torch.zeros(1, 1, s, s), t1))
        ms = ms_per_image(lambda s=size: pixel(torch.zeros(batch, 1, s, s), tb), batch, reps=5)
        per[f"pixel{size}"] = ms
        rows.append((f"pixel U-Net ({models.count_parameters(pixel):,} parameters)", f"1x{size}x{size}", f, ms))
    shape = pipe.latent_shape
    f = flops(lambda: pipe.unet(torch.zeros(1, *shape), t1))
    per["latent"] = ms_per_image(lambda: pipe.unet(torch.zeros(batch, *shape), tb), batch, reps=5)
    name = f"latent U-Net ({models.count_parameters(pipe.unet):,} parameters)"
    rows.append((name, "x".join(map(str, shape)), f, per["latent"]))
    f_dec = flops(lambda: pipe.vae.decode(torch.zeros(1, *shape)))
    per["decode"] = ms_per_image(lambda: pipe.vae.decode(torch.zeros(batch, *shape)), batch, reps=5)
    rows.append(("VAE decoder (once per sample)", "x".join(map(str, shape)), f_dec, per["decode"]))
    for name, inp, f, ms in rows:
        print(f"| {name} | {inp} | {f / 1e6:,.1f} | {ms:.2f} |")
    per["flops_pixel32"] = rows[1][2]
    per["flops_latent"], per["flops_decode"] = rows[3][2], f_dec
    print()
    print("| sampler | pixel 32x32: GFLOPs / ms per sample | latent 8x8x4 + decode: GFLOPs / ms per sample | saved |")
    print("|---|---:|---:|---:|")
    for name, steps in (("DPM-Solver++ 2M, 20 steps", 20), ("DDIM, 50 steps", 50), ("DDPM, 1000 steps", 1000)):
        gp, gl = steps * per["flops_pixel32"] / 1e9, (steps * per["flops_latent"] + f_dec) / 1e9
        mp, ml = steps * per["pixel32"], steps * per["latent"] + per["decode"]
        print(f"| {name} | {gp:.2f} / {mp:.0f} | {gl:.2f} / {ml:.0f} | {gp / gl:.1f}x FLOPs, {mp / ml:.1f}x time |")
    print()
    return per


def pixel_baseline(pipe, minutes: float, seed: int):
    """The course U-Net trained on 32x32 digits in pixel space with the latent U-Net's settings for ``minutes``."""
    torch.manual_seed(seed)
    pixel = models.build_model("UNet", PRESETS["digits"].model_config)
    settings = pipe.record["train_settings"]
    run = train(pixel, pipe.schedule, dc.digits(32, split="train"), minutes=minutes,
                generator=torch.Generator().manual_seed(seed), progress=False, **settings)
    print(f"pixel U-Net at 32x32: {run.steps} steps of {settings['batch_size']} in {run.seconds / 60:.1f} min "
          f"(the latent U-Net got {pipe.record['steps']} steps, the VAE {pipe.vae_record['steps']}, "
          f"{minutes:.1f} min together)")
    return run.final_model


def quality_table(pipe, n: int, pixel_minutes: float, seed: int) -> None:
    elbo = load_elbo_vae()
    pixel = pixel_baseline(pipe, pixel_minutes, seed) if pixel_minutes > 0 else None
    digits16 = dc.pretrained("digits")
    g = torch.Generator
    with torch.no_grad():
        shape = (n, *pipe.latent_shape)
        z = samplers.ddim_sample(pipe.unet, pipe.schedule, shape, steps=50, eta=1.0, generator=g().manual_seed(1))
        z_ode = samplers.dpm_solver_sample(pipe.unet, pipe.schedule, shape, steps=20, generator=g().manual_seed(1))
        prior = torch.randn(shape, generator=g().manual_seed(2))
        sets = {
            "latent diffusion (DDIM 50, eta 1, decoded)": pipe.vae.decode_scaled(z),
            "latent diffusion (DPM-Solver++ 20, decoded)": pipe.vae.decode_scaled(z_ode),
        }
        if pixel is not None:
            sets["pixel diffusion at 32x32, equal budget (DDIM 50, eta 1)"] = samplers.ddim_sample(
                pixel, pipe.schedule, (n, 1, 32, 32), steps=50, eta=1.0, generator=g().manual_seed(1))
        sets[f"pixel diffusion at 16x16, the shipped digits model ({digits16.record['steps']} steps of "
             f"{digits16.record['batch_size']}; DDIM 50, eta 1)"] = samplers.ddim_sample(
            digits16.model, digits16.schedule, (n, 1, 16, 16), steps=50, eta=1.0, generator=g().manual_seed(1))
        sets[f"prior samples of the latent VAE (kl_weight {pipe.vae_record['kl_weight']:g})"] = pipe.vae.decode(prior)
        sets[f"prior samples of the ELBO VAE (kl_weight {elbo.record['kl_weight']:g})"] = elbo.model.decode(prior)
    print(f"\n| samples ({n}) | Frechet distance | ratio to floor |")
    print("|---|---:|---:|")
    for name, x in sets.items():
        score = metrics.digits_fd(x.clamp(-1, 1), generator=g().manual_seed(3))
        print(f"| {name} | {score.fd:.2f} | {score.ratio:.2f} |")
    print(f"\nreal-vs-real floor at {n} images: {score.floor:.2f} (sd {score.floor_std:.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-samples", type=int, default=200)
    p.add_argument("--pixel-minutes", type=float, default=None,
                   help="training budget of the 32x32 pixel model (default: the latent pipeline's VAE + U-Net "
                   "training time; 0: no pixel model at 32x32)")
    p.add_argument("--skip-quality", action="store_true", help="print the cost tables only")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_latent()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    cost_tables(pipe)
    if not args.skip_quality:
        minutes = args.pixel_minutes
        if minutes is None:
            minutes = (pipe.record["train_seconds"] + pipe.vae_record["train_seconds"]) / 60
        quality_table(pipe, args.n_samples, minutes, args.seed)


if __name__ == "__main__":
    main()

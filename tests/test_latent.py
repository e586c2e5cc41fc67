"""Latent diffusion: the course's training loop and samplers run unchanged on a VAE's latents,
then a decode step; the shipped ``digits-latent`` loads, samples and beats its VAE's prior."""
import pytest
import torch

import ddpm_course as dc
from ddpm_course import samplers
from ddpm_course.autoencoder import (
    VAE,
    VAEConfig,
    encode_dataset,
    estimate_scale_factor,
    load_elbo_vae,
    load_latent,
)
from ddpm_course.models import UNet, UNetConfig
from ddpm_course.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_and_every_sampler_run_unchanged_on_latents():
    images = dc.digits(16, split="train").images[:64]
    torch.manual_seed(0)
    vae = VAE(VAEConfig(base_channels=8, channel_mults=(1, 2, 2), latent_channels=4)).eval()
    vae.scale_factor.fill_(estimate_scale_factor(vae, images, torch.Generator().manual_seed(0)))
    latents = encode_dataset(vae, images, torch.Generator().manual_seed(1)) * vae.scale_factor  # (64, 4, 4, 4)
    assert latents.shape == (64, 4, 4, 4)
    unet = UNet(UNetConfig(in_channels=4, base_channels=16, channel_mults=(1, 2), attention_levels=(1,)))
    schedule = dc.linear_schedule(1000)
    run = train(unet, schedule, latents, steps=3, batch_size=16, progress=False)
    assert run.steps == 3
    model = run.final_model
    for sample in (
        lambda g: samplers.ddim_sample(model, schedule, (2, 4, 4, 4), steps=4, generator=g),
        lambda g: samplers.euler_sample(model, schedule, (2, 4, 4, 4), steps=4, generator=g),
        lambda g: samplers.dpm_solver_sample(model, schedule, (2, 4, 4, 4), steps=4, generator=g),
    ):
        z = sample(torch.Generator().manual_seed(2))
        assert z.shape == (2, 4, 4, 4) and torch.isfinite(z).all()
        with torch.no_grad():
            x = vae.decode_scaled(z)
        assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()


def test_shipped_pipeline_loads_through_the_pretrained_table():
    ckpt = dc.pretrained("digits-latent")
    assert ckpt.sample_shape == (4, 8, 8) and isinstance(ckpt.model, UNet)
    pipe = load_latent()
    assert pipe.latent_shape == (4, 8, 8)
    assert pipe.record["decode_with"].endswith("digits-latent-vae")
    z = samplers.dpm_solver_sample(pipe.unet, pipe.schedule, (3, *pipe.latent_shape), steps=5,
                                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = pipe.vae.decode_scaled(z)
    assert x.shape == (3, 1, 32, 32) and torch.isfinite(x).all()


def test_shipped_latent_diffusion_beats_its_vaes_prior_samples():
    """The bar: 200 decoded samples (DDIM, 50 steps, eta = 1) score a Frechet distance (digit-classifier
    features, images downsampled to 16x16) under half that of 200 decoded draws from the prior N(0, I)
    of the stand-alone VAE trained with the full ELBO weight, and under 5x the real-vs-real floor
    (measured: 3.4x with 300 samples; a draw of a few hundred varies by about 30%)."""
    pipe = load_latent()
    elbo_vae = load_elbo_vae().model
    shape = (200, *pipe.latent_shape)
    z = samplers.ddim_sample(pipe.unet, pipe.schedule, shape, steps=50, eta=1.0,
                             generator=torch.Generator().manual_seed(1))
    prior = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        latent_samples = pipe.vae.decode_scaled(z).clamp(-1, 1)
        vae_samples = elbo_vae.decode(prior).clamp(-1, 1)
    fd_latent = dc.metrics.digits_fd(latent_samples, generator=torch.Generator().manual_seed(3))
    fd_vae = dc.metrics.digits_fd(vae_samples, generator=torch.Generator().manual_seed(3))
    assert fd_latent.fd < 0.5 * fd_vae.fd, (fd_latent, fd_vae)
    assert fd_latent.ratio < 5.0, fd_latent

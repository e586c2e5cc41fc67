"""The VAE of latent diffusion: shapes, the KL term against closed forms and Monte Carlo, the
reparameterised latent, bad inputs, the scale factor, checkpoints, and the shipped VAE."""
import math

import pytest
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

import ddpm_course as dc
from ddpm_course.autoencoder import (
    VAE,
    VAEConfig,
    encode_dataset,
    estimate_scale_factor,
    kl_divergence,
    load_latent,
    train_vae,
    vae_loss,
)
from ddpm_course.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = VAEConfig(base_channels=8, channel_mults=(1, 2), latent_channels=2)


def test_shapes_default_is_8x8x4_from_32x32():
    vae = VAE().eval()
    x = torch.zeros(3, 1, 32, 32)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (3, 4, 8, 8)
    assert vae.decode(mean).shape == (3, 1, 32, 32)
    assert vae.latent(x, torch.Generator().manual_seed(0)).shape == (3, 4, 8, 8)
    x_hat, m2, _ = vae.reconstruct(x, torch.Generator().manual_seed(0))
    assert x_hat.shape == x.shape and torch.equal(m2, mean)
    assert torch.equal(vae(x), vae.decode(mean))


def test_shapes_follow_the_config():
    vae = VAE(VAEConfig(in_channels=3, channel_mults=(1, 2, 2, 2), latent_channels=3))
    assert vae.config.factor == 8
    mean, _ = vae.encode(torch.zeros(2, 3, 32, 32))
    assert mean.shape == (2, 3, 4, 4)
    assert vae.decode(mean).shape == (2, 3, 32, 32)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    ours = kl_divergence(mean, logvar)
    ref = torch_kl(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).flatten(1).sum(1)
    assert ours.shape == (5,)
    assert torch.allclose(ours, ref, rtol=1e-12)


def test_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    mean = torch.tensor([[0.7, -1.2, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[-0.5, 0.3, 0.0]], dtype=torch.float64)
    std = (0.5 * logvar).exp()
    z = mean + std * torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    log_q = Normal(mean, std).log_prob(z).sum(1)
    log_p = Normal(0.0, 1.0).log_prob(z).sum(1)
    mc = (log_q - log_p)
    stderr = mc.std().item() / math.sqrt(mc.numel())
    assert abs(mc.mean().item() - kl_divergence(mean, logvar).item()) < 4 * stderr
    assert kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0  # q = p: no divergence


def test_latent_is_reparameterised_and_seeded():
    torch.manual_seed(0)
    vae = VAE(TINY).eval()
    x = dc.digits(16, split="test").images[:2]
    with torch.no_grad():
        mean, logvar = vae.encode(x)
        a = vae.latent(x, torch.Generator().manual_seed(3))
        b = vae.latent(x, torch.Generator().manual_seed(3))
        eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
        draws = torch.stack([vae.latent(x, torch.Generator().manual_seed(s)) for s in range(2000)])
    assert torch.equal(a, b)
    assert torch.allclose(a, mean + (0.5 * logvar).exp() * eps, atol=1e-6)
    assert torch.allclose(draws.mean(0), mean, atol=4 * (0.5 * logvar).exp().max().item() / math.sqrt(2000))
    assert torch.allclose(draws.std(0), (0.5 * logvar).exp(), rtol=0.1)


@pytest.mark.parametrize(
    "shape, match",
    [((2, 3, 32, 32), "x must be images of shape"), ((2, 1, 30, 32), "multiples of 4"), ((1, 32, 32), "shape")],
)
def test_bad_image_shapes_are_clear_errors(shape, match):
    with pytest.raises(ValueError, match=match):
        VAE().encode(torch.zeros(shape))


def test_bad_latent_and_config_errors():
    vae = VAE()
    with pytest.raises(ValueError, match=r"z must be latents of shape \(B, 4, h, w\)"):
        vae.decode(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="logvar must have the shape of mean"):
        kl_divergence(torch.zeros(2, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="channel_mults"):
        VAEConfig(channel_mults=())
    with pytest.raises(ValueError, match="groups"):
        VAEConfig(base_channels=12)
    with pytest.raises(TypeError, match="generator"):
        vae.latent(torch.zeros(1, 1, 32, 32), generator=0)
    with pytest.raises(ValueError, match="steps"):
        train_vae(vae, torch.zeros(4, 1, 32, 32), steps=0)


def test_training_lowers_the_loss_and_the_scale_factor_gives_unit_variance():
    images = dc.digits(16, split="train").images[:256]
    torch.manual_seed(0)
    run = train_vae(VAE(TINY), images, steps=60, batch_size=32, lr=3e-3, warmup_steps=5, progress=False,
                    generator=torch.Generator().manual_seed(0))
    assert run.steps == 60 and len(run.mse) == 60 and run.ema_model is not None
    assert sum(run.mse[-10:]) < 0.5 * sum(run.mse[:10])
    vae = run.final_model
    with torch.no_grad():
        before = encode_dataset(vae, images, torch.Generator().manual_seed(1)).std().item()
        scale = estimate_scale_factor(vae, images, torch.Generator().manual_seed(2))
        vae.scale_factor.fill_(scale)
        z = torch.cat([vae.scaled_latent(images, torch.Generator().manual_seed(s)) for s in (5, 6)])
        assert torch.allclose(vae.decode_scaled(z[:4]), vae.decode(z[:4] / scale))
    assert abs(scale * before - 1) < 0.02
    assert abs(z.std().item() - 1) < 0.02


def test_vae_loss_is_reconstruction_plus_weighted_kl():
    vae = VAE(TINY)
    x = dc.digits(16).images[:4]
    a = vae_loss(vae, x, 0.5, torch.Generator().manual_seed(0))
    b = vae_loss(vae, x, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(a.total, b.recon + 0.5 * a.kl)
    assert torch.allclose(a.mse * x[0].numel(), a.recon)


def test_checkpoint_round_trip_keeps_the_scale_factor(tmp_path):
    vae = VAE(TINY).eval()
    vae.scale_factor.fill_(0.4321)
    save_checkpoint(tmp_path / "vae", vae, dc.linear_schedule(10), sample_shape=(1, 16, 16))
    loaded = load_checkpoint(tmp_path / "vae")
    assert isinstance(loaded.model, VAE) and loaded.model.config == TINY
    assert loaded.model.scale_factor.item() == pytest.approx(0.4321)
    x = torch.zeros(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.model.encode(x)[0], vae.encode(x)[0])


def test_shipped_vae_reconstructs_held_out_digits():
    """Bound: a per-pixel mean squared error below 0.005 on the held-out split (pixels in [-1, 1],
    so an RMS error under 0.071, 3.5% of the range), decoding the posterior mean."""
    pipe = load_latent()
    test = dc.digits(32, split="test").images
    with torch.no_grad():
        mean, _ = pipe.vae.encode(test)
        mse = (pipe.vae.decode(mean) - test).square().mean().item()
    assert pipe.latent_shape == (4, 8, 8) and pipe.image_shape == (1, 32, 32)
    assert mse < 0.005, mse


def test_shipped_scale_factor_gives_unit_variance_on_the_training_data():
    pipe = load_latent()
    train = dc.digits(32, split="train").images
    z = encode_dataset(pipe.vae, train, torch.Generator().manual_seed(11)) * pipe.vae.scale_factor
    assert abs(z.std().item() - 1) < 0.03, z.std().item()
    assert pipe.vae.scale_factor.item() == pytest.approx(pipe.vae_record["scale_factor"])

"""Lesson 11's DCGAN on digits: the two networks, the two-player loop on images, and the shipped
generator ``digits-gan`` (kind "generator", refused by the DDPM samplers and commands)."""
import pytest
import torch

import ddpm_course as dc
from ddpm_course import cli, gan, samplers, shipped
from ddpm_course.checkpoint import load_checkpoint, save_checkpoint
from ddpm_course.models import DCGANConfig, DCGANDiscriminator, DCGANGenerator, build_model, model_spec
from ddpm_course.train import NonFiniteLossError

SMALL = DCGANConfig(image_size=16, channels=1, latent=4, width=4)


def _images(n: int = 32) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (n, 1, 16, 16)


def _players(config: DCGANConfig = SMALL):
    return lambda: (DCGANGenerator(config), DCGANDiscriminator(config))


@pytest.mark.parametrize("size, channels", [(8, 1), (16, 1), (32, 3)])
def test_the_shapes_and_the_range_of_g(size, channels):
    config = DCGANConfig(image_size=size, channels=channels, latent=6, width=4)
    gen, disc = DCGANGenerator(config), DCGANDiscriminator(config)
    x = gen(torch.randn(5, 6, generator=torch.Generator().manual_seed(0)) * 100)  # large z: tanh still bounds it
    assert x.shape == (5, channels, size, size) and x.min() >= -1 and x.max() <= 1
    assert disc(x).shape == (5,)
    assert config.levels == {8: 1, 16: 2, 32: 3}[size]


def test_the_networks_and_the_config_check_their_inputs():
    gen, disc = DCGANGenerator(SMALL), DCGANDiscriminator(SMALL)
    with pytest.raises(ValueError, match=r"z must have shape \(B, latent\) = \(B, 4\)"):
        gen(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\) = \(B, 1, 16, 16\)"):
        disc(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"image_size must be one of"):
        DCGANConfig(image_size=12)
    with pytest.raises(ValueError, match="width"):
        DCGANConfig(width=0)


def test_train_gan_on_images_is_repeatable_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    runs = [gan.train_gan(_images(), networks=_players(), steps=4, batch_size=8, lr=2e-4,
                          generator=torch.Generator().manual_seed(seed)) for seed in (3, 3, 4)]
    assert torch.equal(torch.random.get_rng_state(), state)
    a, b, c = runs
    assert a.d_losses == b.d_losses and a.g_losses == b.g_losses and len(a.d_losses) == 4
    assert a.d_losses != c.d_losses
    x1 = gan.gan_sample(a.generator, 6, torch.Generator().manual_seed(0))
    x2 = gan.gan_sample(b.generator, 6, torch.Generator().manual_seed(0))
    assert x1.shape == (6, 1, 16, 16) and torch.equal(x1, x2)
    assert not a.generator.training and not a.discriminator.training


def test_train_gan_checks_the_networks_and_the_data():
    with pytest.raises(ValueError, match="config must be None when networks is given"):
        gan.train_gan(_images(), networks=_players(), config=gan.GANConfig(), steps=1)
    with pytest.raises(TypeError, match="networks must be a callable"):
        gan.train_gan(_images(), networks=(DCGANGenerator(SMALL), DCGANDiscriminator(SMALL)), steps=1)
    with pytest.raises(ValueError, match=r"data must be a tensor of shape \(N, dim\) or \(N, C, H, W\)"):
        gan.train_gan(torch.zeros(4, 16, 16), networks=_players(), steps=1)
    with pytest.raises(ValueError, match=r"data must be a tensor of shape \(N, dim\)"):
        gan.train_gan(_images(), steps=1)  # images need networks: the default players are the point MLPs
    no_latent = lambda: (torch.nn.Linear(2, 2), DCGANDiscriminator(SMALL))  # noqa: E731
    with pytest.raises(ValueError, match="config.latent"):
        gan.train_gan(_images(), networks=no_latent, steps=1)


def test_the_nan_guard_fires_on_images_before_an_update():
    data = _images()
    data[:] = float("nan")
    built = []

    def players():
        built.append(_players()())
        return built[-1]

    with pytest.raises(NonFiniteLossError, match="the discriminator's loss"):
        gan.train_gan(data, networks=players, steps=3, batch_size=8, generator=torch.Generator().manual_seed(0))
    gen, disc = built[0]
    fresh = _players()
    with torch.random.fork_rng(devices=[]):  # the same initial weights as the run's
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
        gen0, disc0 = fresh()
    for before, after in ((gen0, gen), (disc0, disc)):
        for (name, p0), p in zip(before.state_dict().items(), after.state_dict().values()):
            if p0.is_floating_point() and "running" not in name:  # BatchNorm's statistics move in a forward pass
                assert torch.equal(p0, p), name


def test_a_dcgan_generator_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    gen = DCGANGenerator(SMALL)
    gen.train()(torch.randn(16, 4))  # BatchNorm statistics away from their start
    gen.eval()
    save_checkpoint(tmp_path / "g", gen, dc.linear_schedule(10), sample_shape=(1, 16, 16))
    ckpt = load_checkpoint(tmp_path / "g")
    assert ckpt.kind == "generator" and shipped.kind_of(ckpt.model) == "generator" and ckpt.arch == "DCGANGenerator"
    assert model_spec(ckpt.model) == model_spec(gen)
    assert isinstance(build_model(*model_spec(gen)), DCGANGenerator)
    x = gan.gan_sample(ckpt.model, 5, torch.Generator().manual_seed(1))
    assert torch.allclose(x, gan.gan_sample(gen, 5, torch.Generator().manual_seed(1)), atol=1e-6)


def test_the_shipped_gan_loads_by_name_and_samples_digits():
    ckpt = dc.pretrained("digits-gan")
    assert ckpt.kind == "generator" and isinstance(ckpt.model, DCGANGenerator) and ckpt.sample_shape == (1, 16, 16)
    assert shipped.load("digits-gan").kind == "generator"
    assert ckpt.record["command"].startswith(shipped.SHIPPED["digits-gan"].command.split(" --steps")[0])
    x = gan.gan_sample(ckpt.model, 300, torch.Generator().manual_seed(0))
    assert x.shape == (300, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
    vae_fd = dc.metrics.digits_fd(shipped.load_elbo_vae().model.decode(
        torch.randn(300, 4, 8, 8, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)).fd
    assert dc.metrics.digits_fd(x).fd < vae_fd  # a fair rival: closer to real digits than the VAE's prior samples


def test_the_samplers_and_the_commands_refuse_the_gan(tmp_path, capsys):
    ckpt = dc.pretrained("digits-gan")
    with pytest.raises(ValueError, match=r"model is a GAN generator G\(z\) -> image, not a diffusion model: "
                                         r"sample it with ddpm_course\.gan\.gan_sample"):
        samplers.ddim_sample(ckpt.model, ckpt.schedule, (1, 1, 16, 16), steps=2)
    with pytest.raises(ValueError, match="model is a noise predictor"):
        gan.gan_sample(dc.pretrained("digits").model, 2)
    for command in ("sample", "evaluate"):
        out = tmp_path / "x.png"
        extra = ["--out", str(out)] if command == "sample" else []
        argv = [command, "--model", "digits-gan", "--device", "cpu", *extra]
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert "--model digits-gan is a GAN generator" in err and f"ddpm-course {command} runs noise predictors" in err
        assert not out.exists()


def test_the_maker_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "g"
    save_checkpoint(target, DCGANGenerator(SMALL), dc.linear_schedule(10), sample_shape=(1, 16, 16))
    with pytest.raises(SystemExit):
        gan._main(["--out", str(target), "--steps", "1"])
    assert "already exists; pass --overwrite" in capsys.readouterr().err

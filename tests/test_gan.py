"""The GAN pieces: the two losses against their definitions, gradients, repeatable training."""
import math

import pytest
import torch
import torch.nn.functional as F

from ddpm_course import gan

pytestmark = pytest.mark.usefixtures("one_thread")


def test_discriminator_loss_is_binary_cross_entropy():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(7, generator=g), torch.randn(5, generator=g)
    bce = F.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones(7)) + bce(fake, torch.zeros(5))
    assert torch.allclose(gan.discriminator_loss(real, fake), expected, atol=1e-6)
    # at the game's equilibrium D = 1/2 everywhere and the loss is 2 log 2
    assert math.isclose(gan.discriminator_loss(torch.zeros(3), torch.zeros(3)).item(), 2 * math.log(2), rel_tol=1e-6)


def test_generator_losses_against_their_formulas():
    logits = torch.linspace(-4, 4, 9, dtype=torch.float64)
    d = torch.sigmoid(logits)
    assert torch.allclose(gan.generator_loss(logits, "non_saturating"), (-d.log()).mean())
    assert torch.allclose(gan.generator_loss(logits, "minimax"), (1 - d).log().mean())


def test_minimax_loss_saturates_where_the_discriminator_wins():
    """At l = -10 (D sure the fakes are fake) the minimax gradient is sigmoid(-10) ~ 5e-5 times the
    non-saturating one's: the reason Goodfellow et al. recommend the latter."""
    grads = {}
    for kind in gan.G_LOSSES:
        logit = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
        gan.generator_loss(logit, kind).backward()
        grads[kind] = logit.grad.item()
    assert math.isclose(grads["non_saturating"], -1 / (1 + math.exp(-10)), rel_tol=1e-9)
    assert math.isclose(grads["minimax"], -1 / (1 + math.exp(10)), rel_tol=1e-9)
    assert abs(grads["minimax"]) < 1e-4 * abs(grads["non_saturating"])


def test_networks_shapes_and_checks():
    config = gan.GANConfig(dim=3, latent=4, hidden=8, depth=2)
    gen, disc = gan.Generator(config), gan.Discriminator(config)
    assert gen(torch.randn(5, 4)).shape == (5, 3)
    assert disc(torch.randn(5, 3)).shape == (5,)
    with pytest.raises(ValueError, match="z must have shape"):
        gen(torch.randn(5, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        disc(torch.randn(5, 4))
    with pytest.raises(ValueError, match="hidden"):
        gan.GANConfig(hidden=0)


def _blob(n=512, seed=1):
    return torch.tensor([1.5, -1.0]) + 0.1 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def test_train_gan_is_repeatable_and_records_every_step():
    data = _blob()
    config = gan.GANConfig(hidden=16, depth=2)
    a = gan.train_gan(data, config=config, steps=30, batch_size=32, generator=torch.Generator().manual_seed(3))
    b = gan.train_gan(data, config=config, steps=30, batch_size=32, generator=torch.Generator().manual_seed(3))
    c = gan.train_gan(data, config=config, steps=30, batch_size=32, generator=torch.Generator().manual_seed(4))
    assert len(a.d_losses) == len(a.g_losses) == a.steps == 30
    assert a.d_losses == b.d_losses and a.g_losses == b.g_losses
    assert a.d_losses != c.d_losses
    x1 = gan.gan_sample(a.generator, 10, torch.Generator().manual_seed(0))
    x2 = gan.gan_sample(b.generator, 10, torch.Generator().manual_seed(0))
    assert x1.shape == (10, 2) and torch.equal(x1, x2)


def test_train_gan_moves_the_samples_onto_the_data():
    data = _blob()
    res = gan.train_gan(data, config=gan.GANConfig(hidden=32, depth=2), steps=400, batch_size=128,
                        generator=torch.Generator().manual_seed(0))
    x = gan.gan_sample(res.generator, 500, torch.Generator().manual_seed(1))
    before = gan.Generator(gan.GANConfig(hidden=32, depth=2))
    x0 = gan.gan_sample(before, 500, torch.Generator().manual_seed(1))
    target = torch.tensor([1.5, -1.0])
    assert (x.mean(0) - target).norm() < 0.3, x.mean(0)
    assert (x.mean(0) - target).norm() < 0.3 * (x0.mean(0) - target).norm()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=0.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(g_loss="wasserstein"), "g_loss"),
        (dict(config=gan.GANConfig(dim=3)), "config.dim"),
    ],
)
def test_train_gan_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gan.train_gan(_blob(16), **kwargs)


def test_train_gan_rejects_bad_data_and_generator():
    with pytest.raises(ValueError, match="data"):
        gan.train_gan(torch.randn(10))
    with pytest.raises(TypeError, match="generator"):
        gan.train_gan(_blob(16), steps=1, generator=0)
    with pytest.raises(ValueError, match="kind"):
        gan.generator_loss(torch.zeros(2), "hinge")

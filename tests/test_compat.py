"""Renamed keyword arguments (``_compat.renamed_arguments``): the old keyword still works, warns with
the new spelling and gives the same result; the signature shows the new names only."""
from __future__ import annotations

import copy
import dataclasses
import inspect
import warnings

import pytest
import torch
from torch import Tensor, nn

from ddpm_course import autoencoder, compare, distill, flow, gan, guidance, metrics, score
from ddpm_course._compat import renamed_arguments
from ddpm_course.models.toy import GANConfig, Generator, PointVAE, PointVAEConfig
from ddpm_course.models.vae import VAE, VAEConfig
from ddpm_course.oracle import ring_mixture

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

torch.manual_seed(0)
_VAE = VAE(VAEConfig(in_channels=1, base_channels=8, latent_channels=2, groups=4)).eval()
_IMAGES = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
_GEN = Generator(GANConfig(hidden=8, depth=1))
_POINT_VAE = PointVAE(PointVAEConfig(hidden=8, depth=1))
_POINTS = torch.randn(6, 2, generator=torch.Generator().manual_seed(2))
_SIGMAS = score.geometric_sigmas(1.0, 0.1, 3)
_ORACLE = flow.VelocityOracle(ring_mixture())


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fresh(model: nn.Module):
    """A copy of a model per call, so that training one call's copy leaves the other's untouched."""
    return lambda: copy.deepcopy(model)


def _is(value):
    return lambda: value


def _gaussian_score(x: Tensor, level: int = 0) -> Tensor:
    return -x


# (function, old keyword, new keyword, the renamed argument's value (a fresh one per call), the other arguments)
CASES = [
    (autoencoder.vae_loss, "vae", "model", _fresh(_VAE), lambda: dict(x=_IMAGES, kl_weight=0.5, generator=_g())),
    (autoencoder.train_vae, "vae", "model", _fresh(_VAE),
     lambda: dict(images=_IMAGES, steps=2, batch_size=2, warmup_steps=1, generator=_g(), progress=False)),
    (autoencoder.encode_dataset, "vae", "model", _fresh(_VAE), lambda: dict(images=_IMAGES, generator=_g(), draws=2)),
    (autoencoder.estimate_scale_factor, "vae", "model", _fresh(_VAE), lambda: dict(images=_IMAGES, generator=_g())),
    (gan.gan_sample, "gen", "model", _fresh(_GEN), lambda: dict(n=3, generator=_g())),
    (compare.vae_negative_elbo, "vae", "model", _fresh(_POINT_VAE), lambda: dict(x=_POINTS, generator=_g())),
    (compare.vae_sample, "vae", "model", _fresh(_POINT_VAE), lambda: dict(n=3, generator=_g(), decoder_noise=True)),
    (score.langevin, "score", "model", _is(_gaussian_score),
     lambda: dict(x=_POINTS, step_size=0.1, steps=3, generator=_g())),
    (score.langevin, "n_steps", "steps", _is(3),
     lambda: dict(model=_gaussian_score, x=_POINTS, step_size=0.1, generator=_g())),
    (score.annealed_langevin, "score_fn", "model", _is(_gaussian_score),
     lambda: dict(x=_POINTS, sigmas=_SIGMAS, steps_per_level=2, generator=_g())),
    (score.annealed_langevin, "n_steps_each", "steps_per_level", _is(2),
     lambda: dict(model=_gaussian_score, x=_POINTS, sigmas=_SIGMAS, generator=_g())),
    (distill.reflow_pairs, "velocity", "model", _is(_ORACLE), lambda: dict(x1=_POINTS.double(), steps=3)),
    (distill.straightness, "velocity", "model", _is(_ORACLE), lambda: dict(x1=_POINTS.double(), steps=3)),
]


def _name(func) -> str:
    return f"{func.__module__.rsplit('.', 1)[-1]}.{func.__qualname__}"


def _assert_same(got, expected) -> None:
    if isinstance(expected, Tensor):
        assert torch.equal(got, expected)
    elif isinstance(expected, nn.Module):
        _assert_same(list(got.state_dict().values()), list(expected.state_dict().values()))
    elif dataclasses.is_dataclass(expected):
        for field in dataclasses.fields(expected):
            if field.name != "seconds":  # wall time
                _assert_same(getattr(got, field.name), getattr(expected, field.name))
    elif isinstance(expected, (tuple, list)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for a, b in zip(got, expected):
            _assert_same(a, b)
    else:
        assert got == expected


@pytest.mark.parametrize(("func", "old", "new", "value", "others"), CASES,
                         ids=[f"{_name(c[0])}-{c[1]}" for c in CASES])
def test_a_renamed_argument_still_works_and_says_its_new_name(func, old, new, value, others):
    params = inspect.signature(func).parameters
    assert new in params and old not in params
    expected = func(**{new: value()}, **others())
    message = rf"{_name(func)}\({old}=\.\.\.\) is now {_name(func)}\({new}=\.\.\.\); the old name will go"
    with pytest.warns(DeprecationWarning, match=message) as record:
        got = func(**{old: value()}, **others())
    assert [w.filename for w in record if f"({old}=...) is now" in str(w.message)] == [__file__]  # the caller's line
    _assert_same(got, expected)
    with pytest.raises(TypeError, match=rf"got both {old}= and {new}= \(its new name\); pass only {new}="):
        func(**{old: value(), new: value()}, **others())


def test_every_renamed_argument_is_tested_above():
    found = {(_name(f), old) for module in (autoencoder, compare, distill, flow, gan, guidance, metrics, score)
             for f in vars(module).values() if inspect.isfunction(f) and f.__module__ == module.__name__
             for old in getattr(f, "__renamed_arguments__", {})}
    assert found == {(_name(c[0]), c[1]) for c in CASES}


def test_the_old_keyword_beside_the_new_positional_argument_is_refused():
    with pytest.raises(TypeError, match="got both vae= and model="):
        autoencoder.vae_loss(_VAE, _IMAGES, 0.5, vae=_VAE)


def test_renamed_arguments_checks_its_names_and_keeps_the_function():
    def f(model, steps=1):
        """f's doc."""
        return model, steps

    g = renamed_arguments(net="model")(f)
    assert g.__doc__ == "f's doc." and g.__wrapped__ is f and inspect.signature(g) == inspect.signature(f)
    assert g.__renamed_arguments__ == {"net": "model"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert g(1, steps=2) == (1, 2)  # the new names: no warning
    with pytest.raises(TypeError, match="must take model2 and not net"):
        renamed_arguments(net="model2")(f)
    with pytest.raises(TypeError, match="must take steps and not model"):
        renamed_arguments(model="steps")(f)

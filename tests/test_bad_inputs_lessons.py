"""Bad input to the later lessons' functions (score, flow, autoencoder) and to every ``device=``.

The rule: a tensor of data given to a public function (points, images, a starting state, a time
or an alpha-bar) is checked where it enters, so NaN, infinities, values outside their range,
broadcastable shapes and level indices past the table are errors that name the argument, not
NaN results or a raw ``IndexError``. Network outputs inside training are *not* checked there: a
NaN in the forward pass must reach the loss, where ``train.fit`` names the step
(tests/test_fit.py). A device that this machine lacks is refused by the one device check,
``_checks.device_or_none``, wherever a device is taken.

Each row: an id, a call, the exception type and a fragment of its message (a regular expression).
"""
from __future__ import annotations

import pytest
import torch

import ddpm_course as dc
from ddpm_course import _checks, autoencoder, flow, oracle, samplers, score
from ddpm_course.models import VAE, MLPConfig, MLPDenoiser, VAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

NAN, INF = float("nan"), float("inf")
V = ValueError
OK = torch.zeros(4, 2)
RING = oracle.ring_mixture(4)
SIGMAS = score.geometric_sigmas(1.0, 0.01, 5)


def with_value(value: float, shape=(4, 2)) -> torch.Tensor:
    x = torch.zeros(shape)
    x.view(-1)[1] = value
    return x


def net(x, t):
    return torch.zeros_like(x)


def small_vae() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(in_channels=1, base_channels=8, latent_channels=2, groups=4)).eval()


BAD = [NAN, INF, -INF]

CASES = [
    *[(f"dsm_loss x0 {v}", lambda v=v: score.dsm_loss(net, with_value(v), SIGMAS), V, "x0 must be finite")
      for v in BAD],
    ("dsm_loss noise broadcast", lambda: score.dsm_loss(net, OK, SIGMAS, noise=torch.zeros(1, 2)), V,
     r"noise must have the shape of x0 \(4, 2\)"),
    ("dsm_loss level past the table", lambda: score.dsm_loss(net, OK, SIGMAS, level=torch.full((4,), 5)), V,
     r"level must hold indices in \[0, 4\]"),
    ("dsm_loss level negative", lambda: score.dsm_loss(net, OK, SIGMAS, level=torch.full((4,), -1)), V,
     r"level must hold indices in \[0, 4\]"),
    ("dsm_loss level float", lambda: score.dsm_loss(net, OK, SIGMAS, level=torch.zeros(4)), V,
     r"level must be a \(4,\) integer tensor"),
    ("dsm_loss level shape", lambda: score.dsm_loss(net, OK, SIGMAS, level=torch.zeros(2, dtype=torch.long)), V,
     r"level must be a \(4,\) integer tensor"),
    ("dsm_loss x0 1-D", lambda: score.dsm_loss(net, torch.zeros(4), SIGMAS), V, "x0 must have a batch dimension"),
    *[(f"learned_score x {v}", lambda v=v: score.learned_score(net, SIGMAS)(with_value(v), 0), V, "x must be finite")
      for v in BAD],
    *[(f"learned_score level {bad}", lambda bad=bad: score.learned_score(net, SIGMAS)(OK, bad), V,
       r"level must be an integer in \[0, 4\]") for bad in (5, -1)],
    ("learned_score level float", lambda: score.learned_score(net, SIGMAS)(OK, 1.5), V, "level must be an integer"),
    *[(f"mixture_score x {v}", lambda v=v: score.mixture_score(RING, with_value(v), 0.5), V, "x must be finite")
      for v in BAD],
    ("langevin x nan", lambda: score.langevin(lambda x: -x, with_value(NAN), step_size=0.1, steps=2), V,
     "x must be finite"),
    ("langevin state turns nan", lambda: score.langevin(lambda x: x * NAN, OK, step_size=0.1, steps=3),
     samplers.NonFiniteSampleError, "Langevin state became NaN or infinite at step 0 of 3"),
    ("langevin state overflows", lambda: score.langevin(lambda x: 1e30 * (x + 1), OK, step_size=1.0, steps=50),
     samplers.NonFiniteSampleError, "Langevin state became NaN or infinite at step"),
    ("annealed x inf", lambda: score.annealed_langevin(lambda x, i: -x, with_value(INF), SIGMAS, steps_per_level=2), V,
     "x must be finite"),
    ("annealed steps_per_level 0", lambda: score.annealed_langevin(lambda x, i: -x, OK, SIGMAS, steps_per_level=0), V,
     r"steps_per_level must be an integer in \[1, 100000\]"),
    *[(f"flow_path x0 {v}", lambda v=v: flow.flow_path(with_value(v), OK, 0.5), V, "x0 must be finite") for v in BAD],
    ("flow_path eps nan", lambda: flow.flow_path(OK, with_value(NAN), 0.5), V, "eps must be finite"),
    ("flow_path eps broadcast", lambda: flow.flow_path(OK, torch.zeros(1, 2), 0.5), V,
     r"eps must have the shape of x0 \(4, 2\)"),
    ("velocity_target x0 nan", lambda: flow.velocity_target(with_value(NAN), OK), V, "x0 must be finite"),
    ("velocity_target ints", lambda: flow.velocity_target(torch.zeros(4, 2, dtype=torch.long), OK), TypeError,
     "x0 must be a floating-point tensor"),
    ("velocity_target eps ints", lambda: flow.velocity_target(OK, torch.zeros(4, 2, dtype=torch.long)), TypeError,
     "eps must be a floating-point tensor"),
    ("flow_matching_loss x0 inf", lambda: flow.flow_matching_loss(net, with_value(INF)), V, "x0 must be finite"),
    ("flow_matching_loss noise broadcast", lambda: flow.flow_matching_loss(net, OK, noise=torch.zeros(1, 2)), V,
     r"eps must have the shape of x0"),
    ("flow_time abar 2", lambda: flow.flow_time(2.0), V, r"abar must be a finite number in \[0.0, 1.0\]"),
    ("flow_time abar -0.1", lambda: flow.flow_time(-0.1), V, "abar must be a finite number"),
    ("flow_time abar nan", lambda: flow.flow_time(NAN), V, "abar must be a finite number"),
    ("flow_time tensor nan", lambda: flow.flow_time(torch.tensor([0.5, NAN])), V, r"abar must lie in \[0, 1\]"),
    ("flow_time tensor 1.5", lambda: flow.flow_time(torch.tensor([0.5, 1.5])), V, r"abar must lie in \[0, 1\]"),
    ("flow_time tensor ints", lambda: flow.flow_time(torch.tensor([0, 1])), V, "abar must be a float"),
    ("flow_abar t 5", lambda: flow.flow_abar(torch.tensor([5.0])), V, r"t must lie in \[0, 1\]"),
    ("flow_abar t nan", lambda: flow.flow_abar(NAN), V, "t must be a finite number"),
    ("ddpm_to_flow abar 2", lambda: flow.ddpm_to_flow(OK, 2.0), V, "abar must be a finite number"),
    ("ddpm_to_flow x nan", lambda: flow.ddpm_to_flow(with_value(NAN), 0.5), V, "x_ddpm must be finite"),
    ("flow_to_ddpm x inf", lambda: flow.flow_to_ddpm(with_value(INF), 0.5), V, "x_flow must be finite"),
    *[(f"mixture_velocity x {v}", lambda v=v: flow.mixture_velocity(RING, with_value(v), 0.5), V, "x must be finite")
      for v in BAD],
    ("kl logvar broadcast", lambda: autoencoder.kl_divergence(OK, torch.zeros(1, 2)), V,
     r"logvar must have the shape of mean \(4, 2\)"),
    ("kl mean 1-D", lambda: autoencoder.kl_divergence(torch.zeros(4), torch.zeros(4)), V,
     "mean must have a batch dimension"),
    ("vae_loss x nan", lambda: autoencoder.vae_loss(small_vae(), with_value(NAN, (2, 1, 16, 16)), 1.0), V,
     "x must be finite images"),
    ("encode_dataset images inf", lambda: autoencoder.encode_dataset(small_vae(), with_value(INF, (2, 1, 16, 16))),
     V, "images must be finite images"),
    ("estimate_scale_factor images nan",
     lambda: autoencoder.estimate_scale_factor(small_vae(), with_value(NAN, (2, 1, 16, 16))), V,
     "images must be finite images"),
]


@pytest.mark.parametrize("name, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_gets_an_error_naming_it(name, call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_good_inputs_still_pass_at_the_edges():
    """The checks are not stricter than the mathematics: both ends of [0, 1] and an empty time tensor pass."""
    assert flow.flow_time(0.0) == 1.0 and flow.flow_time(1.0) == 0.0
    assert flow.flow_abar(torch.tensor([0.0, 1.0])).tolist() == [1.0, 0.0]
    assert flow.flow_time(torch.zeros(0, dtype=torch.float64)).numel() == 0
    assert torch.isfinite(score.dsm_loss(net, OK, SIGMAS, level=torch.tensor([0, 1, 2, 4])))
    assert score.learned_score(net, SIGMAS)(OK, 4).shape == (4, 2)


# ----------------------------------------------------------------------------- the one device check

DEVICE_CALLS = {
    "samplers": lambda d: samplers.ddim_sample(net, dc.linear_schedule(10), (2, 2), steps=2, device=d),
    "checkpoint": lambda d: dc.pretrained("toy2d", device=d),
    "train": lambda d: dc.train.train(MLPDenoiser(MLPConfig(hidden=8, depth=1, time_dim=8)),
                                      dc.linear_schedule(10), OK, steps=1, device=d, progress=False),
    "schedule": lambda d: dc.linear_schedule(10).to(d),
}


@pytest.mark.parametrize("where", list(DEVICE_CALLS))
@pytest.mark.parametrize("device, message", [
    ("tpu", "device must be a torch device such as 'cpu', 'cuda'"),
    (3, "device must be a torch device such as"),
    ("cuda" if not torch.cuda.is_available() else "cuda:99",
     "device cuda asked for, but CUDA is not available here" if not torch.cuda.is_available()
     else "device cuda:99 asked for, but this machine has"),
])
def test_every_device_argument_is_checked_the_same_way(where, device, message):
    with pytest.raises(ValueError, match=message):
        DEVICE_CALLS[where](device)


def test_device_check_passes_what_exists():
    assert _checks.device_or_none("device", None) is None
    assert _checks.device_or_none("device", "cpu") == torch.device("cpu")
    assert _checks.device_or_none("device", torch.device("cpu")) == torch.device("cpu")
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        with pytest.raises(ValueError, match="device mps asked for, but Apple's MPS is not available here"):
            _checks.device_or_none("device", "mps")

"""Why diffusion: a GAN, a VAE and a DDPM trained on the same 2-D data, measured row by row.

The article's comparison table claims that diffusion models cover the data's modes (GANs
drop some), give sharp samples (VAEs blur), train stably (GANs oscillate) and pay for it
with slow sampling (one network pass for a GAN or a VAE, many for a DDPM); its text credits
VAEs with a likelihood, which a DDPM gives too (a bound). On a Gaussian mixture each of these is a
number, because the modes and the density are known exactly (``oracle.py``):

| measure            | code                                | what it is                                            |
|--------------------|-------------------------------------|-------------------------------------------------------|
| mode counts        | ``mode_counts``                     | samples within ``radius`` stds of each mode centre    |
| modes covered      | ``modes_covered``                   | modes with ``min_share`` of their fair share or more  |
| core fractions     | ``core_fractions``                  | samples within 1 std of each centre / real data's     |
| modes reproduced   | ``modes_reproduced``                | modes whose core fraction is ``min_fraction`` or more |
| run verdict        | ``run_verdict``                     | good, collapsed, blurred or failed, from P and R      |
| a null model       | ``nothing_learned``                 | uniform points on the data's box: the control row     |
| high quality       | ``high_quality``                    | share of samples within ``radius`` stds of some mode  |
| precision / recall | ``metrics.precision_recall``        | Kynkaanniemi et al. (2019): k-NN balls, real and fake |
| sharpness          | ``nearest_mode_distance``           | mean distance to the nearest centre (truth s sqrt(pi/2)) |
| stability          | ``loss_roughness``, the runs        | wobble of the smoothed loss; quality over seeds, lrs  |
| speed              | ``passes_per_sample``, timing       | network evaluations, seconds per 1000 samples         |
| likelihood         | ``vae_negative_elbo``, ``ddpm_nll_bound`` | upper bounds on -log p(x), nats per point       |

Why "modes covered" is not enough: a uniform smear over the data's box, or a uniform annulus
over the ring, puts a few samples within 3 stds of every centre, so a count with a low bar
"covers" every mode while the model learned no mode at all. A mode is a *peak* of density; a
sampler reproduces it when it puts about as many points in its core (within 1 std of the centre)
as the data does, n w_k P(chi^2_d <= 1), which a smear, an annulus or a blur cannot.

The VAE is Kingma & Welling (2014), "Auto-Encoding Variational Bayes": an MLP encoder
q(z|x) = N(mu(x), diag s(x)^2), an MLP decoder p(x|z) = N(m(z), diag sigma^2) with one
learned sigma per dimension, and a standard normal prior on z. The DDPM bound is Ho et al.
(2020) eq. 5 with the ELBO weights of ``losses.elbo_weights``. Precision and recall are
Kynkaanniemi, Karras, Laine, Lehtinen & Aila (2019), "Improved Precision and Recall Metric
for Assessing Generative Models".

| symbol   | code          | shape   |
|----------|---------------|---------|
| x        | ``x``         | (n, d)  |
| mu_k     | ``mixture.means`` | (K, d) |
| z        | ``z``         | (n, latent) |
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._checks import finite_float, generator_or_none, int_at_least
from ._compat import renamed, renamed_arguments
from ._model import device_and_dtype, eval_mode
from .gan import GANConfig, gan_sample, train_gan
from .losses import elbo_weights
from .metrics import precision_recall
from .models.toy import PointVAE, PointVAEConfig
from .oracle import GaussianMixture
from .schedules import Schedule, linear_schedule
from .train import Objective, fit, train

__all__ = [
    "MODELS",
    "PointVAE",
    "Budget",
    "Comparison",
    "ModelReport",
    "NegativeELBO",
    "RunReport",
    "PointVAEConfig",
    "VAEResult",
    "compare",
    "core_fractions",
    "ddpm_nll_bound",
    "grid_mixture",
    "high_quality",
    "loss_roughness",
    "mode_counts",
    "modes_covered",
    "modes_reproduced",
    "nothing_learned",
    "run_verdict",
    "train_point_vae",
    "vae_negative_elbo",
    "vae_sample",
]

MODELS = ("GAN", "VAE", "DDPM")


def grid_mixture(k: int = 5, spacing: float = 0.5, std: float = 0.05) -> GaussianMixture:
    """k x k equal-weight isotropic Gaussians on a square grid centred at 0 (the 5x5 grid of the GAN papers)."""
    k = int_at_least("k", k, 1)
    spacing = finite_float("spacing", spacing, 0, low_open=True)
    std = finite_float("std", std, 0, low_open=True)
    line = (torch.arange(k, dtype=torch.float64) - (k - 1) / 2) * spacing  # (k,)
    means = torch.cartesian_prod(line, line)  # (k*k, 2)
    covs = (std**2) * torch.eye(2, dtype=torch.float64).expand(k * k, 2, 2).clone()
    return GaussianMixture(torch.full((k * k,), 1.0 / (k * k), dtype=torch.float64), means, covs)


# ---------------------------------------------------------------------------- mode coverage


def _check_points(x: Tensor, dim: int, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != dim or x.shape[0] < 1:
        got = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{name} must be a tensor of shape (n, {dim}) with n >= 1; got {got}")
    return x.detach().cpu().to(torch.float64)


def _component_std(mixture: GaussianMixture) -> Tensor:
    """One spread per component, sqrt(trace(S_k) / d): the std of an isotropic component. (K,)"""
    return (torch.diagonal(mixture.covs, dim1=1, dim2=2).sum(1) / mixture.dim).sqrt()


def mode_counts(x: Tensor, mixture: GaussianMixture, radius: float = 3.0) -> Tensor:
    """How many points of x (n, d) lie within ``radius`` stds of each mode's centre, counting each
    point once, for its nearest centre. Returns (K,) int64; points far from every centre count nowhere."""
    radius = finite_float("radius", radius, 0, low_open=True)
    x = _check_points(x, mixture.dim)
    dist = torch.cdist(x, mixture.means)  # (n, K)
    nearest = dist.min(dim=1)
    close = nearest.values <= radius * _component_std(mixture)[nearest.indices]  # (n,)
    return torch.bincount(nearest.indices[close], minlength=mixture.means.shape[0])


def modes_covered(counts: Tensor, weights: Tensor, n: int, min_share: float = 0.1) -> int:
    """Modes whose count reaches ``min_share`` of their fair share n * w_k (and at least one point).

    A perfect sampler puts about n * w_k points on mode k; a mode that gets a tenth of that is
    present, while one or two strays on a dropped mode do not make it covered.
    """
    n = int_at_least("n", n, 1)
    min_share = finite_float("min_share", min_share, 0, 1)
    if counts.shape != weights.shape:
        shapes = f"{tuple(counts.shape)}, {tuple(weights.shape)}"
        raise ValueError(f"counts and weights must have the same shape (K,); got {shapes}")
    need = torch.clamp(min_share * n * weights.double(), min=1.0)  # (K,)
    return int((counts.double() >= need).sum())


def core_fractions(x: Tensor, mixture: GaussianMixture, radius: float = 1.0) -> Tensor:
    """Samples within ``radius`` stds of each centre (nearest centre only) over what real data puts
    there on average, n w_k P(chi^2_d <= radius^2): (K,) float64, about 1 for a perfect sampler.

    The components are taken as isotropic (``_component_std``), as in every mixture of the course.
    """
    radius = finite_float("radius", radius, 0, low_open=True)
    x = _check_points(x, mixture.dim)
    counts = mode_counts(x, mixture, radius).double()  # (K,)
    share = torch.special.gammainc(torch.tensor(mixture.dim / 2, dtype=torch.float64),
                                   torch.tensor(radius**2 / 2, dtype=torch.float64))  # P(chi^2_d <= r^2)
    return counts / (x.shape[0] * mixture.weights.double() * share)


def modes_reproduced(x: Tensor, mixture: GaussianMixture, radius: float = 1.0, min_fraction: float = 0.5) -> int:
    """Modes whose core holds at least ``min_fraction`` of what real data puts there (:func:`core_fractions`).

    Real data: every mode (at n = 1000 on the ring one of the 8 core fractions falls below 0.5 in
    about one draw in a thousand); a uniform smear, or a uniform annulus over the ring's 3-std band:
    none; a model that drops modes: the others.
    """
    min_fraction = finite_float("min_fraction", min_fraction, 0, low_open=True)
    return int((core_fractions(x, mixture, radius) >= min_fraction).sum())


def nothing_learned(mixture: GaussianMixture, n: int, generator: torch.Generator | None = None) -> Tensor:
    """A model that learned nothing but where the data lies: n points uniform on the box that
    holds every centre widened by 3 stds of its component. Returns (n, d) float64."""
    n = int_at_least("n", n, 1)
    generator = generator_or_none("generator", generator)
    pad = 3 * _component_std(mixture).max()
    low, high = mixture.means.min(0).values - pad, mixture.means.max(0).values + pad  # (d,), (d,)
    return low + (high - low) * torch.rand(n, mixture.dim, generator=generator, dtype=torch.float64)


def run_verdict(precision: float, recall: float, real_precision: float, real_recall: float,
                keep: float = 0.8) -> str:
    """Name a run by its precision and recall: each is kept when it reaches ``keep`` times real data's.

    "good" (both kept), "collapsed" (precision kept, recall lost: what mode collapse is),
    "blurred" (recall kept, precision lost), "failed" (both lost: it did not learn the data).
    """
    keep = finite_float("keep", keep, 0, 1, low_open=True)
    kept_p, kept_r = precision >= keep * real_precision, recall >= keep * real_recall
    return {(True, True): "good", (True, False): "collapsed", (False, True): "blurred",
            (False, False): "failed"}[(kept_p, kept_r)]


def high_quality(x: Tensor, mixture: GaussianMixture, radius: float = 3.0) -> float:
    """Fraction of points within ``radius`` stds of some mode's centre (a perfect sampler: 98.9% at 3 in 2-D)."""
    return float(mode_counts(x, mixture, radius).sum()) / x.shape[0]


def loss_roughness(losses: list[float] | Tensor, window: int = 50) -> float:
    """How much the smoothed loss wobbles late in training, relative to its level.

    Take the last half of the curve, average it over windows of ``window`` steps (batch noise
    shrinks by sqrt(window)), fit a straight line through the window means and return the std of
    the residuals over the mean |loss|. A loss that settles, or keeps descending steadily, gives
    about (batch noise) / sqrt(window); a loss that oscillates gives the oscillation's size.
    """
    window = int_at_least("window", window, 1)
    curve = torch.as_tensor(losses, dtype=torch.float64)
    late = curve[curve.numel() // 2 :]
    if late.numel() < 3 * window:
        raise ValueError(f"need at least {6 * window} losses for window {window}; got {curve.numel()}")
    means = late[: late.numel() // window * window].reshape(-1, window).mean(dim=1)  # (W,)
    pos = torch.arange(means.numel(), dtype=torch.float64)
    design = torch.stack([torch.ones_like(pos), pos], dim=1)  # (W, 2)
    coef = torch.linalg.lstsq(design, means[:, None]).solution  # (2, 1)
    residual = means - (design @ coef).squeeze(1)
    return float(residual.std() / means.abs().mean())


# ----------------------------------------------------------------------------- a small VAE


@renamed_arguments(vae="model")
def vae_negative_elbo(model: PointVAE, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """-ELBO of the point VAE ``model`` per point, (B,), in nats: E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)),
    one z per point.

    The ELBO is a lower bound on log p(x), so this is an upper bound on -log p(x). The
    reconstruction term is Gaussian with the learned sigma; the KL is in closed form.
    """
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator).to(mu)  # (B, latent)
    mean = model.decode(z)
    log_sigma = model.log_sigma
    nll = 0.5 * (((x - mean) / log_sigma.exp()) ** 2 + 2 * log_sigma + math.log(2 * math.pi)).sum(dim=1)  # (B,)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)  # (B,)
    return nll + kl


@dataclass
class VAEResult:
    """What :func:`train_point_vae` returns: the VAE (eval mode), -ELBO of every step, steps, seconds."""

    model: PointVAE
    losses: list[float]
    steps: int
    seconds: float


class NegativeELBO(Objective):
    """The point VAE's objective for ``train.fit``: the mean of :func:`vae_negative_elbo` over a
    batch of points, one z per point from the generator."""

    name = "negative_elbo"

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator) -> Tensor:
        return vae_negative_elbo(net, batch[0], generator).mean()


def train_point_vae(
    data: Tensor,
    *,
    config: PointVAEConfig | None = None,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
) -> VAEResult:
    """Train a :class:`~ddpm_course.models.toy.PointVAE` on ``data`` (N, dim): ``train.fit`` with
    :class:`NegativeELBO` and plain Adam (no warm-up, decay, clipping or EMA).

    Every random draw (initial weights, batches, z) comes from ``generator`` (seed 0 when None).
    """
    if not isinstance(data, Tensor) or data.ndim != 2 or data.shape[0] < 1:
        raise ValueError(f"data must be a tensor of shape (N, dim); got {getattr(data, 'shape', type(data).__name__)}")
    generator = generator_or_none("generator", generator) or torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        vae = PointVAE(PointVAEConfig(dim=data.shape[1]) if config is None else config)
    run = fit(vae, NegativeELBO(), data.float(), steps=steps, batch_size=batch_size, lr=lr, warmup_steps=0,
              lr_decay=False, grad_clip=None, ema_decay=None, optimizer="adam", generator=generator, progress=False)
    return VAEResult(run.model, run.losses, run.steps, run.seconds)


@renamed_arguments(vae="model")
@torch.no_grad()
def vae_sample(model: PointVAE, n: int, generator: torch.Generator | None = None, decoder_noise: bool = False
               ) -> Tensor:
    """n points of the point VAE ``model``: z ~ N(0, I), one decoder pass; the decoder's mean (as
    image VAEs show) unless ``decoder_noise`` adds its N(0, sigma^2) noise. Returns (n, dim)."""
    n = int_at_least("n", n, 1)
    device, dtype = device_and_dtype(model)
    generator = generator_or_none("generator", generator)
    z = torch.randn(n, model.config.latent, generator=generator, dtype=dtype)  # (n, latent), drawn on the CPU
    with eval_mode(model):
        mean = model.decode(z.to(device))
    if decoder_noise:
        mean = mean + model.log_sigma.exp() * torch.randn(mean.shape, generator=generator, dtype=dtype).to(device)
    return mean


# ------------------------------------------------------------------------ the DDPM's bound


def _reverse_variances(schedule: Schedule, variance: str) -> Tensor:
    """sigma_t^2 of the reverse steps, (T,): beta_t, or beta_tilde_t with code step 0 clipped to step 1's."""
    if variance == "beta":
        return schedule.betas
    sigma2 = schedule.posterior_variance.clone()
    sigma2[0] = sigma2[1] if schedule.T > 1 else schedule.betas[0]
    return sigma2


@torch.no_grad()
def ddpm_nll_bound(
    model, schedule: Schedule, x0: Tensor, generator: torch.Generator | None = None, variance: str = "beta"
) -> Tensor:
    """Ho et al.'s variational bound L = L_T + sum_t L_{t-1} + L_0 on -log p(x0), per point: (n,) nats.

    x0: (n, d) data in model units. The reverse steps are N(mu_theta, sigma_t^2 I) with
    sigma_t^2 = beta_t (``variance="beta"``, what ``ddpm_sample`` uses by default) or
    beta_tilde_t ("posterior"), so each KL term is lambda_t ||eps - eps_theta(x_t, t)||^2
    (``losses.elbo_weights``) plus, where sigma_t^2 differs from the posterior's beta_tilde_t,
    (d/2)(r - 1 - log r) with r = beta_tilde_t / sigma_t^2. The decoder L_0 (code step 0)
    adds (d/2) log(2 pi sigma_0^2); L_T is the closed-form KL of q(x_T | x0) from N(0, I).
    Every step t is evaluated once, each with its own noise draw: T network passes on the n points.
    """
    if variance not in ("beta", "posterior"):
        raise ValueError(f"variance must be 'beta' or 'posterior'; got {variance!r}")
    x0 = x0.detach().cpu().to(torch.float64)
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (n, d); got {tuple(x0.shape)}")
    sched = schedule.to("cpu", torch.float64)
    lam = elbo_weights(sched, variance)  # (T,)
    sigma2 = _reverse_variances(sched, variance)  # (T,)
    ratio = sched.posterior_variance[1:] / sigma2[1:]  # (T-1,), beta_tilde over sigma^2 for t >= 1
    device, dtype = device_and_dtype(model)
    device, dtype = device or torch.device("cpu"), dtype or torch.float64
    n, d = x0.shape
    total = torch.zeros(n, dtype=torch.float64)
    with eval_mode(model), torch.no_grad():  # the bound of the network as it samples: no dropout
        for t in range(sched.T):
            abar = sched.alpha_bars[t]
            eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
            x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps  # (n, d)
            t_batch = torch.full((n,), t, dtype=torch.long, device=device)
            eps_hat = model(x_t.to(device=device, dtype=dtype), t_batch).cpu().to(torch.float64)
            total += lam[t] * (eps - eps_hat).pow(2).sum(dim=1)
    variance_mismatch = 0.5 * d * (ratio - 1 - ratio.log()).sum()
    decoder = 0.5 * d * math.log(2 * math.pi * sigma2[0])
    abar_T = sched.alpha_bars[-1]
    l_T = 0.5 * (abar_T * x0.pow(2) + (1 - abar_T) - 1 - (1 - abar_T).log()).sum(dim=1)  # (n,)
    return total + variance_mismatch + decoder + l_T


# ------------------------------------------------------------------------- the comparison


@dataclass(frozen=True)
class Budget:
    """How much each model gets: the same steps, batch, width and learning rates for all three.

    ``seeds`` x ``lrs`` are the training runs per model (the stability row); the first seed with
    the first lr is the main run, which is also timed and has its likelihood measured.
    """

    steps: int = 2000
    batch_size: int = 256
    hidden: int = 64
    n_train: int = 8192
    n_samples: int = 1000
    n_likelihood: int = 256
    seeds: tuple[int, ...] = (0,)
    lrs: tuple[float, ...] = (1e-3,)
    T: int = 1000

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "hidden", "n_train", "n_samples", "n_likelihood", "T"):
            int_at_least(name, getattr(self, name), 1)
        if self.steps < 300:
            raise ValueError(f"steps must be >= 300 (the loss-roughness windows need a curve); got {self.steps}")
        if not self.seeds or not self.lrs:
            raise ValueError("seeds and lrs must each hold at least one value")
        for lr in self.lrs:
            finite_float("lrs", lr, 0, low_open=True)


@dataclass
class RunReport:
    """One training run: its loss curve (GAN: the discriminator's; VAE: -ELBO; DDPM: L_simple) and results."""

    seed: int
    lr: float
    losses: list[float]
    modes_covered: int
    precision: float
    recall: float
    roughness: float
    modes_reproduced: int = 0


@dataclass
class ModelReport:
    """Every measure of the table for one model; the sample measures are from the main run."""

    name: str
    network: nn.Module | None  # the main run's sampling network: G, the VAE, the noise predictor (None: control)
    parameters: int
    samples: Tensor  # (n_samples, d), main run
    counts: Tensor  # (K,)
    modes_covered: int
    high_quality: float
    precision: float
    recall: float
    nearest_mode_distance: float
    passes_per_sample: int
    seconds_per_1000: float
    nll_bound: float | None  # nats per point, upper bound on -log p(x); None: the model gives none
    runs: list[RunReport] = field(default_factory=list)
    modes_reproduced: int = 0  # modes whose core holds half what real data's does (main run)
    core_fractions: Tensor | None = None  # (K,)

    @property
    def runs_with_all_modes(self) -> int:
        return sum(r.modes_covered == self.counts.numel() for r in self.runs)

    @property
    def fewest_modes(self) -> int:
        return min(r.modes_covered for r in self.runs)

    @property
    def worst_roughness(self) -> float:
        return max(r.roughness for r in self.runs)


@dataclass
class Comparison:
    """The three :class:`ModelReport` s and the references a perfect sampler would reach."""

    dataset: str
    mixture: GaussianMixture
    budget: Budget
    models: dict[str, ModelReport]
    true_nll: float  # -E log p(x) under the mixture: the entropy, the floor of every bound
    real_precision: float  # fresh real samples scored as if generated
    real_recall: float
    real_nearest_mode_distance: float
    real_high_quality: float
    control: ModelReport | None = None  # "nothing": :func:`nothing_learned`'s points, scored alike
    real_modes_reproduced: int = 0

    def table(self) -> str:
        """The comparison as a fixed-width text table, one row per measure, one column per model,
        then the control (a model that learned nothing) and real data."""
        k = self.mixture.means.shape[0]

        def trained(cell):  # rows about training runs, time and likelihood: "-" for the control
            return lambda m: cell(m) if m.runs else "-"

        rows = [
            ("parameters", trained(lambda m: f"{m.parameters:,}"), "-"),
            (f"modes covered (of {k}, 3 std, 1/10)", lambda m: f"{m.modes_covered}", f"{k}"),
            (f"modes reproduced (of {k}, core)", lambda m: f"{m.modes_reproduced}", f"{self.real_modes_reproduced}"),
            ("samples within 3 std of a mode", lambda m: f"{m.high_quality:.1%}", f"{self.real_high_quality:.1%}"),
            ("precision", lambda m: f"{m.precision:.3f}", f"{self.real_precision:.3f}"),
            ("recall", lambda m: f"{m.recall:.3f}", f"{self.real_recall:.3f}"),
            ("distance to nearest mode", lambda m: f"{m.nearest_mode_distance:.4f}",
             f"{self.real_nearest_mode_distance:.4f}"),
            (f"runs covering all modes (of {len(self.budget.seeds) * len(self.budget.lrs)})",
             trained(lambda m: f"{m.runs_with_all_modes}"), "-"),
            ("fewest modes in a run", trained(lambda m: f"{m.fewest_modes}"), f"{k}"),
            ("late-loss roughness (worst run)", trained(lambda m: f"{m.worst_roughness:.3f}"), "-"),
            ("network passes per sample", trained(lambda m: f"{m.passes_per_sample}"), "-"),
            ("seconds per 1000 samples", trained(lambda m: f"{m.seconds_per_1000:.3f}"), "-"),
            ("-log p bound (nats/point)", lambda m: "none" if m.nll_bound is None else f"{m.nll_bound:.3f}",
             f"{self.true_nll:.3f}"),
        ]
        columns = dict(self.models)
        if self.control is not None:
            columns["nothing"] = self.control
        head = f"{'measure (' + self.dataset + ')':<40}" + "".join(f"{n:>10}" for n in columns) + f"{'real data':>11}"
        lines = [head, "-" * len(head)]
        for label, cell, ref in rows:
            lines.append(f"{label:<40}" + "".join(f"{cell(m):>10}" for m in columns.values()) + f"{ref:>11}")
        return "\n".join(lines)


@dataclass
class _Fitted:
    """A trained model seen through what the comparison needs."""

    sample: Callable[[int, torch.Generator], Tensor]  # (n, generator) -> (n, d)
    network: nn.Module  # what sampling runs: G, the VAE, the noise predictor
    losses: list[float]
    parameters: int
    passes_per_sample: int
    nll: Callable[[Tensor, torch.Generator], Tensor] | None  # (n, d) -> (n,) nats


def _count(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _fit(name: str, data: Tensor, budget: Budget, seed: int, lr: float) -> _Fitted:
    """Train one model of kind ``name`` on ``data`` (N, d) from ``seed`` at ``lr``; plain Adam for all three."""
    g = torch.Generator().manual_seed(seed)
    d = data.shape[1]
    if name == "GAN":
        res = train_gan(data, config=GANConfig(dim=d, hidden=budget.hidden), steps=budget.steps,
                        batch_size=budget.batch_size, lr=lr, generator=g)
        return _Fitted(lambda n, gen: gan_sample(res.generator, n, gen), res.generator, res.d_losses,
                       _count(res.generator, res.discriminator), 1, None)
    if name == "VAE":
        res = train_point_vae(data, config=PointVAEConfig(dim=d, hidden=budget.hidden), steps=budget.steps,
                              batch_size=budget.batch_size, lr=lr, generator=g)
        return _Fitted(lambda n, gen: vae_sample(res.model, n, gen), res.model, res.losses, _count(res.model), 1,
                       lambda x, gen: vae_negative_elbo(res.model, x.float(), gen).detach().double())
    from .models import MLPConfig, MLPDenoiser
    from .samplers import ddpm_sample

    schedule = linear_schedule(budget.T)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
        model = MLPDenoiser(MLPConfig(dim=d, hidden=budget.hidden, depth=2, time_dim=32))
    res = train(model, schedule, data, steps=budget.steps, batch_size=budget.batch_size, lr=lr, warmup_steps=0,
                lr_decay=False, grad_clip=None, ema_decay=None, optimizer="adam", generator=g, progress=False)
    net = res.final_model
    return _Fitted(lambda n, gen: ddpm_sample(net, schedule, (n, d), generator=gen), net,
                   res.losses, _count(net), budget.T, lambda x, gen: ddpm_nll_bound(net, schedule, x, gen))


def _evaluate(x: Tensor, real: Tensor, mixture: GaussianMixture) -> tuple[Tensor, int, float, float]:
    """Mode counts (K,), modes covered, precision and recall of samples x (n, d)."""
    counts = mode_counts(x, mixture)
    precision, recall = precision_recall(real, x)
    return counts, modes_covered(counts, mixture.weights, x.shape[0]), precision, recall


def _model_report(name: str, data: Tensor, real: Tensor, mixture: GaussianMixture, budget: Budget) -> ModelReport:
    """Train ``name`` for every seed and lr; time, and measure everything on, the main (first) run."""
    runs, main = [], None
    for seed in budget.seeds:
        for lr in budget.lrs:
            fitted = _fit(name, data, budget, seed, lr)
            start = time.perf_counter()
            x = fitted.sample(budget.n_samples, torch.Generator().manual_seed(seed + 1)).detach().double()
            seconds = time.perf_counter() - start
            counts, covered, precision, recall = _evaluate(x, real, mixture)
            runs.append(RunReport(seed, lr, fitted.losses, covered, precision, recall, loss_roughness(fitted.losses),
                                  modes_reproduced(x, mixture)))
            if main is None:
                main = (fitted, x, counts, seconds)
    fitted, x, counts, seconds = main
    nll = None
    if fitted.nll is not None:
        x_eval = mixture.sample(budget.n_likelihood, generator=torch.Generator().manual_seed(20_000))
        nll = float(fitted.nll(x_eval, torch.Generator().manual_seed(20_001)).mean())
    return ModelReport(
        name=name, network=fitted.network, parameters=fitted.parameters, samples=x, counts=counts,
        modes_covered=runs[0].modes_covered,
        high_quality=float(counts.sum()) / x.shape[0], precision=runs[0].precision, recall=runs[0].recall,
        nearest_mode_distance=float(mixture.nearest_mean_distance(x).mean()),
        passes_per_sample=fitted.passes_per_sample, seconds_per_1000=1000 * seconds / budget.n_samples,
        nll_bound=nll, runs=runs, modes_reproduced=runs[0].modes_reproduced,
        core_fractions=core_fractions(x, mixture),
    )


def _control_report(real: Tensor, mixture: GaussianMixture, n: int) -> ModelReport:
    """The row of a model that learned nothing (:func:`nothing_learned`), measured like the others."""
    x = nothing_learned(mixture, n, torch.Generator().manual_seed(30_000))
    counts, covered, precision, recall = _evaluate(x, real, mixture)
    return ModelReport(
        name="nothing", network=None, parameters=0, samples=x, counts=counts, modes_covered=covered,
        high_quality=float(counts.sum()) / n, precision=precision, recall=recall,
        nearest_mode_distance=float(mixture.nearest_mean_distance(x).mean()), passes_per_sample=0,
        seconds_per_1000=0.0, nll_bound=None, runs=[], modes_reproduced=modes_reproduced(x, mixture),
        core_fractions=core_fractions(x, mixture),
    )


def compare(
    mixture: GaussianMixture,
    budget: Budget | None = None,
    *,
    dataset: str = "mixture",
    models: tuple[str, ...] = MODELS,
) -> Comparison:
    """Train a GAN, a VAE and a DDPM (``models``) on points of ``mixture`` at ``budget`` and measure each.

    The training set (``budget.n_train`` points), the real reference set for precision and
    recall and the likelihood set are fixed draws (seeds 10000, 10001, 20000), so a call is
    repeatable on one machine. Returns a :class:`Comparison` whose ``table()`` prints the rows.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be an oracle.GaussianMixture; got {type(mixture).__name__}")
    budget = Budget() if budget is None else budget
    for name in models:
        if name not in MODELS:
            raise ValueError(f"models must hold names from {MODELS}; got {name!r}")
    data = mixture.sample(budget.n_train, generator=torch.Generator().manual_seed(10_000)).float()
    real = mixture.sample(budget.n_samples, generator=torch.Generator().manual_seed(10_001))
    fresh = mixture.sample(budget.n_samples, generator=torch.Generator().manual_seed(10_002))
    real_precision, real_recall = precision_recall(real, fresh)
    x_eval = mixture.sample(budget.n_likelihood, generator=torch.Generator().manual_seed(20_000))
    return Comparison(
        dataset=dataset, mixture=mixture, budget=budget,
        models={name: _model_report(name, data, real, mixture, budget) for name in models},
        true_nll=float(-mixture.log_prob(x_eval).mean()), real_precision=real_precision, real_recall=real_recall,
        real_nearest_mode_distance=float(mixture.nearest_mean_distance(fresh).mean()),
        real_high_quality=high_quality(fresh, mixture),
        control=_control_report(real, mixture, budget.n_samples),
        real_modes_reproduced=modes_reproduced(fresh, mixture),
    )


_WHY = "autoencoder.VAE is lesson 09's image VAE; this one works on points"
__getattr__ = renamed(__name__, {
    "VAE": ("PointVAE", _WHY), "VAEConfig": ("PointVAEConfig", _WHY), "train_vae": ("train_point_vae", _WHY),
}, globals())

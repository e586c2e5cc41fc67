"""Classifier-free guidance: one network, two predictions, extrapolated.

Ho & Salimans (2022), "Classifier-free diffusion guidance". A model trained with its condition
dropped to a null condition with probability p (``train(..., p_uncond=p)``) predicts both
eps(x_t, t, y) and eps(x_t, t, null). Sampling with

    eps_guided = eps_uncond + s (eps_cond - eps_uncond)

moves each step further along the direction "more like y than like anything": s = 0 is the
unconditional model, s = 1 the conditional one, s > 1 guidance. The paper writes the same
rule with w = s - 1 as (1 + w) eps_cond - w eps_uncond.

**What it samples.** With eps = -sqrt(1 - abar_t) score and Bayes' rule, the guided eps is, at
every noise level t, the (scaled) gradient of log p_t(x) p_t(y | x)^s, i.e. of
log p_t(x | y) p_t(y | x)^(s-1), where p_t is the law of the noisy x_t. But that family of
densities over t is *not* the forward diffusion of any one p_0: noising the tilted law
p_0(x | y) p_0(y | x)^(s-1) does not give p_t(x | y) p_t(y | x)^(s-1) at t > 0 when s != 1.
So no sampler driven by the guided eps samples the tilted p_0, and different samplers (the
probability-flow ODE of DDIM eta = 0 or DPM-Solver++, the ancestral DDPM chain) follow the same
scores to different laws (lesson 08 measures them on :func:`class_oracle`). What guidance does
is push each step towards where the noisy classifier p_t(y | x) is confident; how far the
samples end up past the tilted law depends on the sampler, and most of the push comes at high
noise, which is why limiting guidance to an interval of noise levels (Kynkaanniemi et al.
2024, ``cfg(..., interval=)``) changes the result.

Variants here: ``cfg(..., negative=)`` replaces the null prediction by another condition's
(a negative prompt: "like y, unlike n"); :func:`classifier_guidance` is the method CFG is
"free" of (Dhariwal & Nichol 2021): an unconditional model plus s times the gradient of a
classifier of noisy images, which on the exact oracle gives the same eps as CFG.

| symbol          | code                     | shape / meaning                                   |
|-----------------|--------------------------|---------------------------------------------------|
| s               | ``scale``                | guidance scale, s >= 0 (this course's convention) |
| w               | ``w``                    | the paper's weight, w = s - 1                     |
| y               | ``y``                    | (B,) labels (or prompt ids)                       |
| null            | ``null``                 | the null label, ``model.config.num_classes``      |
| n               | ``negative``             | (B,) labels replacing null (negative prompt)      |
| [t_lo, t_hi]    | ``interval``             | the 0-based steps where s applies (1 elsewhere)   |
| eps_cond        | ``eps_cond``             | (B, ...) eps(x_t, t, y)                           |
| eps_uncond      | ``eps_uncond``           | (B, ...) eps(x_t, t, null)                        |
| p_t(y | x_t)    | ``log_classifier``       | (B, K) log-probabilities of a noisy classifier    |

``cfg(model, scale)`` returns a callable with the model contract, so every sampler runs
guided without knowing about guidance; it evaluates the conditional and the unconditional
prediction in one forward call on a doubled batch. ``class_oracle`` gives the exact
conditional and unconditional eps of a Gaussian mixture whose components are the classes,
its exact noisy classifier and the tilted law's density, on which guidance can be measured
without a trained network.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ._checks import finite_float
from ._model import num_classes as _num_classes
from .oracle import GaussianMixture
from .schedules import Schedule

__all__ = [
    "ClassOracle",
    "GuidanceScore",
    "Guided",
    "PromptSamples",
    "cfg",
    "class_oracle",
    "classifier_guidance",
    "outside_range",
    "pixel_classifier",
    "guided_eps",
    "guided_eps_w",
    "null_label",
    "prompt_explorer",
    "prompt_samples",
    "scale_from_w",
    "score_digits",
    "speckled",
    "w_from_scale",
]


def guided_eps(eps_cond: Tensor, eps_uncond: Tensor, scale: float) -> Tensor:
    """eps_uncond + s (eps_cond - eps_uncond): the guided prediction, (B, ...)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def guided_eps_w(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    """(1 + w) eps_cond - w eps_uncond: Ho & Salimans' convention, equal to ``guided_eps`` at s = 1 + w."""
    return (1 + w) * eps_cond - w * eps_uncond


def w_from_scale(scale: float) -> float:
    """The paper's guidance weight w for this course's scale s: w = s - 1 (s = 1, no guidance, is w = 0)."""
    return scale - 1.0


def scale_from_w(w: float) -> float:
    """The scale s for the paper's weight w: s = 1 + w."""
    return 1.0 + w


def null_label(model: Callable) -> int:
    """The null label of a conditional model: ``model.config.num_classes`` (the label after the last class)."""
    num_classes = _num_classes(model)
    if num_classes is None:
        raise ValueError(
            "classifier-free guidance needs a conditional model trained with a null label "
            "(model.config.num_classes set, trained with p_uncond > 0); pass null= for another callable"
        )
    return int(num_classes)


class Guided(nn.Module):
    """A guided noise predictor with the model contract; make one with :func:`cfg`.

    Called as ``guided(x_t, t)`` when it carries its labels ``y``, else ``guided(x_t, t, y)``.
    It holds the wrapped model as a submodule, so samplers find its device and its
    train/eval mode through it.
    """

    def __init__(self, model: Callable, scale: float, y: Tensor | None, null: int,
                 negative: Tensor | int | None = None, interval: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.scale = scale
        self.y = y
        self.null = null
        self.negative = negative
        self.interval = interval
        self.training = bool(getattr(model, "training", False))

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            y = self.y
        elif self.y is not None:
            raise ValueError("this guided model already carries its labels y; call it as guided(x_t, t)")
        if y is None:
            raise ValueError("labels y (B,) are needed: cfg(model, scale, y=...) or guided(x_t, t, y)")
        b = x_t.shape[0]
        y = torch.as_tensor(y, device=x_t.device)
        if y.ndim == 0:
            y = y.expand(b)  # one label for the whole batch
        if y.shape != (b,):
            raise ValueError(f"y must have shape (B,) = ({b},) or be one label; got {tuple(y.shape)}")
        if self.negative is None:
            null = torch.full_like(y, self.null)
        else:  # a negative prompt: the other condition's prediction takes the null one's place
            null = torch.as_tensor(self.negative, device=x_t.device).expand(b).to(y.dtype)
        # One forward call on the doubled batch: [x_t; x_t] with labels [y; null].
        eps = self.model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))  # (2B, ...)
        eps_cond, eps_uncond = eps[:b], eps[b:]
        if self.interval is None:
            return guided_eps(eps_cond, eps_uncond, self.scale)
        lo, hi = self.interval
        t = torch.as_tensor(t, device=x_t.device).expand(b)
        inside = ((t >= lo) & (t <= hi)).to(eps.dtype).reshape(b, *[1] * (x_t.ndim - 1))  # (B, 1, ...)
        scale = 1.0 + inside * (self.scale - 1.0)  # s inside the interval, the conditional model outside
        return eps_uncond + scale * (eps_cond - eps_uncond)


def cfg(model: Callable, scale: float, y: Tensor | int | None = None, null: int | None = None, *,
        negative: Tensor | int | None = None, interval: tuple[int, int] | None = None) -> Guided:
    """Wrap a conditional ``model(x_t, t, y)`` into its classifier-free-guided version.

    scale: s >= 0; 0 is the unconditional model, 1 the conditional one, above 1 guidance.
    y: the labels (B,) (or one int for the whole batch) to carry, giving ``f(x_t, t)``; None
        gives ``f(x_t, t, y)``, to which a sampler passes ``y=``.
    null: the null label (default ``model.config.num_classes``).
    negative: a label (or (B,) labels) whose prediction replaces the null one, a negative
        prompt: eps_n + s (eps_y - eps_n) moves away from n rather than from "anything".
    interval: (t_lo, t_hi), 0-based steps: guidance at scale s only for t_lo <= t <= t_hi, the
        conditional model (s = 1) elsewhere (Kynkaanniemi et al. 2024, "Applying guidance in a
        limited interval improves sample and distribution quality").
    """
    scale = finite_float("scale", scale, 0)  # 0 unconditional, 1 conditional, > 1 guided
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t, y); got {type(model).__name__}")
    null = null_label(model) if null is None else null
    if isinstance(null, bool) or not isinstance(null, int):
        raise TypeError(f"null must be an int label; got {type(null).__name__}")
    if isinstance(y, bool) or (y is not None and not isinstance(y, (int, Tensor))):
        raise TypeError(f"y must be None, an int label or a (B,) tensor of labels; got {type(y).__name__}")
    if isinstance(negative, bool) or (negative is not None and not isinstance(negative, (int, Tensor))):
        raise TypeError(f"negative must be None, an int label or a (B,) tensor of labels; "
                        f"got {type(negative).__name__}")
    if interval is not None:
        if (not isinstance(interval, (tuple, list)) or len(interval) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in interval)
                or not 0 <= interval[0] <= interval[1]):
            raise ValueError(f"interval must be (t_lo, t_hi), two int steps with 0 <= t_lo <= t_hi; got {interval!r}")
        interval = (int(interval[0]), int(interval[1]))
    return Guided(model, scale, y, null, negative=negative, interval=interval)


def classifier_guidance(uncond: Callable, log_classifier: Callable, scale: float, y: Tensor | int,
                        schedule: Schedule) -> Callable:
    """Classifier guidance (Dhariwal & Nichol 2021): eps_uncond - s sqrt(1 - abar_t) grad log p_t(y | x_t).

    uncond: an unconditional noise predictor ``uncond(x_t, t)``; log_classifier: a classifier of
    *noisy* images, ``log_classifier(x_t, t) -> (B, K)`` log-probabilities, differentiable in
    x_t; y: the requested label(s). Returns ``f(x_t, t)`` with the model contract. The score of
    p_t(x) p_t(y | x)^s is grad log p_t(x) + s grad log p_t(y | x), and eps = -sqrt(1 - abar_t)
    score: CFG gets the same eps at each t without the classifier, from Bayes' rule
    grad log p_t(y | x) = grad log p_t(x | y) - grad log p_t(x).
    """
    scale = finite_float("scale", scale, 0)
    for name, f in (("uncond", uncond), ("log_classifier", log_classifier)):
        if not callable(f):
            raise TypeError(f"{name} must be callable; got {type(f).__name__}")

    def guided(x_t: Tensor, t: Tensor) -> Tensor:
        b = x_t.shape[0]
        labels = torch.as_tensor(y).expand(b)
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            chosen = log_classifier(x, t).gather(1, labels[:, None].to(x_t.device)).sum()
            grad = torch.autograd.grad(chosen, x)[0]  # (B, ...) grad log p_t(y | x_t)
        sigma = (1 - schedule.alpha_bars.to(x_t.device)[t]).sqrt().reshape(b, *[1] * (x_t.ndim - 1))
        return uncond(x_t, t) - scale * sigma.to(x_t.dtype) * grad.to(x_t.dtype)

    return guided


class ClassOracle:
    """The exact eps of a Gaussian mixture, conditional on its components: ``oracle(x_t, t, y)``.

    Label k in [0, K) gives E[eps | x_t, y = k], the eps of component k alone; the null label
    K gives the unconditional E[eps | x_t], the eps of the whole mixture. Float64 inside,
    x_t's dtype out.
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule) -> None:
        self.mixture = mixture
        self.schedule = schedule
        k = mixture.weights.shape[0]
        self.config = _OracleConfig(k)
        self._components = [
            GaussianMixture(torch.ones(1, dtype=torch.float64), mixture.means[i : i + 1], mixture.covs[i : i + 1])
            for i in range(k)
        ]

    def __call__(self, x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        k = len(self._components)
        if not isinstance(y, Tensor) or y.shape != (x_t.shape[0],) or y.min() < 0 or y.max() > k:
            raise ValueError(f"y must be (B,) = ({x_t.shape[0]},) labels in [0, {k}] ({k} = unconditional)")
        out = torch.empty(x_t.shape, dtype=torch.float64)
        t = torch.as_tensor(t).expand(x_t.shape[0]) if torch.as_tensor(t).ndim == 0 else t
        for label in y.unique().tolist():
            rows = (y == label).nonzero().flatten()  # (n,)
            law = self.mixture if label == k else self._components[label]
            out[rows] = law.eps(x_t[rows], t[rows], self.schedule).cpu()
        return out.to(x_t.device, x_t.dtype)


    def uncond(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The unconditional eps, ``oracle.uncond(x_t, t)``: the model contract without labels."""
        return self(x_t, t, torch.full((x_t.shape[0],), len(self._components)))

    def log_classifier(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The exact noisy classifier log p_t(k | x_t): (B, d), (B,) -> (B, K), differentiable in x_t."""
        t = torch.as_tensor(t).expand(x_t.shape[0])
        abar = self.schedule.alpha_bars.cpu().double()[t.cpu()]  # (B,)
        x = x_t.reshape(x_t.shape[0], -1).double().cpu()  # (B, d)
        m = abar.sqrt()[:, None, None] * self.mixture.means[None]  # (B, K, d)
        eye = torch.eye(self.mixture.dim, dtype=torch.float64)
        c = abar[:, None, None, None] * self.mixture.covs[None] + (1 - abar)[:, None, None, None] * eye  # (B, K, d, d)
        log_p = torch.distributions.MultivariateNormal(m, covariance_matrix=c).log_prob(x[:, None, :])  # (B, K)
        return (log_p + self.mixture.weights.log()).log_softmax(1).to(x_t.dtype)

    def tilted_log_density(self, x: Tensor, y: int, scale: float) -> Tensor:
        """log of p_0(x | y) p_0(y | x)^(s-1) up to a constant: (n, d) -> (n,) float64.

        The law guidance is often said to sample; it does not (see the module docstring).
        """
        scale = finite_float("scale", scale, 0)
        log_joint = self.mixture._component_log_probs(self.mixture._points(x))  # (n, K): log w_k N(x; mu_k, S_k)
        return log_joint[:, y] + (scale - 1) * log_joint.log_softmax(1)[:, y]


class _OracleConfig:
    """What :func:`null_label` reads: the oracle's null label is its number of components."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes


def class_oracle(mixture: GaussianMixture, schedule: Schedule) -> ClassOracle:
    """The exact class-conditional noise predictor of ``mixture`` (classes = components)."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture; got {type(mixture).__name__}")
    return ClassOracle(mixture, schedule)


# ----------------------------------------------------------------------------------------------
# Measuring guidance on digits: adherence (is it the requested digit?) against diversity


class GuidanceScore(NamedTuple):
    """Adherence and diversity of class-conditional digit samples.

    accuracy: adherence, the digit classifier's agreement with the requested labels; fd_class: the
    Frechet distance of each class's samples to the real images of that class (classifier
    features), averaged over the classes; spread: the samples' mean feature distance to their
    class centroid divided by the real images' (1 = as varied as real digits, below 1 = less).
    """

    accuracy: float
    fd_class: float
    spread: float


def _total_variation(x: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels, per image: (N, C, H, W) -> (N,)."""
    x = x.detach().float().cpu().clamp(-1, 1)
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)) + (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))


def speckled(images: Tensor) -> Tensor:
    """(N,) bool: digits rougher (total variation) than 99% of the real held-out digits.

    This is the speckle a deterministic (ODE) sampler leaves when the network's noise
    prediction is still inaccurate (an undertrained network, lesson 08); fresh noise at each
    step washes much of it out. The threshold is class-blind: digits with long strokes (0, 4)
    come closest to it, so a sampler that sharpens contrast (strong guidance) reaches it first
    with them.
    """
    from .data import digits

    return _total_variation(images) > _total_variation(digits(16, split="test").images).quantile(0.99)


def pixel_classifier():
    """An independent digit classifier: scikit-learn's logistic regression (C = 0.1) on the 256 raw
    pixels of the 16x16 train digits; ``.predict(images.flatten(1).numpy())`` gives labels.

    It shares neither features nor training with ``metrics.digit_classifier`` (a CNN trained
    on shifted digits), so the two disagree where a sample is ambiguous.
    """
    from sklearn.linear_model import LogisticRegression

    from .data import digits

    train = digits(16, split="train")
    return LogisticRegression(max_iter=2000, C=0.1).fit(train.images.flatten(1).numpy(), train.labels.numpy())


def outside_range(images: Tensor, bound: float = 1.05) -> tuple[float, float]:
    """(share of pixels above ``bound``, share below ``-bound``) of unclipped samples (N, ...).

    Guidance's extrapolation pushes pixels out of the data's range [-1, 1]; below -bound is
    background pushed darker than the background, above +bound is saturated stroke.
    """
    x = images.detach().double()
    return (x > bound).double().mean().item(), (x < -bound).double().mean().item()


def _spread(feats: Tensor, labels: Tensor) -> float:
    """Mean distance of feature vectors (N, F) to their class centroid."""
    dists = [(feats[labels == c] - feats[labels == c].mean(0)).norm(dim=1) for c in labels.unique()]
    return torch.cat(dists).mean().item()


@torch.no_grad()
def score_digits(samples: Tensor, labels: Tensor) -> GuidanceScore:
    """Score samples (N, 1, 16, 16) in [-1, 1] drawn for ``labels`` (N,) against the real digits
    (the train split, 1,437 images), with ``metrics.digit_classifier`` features."""
    from .data import digits
    from .metrics import digit_classifier, digit_features, frechet_distance

    if not isinstance(labels, Tensor) or labels.shape != (samples.shape[0],):
        got = getattr(labels, "shape", labels)
        raise ValueError(f"labels must have shape (N,) = ({samples.shape[0]},); got {got!r}")
    samples, labels = samples.detach().float().cpu().clamp(-1, 1), labels.cpu()
    real = digits(16, split="train")
    accuracy = (digit_classifier()(samples).argmax(1) == labels).double().mean().item()
    feats, real_feats = digit_features(samples), digit_features(real.images)
    classes = labels.unique()
    fd = sum(frechet_distance(feats[labels == c], real_feats[real.labels == c]) for c in classes) / len(classes)
    asked = torch.isin(real.labels, classes)  # the real digits of the requested classes
    spread = _spread(feats, labels) / _spread(real_feats[asked], real.labels[asked])
    return GuidanceScore(accuracy=accuracy, fd_class=fd, spread=spread)


# ----------------------------------------------------------------------------------------------
# Lesson 08's explorer: choose the words and the scale, see the digits


class PromptSamples(NamedTuple):
    """What :func:`prompt_samples` returns: the prompt, the scale, images (n, 1, 16, 16) in
    [-1, 1], their ink (n,), the digit the classifier reads (n,)."""

    prompt: str
    scale: float
    images: Tensor
    ink: Tensor
    predicted: Tensor


@torch.no_grad()
def prompt_samples(model: nn.Module, schedule: Schedule, prompt: str, scale: float, n: int = 8, steps: int = 50,
                   seed: int = 0) -> PromptSamples:
    """``n`` digits for ``prompt`` ("thin seven") from a prompt model, guided at ``scale``,
    with DDIM in ``steps`` steps and eta = 1 (fresh noise at every step), drawn with ``seed``."""
    from .metrics import digit_classifier
    from .models.text import ink, prompt_ids
    from .samplers import ddim_sample

    y = prompt_ids([prompt]).expand(n)  # (n,)
    x = ddim_sample(cfg(model, scale, y=y), schedule, (n, 1, 16, 16), steps=steps, eta=1.0,
                    generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)
    return PromptSamples(prompt, float(scale), x, ink(x), digit_classifier()(x).argmax(1))


def prompt_explorer(model: nn.Module, schedule: Schedule, n: int = 8, steps: int = 50):
    """Drop-downs for the stroke word and the digit, a slider for s: the digits of that prompt.

    children: [stroke, digit, scale, output, picture]; ``.result`` is a :class:`PromptSamples`.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from .models.text import DIGIT_WORDS
    from .viz import show_images
    from .widgets import interactive, picture_widget, show_figure

    picture = picture_widget()

    def view(stroke: str, digit: str, scale: float) -> PromptSamples:
        prompt = " ".join(w for w in (stroke, digit) if w)
        out = prompt_samples(model, schedule, prompt, scale, n=n, steps=steps)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * n), 1.8))
        show_images(out.images, nrow=n, ax=ax)
        ax.set_title(f"'{prompt}', s = {scale:g}: read as {out.predicted.tolist()}", fontsize=11)
        fig.tight_layout()
        show_figure(picture, fig)
        return out

    explorer = interactive(
        view,
        stroke=widgets.Dropdown(options=["", "thin", "thick"], value="thin", description="stroke"),
        digit=widgets.Dropdown(options=["", *DIGIT_WORDS], value="seven", description="digit"),
        scale=widgets.FloatSlider(value=3.0, min=0.0, max=10.0, step=0.5, description="s", continuous_update=False),
    )
    explorer.children = (*explorer.children, picture)
    return explorer


# ----------------------------------------------------------------------------- the shipped models

GUIDED_MODELS = ("digits-cond", "digits-prompt")
_GUIDED_UNET = {"in_channels": 1, "base_channels": 16, "channel_mults": (1, 2, 2), "num_res_blocks": 1,
                "dropout": 0.1, "groups": 8, "time_dim": None}
_GUIDED_SETTINGS = {"batch_size": 64, "lr": 2e-3, "warmup_steps": 50, "lr_decay": True, "weight_decay": 0.0,
                    "grad_clip": 1.0, "optimizer": "adamw", "p_uncond": 0.15}


def guided_model(name: str, seed: int = 0):
    """(model, training data) of the shipped conditional model ``name`` (one of ``GUIDED_MODELS``),
    the network initialised from ``seed``: ``digits-cond`` reads labels (10 classes and the null
    label); ``digits-prompt`` reads prompts ("thin seven") through cross-attention, its condition
    being the prompt's index in ``models.text.PROMPTS`` (captions drawn from ``seed + 1``)."""
    from .data import ImageData, digits
    from .models import UNet, UNetConfig
    from .models.text import PromptUNet, PromptUNetConfig, caption_data

    if name not in GUIDED_MODELS:
        raise ValueError(f"name must be one of {list(GUIDED_MODELS)}; got {name!r}")
    data = digits(16, split="train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "digits-cond":
            return UNet(UNetConfig(attention_levels=(2,), num_classes=10, **_GUIDED_UNET)), data
        model = PromptUNet(PromptUNetConfig(base_channels=16, attention_levels=(1, 2)))
    images, ids = caption_data(data.images, data.labels, generator=torch.Generator().manual_seed(seed + 1))
    return model, ImageData(images, ids)


def _main(argv: list[str] | None = None) -> None:
    """python -m ddpm_course.guidance NAME: train the shipped digits-cond or digits-prompt (lesson 08).

    ``train.train`` with ``p_uncond`` = 0.15: each step replaces a condition by the null one (the
    null label, or the empty prompt) with that probability, so one network learns the conditional
    and the unconditional noise predictor that classifier-free guidance combines. The models are
    small (base width 16) and the recipe short enough for one CPU thread (5000 steps of 64, EMA
    0.999). ``digits-cond-short`` is ``digits-cond`` with ``--steps 700 --ema-decay 0.995``, the
    first, undertrained version, which lesson 08 shows beside it."""
    from ._records import maker_parser, run_record
    from .checkpoint import checkpoint_paths, save_checkpoint
    from .models import count_parameters
    from .schedules import linear_schedule
    from .train import train

    prog = "python -m ddpm_course.guidance"
    parser = maker_parser(prog, _main.__doc__, progress=False, steps=5000, ema_decay=0.999)
    parser.add_argument("name", choices=GUIDED_MODELS)
    args = parser.parse_args(argv)
    if not args.overwrite and any(p.exists() for p in checkpoint_paths(args.out)):
        parser.error(f"{args.out} already exists; pass --overwrite to replace it")
    torch.set_num_threads(args.threads)
    model, data = guided_model(args.name, args.seed)
    schedule = linear_schedule(1000)
    print(f"{args.name}: {count_parameters(model):,} parameters, {args.steps} steps")
    settings = {**_GUIDED_SETTINGS, "ema_decay": args.ema_decay}
    result = train(model, schedule, data, steps=args.steps, generator=torch.Generator().manual_seed(args.seed),
                   progress=False, **settings)
    tail = result.losses[-100:]
    record = run_record(prog, argv, weights="ema", seed=args.seed, steps=result.steps,
                        train_seconds=round(result.seconds, 1), images_per_second=round(result.images_per_second, 1),
                        final_loss=round(sum(tail) / len(tail), 5), train_settings=settings)
    paths = save_checkpoint(args.out, result.final_model, schedule, sample_shape=(1, 16, 16), record=record,
                            weights_dtype=torch.float16, overwrite=args.overwrite)
    print(f"wrote {paths[0]} and {paths[1]}: {result.steps} steps in {result.seconds / 60:.1f} min, "
          f"final loss {record['final_loss']}")


if __name__ == "__main__":
    _main()

"""Lesson 11 (why diffusion): counting covered modes, the non-saturating GAN loss, and one number.

| exercise                  | the learner writes                                       | reference               |
|---------------------------|----------------------------------------------------------|-------------------------|
| ``11.modes_covered``      | ``my_modes_covered(x, means, radius, min_count) -> int`` | ``compare.mode_counts`` |
| ``11.generator_loss``     | ``my_generator_loss(fake_logits)``: mean -log D(G(z))    | ``gan.generator_loss``  |
| ``11.d_loss_equilibrium`` | the discriminator's loss when D(x) = 1/2 everywhere      | 2 log 2                 |
| ``11.core_fractions``     | ``my_core_fractions(x, means, std, weights) -> (K,)``    | ``compare.core_fractions`` |

``11.core_fractions`` is the coverage criterion that a uniform smear cannot pass: samples within
1 std of each centre (nearest centre only) over what real data puts there, n w_k (1 - e^(-1/2))
in 2-D. Points are float64; an answer computed in float32 counts the same points (the cases keep
every point well away from the 1-std boundary's rounding).

The hidden cases (``ddpm-course grade --hidden``) use another ring (six modes, radius 2), other
radii and counts, and other logits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..compare import core_fractions, mode_counts, nothing_learned
from ..gan import generator_loss
from ..oracle import GaussianMixture, ring_mixture
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, register

RING = ring_mixture()
HIDDEN_RING = ring_mixture(k=6, radius=2.0, std=0.15)


def _modes_covered(x: Tensor, means: Tensor, radius: float, min_count: int) -> int:
    k = means.shape[0]
    std = radius / 3.0  # mode_counts measures the radius in stds of the components
    mixture = GaussianMixture(torch.full((k,), 1.0 / k, dtype=torch.float64), means,
                              (std**2) * torch.eye(means.shape[1], dtype=torch.float64).expand(k, -1, -1).clone())
    return int((mode_counts(x, mixture, radius=3.0) >= min_count).sum())


def _nearest(x: Tensor, means: Tensor) -> tuple[Tensor, Tensor]:
    d = torch.cdist(x.double(), means.double()).min(dim=1)
    return d.values, d.indices  # (n,), (n,)


def _covered(x, means, radius, min_count, use_radius=True, strict=False, threshold=None):
    dist, idx = _nearest(x, means)
    keep = dist <= radius if use_radius else torch.ones_like(dist, dtype=torch.bool)
    counts = torch.bincount(idx[keep], minlength=means.shape[0])
    need = min_count if threshold is None else threshold
    return int((counts > need).sum() if strict else (counts >= need).sum())


def _within(x, means, radius, min_count):  # how many samples are close to a mode, not how many modes
    dist, _ = _nearest(x, means)
    return int((dist <= radius).sum())


def _hidden_ring_cases(generator: torch.Generator) -> list[Case]:
    ring = HIDDEN_RING
    x, labels = ring.sample(300, generator=generator, return_labels=True)
    collapsed = x[labels < 2]  # two modes only
    strays = torch.cat([collapsed, ring.means[3:6] - 0.02])  # one stray on each of three more modes
    between = torch.cat([x[:150], 0.6 * ring.means[[0, 2, 4]]])  # three points far from every mode
    few = x[:30]  # about five per mode: min_count decides
    where = "6 modes on a ring of radius 2"
    return [
        Case((x, ring.means, 0.45, 6), {}, f"300 samples, {where}, radius 0.45, min_count 6"),
        Case((strays, ring.means, 0.45, 4), {}, f"two modes plus one stray on three others, {where}, min_count 4"),
        Case((strays, ring.means, 0.45, 1), {}, f"the same with min_count 1, {where}"),
        Case((between, ring.means, 0.45, 1), {}, f"150 samples plus three points inside the ring, {where}"),
        Case((few, ring.means, 0.45, 5), {}, f"30 samples, {where}, min_count 5"),
        Case((few, ring.means, 0.45, 4), {}, f"30 samples, {where}, min_count 4"),
        Case((x, ring.means, 0.08, 8), {}, f"a tight radius 0.08, {where}, min_count 8"),
    ]


def _ring_cases(generator: torch.Generator) -> list[Case]:
    x, labels = RING.sample(400, generator=generator, return_labels=True)
    collapsed = x[labels < 3]  # three modes only
    strays = torch.cat([collapsed, RING.means[5:8] + 0.01])  # one stray on each of three more modes
    between = torch.cat([x[:200], 0.6 * RING.means[[0, 1, 2, 3, 4]]])  # five points far from every mode
    few = x[:40]  # about five per mode: min_count decides
    return [
        Case((x, RING.means, 0.3, 5), {}, "400 ring samples, radius 0.3, min_count 5"),
        Case((strays, RING.means, 0.3, 5), {}, "three modes plus one stray on three others, min_count 5"),
        Case((strays, RING.means, 0.3, 1), {}, "the same with min_count 1"),
        Case((between, RING.means, 0.3, 1), {}, "200 samples plus five points inside the ring, min_count 1"),
        Case((few, RING.means, 0.3, 5), {}, "40 samples, min_count 5"),
        Case((few, RING.means, 0.3, 6), {}, "40 samples, min_count 6"),
        Case((x, RING.means, 0.05, 10), {}, "a tight radius 0.05, min_count 10"),
    ]


register(FunctionExercise(
    name="11.modes_covered",
    reference=_modes_covered,
    cases=_ring_cases,
    hidden_cases=_hidden_ring_cases,
    mistakes=(
        Mistake("count only samples within radius of their nearest centre: a sample far from every mode "
                "covers nothing", lambda x, m, r, c: _covered(x, m, r, c, use_radius=False)),
        Mistake("a mode needs at least min_count samples (>=), not more than min_count",
                lambda x, m, r, c: _covered(x, m, r, c, strict=True)),
        Mistake("min_count matters: one or two strays on a mode do not cover it",
                lambda x, m, r, c: _covered(x, m, r, c, threshold=1)),
        Mistake("return the number of modes that are covered, not the number of samples near a mode", _within),
    ),
    rtol=0.0,
    atol=0.0,
))


def _logit_cases(generator: torch.Generator) -> list[Case]:
    return [
        Case((torch.randn(16, generator=generator, dtype=torch.float64),), {}, "16 random logits"),
        Case((torch.tensor([-3.0, 0.0, 3.0], dtype=torch.float64),), {}, "logits [-3, 0, 3]"),
        Case((torch.tensor([-800.0, -20.0], dtype=torch.float64),), {}, "D sure of the fakes: logits [-800, -20]"),
    ]


def _hidden_logit_cases(generator: torch.Generator) -> list[Case]:
    return [
        Case((3 * torch.randn(9, generator=generator, dtype=torch.float64),), {}, "9 random logits of spread 3"),
        Case((torch.tensor([-1.0, 0.5, 2.0, 10.0], dtype=torch.float64),), {}, "logits [-1, 0.5, 2, 10]"),
        Case((torch.tensor([-1000.0, -50.0, -30.0], dtype=torch.float64),), {},
             "D sure of the fakes: logits [-1000, -50, -30]"),
        Case((torch.randn(2, 3, generator=generator, dtype=torch.float64),), {}, "a (2, 3) batch of logits"),
    ]


register(FunctionExercise(
    name="11.generator_loss",
    reference=lambda logits: generator_loss(logits, "non_saturating"),
    cases=_logit_cases,
    hidden_cases=_hidden_logit_cases,
    mistakes=(
        Mistake("that is the minimax loss mean log(1 - D(G(z))), which saturates when D wins; the "
                "non-saturating loss is mean -log D(G(z))", lambda logit: (1 - torch.sigmoid(logit)).log().mean()),
        Mistake("the sign: G wants D(G(z)) near 1, so it minimises -log D(G(z))",
                lambda logit: torch.sigmoid(logit).log().mean()),
        Mistake("right formula, but sigmoid underflows to 0 for very negative logits and log(0) = -inf: "
                "compute -log D from the logits, softplus(-l) (or -F.logsigmoid(l))",
                lambda logit: (-torch.sigmoid(logit).log()).mean()),
        Mistake("average over the batch (mean), not the sum", lambda logit: F.softplus(-logit).sum()),
    ),
    rtol=1e-9,
    atol=1e-12,
))


register(NumberExercise(
    name="11.d_loss_equilibrium",
    answer=lambda: 2 * math.log(2),
    mistakes=(
        Mistake("the loss has two terms, -log D(x) on real points and -log(1 - D(G(z))) on generated ones; "
                "each is log 2 at D = 1/2", lambda: math.log(2)),
        Mistake("the course's losses are in nats (natural log): 2 ln 2, not 2 log2 2", lambda: 2.0),
        Mistake("that is D's output at equilibrium, not its loss", lambda: 0.5),
    ),
    rtol=1e-3,
))


# ----------------------------------------------------------------------------------------------
# 11.core_fractions: a coverage criterion that noise cannot pass


def _mixture(means: Tensor, std: float, weights: Tensor) -> GaussianMixture:
    k, d = means.shape
    return GaussianMixture(weights.double(), means.double(),
                           (std**2) * torch.eye(d, dtype=torch.float64).expand(k, -1, -1).clone())


def _core(x: Tensor, means: Tensor, std: float, weights: Tensor) -> Tensor:
    return core_fractions(x, _mixture(means, std, weights))


def _core_with(x, means, std, weights, *, radius=1.0, share=True, fair="weights", nearest=True):
    n, k = x.shape[0], means.shape[0]
    dist = torch.cdist(x.double(), means.double())  # (n, K)
    if nearest:
        d, idx = dist.min(dim=1)
        counts = torch.bincount(idx[d <= radius * std], minlength=k).double()
    else:
        counts = (dist <= radius * std).sum(0).double()
    expected = n * (weights.double() if fair == "weights" else torch.full((k,), 1.0 / k, dtype=torch.float64))
    if share:
        expected = expected * (1 - math.exp(-radius**2 / 2))
    return counts / expected


def _core_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    ring, n, std = (HIDDEN_RING, 500, 0.15) if hidden else (RING, 800, 0.1)
    x, labels = ring.sample(n, generator=generator, return_labels=True)
    smear = nothing_learned(ring, n, generator)
    if hidden:
        skew = torch.tensor([0.1, 0.5, 0.15, 0.25], dtype=torch.float64)
        close_means = torch.tensor([[0.0, 0.0], [0.8, 0.0], [0.0, 1.2], [1.0, 1.0]], dtype=torch.float64)
        close = _mixture(close_means, 0.5, skew).sample(700, generator=generator)
    else:
        skew = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
        close_means = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5], [1.5, 1.5]], dtype=torch.float64)
        close = _mixture(close_means, 0.6, skew).sample(600, generator=generator)  # discs of 1 std overlap
    k = ring.means.shape[0]
    return [
        Case((x, ring.means, std, ring.weights), {}, f"{n} samples of a ring of {k}"),
        Case((x[labels < 3], ring.means, std, ring.weights), {}, "ring samples from three modes only"),
        Case((smear, ring.means, std, ring.weights), {}, f"{n} points uniform on the ring's box (a smear)"),
        Case((close, close_means, 0.5 if hidden else 0.6, skew), {}, "4 unequal modes whose 1-std discs overlap"),
    ]


register(FunctionExercise(
    name="11.core_fractions",
    reference=_core,
    cases=_core_cases,
    hidden_cases=lambda g: _core_cases(g, hidden=True),
    mistakes=(
        Mistake("the core is the disc of 1 std around each centre: 3 std holds almost every point of a mode, so "
                "a smear reaches it too", lambda x, m, s, w: _core_with(x, m, s, w, radius=3.0)),
        Mistake("real data puts only 1 - e^(-1/2), about 39%, of a mode's points within 1 std: divide the count by "
                "n w_k (1 - e^(-1/2)), so that real data scores about 1",
                lambda x, m, s, w: _core_with(x, m, s, w, share=False)),
        Mistake("a mode's fair share is n w_k with its own weight, not n / K: the modes need not be equal",
                lambda x, m, s, w: _core_with(x, m, s, w, fair="equal")),
        Mistake("give each sample to its nearest centre only: where two discs overlap a sample counts once",
                lambda x, m, s, w: _core_with(x, m, s, w, nearest=False)),
        Mistake("the radius is 1 standard deviation (std), not the variance std^2",
                lambda x, m, s, w: _core_with(x, m, s, w, radius=s)),
    ),
    rtol=1e-6,  # a float32 answer agrees to ~1e-7; a wrong count is off by at least 1 in 40
    atol=1e-9,
))

"""Lesson 10 (evaluation): the Frechet distance of two Gaussians, precision and recall, one number, KID.

| exercise                 | the learner writes                                    | reference                 |
|--------------------------|-------------------------------------------------------|---------------------------|
| ``10.frechet_gaussians`` | ``my_frechet(mu_a, cov_a, mu_b, cov_b) -> float``     | Dowson & Landau's formula |
| ``10.precision_recall``  | ``my_precision_recall(real, fake, k) -> (p, r)``      | ``precision_recall``      |
| ``10.fd_infinity``       | FD_inf from FD(200) = 12.0 and FD(800) = 4.5          | a line in 1/n             |
| ``10.kid``               | ``my_kid(x, y) -> float``, the unbiased MMD^2         | ``metrics.mmd2_unbiased`` |

Means are (F,) and covariances (F, F) float64 tensors; ``real`` (n, F) and ``fake`` (m, F) are
feature vectors; ``x`` (n, F) and ``y`` (m, F) of ``10.kid`` too (float64; an answer computed
in float32 agrees to about 1e-6 of the kernel's size, inside the tolerance). Answers may return
floats or 0-d tensors: both are read as numbers. The hidden cases (``ddpm-course grade --hidden``)
use other dimensions, set sizes, k and mode counts.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..metrics import mmd2_unbiased, precision_recall
from ._checker import Case, FunctionExercise, Mistake, NumberExercise, Verdict, register


class _NumbersExercise(FunctionExercise):
    """A function exercise whose answer is a number or a tuple of numbers (floats or 0-d tensors)."""

    def verdict(self, answer: Callable) -> Verdict:
        if not callable(answer):
            return super().verdict(answer)

        def as_numbers(*args):
            out = answer(*args)
            return tuple(float(v) for v in out) if isinstance(out, (tuple, list)) else float(out)

        return super().verdict(as_numbers)


# ----------------------------------------------------------------------------------------------
# 10.frechet_gaussians: the closed form between two Gaussians


def _sqrtm(a: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def _frechet(mu_a: Tensor, cov_a: Tensor, mu_b: Tensor, cov_b: Tensor, factor: float = 2.0) -> float:
    root_a = _sqrtm(cov_a)
    tr_sqrt = _sqrtm(root_a @ cov_b @ root_a).trace()  # tr((S_a S_b)^(1/2))
    return ((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - factor * tr_sqrt).item()


def _random_cov(f: int, generator: torch.Generator) -> Tensor:
    m = torch.randn(f, f, generator=generator, dtype=torch.float64)
    return m @ m.T / f + 0.1 * torch.eye(f, dtype=torch.float64)  # (F, F), full rank, not diagonal


def _gaussian_cases(generator: torch.Generator, dims=(2, 5, 8), same_dim: int = 3,
                    one_d=(0.0, 1.0, 3.0, 4.0)) -> list[Case]:
    cases = []
    for f in dims:
        mu_a, mu_b = torch.randn(2, f, generator=generator, dtype=torch.float64)
        cases.append(Case((mu_a, _random_cov(f, generator), mu_b, _random_cov(f, generator)), {},
                          f"two {f}-d Gaussians with full covariances"))
    mu = torch.randn(same_dim, generator=generator, dtype=torch.float64)
    cov = _random_cov(same_dim, generator)
    cases.append(Case((mu, cov, mu.clone(), cov.clone()), {}, f"the same {same_dim}-d Gaussian twice (FD = 0)"))
    one = torch.ones(1, dtype=torch.float64)
    m_a, v_a, m_b, v_b = one_d
    fd = (m_a - m_b) ** 2 + (v_a**0.5 - v_b**0.5) ** 2
    cases.append(Case((m_a * one, v_a * one.reshape(1, 1), m_b * one, v_b * one.reshape(1, 1)), {},
                      f"1-d: N({m_a:g}, {v_a:g}) and N({m_b:g}, {v_b:g}), FD = {fd:g}"))
    return cases


register(_NumbersExercise(
    name="10.frechet_gaussians",
    reference=_frechet,
    cases=_gaussian_cases,
    hidden_cases=lambda g: _gaussian_cases(g, dims=(3, 4, 6), same_dim=5, one_d=(1.0, 2.0, -1.0, 0.5)),
    mistakes=(
        Mistake("the cross term is 2 tr((S_a S_b)^(1/2)): the factor 2 is missing",
                lambda ma, ca, mb, cb: _frechet(ma, ca, mb, cb, factor=1.0)),
        Mistake("that is the distance itself; the Frechet distance (FID) is the squared 2-Wasserstein distance: "
                "do not take the square root at the end",
                lambda ma, ca, mb, cb: max(_frechet(ma, ca, mb, cb), 0.0) ** 0.5),
        Mistake("the mean term is the squared length |mu_a - mu_b|^2, not the length",
                lambda ma, ca, mb, cb: _frechet(ma, ca, mb, cb) - (ma - mb).square().sum().item()
                + (ma - mb).norm().item()),
        Mistake("(S_a S_b)^(1/2) is the matrix square root of the matrix product, not the element-wise square "
                "root of element-wise products: build S_a^(1/2) S_b S_a^(1/2) and take its matrix square root",
                lambda ma, ca, mb, cb: ((ma - mb).square().sum() + ca.trace() + cb.trace()
                                        - 2 * (ca * cb).clamp(min=0).sqrt().trace()).item()),
        Mistake("tr(S_a^(1/2) S_b^(1/2)) equals tr((S_a S_b)^(1/2)) only when the two covariances commute (e.g. "
                "both diagonal); take the matrix square root of S_a^(1/2) S_b S_a^(1/2)",
                lambda ma, ca, mb, cb: ((ma - mb).square().sum() + ca.trace() + cb.trace()
                                        - 2 * (_sqrtm(ca) @ _sqrtm(cb)).trace()).item()),
    ),
    rtol=1e-6,
    atol=1e-8,
))

# ----------------------------------------------------------------------------------------------
# 10.precision_recall: k-nearest-neighbour balls


def _pr(real: Tensor, fake: Tensor, k: int) -> tuple[float, float]:
    return tuple(precision_recall(real, fake, k))


def _pr_with(real: Tensor, fake: Tensor, k: int, rank: int | None = None, one_radius: bool = False) -> tuple:
    rank = k + 1 if rank is None else rank
    r_real = torch.kthvalue(torch.cdist(real, real), rank, dim=1).values  # (n,)
    r_fake = torch.kthvalue(torch.cdist(fake, fake), rank, dim=1).values  # (m,)
    if one_radius:
        r_real, r_fake = r_real.mean().expand_as(r_real), r_fake.mean().expand_as(r_fake)
    dist = torch.cdist(real, fake)  # (n, m)
    precision = (dist <= r_real[:, None]).any(0).double().mean().item()
    recall = (dist <= r_fake[None, :]).any(1).double().mean().item()
    return precision, recall


def _cloud_cases(generator: torch.Generator) -> list[Case]:
    def cloud(n, f, shift=0.0, scale=1.0):
        return torch.randn(n, f, generator=generator, dtype=torch.float64) * scale + shift

    centres = torch.randn(6, 2, generator=generator, dtype=torch.float64) * 4
    modes = torch.arange(60) % 6
    real6 = centres[modes] + 0.3 * torch.randn(60, 2, generator=generator, dtype=torch.float64)
    fake3 = centres[modes[:40] % 3] + 0.3 * torch.randn(40, 2, generator=generator, dtype=torch.float64)
    same = cloud(30, 3)
    return [
        Case((cloud(40, 2), cloud(50, 2, 0.5), 3), {}, "two 2-d clouds, k = 3"),
        Case((cloud(30, 4), cloud(25, 4, scale=0.5), 1), {}, "a narrower fake cloud in 4-d, k = 1"),
        Case((cloud(30, 4), cloud(25, 4, scale=2.0), 5), {}, "a wider fake cloud in 4-d, k = 5"),
        Case((real6, fake3, 3), {}, "6 modes; the fake set covers 3 of them"),
        Case((same, same.clone(), 3), {}, "identical sets"),
        Case((cloud(20, 2), cloud(20, 2, 50.0), 3), {}, "disjoint sets"),
    ]


def _hidden_cloud_cases(generator: torch.Generator) -> list[Case]:
    def cloud(n, f, shift=0.0, scale=1.0):
        return torch.randn(n, f, generator=generator, dtype=torch.float64) * scale + shift

    centres = torch.randn(5, 3, generator=generator, dtype=torch.float64) * 4
    modes = torch.arange(50) % 5
    real5 = centres[modes] + 0.3 * torch.randn(50, 3, generator=generator, dtype=torch.float64)
    fake2 = centres[modes[:30] % 2] + 0.3 * torch.randn(30, 3, generator=generator, dtype=torch.float64)
    same = cloud(25, 2)
    return [
        Case((cloud(35, 3), cloud(45, 3, 0.7), 2), {}, "two 3-d clouds, k = 2"),
        Case((cloud(25, 5), cloud(30, 5, scale=0.6), 4), {}, "a narrower fake cloud in 5-d, k = 4"),
        Case((cloud(40, 2), cloud(20, 2, scale=1.8), 1), {}, "a wider fake cloud in 2-d, k = 1"),
        Case((real5, fake2, 2), {}, "5 modes in 3-d; the fake set covers 2 of them"),
        Case((same, same.clone(), 2), {}, "identical sets, k = 2"),
        Case((cloud(15, 3), cloud(25, 3, -40.0), 4), {}, "disjoint sets, k = 4"),
    ]


register(_NumbersExercise(
    name="10.precision_recall",
    reference=_pr,
    cases=_cloud_cases,
    hidden_cases=_hidden_cloud_cases,
    mistakes=(
        Mistake("the nearest 'neighbour' at distance 0 is the point itself: each ball reaches the k-th *other* "
                "point, the (k+1)-th smallest distance in the row (torch.kthvalue(d, k + 1))",
                lambda r, f, k: _pr_with(r, f, k, rank=k)),
        Mistake("precision and recall are swapped: precision asks how many *fake* points fall inside the real "
                "balls (fidelity), recall how many *real* points fall inside the fake balls (coverage)",
                lambda r, f, k: _pr_with(r, f, k)[::-1]),
        Mistake("each point gets its own radius, the distance to its own k-th neighbour: one average radius "
                "for the whole set ignores that the data is denser in some places than in others",
                lambda r, f, k: _pr_with(r, f, k, one_radius=True)),
    ),
    rtol=1e-6,  # shares of counts: different answers differ by at least 1/60
    atol=1e-7,
))

# ----------------------------------------------------------------------------------------------
# 10.fd_infinity: extrapolate a biased estimate to infinitely many samples

_N1, _FD1, _N2, _FD2 = 200, 12.0, 800, 4.5


def _line_in(x: Callable[[float], float]) -> float:
    """The intercept of FD = FD_inf + c x(n) through the two measurements."""
    c = (_FD1 - _FD2) / (x(_N1) - x(_N2))
    return _FD2 - c * x(_N2)


register(NumberExercise(
    name="10.fd_infinity",
    answer=lambda: _line_in(lambda n: 1 / n),
    mistakes=(
        Mistake("that is the value measured at 800 samples: it still carries a bias c / 800; fit the line "
                "FD = FD_inf + c / n through both points and read it at 1/n = 0", lambda: _FD2),
        Mistake("the bias of a Frechet distance falls like 1/n (its spread falls like 1/sqrt(n)): fit against "
                "1/n, not 1/sqrt(n)", lambda: _line_in(lambda n: n**-0.5)),
        Mistake("that is the difference between the two measurements, the bias c (1/200 - 1/800); FD_inf is "
                "where the line reaches 1/n = 0", lambda: _FD1 - _FD2),
    ),
    rtol=1e-3,
))

# ----------------------------------------------------------------------------------------------
# 10.kid: the unbiased MMD^2 under the cubic polynomial kernel


def _kid_with(x: Tensor, y: Tensor, *, diagonal: bool = False, pairs: str = "n(n-1)", scale: bool = True,
              cross: float = 2.0, degree: int = 3, coef: float = 1.0) -> float:
    f = x.shape[1] if scale else 1

    def within(a: Tensor) -> Tensor:
        n = a.shape[0]
        k = (a @ a.T / f + coef) ** degree  # (n, n)
        total = k.sum() if diagonal else k.sum() - k.diagonal().sum()
        return total / (n * n if diagonal or pairs == "n^2" else n * (n - 1))

    return (within(x) + within(y) - cross * ((x @ y.T / f + coef) ** degree).mean()).item()


def _kid_cases(generator: torch.Generator, hidden: bool = False) -> list[Case]:
    def cloud(n, f, shift=0.0, scale=1.0):
        return torch.randn(n, f, generator=generator, dtype=torch.float64) * scale + shift

    if hidden:
        same = cloud(9, 5)
        return [
            Case((cloud(33, 3, 0.2), cloud(21, 3)), {}, "two 3-d clouds, 33 and 21 points"),
            Case((cloud(8, 10, scale=0.5), cloud(11, 10, 0.3)), {}, "a narrow 10-d cloud, 8 and 11 points"),
            Case((cloud(60, 1, 2.0), cloud(7, 1, -0.5, 3.0)), {}, "1-d sets of 60 and 7 points"),
            Case((same, same.clone()), {}, "the same 9 points twice"),
            Case((cloud(3, 2), cloud(2, 2, 1.0)), {}, "3 and 2 points"),
        ]
    same = cloud(25, 3)
    return [
        Case((cloud(30, 2), cloud(40, 2, 0.5)), {}, "two 2-d clouds, 30 and 40 points"),
        Case((cloud(20, 6), cloud(15, 6, scale=2.0)), {}, "a wider cloud in 6-d, 20 and 15 points"),
        Case((cloud(12, 4, 1.0), cloud(50, 4, -1.0)), {}, "two shifted 4-d clouds, 12 and 50 points"),
        Case((same, same.clone()), {}, "the same set twice (the U-statistic is below 0)"),
        Case((cloud(2, 3), cloud(3, 3)), {}, "the smallest sets: 2 and 3 points"),
    ]


register(_NumbersExercise(
    name="10.kid",
    reference=lambda x, y: mmd2_unbiased(x, y),
    cases=_kid_cases,
    hidden_cases=lambda g: _kid_cases(g, hidden=True),
    mistakes=(
        Mistake("the i = j terms k(x_i, x_i) are in the within-set sums: that is the biased V-statistic, whose "
                "mean is above the true MMD^2 by about (E k(x, x) - E k(x, x')) / n; drop the diagonal and "
                "divide by n (n - 1)", lambda x, y: _kid_with(x, y, diagonal=True)),
        Mistake("the diagonal is dropped but the sum is still divided by n^2: there are n (n - 1) pairs i != j",
                lambda x, y: _kid_with(x, y, pairs="n^2")),
        Mistake("the kernel divides the dot product by the feature dimension F: k(a, b) = (a . b / F + 1)^3",
                lambda x, y: _kid_with(x, y, scale=False)),
        Mistake("the cross term counts twice: MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)",
                lambda x, y: _kid_with(x, y, cross=1.0)),
        Mistake("KID's kernel is cubic: (a . b / F + 1)^3, not squared", lambda x, y: _kid_with(x, y, degree=2)),
        Mistake("the kernel is (a . b / F + 1)^3: the + 1 is missing", lambda x, y: _kid_with(x, y, coef=0.0)),
    ),
    rtol=1e-5,
    atol=1e-7,
))

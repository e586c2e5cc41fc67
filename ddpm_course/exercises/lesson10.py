"""Lesson 10 (evaluation): the Frechet distance of two Gaussians, precision and recall, one number.

| exercise                 | the learner writes                                    | reference                 |
|--------------------------|-------------------------------------------------------|---------------------------|
| ``10.frechet_gaussians`` | ``my_frechet(mu_a, cov_a, mu_b, cov_b) -> float``     | Dowson & Landau's formula |
| ``10.precision_recall``  | ``my_precision_recall(real, fake, k) -> (p, r)``      | ``precision_recall``      |
| ``10.fd_infinity``       | FD_inf from FD(200) = 12.0 and FD(800) = 4.5          | a line in 1/n             |

Means are (F,) and covariances (F, F) float64 tensors; ``real`` (n, F) and ``fake`` (m, F) are
feature vectors. Answers may return floats or 0-d tensors: both are read as numbers. The hidden
cases (``ddpm-course grade --hidden``) use other dimensions, set sizes, k and mode counts.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..metrics import precision_recall
from . import Case, FunctionExercise, Mistake, NumberExercise, Verdict, register


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

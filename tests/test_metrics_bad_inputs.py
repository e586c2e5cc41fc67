"""Every public function of ``ddpm_course.metrics`` refuses bad input with a clear message.

The rule (module docstring of metrics.py): a tensor argument that is not a tensor, or holds
integers, bools or complex numbers, is a ``TypeError``; the wrong number of dimensions, an
empty set, too few rows for what is computed, mismatched feature sizes and NaN or infinite
values are ``ValueError``s; every message names the argument. The table is built from one list
of bad tensors per kind (features, images) applied to every argument slot of every function,
plus the scalar arguments.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm_course import metrics


def _feats(n: int = 12, f: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _with(x: torch.Tensor, value: float) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[3] = value
    return x


# (label, bad value, exception, fragment of the message)
BAD_FEATURES = [
    ("a list", [[0.0, 1.0]] * 12, TypeError, "torch.Tensor"),
    ("a numpy array", np.zeros((12, 2)), TypeError, "torch.Tensor"),
    ("None", None, TypeError, "torch.Tensor"),
    ("integers", torch.ones(12, 2, dtype=torch.long), TypeError, "floating-point"),
    ("bools", torch.ones(12, 2, dtype=torch.bool), TypeError, "floating-point"),
    ("complex numbers", torch.ones(12, 2, dtype=torch.complex64), TypeError, "floating-point"),
    ("a vector", torch.ones(12, dtype=torch.float64), ValueError, "(n, F)"),
    ("a 3-d tensor", torch.ones(12, 2, 1, dtype=torch.float64), ValueError, "(n, F)"),
    ("a scalar", torch.tensor(1.0), ValueError, "(n, F)"),
    ("no rows", torch.ones(0, 2, dtype=torch.float64), ValueError, "empty"),
    ("no features", torch.ones(12, 0, dtype=torch.float64), ValueError, "empty"),
    ("a NaN", _with(_feats(), float("nan")), ValueError, "NaN or infinite"),
    ("an infinity", _with(_feats(), float("inf")), ValueError, "NaN or infinite"),
    ("a float32 -infinity", _with(_feats().float(), float("-inf")), ValueError, "NaN or infinite"),
]

# function, its argument names, good values for them
FEATURE_FUNCTIONS = {
    "frechet_distance": (metrics.frechet_distance, ("feats_a", "feats_b"), lambda: (_feats(), _feats(15, seed=1))),
    "frechet_distance_unbiased": (
        metrics.frechet_distance_unbiased,
        ("feats", "ref_feats"),
        lambda: (_feats(), _feats(15, seed=1)),
    ),
    "precision_recall": (metrics.precision_recall, ("real", "fake"), lambda: (_feats(), _feats(15, seed=1))),
    "density_coverage": (metrics.density_coverage, ("real", "fake"), lambda: (_feats(), _feats(15, seed=1))),
    "sliced_wasserstein": (metrics.sliced_wasserstein, ("x", "y"), lambda: (_feats(), _feats(seed=1))),
    "evaluate_features": (
        metrics.evaluate_features,
        ("samples", "reference", "real"),
        lambda: (_feats(), _feats(15, seed=1), _feats(30, seed=2)),
    ),
}

FEATURE_CASES = [
    pytest.param(fn, i, bad, exc, fragment, id=f"{name}-{arg}-{label}")
    for name, (fn, args, _) in FEATURE_FUNCTIONS.items()
    for i, arg in enumerate(args)
    for label, bad, exc, fragment in BAD_FEATURES
]


@pytest.mark.parametrize(("fn", "slot", "bad", "exc", "fragment"), FEATURE_CASES)
def test_bad_features(fn, slot, bad, exc, fragment):
    name = next(n for n, (f, _, _) in FEATURE_FUNCTIONS.items() if f is fn)
    names, good = FEATURE_FUNCTIONS[name][1], list(FEATURE_FUNCTIONS[name][2]())
    good[slot] = bad
    with pytest.raises(exc) as info:
        fn(*good)
    message = str(info.value)
    assert fragment in message and names[slot] in message, message


BAD_IMAGES = [
    ("a list", [[[[0.0]]]] * 6, TypeError, "torch.Tensor"),
    ("a numpy array", np.zeros((6, 1, 16, 16), dtype=np.float32), TypeError, "torch.Tensor"),
    ("uint8 pixels", torch.zeros(6, 1, 16, 16, dtype=torch.uint8), TypeError, "floating-point"),
    ("bools", torch.zeros(6, 1, 16, 16, dtype=torch.bool), TypeError, "floating-point"),
    ("no channel axis", torch.zeros(6, 16, 16), ValueError, "(N, 1, H, W)"),
    ("three channels", torch.zeros(6, 3, 16, 16), ValueError, "(N, 1, H, W)"),
    ("a zero-height image", torch.zeros(6, 1, 0, 16), ValueError, "(N, 1, H, W)"),
    ("no images", torch.zeros(0, 1, 16, 16), ValueError, "empty"),
    ("a NaN pixel", _with(_images(), float("nan")), ValueError, "NaN or infinite"),
    ("an infinite pixel", _with(_images(), float("inf")), ValueError, "NaN or infinite"),
    ("pixels in [0, 255]", _images() * 127.5 + 127.5, ValueError, "[-1, 1]"),
]

IMAGE_FUNCTIONS = {
    "digit_features": (metrics.digit_features, ("images",), lambda: (_images(),)),
    "digits_fd": (metrics.digits_fd, ("samples",), lambda: (_images(),)),
    "evaluate": (
        metrics.evaluate,
        ("samples", "reference", "real"),
        lambda: (_images(), _images(8, 1), _images(20, 2)),
    ),
}

IMAGE_CASES = [
    pytest.param(fn, i, bad, exc, fragment, id=f"{name}-{arg}-{label}")
    for name, (fn, args, _) in IMAGE_FUNCTIONS.items()
    for i, arg in enumerate(args)
    for label, bad, exc, fragment in BAD_IMAGES
]


@pytest.mark.parametrize(("fn", "slot", "bad", "exc", "fragment"), IMAGE_CASES)
def test_bad_images(fn, slot, bad, exc, fragment):
    name = next(n for n, (f, _, _) in IMAGE_FUNCTIONS.items() if f is fn)
    names, good = IMAGE_FUNCTIONS[name][1], list(IMAGE_FUNCTIONS[name][2]())
    good[slot] = bad
    with pytest.raises(exc) as info:
        fn(*good)
    message = str(info.value)
    assert fragment in message and names[slot] in message, message


# Too few rows, mismatched sizes and bad scalar arguments: (call, exception, fragments)
F12, F15, F30 = _feats(), _feats(15, seed=1), _feats(30, seed=2)
OTHER = [
    # too few rows for what is computed
    ("FD of one row", lambda: metrics.frechet_distance(_feats(1), F15), ValueError, ["feats_a", "at least 2"]),
    (
        "FD fit through 2 rows",
        lambda: metrics.frechet_distance_unbiased(_feats(2), F15),
        ValueError,
        ["feats", "at least 3"],
    ),
    (
        "k-th neighbour of 3 points, k = 3",
        lambda: metrics.precision_recall(_feats(3), F15),
        ValueError,
        ["real", "at least 4"],
    ),
    (
        "density with k = 5 and 5 fakes",
        lambda: metrics.density_coverage(F12, _feats(5), k=5),
        ValueError,
        ["fake", "at least 6"],
    ),
    (
        "a real pool smaller than the samples",
        lambda: metrics.evaluate_features(F30, F15, F12),
        ValueError,
        ["real", "at least 30"],
    ),
    ("one sample image", lambda: metrics.digits_fd(_images(1)), ValueError, ["samples", "at least 2"]),
    ("one sample image (evaluate)", lambda: metrics.evaluate(_images(1)), ValueError, ["samples", "at least 2"]),
    (
        "more samples than real digits",
        lambda: metrics.evaluate(torch.zeros(1500, 1, 16, 16)),
        ValueError,
        ["at most 1433"],
    ),
    (
        "more samples than real digits (digits_fd)",
        lambda: metrics.digits_fd(torch.zeros(1500, 1, 16, 16)),
        ValueError,
        ["at most 1433"],
    ),
    # mismatched feature sizes
    (
        "FD of 2-d and 3-d features",
        lambda: metrics.frechet_distance(F12, _feats(15, 3)),
        ValueError,
        ["same feature dimension"],
    ),
    (
        "extrapolation, 2-d and 3-d",
        lambda: metrics.frechet_distance_unbiased(F12, _feats(15, 3)),
        ValueError,
        ["feats and ref_feats", "same feature dimension"],
    ),
    (
        "precision/recall, 2-d and 3-d",
        lambda: metrics.precision_recall(F12, _feats(15, 3)),
        ValueError,
        ["same feature dimension"],
    ),
    (
        "density/coverage, 2-d and 3-d",
        lambda: metrics.density_coverage(F12, _feats(15, 3)),
        ValueError,
        ["same feature dimension"],
    ),
    (
        "evaluate_features, reference 3-d",
        lambda: metrics.evaluate_features(F12, _feats(15, 3), F30),
        ValueError,
        ["samples and reference"],
    ),
    (
        "evaluate_features, real 3-d",
        lambda: metrics.evaluate_features(F12, F15, _feats(30, 3)),
        ValueError,
        ["samples and real"],
    ),
    ("sliced W2 of different counts", lambda: metrics.sliced_wasserstein(F12, F15), ValueError, ["same n and d"]),
    (
        "sliced W2 of different dims",
        lambda: metrics.sliced_wasserstein(F12, _feats(12, 3)),
        ValueError,
        ["same n and d"],
    ),
]

SCALARS = {  # argument -> (call with the value, bad values)
    "n_projections": (lambda v: metrics.sliced_wasserstein(F12, F12, n_projections=v), [0, -3, 2.5, True, "8", None]),
    "generator": (lambda v: metrics.sliced_wasserstein(F12, F12, generator=v), [0, "seed", np.random.default_rng(0)]),
    "k": (lambda v: metrics.precision_recall(F12, F15, k=v), [0, -1, 1.5, True, "3", None]),
    "k ": (lambda v: metrics.density_coverage(F12, F15, k=v), [0, False, 2.0]),
    "k  ": (lambda v: metrics.evaluate_features(F12, F15, F30, k=v), [0, True]),
    "n_real": (lambda v: metrics.evaluate_features(F12, F15, F30, n_real=v), [1, 0, True, 5.0]),
    "generator ": (lambda v: metrics.evaluate_features(F12, F15, F30, generator=v), [1, "g"]),
    "draws": (lambda v: metrics.frechet_distance_unbiased(F12, F15, draws=v), [0, True, 1.5]),
    "sizes": (
        lambda v: metrics.frechet_distance_unbiased(F12, F15, sizes=v),
        [[1, 12], [2, 13], [6, 6], [6.5, 12], [True, 12], "612", 6],
    ),
    "generator  ": (lambda v: metrics.frechet_distance_unbiased(F12, F15, generator=v), [7]),
    "batch_size": (lambda v: metrics.digit_features(_images(), batch_size=v), [0, True, 2.5]),
    "epochs": (lambda v: metrics.train_digit_classifier(epochs=v), [0, -1, True, 2.5]),
    "seed": (lambda v: metrics.train_digit_classifier(seed=v), [-1, None, 1.5]),
    "n_floor": (lambda v: metrics.digits_fd(_images(), n_floor=v), [1, True, 3.0]),
    "n_ref": (lambda v: metrics.digits_fd(_images(), n_ref=v), [1, 365, True, 100.0]),
    "generator   ": (lambda v: metrics.digits_fd(_images(), generator=v), [3]),
    "n_real ": (lambda v: metrics.evaluate(_images(), n_real=v), [1, False]),
    "k   ": (lambda v: metrics.evaluate(_images(), k=v), [0, True]),
    "generator    ": (lambda v: metrics.evaluate(_images(), generator=v), ["0"]),
}
def _case_id(value) -> str:
    """The value as a test id that is the same in every process (no object address in it)."""
    plain = value is None or isinstance(value, (bool, int, float, str, list))
    return repr(value) if plain else type(value).__name__


SCALAR_CASES = [
    pytest.param(call, value, arg.strip(), id=f"{arg.strip()}={_case_id(value)}")
    for arg, (call, values) in SCALARS.items()
    for value in values
]


@pytest.mark.parametrize(("label", "call", "exc", "fragments"), OTHER, ids=[case[0] for case in OTHER])
def test_too_few_rows_and_mismatched_sizes(label, call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    assert all(f in str(info.value) for f in fragments), str(info.value)


@pytest.mark.parametrize(("call", "value", "arg"), SCALAR_CASES)
def test_bad_scalar_arguments(call, value, arg):
    # ValueError for a wrong value; a wrong kind may be a TypeError (a generator, a sequence)
    with pytest.raises((TypeError, ValueError)) as info:
        call(value)
    assert arg in str(info.value), str(info.value)


def test_good_edge_values_still_work():
    # the smallest accepted sizes compute something finite
    assert np.isfinite(metrics.frechet_distance(_feats(2), _feats(2, seed=1)))
    assert np.isfinite(metrics.frechet_distance_unbiased(_feats(3), _feats(2, seed=1)).value)
    pr = metrics.precision_recall(_feats(2), _feats(2, seed=1), k=1)
    assert 0.0 <= pr.precision <= 1.0 and 0.0 <= pr.recall <= 1.0  # shares of 2 points: 0, 0.5 or 1
    assert metrics.sliced_wasserstein(_feats(1), _feats(1, seed=1)) >= 0
    assert metrics.digit_features(_images(1)).shape == (1, 32)
    assert metrics.digit_features(_images(2).double(), batch_size=1).shape == (2, 32)  # float64 images are fine
    assert metrics.precision_recall(F12.float(), F15, k=np.int64(2)).precision >= 0  # numpy integers are integers

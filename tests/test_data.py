"""Offline data: photos, digits, 2-D toys."""
import pytest
import torch

import ddpm_course as dc


@pytest.mark.parametrize("name", ["flower", "china"])
@pytest.mark.parametrize("size", [32, 64])
def test_photo_shape_and_range(name, size):
    x = dc.photo(name, size)
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.2  # a real photo, not a constant


def test_photos_differ():
    assert (dc.photo("flower", 32) - dc.photo("china", 32)).abs().mean() > 0.1


def test_digits_splits_are_disjoint_stratified_and_fixed():
    full = dc.digits(size=8)
    train, test = dc.digits(size=8, split="train"), dc.digits(size=8, split="test")
    assert full.images.shape == (1797, 1, 8, 8)
    assert len(train.labels) + len(test.labels) == 1797
    # every class is held out in about the same proportion
    frac = torch.bincount(test.labels, minlength=10) / torch.bincount(full.labels, minlength=10)
    assert torch.all((frac - dc.data.DIGITS_TEST_FRACTION).abs() < 0.02)
    # no test image appears in the train split
    flat_train = {tuple(x.flatten().tolist()) for x in train.images}
    overlap = sum(tuple(x.flatten().tolist()) in flat_train for x in test.images)
    assert overlap < 5  # a handful of exact duplicates exist in the raw data set
    assert torch.equal(dc.digits(size=8, split="test").images, test.images)


def test_digits_range_and_upsampling():
    d = dc.digits()
    assert d.images.shape == (1797, 1, 16, 16) and d.labels.dtype == torch.long
    assert d.images.min() == -1 and d.images.max() == 1
    # raw values 0..16 map linearly to [-1, 1]
    raw = dc.digits(size=8).images
    assert set(((raw + 1) * 8).round().unique().tolist()) <= set(range(17))


@pytest.mark.parametrize("name", dc.data.TOY2D)
def test_toy2d(name):
    x = dc.toy2d(name, 500, generator=torch.Generator().manual_seed(0))
    y = dc.toy2d(name, 500, generator=torch.Generator().manual_seed(0))
    assert x.shape == (500, 2) and torch.equal(x, y)
    assert x.abs().max() < 4 and x.std() > 0.3


def test_to_unit():
    torch.testing.assert_close(dc.to_unit(torch.tensor([-1.0, 0.0, 1.0, 3.0])), torch.tensor([0.0, 0.5, 1.0, 1.0]))


def test_bad_data_arguments():
    with pytest.raises(ValueError, match=r"name must be one of 'flower', 'china'; got 'cat'"):
        dc.photo("cat")
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        dc.photo("flower", 0)
    with pytest.raises(ValueError, match="split must be"):
        dc.digits(split="val")
    with pytest.raises(ValueError, match="name must be one of"):
        dc.toy2d("spiral")
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        dc.toy2d("moons", 0)

"""torchvision loaders, exercised offline on tiny dataset files written here."""
import pickle
import struct

import numpy as np
import pytest
import torch

from ddpm_course.data import torchvision_images


def _write_idx(path, array: np.ndarray) -> None:
    """The IDX format of MNIST: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian sizes, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root, folder: str, n: int = 5):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0] = 0
    images[1] = 255
    labels = np.arange(n) % 10
    for split in ("train", "t10k"):
        _write_idx(raw / f"{split}-images-idx3-ubyte", images)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return images, labels


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_grey_sets_padded_to_32_and_scaled(tmp_path, name, folder):
    images, labels = _fake_mnist(tmp_path, folder)
    data = torchvision_images(name, root=str(tmp_path), train=True)
    assert data.images.shape == (5, 1, 32, 32) and data.images.dtype == torch.float32
    assert torch.equal(data.labels, torch.from_numpy(labels).long())
    inner = data.images[:, 0, 2:30, 2:30]
    assert torch.allclose(inner, torch.from_numpy(images).float() / 127.5 - 1)  # exact [0, 255] -> [-1, 1]
    assert (data.images[:, :, :2] == -1).all() and (data.images[:, :, :, -2:] == -1).all()  # padding is background
    assert data.images[0].max() == -1 and data.images[1, 0, 2:30, 2:30].min() == 1


def test_resize(tmp_path):
    _fake_mnist(tmp_path, "MNIST")
    data = torchvision_images("mnist", root=str(tmp_path), train=False, size=16)
    assert data.images.shape == (5, 1, 16, 16)
    assert data.images.min() >= -1 and data.images.max() <= 1


def test_cifar10(tmp_path, monkeypatch):
    from torchvision.datasets import cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8)  # CIFAR's row layout: R plane, G, B
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rows, "labels": [3, 1, 4, 1]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: True)  # our files lack the real MD5 sums
    data = torchvision_images("cifar10", root=str(tmp_path), train=False)
    assert data.images.shape == (4, 3, 32, 32)
    expected = torch.from_numpy(rows.reshape(4, 3, 32, 32)).float() / 127.5 - 1
    assert torch.allclose(data.images, expected)
    assert data.labels.tolist() == [3, 1, 4, 1]


def test_bad_name_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="mnist"):
        torchvision_images("svhn", root=str(tmp_path))
    with pytest.raises(ValueError, match="size"):
        torchvision_images("mnist", root=str(tmp_path), size=0)
    with pytest.raises(RuntimeError, match="not found"):
        torchvision_images("mnist", root=str(tmp_path), download=False)

"""Tiny MNIST-format and CIFAR-10-format files for offline tests of the torchvision paths.

torchvision reads them as it reads the real sets; only CIFAR-10's MD5 check must be switched
off (``CIFAR_MD5_OFF``), since the real files' sums cannot match made-up data.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_BATCHES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]

# Python that switches off CIFAR-10's MD5 check, for a test's process or a notebook's kernel.
CIFAR_MD5_OFF = (
    "from torchvision.datasets import cifar\n"
    "cifar.check_integrity = lambda path, md5=None: True  # made-up files lack the real MD5 sums\n"
)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of MNIST: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian sizes, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, folder: str = "MNIST", n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write n random 28x28 images (the same for both splits) under root/folder/raw.

    folder: "MNIST" or "FashionMNIST". Image 0 is all background (0) and image 1 all ink (255),
    the two ends of the scale. Returns (images (n, 28, 28) uint8, labels (n,)).
    """
    if n < 2:
        raise ValueError(f"n must be at least 2; got {n}")
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0], images[1] = 0, 255
    labels = np.arange(n) % 10
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return images, labels


def fake_cifar10(root: Path, n: int = 8, seed: int = 1) -> tuple[np.ndarray, list[int]]:
    """Write n random colour images in every CIFAR-10 batch file under root/cifar-10-batches-py.

    Returns (rows (n, 3 * 32 * 32) uint8 in CIFAR's layout: R plane, G, B; labels).
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows = np.random.default_rng(seed).integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    labels = [(3 * i + 1) % 10 for i in range(n)]
    for name in CIFAR_BATCHES:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rows, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)
    return rows, labels


def cifar_md5_off(monkeypatch) -> None:
    """In this process, let torchvision accept the made-up CIFAR-10 files."""
    from torchvision.datasets import cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: True)

"""torchvision loaders, exercised offline on tiny dataset files written here."""
import pytest
import torch
from _fake_datasets import cifar_md5_off, fake_cifar10, fake_mnist

from ddpm_course.data import torchvision_images


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_grey_sets_padded_to_32_and_scaled(tmp_path, name, folder):
    images, labels = fake_mnist(tmp_path, folder, n=5)
    data = torchvision_images(name, root=str(tmp_path), train=True)
    assert data.images.shape == (5, 1, 32, 32) and data.images.dtype == torch.float32
    assert torch.equal(data.labels, torch.from_numpy(labels).long())
    inner = data.images[:, 0, 2:30, 2:30]
    assert torch.allclose(inner, torch.from_numpy(images).float() / 127.5 - 1)  # exact [0, 255] -> [-1, 1]
    assert (data.images[:, :, :2] == -1).all() and (data.images[:, :, :, -2:] == -1).all()  # padding is background
    assert data.images[0].max() == -1 and data.images[1, 0, 2:30, 2:30].min() == 1


def test_resize(tmp_path):
    fake_mnist(tmp_path, "MNIST", n=5)
    data = torchvision_images("mnist", root=str(tmp_path), train=False, size=16)
    assert data.images.shape == (5, 1, 16, 16)
    assert data.images.min() >= -1 and data.images.max() <= 1


def test_cifar10(tmp_path, monkeypatch):
    rows, labels = fake_cifar10(tmp_path, n=4)  # CIFAR's row layout: R plane, G, B
    cifar_md5_off(monkeypatch)
    data = torchvision_images("cifar10", root=str(tmp_path), train=False)
    assert data.images.shape == (4, 3, 32, 32)
    expected = torch.from_numpy(rows.reshape(4, 3, 32, 32)).float() / 127.5 - 1
    assert torch.allclose(data.images, expected)
    assert data.labels.tolist() == labels


def test_bad_name_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="mnist"):
        torchvision_images("svhn", root=str(tmp_path))
    with pytest.raises(ValueError, match="size"):
        torchvision_images("mnist", root=str(tmp_path), size=0)
    with pytest.raises(RuntimeError, match="not found"):
        torchvision_images("mnist", root=str(tmp_path), download=False)


def test_load_images_by_name(tmp_path):
    from ddpm_course.data import digits, load_images

    assert torch.equal(load_images("digits", "test").images, digits(16, split="test").images)
    fake_mnist(tmp_path, "MNIST", n=5)
    assert load_images("mnist", "train", root=str(tmp_path)).images.shape == (5, 1, 32, 32)
    with pytest.raises(ValueError, match="name must be one of"):
        load_images("svhn")
    with pytest.raises(ValueError, match="split"):
        load_images("digits", "all")

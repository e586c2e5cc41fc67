"""Training recipes: one place for the CLI and the benchmarks (``ddpm-course train --preset NAME``).

| name               | what                                                                  |
|--------------------|-----------------------------------------------------------------------|
| :class:`Preset`    | a complete recipe: data, model, schedule and optimisation settings    |
| :data:`PRESETS`    | the course's recipes by name, the article's among them                |
| :func:`build_preset` | the data, model and schedule of a recipe, ready for ``train``       |
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..data import ImageData
from ..schedules import Schedule

__all__ = ["PRESETS", "Preset", "PresetRun", "build_preset"]


@dataclass(frozen=True)
class Preset:
    """A complete training recipe: data, model, schedule and optimisation settings.

    ``model_config`` is the dict that ``models.build_model(arch, model_config)`` takes;
    ``schedule`` is "linear" or "cosine" with ``T`` steps; ``data`` is "digits" (the train split
    at ``image_size``), "toy2d:<name>" (``n_points`` points) or "torchvision:<name>" (the train
    split of "mnist" padded to 32x32 or "cifar10", see ``data.torchvision_images``; the files are
    read from a folder, downloaded only when asked). ``steps``/``minutes`` are the default
    budget; the CLI can override them.

    The bigger presets' "about N minutes" is an estimate from FLOPs, not a measurement: the
    forward FLOPs of one 32x32 image (``torch.utils.flop_counter.FlopCounterMode``) x 3 (forward
    and backward) x batch x steps, at a sustained 50 TFLOP/s (an A100-class GPU in bf16; a T4
    sustains perhaps a quarter of that).
    """

    description: str
    arch: str
    model_config: dict = field(default_factory=dict)
    data: str = "digits"
    image_size: int = 16
    n_points: int = 8192
    schedule: str = "linear"
    T: int = 1000
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 200
    lr_decay: bool = True
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.999
    optimizer: str = "adamw"

    def train_kwargs(self) -> dict:
        """The optimisation settings as keyword arguments of :func:`train`."""
        return dict(
            batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps, lr_decay=self.lr_decay,
            weight_decay=self.weight_decay, grad_clip=self.grad_clip, ema_decay=self.ema_decay,
            optimizer=self.optimizer,
        )


PRESETS: dict[str, Preset] = {
    "digits": Preset(
        description="the course U-Net on 16x16 digits (train split): GroupNorm, two resolutions "
        "below the input, attention at the lowest, dropout; AdamW with warm-up, cosine decay, "
        "clipping and EMA (0.999); 3000 steps",
        arch="UNet",
        model_config=dict(
            in_channels=1, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
            attention_levels=(2,), dropout=0.1, num_classes=None, groups=8, time_dim=None,
        ),
        steps=3000,
        lr=1e-3,
        warmup_steps=200,
        ema_decay=0.999,
    ),
    "article-digits": Preset(
        description="the article's recipe on the same digits: SimpleUNet (base 64), linear "
        "schedule, plain Adam at lr 1e-3, no warm-up, no clipping, no EMA",
        arch="SimpleUNet",
        model_config=dict(in_channels=1, base_channels=64, time_dim=128),
        steps=4000,
        lr=1e-3,
        warmup_steps=0,
        lr_decay=False,
        grad_clip=None,
        ema_decay=None,
        optimizer="adam",
    ),
    "toy2d": Preset(
        description="an MLP noise predictor on the 8-Gaussian ring mixture (2-D points)",
        arch="MLPDenoiser",
        model_config=dict(dim=2, hidden=128, depth=3, time_dim=64, num_classes=None),
        data="toy2d:mixture",
        T=1000,
        steps=3000,
        batch_size=1024,
        lr=3e-3,
        warmup_steps=100,
        ema_decay=0.99,
    ),
    "mnist": Preset(
        description="MNIST (train split, 60,000 digits, 28x28 padded to 32x32) for one GPU: the course "
        "U-Net at base 64, widths (1, 2, 2), two res blocks per level, attention at 8x8 (6.5M parameters); "
        "batch 128, 20,000 steps, AdamW lr 2e-4 with warm-up, cosine decay, clipping, EMA 0.999; about "
        "7 minutes (estimated from FLOPs, not measured)",
        arch="UNet",
        model_config=dict(
            in_channels=1, base_channels=64, channel_mults=(1, 2, 2), num_res_blocks=2,
            attention_levels=(2,), dropout=0.1, num_classes=None, groups=8, time_dim=None,
        ),
        data="torchvision:mnist",
        steps=20_000,
        batch_size=128,
        lr=2e-4,
        warmup_steps=500,
        ema_decay=0.999,
    ),
    "cifar10": Preset(
        description="CIFAR-10 (train split, 50,000 colour 32x32 images) for one GPU: the course U-Net at "
        "base 96, widths (1, 2, 2), two res blocks per level, attention at 16x16, dropout 0.1 (14.5M "
        "parameters, DDPM's CIFAR model is 35.7M); batch 128, 100,000 steps, AdamW lr 2e-4, EMA 0.9999; about "
        "90 minutes (estimated from FLOPs, not measured)",
        arch="UNet",
        model_config=dict(
            in_channels=3, base_channels=96, channel_mults=(1, 2, 2), num_res_blocks=2,
            attention_levels=(1,), dropout=0.1, num_classes=None, groups=32, time_dim=None,
        ),
        data="torchvision:cifar10",
        steps=100_000,
        batch_size=128,
        lr=2e-4,
        warmup_steps=1000,
        ema_decay=0.9999,
    ),
}


@dataclass
class PresetRun:
    """The pieces :func:`build_preset` assembles: a fresh model, its schedule and its data.

    ``data`` is read when first used, so that a preset's model can be built (and its files
    looked for) separately; ``sample_shape`` is the shape of one example, e.g. (1, 32, 32).
    """

    preset: Preset
    model: nn.Module
    schedule: Schedule
    sample_shape: tuple[int, ...]
    load_data: Callable[[], ImageData | Tensor] = field(repr=False)

    @functools.cached_property
    def data(self) -> ImageData | Tensor:
        """The training data: an ImageData (N, C, H, W) or points (N, D)."""
        return self.load_data()


def build_preset(name: str, seed: int = 0, data_root: str = "data", download: bool = False) -> PresetRun:
    """A fresh model (initialised from ``seed``), the schedule and the training data of a preset.

    data_root, download: where a torchvision preset's files are (or go), and whether to fetch
    them when missing; a missing dataset without ``download`` is a FileNotFoundError when
    ``run.data`` is first read.
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {name!r}")
    from .. import models
    from ..data import digits, toy2d
    from ..schedules import cosine_schedule, linear_schedule

    preset = PRESETS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.build_model(preset.arch, copy.deepcopy(preset.model_config))
    schedule = linear_schedule(preset.T) if preset.schedule == "linear" else cosine_schedule(preset.T)
    kind, _, dataset = preset.data.partition(":")
    if kind == "digits":
        sample_shape = (1, preset.image_size, preset.image_size)
        load = functools.partial(digits, size=preset.image_size, split="train")
    elif kind == "torchvision":
        sample_shape = (preset.model_config["in_channels"], 32, 32)
        load = functools.partial(_torchvision_data, dataset, data_root, download)
    else:
        sample_shape = (2,)
        load = functools.partial(toy2d, dataset, n=preset.n_points, generator=torch.Generator().manual_seed(seed + 1))
    return PresetRun(preset=preset, model=model, schedule=schedule, sample_shape=sample_shape, load_data=load)


_TORCHVISION_FOLDERS = {"mnist": "MNIST/raw", "cifar10": "cifar-10-batches-py"}


def _torchvision_data(name: str, root: str, download: bool) -> ImageData:
    """The train split of a torchvision set: FileNotFoundError (saying how to get it) when its files
    are missing, ValueError naming the folder when they are there but incomplete or corrupt."""
    import pickle
    from pathlib import Path

    from ..data import torchvision_images

    folder = Path(root) / _TORCHVISION_FOLDERS.get(name, name)
    try:
        return torchvision_images(name, root=str(root), train=True, download=download)
    except FileNotFoundError:
        raise FileNotFoundError(f"the {name} files are not under {root!r} (torchvision's layout)") from None
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
        if "not found" not in str(err).lower() or download and not folder.is_dir():
            raise ValueError(f"the {name} files in {folder} cannot be read ({' '.join(str(err).split())})") from None
        if folder.is_dir() and any(folder.iterdir()):
            raise ValueError(
                f"the {name} files in {folder} are incomplete or corrupt (torchvision's check of them failed); "
                "delete that folder and download them again (--download), or copy intact files there"
            ) from None
        raise FileNotFoundError(
            f"the {name} files are not under {root!r} (torchvision's layout); download them with "
            f"download=True, or copy them there"
        ) from None
    except (ValueError, EOFError, OSError, IndexError, KeyError, TypeError, AssertionError,
            pickle.UnpicklingError) as err:  # a truncated or made-up file read by torchvision
        reason = " ".join(str(err).split())[:120] or type(err).__name__
        raise ValueError(f"the {name} files in {folder} cannot be read: corrupt, unreadable or not torchvision's "
                         f"format ({reason}); "
                         "delete that folder and download them again (--download)") from None

"""Data-parallel training on several GPUs (or CPU processes) through torchrun and PyTorch's
DistributedDataParallel (DDP): the engine is PyTorch's, this module only connects it.

``torchrun --nproc_per_node N -m ddpm_course.cli train ...`` (or ``torchrun --nproc_per_node N
$(which ddpm-course) train ...``) starts N copies of the same command. Each finds its place in
the environment torchrun sets, joins the process group, and trains a replica of the model:

| name        | meaning                                                         |
|-------------|-----------------------------------------------------------------|
| RANK        | this process's number, 0..WORLD_SIZE-1; rank 0 prints and saves |
| WORLD_SIZE  | how many processes train together                               |
| LOCAL_RANK  | its number on this machine; process i uses GPU ``cuda:i``       |

DDP broadcasts rank 0's initial weights and averages the gradients over the ranks before
every optimiser step (Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data
Parallel Training"), so the replicas stay equal while each rank draws its own batches (its
generator is seeded from the seed and its rank): one step sees WORLD_SIZE x batch_size images.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["Rank", "from_env", "start", "stop", "wrap", "mean", "rank_seed", "main_rank_first"]


@dataclass(frozen=True)
class Rank:
    """Where this process sits among those torchrun started."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints progress and writes files."""
        return self.rank == 0


def from_env() -> Rank | None:
    """The torchrun placement from RANK, WORLD_SIZE and LOCAL_RANK, or None outside torchrun."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    if not all(name in os.environ for name in names):
        return None
    try:
        rank, world_size, local_rank = (int(os.environ[name]) for name in names)
    except ValueError:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them); got "
                         f"{[os.environ[n] for n in names]}") from None
    if not (world_size >= 1 and 0 <= rank < world_size and local_rank >= 0):
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, "
                         f"LOCAL_RANK={local_rank}")
    return Rank(rank, world_size, local_rank)


def start(where: Rank, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on the CPU); returns this rank's device
    (``cuda:LOCAL_RANK`` for a CUDA run)."""
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", where.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"distributed training runs on CUDA (nccl) or the CPU (gloo); got device {device}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    """Leave the process group (torchrun waits for every rank before it exits)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model inside DDP: the forward pass is the model's, backward averages the gradients."""
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if hasattr(model, "config"):  # the model contract reads model.config (num_classes, the null label)
        ddp.config = model.config
    return ddp


def mean(value: Tensor) -> Tensor:
    """The mean of a scalar tensor over the ranks (e.g. the loss, so that every rank logs and
    guards the same number)."""
    import torch.distributed as dist

    total = value.detach().float().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def rank_seed(seed: int, where: Rank | None) -> int:
    """The seed of a rank's data stream: ``seed`` on rank 0 (and outside torchrun), so that one
    process alone reproduces the single-process run; ``seed + rank`` on the others."""
    return seed if where is None else seed + where.rank


@contextmanager
def main_rank_first(where: Rank | None) -> Iterator[None]:
    """Run the block on rank 0 first, then on the others (e.g. rank 0 downloads a dataset, the
    others read its files); outside torchrun simply run it."""
    import torch.distributed as dist

    if where is not None and not where.is_main:
        dist.barrier()
    yield
    if where is not None and where.is_main:
        dist.barrier()

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

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "Rank", "from_env", "start", "stop", "wrap", "mean", "rank_seed", "main_rank_first", "JOIN_TIMEOUT_S",
    "join_timeout",
]


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


JOIN_TIMEOUT_S = 60.0  # how long a rank waits for the others to come before it gives up
JOIN_TIMEOUT_ENV = "DDPM_COURSE_JOIN_TIMEOUT"  # seconds, to wait longer (or shorter) than that


def join_timeout() -> float:
    """The seconds a rank waits for the others: :data:`JOIN_TIMEOUT_S`, or the environment's
    ``DDPM_COURSE_JOIN_TIMEOUT`` (a number of seconds > 0)."""
    text = os.environ.get(JOIN_TIMEOUT_ENV)
    if text is None:
        return JOIN_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"{JOIN_TIMEOUT_ENV} must be a finite number of seconds > 0; got {text!r}")
    return value


def start(where: Rank, device: torch.device, timeout_s: float | None = None) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on the CPU); returns this rank's device
    (``cuda:LOCAL_RANK`` for a CUDA run).

    The ranks first meet on torchrun's store (MASTER_ADDR:MASTER_PORT) and wait at most
    ``timeout_s`` seconds (default :func:`join_timeout`) for one another: a leftover torchrun
    environment (RANK, WORLD_SIZE set, no other ranks) is a ValueError within that time, not a
    half-hour wait. The group's own collectives keep PyTorch's default timeout.
    """
    import torch.distributed as dist

    timeout_s = join_timeout() if timeout_s is None else float(timeout_s)
    if device.type == "cuda":
        device = torch.device("cuda", where.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"distributed training runs on CUDA (nccl) or the CPU (gloo); got device {device}")
    if dist.is_initialized():
        return device
    store = _meet(where, datetime.timedelta(seconds=timeout_s))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=where.rank,
                            world_size=where.world_size)
    return device


def _meet(where: Rank, timeout) -> object:
    """Connect to the rendezvous store and wait until every rank has checked in; ValueError if
    they do not within ``timeout`` (a timedelta)."""
    import torch.distributed as dist

    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    leftover = (f"RANK={where.rank}, WORLD_SIZE={where.world_size} are set: run under torchrun, or unset RANK, "
                "WORLD_SIZE and LOCAL_RANK to train in one process")
    if not host or not (port or "").isdigit():
        raise ValueError(f"MASTER_ADDR and MASTER_PORT (set by torchrun) are missing or invalid although {leftover}")
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"  # torchrun hosts the store
    prefix = f"ddpm_course/join/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"
    seconds = timeout.total_seconds()
    try:
        store = dist.TCPStore(host, int(port), where.world_size, is_master=where.rank == 0 and not agent,
                              timeout=timeout, wait_for_workers=False)
        store.set(f"{prefix}{where.rank}", "1")
        store.wait([f"{prefix}{r}" for r in range(where.world_size)], timeout)
    except (RuntimeError, OSError) as err:  # DistStoreError, DistNetworkError, a refused connection
        reason = " ".join(str(err).split())[:160].rstrip(". ")
        raise ValueError(f"the {where.world_size} torchrun processes did not all join within {seconds:g} s at "
                         f"{host}:{port} ({reason}); {leftover} (wait longer with {JOIN_TIMEOUT_ENV}=SECONDS)"
                         ) from None
    store.set_timeout(datetime.timedelta(minutes=30))  # the group's collectives: PyTorch's default
    return store


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

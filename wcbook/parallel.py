"""Training on several processes: seeds spread over GPUs, or one run data-parallel (DDP).

Both are launched by ``torchrun``, which starts one process per GPU (or per CPU slot) and tells
each its place through the environment variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``::

    # five seeds of one experiment, spread over the GPUs of one machine
    torchrun --nproc_per_node=gpu -m wcbook run mnist-scratch --profile paper --seeds 5

    # one run, each batch split over the processes, gradients averaged (DDP)
    torchrun --nproc_per_node=2 -m wcbook run mnist-scratch --profile paper --data-parallel

Without ``--data-parallel`` the processes never talk: rank r trains the seeds r, r + W, r + 2W, ...
of the requested list. With it, :func:`init_data_parallel` joins the processes in one group
(NCCL on GPUs, gloo on CPUs) and :func:`wcbook.training.train` wraps the model in
:class:`torch.nn.parallel.DistributedDataParallel`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

__all__ = [
    "Launch",
    "device_for",
    "init_data_parallel",
    "close_data_parallel",
    "data_parallel_group",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Launch:
    """Where this process stands among those ``torchrun`` started (a lone process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Launch":
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun); defaults 0, 1, 0."""
        try:
            launch = cls(
                rank=int(os.environ.get("RANK", 0)),
                world_size=int(os.environ.get("WORLD_SIZE", 1)),
                local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            )
        except ValueError as exc:
            raise ValueError(
                f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them): {exc}"
            ) from None
        if not 0 <= launch.rank < launch.world_size:
            raise ValueError(f"RANK {launch.rank} is outside 0..WORLD_SIZE-1")
        return launch

    @property
    def is_main(self) -> bool:
        """True for rank 0, the process that writes records and shows progress."""
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's share of ``items`` (round robin: items r, r + W, r + 2W, ...)."""
        return list(items[self.rank :: self.world_size])


def device_for(launch: Launch, device: str | torch.device = "auto") -> torch.device:
    """The device of this process: with ``"auto"`` (or a bare ``"cuda"``) and GPUs present, GPU
    ``LOCAL_RANK`` modulo the GPU count (several processes may share one GPU); else CPU, or the
    device given."""
    if isinstance(device, str) and device in ("auto", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda", launch.local_rank % torch.cuda.device_count())
        if device == "cuda":
            raise RuntimeError("--device cuda was asked for, but PyTorch sees no CUDA device")
        return torch.device("cpu")
    return torch.device(device)


def init_data_parallel(device: torch.device) -> None:
    """Join the process group torchrun prepared: NCCL for CUDA devices, gloo for CPU."""
    if dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ:
        raise RuntimeError(
            "data-parallel training needs the processes torchrun starts, e.g. "
            "`torchrun --nproc_per_node=2 -m wcbook run <id> --data-parallel`"
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def close_data_parallel() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def data_parallel_group() -> tuple[int, int] | None:
    """(rank, world size) of the initialised process group, or None when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None

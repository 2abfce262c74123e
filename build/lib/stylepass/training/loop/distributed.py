"""DDP setup from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK).

The same ``stylepass train`` command runs single-process or under ``torchrun --nproc-per-node N``:
NCCL on CUDA, gloo on the CPU. Rank 0 alone writes logs and checkpoints.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when running under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes files)."""
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group if WORLD_SIZE > 1; returns the context and this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(), device
    context = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return context, device


def all_ranks_true(flag: bool, context: DistContext, device: torch.device) -> bool:
    """True only if `flag` is True on every rank (a no-op without DDP)."""
    if not context.enabled:
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def barrier(context: DistContext) -> None:
    """Wait for every rank (a no-op without DDP)."""
    if context.enabled:
        dist.barrier()


def shutdown(context: DistContext) -> None:
    """Leave the process group if this process joined one."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()

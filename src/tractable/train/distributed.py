r"""Data parallelism with ``torch.distributed``, switched on by launching under ``torchrun``.

``torchrun --nproc_per_node K script.py`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; the
trainer then joins a process group (``nccl`` when CUDA is available, ``gloo`` on CPU), wraps the
model in :class:`~torch.nn.parallel.DistributedDataParallel`, and gives each rank a contiguous
``batch_size / K`` slice of every global batch. DDP averages the gradients of the per-rank
mean losses, which equals the gradient of the mean loss over the global batch, so a run on
``K`` processes matches a single-process run up to floating-point rounding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistContext:
    r"""Where this process sits: ``rank`` of ``world_size``, and the device it trains on
    (``None``: wherever the model's parameters already are)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def comm_device(self) -> torch.device:
        r"""The device that collective tensors must live on for the active backend."""
        if self.enabled and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


class LossModule(nn.Module):
    r"""Makes ``model.loss`` the ``forward`` that DistributedDataParallel wraps and hooks
    (DDP synchronises gradients only for computations that go through ``forward``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Tensor | tuple[Tensor, ...]) -> Tensor:
        return self.model.loss(batch)


def setup_distributed() -> DistContext:
    r"""Join the process group described by ``torchrun``'s environment, if there is one.

    Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) this is a no-op returning a
    single-process context. A process group the caller already initialised is reused and left
    alone at the end.

    Example:
        >>> setup_distributed().world_size  # not under torchrun
        1
    """
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        if world == 1:
            return DistContext()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local) if dist.get_backend() == "nccl" else None
        return DistContext(dist.get_rank(), world, local, device, owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        device: torch.device | None = torch.device("cuda", local)
    else:
        dist.init_process_group("gloo")
        device = None
    return DistContext(rank, world, local, device, owns_group=True)


def teardown_distributed(ctx: DistContext) -> None:
    r"""Leave the process group if :func:`setup_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: Tensor, ctx: DistContext) -> Tensor:
    r"""Sum a float64 tensor over all ranks (identity in a single process)."""
    if not ctx.enabled:
        return values
    moved = values.to(ctx.comm_device())
    dist.all_reduce(moved, op=dist.ReduceOp.SUM)
    return moved.to(values.device)


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    r"""One object from every rank, in rank order (``[obj]`` in a single process).

    Objects travel between the processes of this one job only; nothing is read from disk.
    """
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


__all__ = [
    "DistContext",
    "LossModule",
    "all_gather_objects",
    "all_reduce_sum",
    "barrier",
    "setup_distributed",
    "teardown_distributed",
]

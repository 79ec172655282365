"""Process-group plumbing for training: one process, or many under `torchrun` (PyTorch DDP).

Nothing here is a distributed engine of its own: `torchrun` starts the processes and sets
RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT, `torch.distributed` rendezvouses
through them (init_method "env://"), and `DistributedDataParallel` all-reduces the gradients.

    with distributed(os.environ, device="auto") as ctx:   # the CLI passes the environment in
        model = wrap(model, ctx)                           # DDP when ctx.world_size > 1
        ...
        if ctx.is_main: save(...)

Backends: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rci.core.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job. The default is a plain single process on the CPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, shows progress and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(device: str, local_rank: int = 0) -> torch.device:
    """"auto" -> this process's GPU when CUDA is available, else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", local_rank)
    if device != "cpu":
        raise ConfigError(f"unknown device {device!r} (expected auto, cpu or cuda)")
    return torch.device("cpu")


def context_from_env(environ: Mapping[str, str], device: str = "auto") -> DistContext:
    """Read torchrun's variables (absent: a single process). Does not join a process group."""
    try:
        world_size = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local_rank = int(environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(f"torchrun variables are not integers: {exc}") from exc
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world_size}")
    return DistContext(rank, world_size, local_rank, pick_device(device, local_rank))


@contextmanager
def distributed(environ: Mapping[str, str], device: str = "auto") -> Iterator[DistContext]:
    """Join the torchrun process group for the duration of the block (no-op for one process)."""
    ctx = context_from_env(environ, device)
    if not ctx.distributed:
        yield ctx
        return
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    backend = "nccl" if ctx.device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=ctx.rank, world_size=ctx.world_size)
    try:
        yield ctx
    finally:
        dist.destroy_process_group()


def wrap(module: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """Move to the context's device; wrap in DDP when there are several processes."""
    module = module.to(ctx.device)
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_across_ranks(values: Mapping[str, float], ctx: DistContext) -> dict[str, float]:
    """Average each value over the ranks (every rank must pass the same keys)."""
    if not ctx.distributed or not values:
        return dict(values)
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return {n: float(v) / ctx.world_size for n, v in zip(names, tensor.tolist(), strict=True)}

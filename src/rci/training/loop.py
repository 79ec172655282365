"""A small supervised trainer: AdamW, a warm-up + cosine/linear schedule, DDP under torchrun.

The trainer knows nothing about MatchLite or MatchLM. It trains an *objective*: an nn.Module
whose forward takes a batch and returns `Losses` (the model plus its loss, see stage1.py and
distill.py). Putting the loss inside the module is what DDP needs: everything that holds
trainable parameters (the distillation projection P included) runs inside one DDP forward.

    result = fit(objective, dataset, collate, TrainConfig.matchlite(epochs=2), ctx)

Batches are any object with `.to(device)` returning the batch on that device. Each rank sees
its own shard of the data (DistributedSampler, reshuffled every epoch); every rank takes the same
number of steps, so gradient all-reduces never wait on a rank that has finished. Only rank 0
shows progress, logs and runs `on_epoch_end` (e.g. checkpointing or validation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, TypeVar

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from rci.core.logs import get_logger
from rci.training.ddp import DistContext, barrier, mean_across_ranks, unwrap, wrap
from rci.training.losses import Losses

log = get_logger(__name__)

Schedule = Literal["cosine", "linear", "constant"]
B = TypeVar("B", bound="DeviceBatch")


class DeviceBatch(Protocol):
    def to(self: B, device: torch.device) -> B: ...


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyper-parameters (saved in checkpoints next to the model config)."""

    epochs: int = 8
    batch_size: int = 16  # per process (paper D.1: 16 per GPU)
    lr: float = 1e-4  # peak learning rate
    schedule: Schedule = "cosine"  # decay from the peak to 0 over the run, after warm-up
    warmup_steps: int = 0  # linear ramp from 0 to lr
    weight_decay: float = 0.01  # AdamW; applied to matrices and conv kernels only
    grad_clip: float | None = 1.0  # max global grad norm; None disables
    max_steps: int | None = None  # stop early (tests, demos); None = epochs x batches
    seed: int = 0  # data order
    bf16: bool = False  # autocast to bfloat16 on CUDA (ignored on the CPU)
    find_unused_parameters: bool = False  # DDP: set for models with branches unused by some batches

    @classmethod
    def matchlite(cls, **overrides: object) -> TrainConfig:
        """Paper D.1: AdamW, lr 1e-4 with cosine annealing, 8 epochs."""
        return cls(**{"lr": 1e-4, "schedule": "cosine", "epochs": 8, **overrides})

    @classmethod
    def matchlm(cls, **overrides: object) -> TrainConfig:
        """Paper D.2: AdamW, lr 2e-5 with linear decay, 8 epochs."""
        return cls(**{"lr": 2e-5, "schedule": "linear", "epochs": 8, **overrides})

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EpochLog:
    epoch: int  # 1-based
    steps: int  # optimizer steps taken so far
    lr: float  # learning rate at the end of the epoch
    seconds: float
    losses: dict[str, float]  # mean per step over the epoch, averaged over ranks
    metrics: dict[str, float] = field(default_factory=dict)  # returned by on_epoch_end (rank 0)


@dataclass
class TrainResult:
    history: list[EpochLog]
    steps: int

    @property
    def first_loss(self) -> float:
        return self.history[0].losses["total"]

    @property
    def last_loss(self) -> float:
        return self.history[-1].losses["total"]

    def to_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "history": [asdict(e) for e in self.history]}


def lr_factor(schedule: Schedule, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """Multiplier of the peak lr for step `s` (0-based): linear warm-up, then the schedule to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress  # linear

    return factor


def make_optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on >= 2-D weights only (not on biases and norm scales), as nanoGPT does."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def _loader(dataset: Dataset, collate: Callable, config: TrainConfig, ctx: DistContext) -> DataLoader:
    if ctx.distributed:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(config.seed))
    # A last batch of one sample would break batch norm's training statistics: drop it (it is a
    # different sample every epoch, so nothing is left out for good).
    drop_last = len(sampler) % config.batch_size == 1 and len(sampler) > 1
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, collate_fn=collate, drop_last=drop_last)


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Every draw inside (dropout masks, the loader's base seed) from `seed`, whatever the process drew
    before: a model trained on features just computed and one trained on the same features read from the
    cache are the same model. The caller's RNG state is restored afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def fit(
    objective: nn.Module,
    dataset: Dataset,
    collate: Callable[[list], DeviceBatch],
    config: TrainConfig,
    ctx: DistContext | None = None,
    *,
    name: str = "train",
    on_epoch_end: Callable[[int, nn.Module], Mapping[str, float] | None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `objective` in place (its forward(batch) -> Losses); returns per-epoch logs.

    Every rank must call this with the same config and an equally long dataset. `on_epoch_end`
    gets (epoch, the unwrapped objective in train mode) on rank 0 only; the other ranks wait.
    """
    ctx = ctx or DistContext()
    model = wrap(objective, ctx, config.find_unused_parameters)
    loader = _loader(dataset, collate, config, ctx)
    steps_per_epoch = len(loader)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    if total_steps == 0:
        raise ValueError(f"{name}: nothing to train on ({len(dataset)} examples, {config.epochs} epochs)")
    optimizer = make_optimizer(objective, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config.schedule, total_steps, config.warmup_steps))
    use_bf16 = config.bf16 and ctx.device.type == "cuda"

    history: list[EpochLog] = []
    step = 0
    if ctx.is_main:
        log.info("training", name=name, examples=len(dataset), world_size=ctx.world_size, steps=total_steps,
                 device=str(ctx.device), **{k: v for k, v in config.to_dict().items() if k in ("lr", "schedule", "epochs")})
    with _seeded(config.seed + ctx.rank, ctx.device), _progress(progress and ctx.is_main) as bar:
        task = bar.add_task(name, total=total_steps, loss=float("nan"))
        for epoch in range(1, config.epochs + 1):
            if step >= total_steps:
                break
            if isinstance(loader.sampler, DistributedSampler):
                loader.sampler.set_epoch(epoch)
            model.train()
            started, sums, count = time.perf_counter(), {}, 0
            for batch in loader:
                if step >= total_steps:
                    break
                batch = batch.to(ctx.device)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                    losses: Losses = model(batch)
                optimizer.zero_grad(set_to_none=True)
                losses.total.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(objective.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                count += 1
                parts = {**losses.item_parts(), "total": float(losses.total.detach())}
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value
                bar.update(task, advance=1, loss=parts["total"])
            epoch_losses = mean_across_ranks({k: v / max(count, 1) for k, v in sums.items()}, ctx)
            metrics = {}
            if on_epoch_end is not None and ctx.is_main:
                metrics = dict(on_epoch_end(epoch, unwrap(model)) or {})
                unwrap(model).train()
            barrier(ctx)
            entry = EpochLog(epoch, step, scheduler.get_last_lr()[0], time.perf_counter() - started, epoch_losses, metrics)
            history.append(entry)
            if ctx.is_main:
                log.info("epoch done", name=name, epoch=epoch, steps=step, seconds=round(entry.seconds, 2),
                         **{k: round(v, 5) for k, v in {**epoch_losses, **metrics}.items()})
    return TrainResult(history=history, steps=step)

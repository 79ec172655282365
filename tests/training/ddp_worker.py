"""Run by test_ddp.py under torchrun: stage 1 and stage 2 of MatchLite on synthetic pairs, DDP over gloo.

    torchrun --standalone --nproc-per-node 2 -m tests.training.ddp_worker OUT_DIR

Each rank writes OUT_DIR/rank<r>.json: its view of the job and a digest of its weights after
each stage (DDP all-reduces the gradients, so every rank must end with the same weights).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import hashlib
import time
from rci.training.data import TeacherTargets
from rci.training.ddp import distributed
from rci.training.distill import distill_matchlite
from rci.training.loop import TrainConfig
from rci.training.losses import DistillConfig
from rci.training.stage1 import train_matchlite, variant_config

from tests.training.synthetic_pairs import synthetic_dataset, tiny_config

PAIRS, BATCH, EPOCHS = 8, 2, 6


def parameters_digest(model: torch.nn.Module) -> str:
    """Hash of the parameters. Not of the buffers: BatchNorm running statistics are each rank's own
    (DDP broadcasts rank 0's at every forward, then each rank updates them on its own batch)."""
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().numpy().tobytes())
    return digest.hexdigest()[:16]


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    started = time.perf_counter()
    with distributed(os.environ, "cpu") as ctx:
        train = synthetic_dataset(PAIRS, seed=0)
        config = variant_config(tiny_config(), "V+A+T")
        tc = TrainConfig.matchlite(epochs=EPOCHS, batch_size=BATCH, lr=1e-2)
        student, stage1 = train_matchlite(config, train, tc, ctx, progress=False)
        digest1 = parameters_digest(student)

        labels = torch.as_tensor(train.labels).float() * 2 - 1  # a confident fake teacher
        g = torch.Generator().manual_seed(0)
        teacher = TeacherTargets(logits=torch.stack([-3 * labels, 3 * labels], 1), embedding=torch.randn(PAIRS, 12, generator=g))
        distilled, stage2 = distill_matchlite(student, train.with_teacher(teacher), tc, DistillConfig(), ctx, progress=False)
        result = {
            "rank": ctx.rank,
            "world_size": ctx.world_size,
            "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            "seconds": round(time.perf_counter() - started, 2),
            "stage1": {"digest": digest1, "steps": stage1.steps, "first": stage1.first_loss, "last": stage1.last_loss},
            "stage2": {"digest": parameters_digest(distilled), "steps": stage2.steps,
                       "first": stage2.first_loss, "last": stage2.last_loss},
        }
    (out_dir / f"rank{ctx.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

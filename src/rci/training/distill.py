"""Stage 2 (paper 3.4.2): freeze MatchLM, train MatchLite with L_total = lambda * (L_emb + L_logits) + L_class.

The student starts from its stage-1 checkpoint. The teacher is frozen and in eval mode, so its
outputs on a training pair never change: they are computed once (`teacher_targets`) and carried
in the batches, instead of running the teacher at every step of every epoch. That is the same
objective at a fraction of the cost, and it means distillation epochs cost what stage-1 epochs cost.

    targets = teacher_targets(teacher, processor, teacher_train_ds)        # logits [N,2], z_t [N,Dt]
    student, result = distill_matchlite(stage1_student, train_ds.with_teacher(targets), ...)
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rci.inference.matchlite import MatchLite
from rci.inference.matchlm.model import MatchLM
from rci.inference.matchlm.processor import MatchLMProcessor
from rci.training.data import DataError, PairBatch, PairDataset, TeacherCollate, TeacherPairDataset, TeacherTargets, collate_batch
from rci.training.ddp import DistContext
from rci.training.evaluate import matchlm_forward, predict
from rci.training.loop import TrainConfig, TrainResult, fit
from rci.training.losses import DistillationLoss, DistillConfig, Losses, multitask_loss
from rci.training.stage1 import DEFAULT_AUX_WEIGHT


def teacher_targets(
    teacher: MatchLM,
    processor: MatchLMProcessor,
    dataset: TeacherPairDataset,
    *,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> TeacherTargets:
    """The frozen teacher's logits and pair embeddings z_t on every example, in dataset order."""
    teacher = teacher.to(device).eval().requires_grad_(False)
    preds = predict(matchlm_forward(teacher), dataset, TeacherCollate(processor), batch_size, device)
    return TeacherTargets(logits=torch.from_numpy(preds.logits), embedding=torch.from_numpy(preds.embeddings))


class DistillObjective(nn.Module):
    """Student + projection P + L_total: forward(batch with teacher targets) -> Losses."""

    def __init__(self, student: MatchLite, loss: DistillationLoss, aux_weight: float = DEFAULT_AUX_WEIGHT) -> None:
        super().__init__()
        self.student = student
        self.loss = loss  # holds the learnable projection P
        self.aux_weights = {name: aux_weight for name in student.config.aux_heads}

    def forward(self, batch: PairBatch) -> Losses:
        if batch.teacher_logits is None or batch.teacher_embedding is None:
            raise DataError("distillation batches need teacher targets (PairDataset.with_teacher)")
        out = self.student(batch.inputs)
        classification = multitask_loss(out.logits, out.aux_logits, batch.labels, batch.aux_labels, self.aux_weights)
        return self.loss(out.logits, out.embedding, batch.teacher_logits, batch.teacher_embedding, classification)


def distill_matchlite(
    student: MatchLite,
    train: PairDataset,
    train_config: TrainConfig,
    distill_config: DistillConfig,
    ctx: DistContext | None = None,
    *,
    aux_weight: float = DEFAULT_AUX_WEIGHT,
    name: str = "distill",
    progress: bool = True,
) -> tuple[MatchLite, TrainResult]:
    """Train a copy of `student` (the stage-1 model is left as it was); returns it in eval mode.

    `train` must carry teacher targets. lam = 0 trains the same schedule with L_class only: the
    control that separates the effect of distillation from that of more epochs.
    """
    if train.teacher is None:
        raise DataError("distill_matchlite needs a dataset with teacher targets (PairDataset.with_teacher)")
    model = copy.deepcopy(student).train()
    loss = DistillationLoss(distill_config, teacher_dim=train.teacher.embedding.shape[1], student_dim=model.config.embedding_dim)
    objective = DistillObjective(model, loss, aux_weight)
    result = fit(objective, train, collate_batch, train_config, ctx, name=name, progress=progress)
    return model.cpu().eval(), result


def distill_info(distill_config: DistillConfig, teacher_version: str) -> dict[str, Any]:
    """What a distilled checkpoint records about its teacher and loss."""
    return {"distill_config": distill_config.to_dict(), "teacher_model_version": teacher_version}

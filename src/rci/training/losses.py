"""Training objectives: multi-task cross-entropy (stage 1) and MatchLM -> MatchLite distillation (stage 2).

Stage 1, paper eq. 1, "the sum of cross-entropy losses across all downstream classification tasks":
    L_class = CE(main) + sum_k w_k * CE(aux_k)
The auxiliary targets (does the pair share its visual / audio / text content?) are sometimes
undefined (a video without an audio track): such entries carry IGNORE_INDEX and do not count. So does
the main label of an unlabelled pair (rci.training.data.unlabelled): in stage 2 the teacher's targets
are its only supervision.

Stage 2, paper eqs. 3-6:
    L_emb    = 1 - cos(z_s, P(z_t))                 P: learnable linear map, teacher width -> student width
    L_logits = KL(softmax(P_t / T) || softmax(P_s / T))   teacher distribution first: the student is
               pulled towards the teacher's distribution, averaged over the batch; multiplied by T^2
               when `scale_by_t2` (Hinton et al. 2015) so the gradient size does not shrink as 1/T^2
               when T is raised, which keeps lambda meaningful across temperatures.
    L_total  = lambda * (w_emb * L_emb + w_logits * L_logits) + L_class,  lambda = 1.5
`w_emb` / `w_logits` default to 1 (the paper's main setting); setting one to 0 reproduces the
single-term ablations of the paper's Tables 5 and 6.

The teacher is frozen: its logits and embedding are treated as constants (detached), so the
gradient reaches only the student and the projection P.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # target value of an undefined label (an auxiliary one, or an unlabelled pair's)


@dataclass
class Losses:
    total: torch.Tensor  # scalar that is back-propagated
    parts: dict[str, torch.Tensor]  # named detached scalars, for logging

    def item_parts(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.parts.items()}


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean CE over the entries whose target is not IGNORE_INDEX.

    logits [B,K], targets [B] long. A batch with no valid target gives a zero that is still
    connected to `logits`, so every parameter takes part in the graph (DDP requires that
    unless find_unused_parameters is set) and the step is a no-op for that head.
    """
    valid = targets != IGNORE_INDEX
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid], targets[valid])


def multitask_loss(
    logits: torch.Tensor,  # [B,2] main head
    aux_logits: Mapping[str, torch.Tensor],  # name -> [B,2]
    labels: torch.Tensor,  # [B] long
    aux_labels: Mapping[str, torch.Tensor],  # name -> [B] long, IGNORE_INDEX where undefined
    aux_weights: Mapping[str, float],  # name -> w_k; a head missing here has weight 0
) -> Losses:
    """Eq. 1: CE of the main head plus the weighted CE of each auxiliary head (IGNORE_INDEX entries left out)."""
    main = masked_cross_entropy(logits, labels)
    total = main
    parts = {"ce_main": main.detach()}
    for name, head_logits in aux_logits.items():
        if name not in aux_labels:
            raise KeyError(f"no targets for auxiliary head {name!r} (have {sorted(aux_labels)})")
        ce = masked_cross_entropy(head_logits, aux_labels[name])
        total = total + float(aux_weights.get(name, 0.0)) * ce
        parts[f"ce_{name}"] = ce.detach()
    parts["class"] = total.detach()
    return Losses(total=total, parts=parts)


@dataclass(frozen=True)
class DistillConfig:
    """Stage-2 loss hyper-parameters (saved with the distilled checkpoint)."""

    lam: float = 1.5  # lambda of eq. 6
    emb_weight: float = 1.0  # w_emb: 0 drops L_emb (Table 5/6 ablations)
    logits_weight: float = 1.0  # w_logits: 0 drops L_logits
    temperature: float = 2.0  # T of eq. 4 (the paper does not give its value)
    scale_by_t2: bool = True  # multiply L_logits by T^2 (see module docstring)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if min(self.lam, self.emb_weight, self.logits_weight) < 0:
            raise ValueError("distillation weights must be >= 0")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def embedding_distill_loss(z_student: torch.Tensor, z_teacher_projected: torch.Tensor) -> torch.Tensor:
    """Eq. 3: mean over the batch of 1 - cos(z_s, P(z_t)); both [B,d]."""
    return (1.0 - F.cosine_similarity(z_student, z_teacher_projected, dim=-1, eps=1e-8)).mean()


def logit_distill_loss(
    student_logits: torch.Tensor,  # [B,K]
    teacher_logits: torch.Tensor,  # [B,K]
    temperature: float,
    scale_by_t2: bool = True,
) -> torch.Tensor:
    """Eq. 4: KL(p_t || p_s) at temperature T, summed over classes, averaged over the batch."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    # F.kl_div(input, target) = sum target * (log target - input) = KL(target || input)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    return kl * temperature**2 if scale_by_t2 else kl


class TeacherProjection(nn.Module):
    """P of eq. 3: a learnable linear map from the teacher's embedding width to the student's."""

    def __init__(self, teacher_dim: int, student_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(teacher_dim, student_dim)

    def forward(self, z_teacher: torch.Tensor) -> torch.Tensor:  # [B,Dt] -> [B,Ds]
        return self.linear(z_teacher.detach())


class DistillationLoss(nn.Module):
    """L_total of eq. 6. Holds the projection P, so its parameters train with the student."""

    def __init__(self, config: DistillConfig, teacher_dim: int, student_dim: int) -> None:
        super().__init__()
        self.config = config
        self.projection = TeacherProjection(teacher_dim, student_dim)

    def forward(
        self,
        student_logits: torch.Tensor,  # [B,2]
        student_embedding: torch.Tensor,  # [B,Ds]
        teacher_logits: torch.Tensor,  # [B,2]
        teacher_embedding: torch.Tensor,  # [B,Dt]
        classification: Losses,  # stage-1 multi-task CE of the student on the same batch
    ) -> Losses:
        cfg = self.config
        l_emb = embedding_distill_loss(student_embedding, self.projection(teacher_embedding))
        l_logits = logit_distill_loss(student_logits, teacher_logits, cfg.temperature, cfg.scale_by_t2)
        distill = cfg.emb_weight * l_emb + cfg.logits_weight * l_logits
        total = cfg.lam * distill + classification.total
        parts = {
            **classification.parts,
            "emb": l_emb.detach(),
            "logits": l_logits.detach(),
            "distill": distill.detach(),
            "total": total.detach(),
        }
        return Losses(total=total, parts=parts)

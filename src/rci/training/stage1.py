"""Stage 1 (paper 3.4.1): supervised multi-task training of MatchLite and of the teacher MatchLM.

MatchLite is trained in the four modality variants of the paper's Table 2:

    V        visual only (no multimodal perception)       use_audio=False, use_text=False
    V+A      + BiXT(v <-> a)                                use_audio=True
    V+T      + BiXT(v <-> t)                                use_text=True
    V+A+T    both (the deployed configuration)

A variant only carries the auxiliary heads of the modalities it sees: asking a visual-only model
to predict whether two soundtracks match would train its trunk on a target it cannot observe.

Each trained model is written as a checkpoint that carries its model config, the training config,
the variant and the encoder version (rci.inference.checkpoint for MatchLite).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rci.inference.checkpoint import save_checkpoint, weights_digest
from rci.inference.matchlite import MatchLite, MatchLiteConfig
from rci.inference.matchlm.model import MatchLM
from rci.inference.matchlm.processor import MatchLMProcessor
from rci.training.data import PairBatch, PairDataset, TeacherBatch, TeacherCollate, TeacherPairDataset, collate_batch
from rci.training.ddp import DistContext
from rci.training.loop import TrainConfig, TrainResult, fit
from rci.training.losses import Losses, multitask_loss

VARIANTS: dict[str, tuple[bool, bool]] = {  # name -> (use_audio, use_text)
    "V": (False, False),
    "V+A": (True, False),
    "V+T": (False, True),
    "V+A+T": (True, True),
}
DEFAULT_AUX_WEIGHT = 1.0  # eq. 1 sums the task losses unweighted
C = TypeVar("C")
M = TypeVar("M", bound=nn.Module)


def variant_config(base: MatchLiteConfig, variant: str) -> MatchLiteConfig:
    """`base` with the variant's modalities, and aux heads only for the modalities it sees."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {list(VARIANTS)}")
    use_audio, use_text = VARIANTS[variant]
    heads = ("visual",) + (("audio",) if use_audio else ()) + (("text",) if use_text else ())
    return replace(base, use_audio=use_audio, use_text=use_text, aux_heads=heads)


def variant_slug(variant: str) -> str:
    """File-system name: "V+A+T" -> "vat"."""
    return variant.replace("+", "").lower()


class MatchLiteObjective(nn.Module):
    """A pair model plus its multi-task cross-entropy: forward(batch) -> Losses.

    Any model whose forward(batch.inputs) gives logits and aux_logits and whose config names its aux_heads:
    MatchLite, and the feature-level teacher MatchLMF (rci.training.matchlmf)."""

    def __init__(self, model: nn.Module, aux_weight: float = DEFAULT_AUX_WEIGHT) -> None:
        super().__init__()
        self.model = model
        self.aux_weights = {name: aux_weight for name in model.config.aux_heads}

    def forward(self, batch: PairBatch) -> Losses:
        out = self.model(batch.inputs)
        return multitask_loss(out.logits, out.aux_logits, batch.labels, batch.aux_labels, self.aux_weights)


def seeded(factory: Callable[[C], M], config: C, seed: int) -> M:
    """factory(config) initialised from `seed`, leaving the caller's RNG alone (same seed, same weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(config)


def build_matchlite(config: MatchLiteConfig, seed: int) -> MatchLite:
    return seeded(MatchLite, config, seed)


def train_matchlite(
    config: MatchLiteConfig,
    train: PairDataset,
    train_config: TrainConfig,
    ctx: DistContext | None = None,
    *,
    aux_weight: float = DEFAULT_AUX_WEIGHT,
    init: MatchLite | None = None,
    name: str = "matchlite",
    progress: bool = True,
) -> tuple[MatchLite, TrainResult]:
    """Train a MatchLite (fresh from `config`, or continuing from `init`); returns it in eval mode."""
    model = init if init is not None else build_matchlite(config, train_config.seed)
    objective = MatchLiteObjective(model, aux_weight)
    result = fit(objective, train, collate_batch, train_config, ctx, name=name, progress=progress)
    return model.cpu().eval(), result


@dataclass(frozen=True)
class RunInfo:
    """What a checkpoint's meta records about how it was trained."""

    stage: str  # "stage1" | "distill"
    variant: str
    encoder_version: str
    train_config: dict[str, Any]
    history: dict[str, Any]
    extra: Mapping[str, Any] | None = None

    def meta(self, model_version: str) -> dict[str, Any]:
        # JSON round trip: checkpoints load with weights_only=True, so meta must be plain data
        return json.loads(json.dumps({
            "model_version": model_version,
            "stage": self.stage,
            "variant": self.variant,
            "encoder_version": self.encoder_version,
            "train_config": self.train_config,
            "history": self.history,
            **(self.extra or {}),
        }))


def matchlite_version(model: MatchLite, info: RunInfo) -> str:
    """Identifies the weights and the encoders they were trained on (CONTRACT.md `model_version`)."""
    return f"matchlite-{info.stage}-{variant_slug(info.variant)}-{weights_digest(model)}+{info.encoder_version}"


def save_matchlite_run(path: Path, model: MatchLite, info: RunInfo) -> dict[str, Any]:
    """Checkpoint with its run info; returns the meta written."""
    return save_checkpoint(path, model, info.meta(matchlite_version(model, info)))


# --- the teacher --------------------------------------------------------------------------------


class MatchLMObjective(nn.Module):
    """MatchLM plus its loss: multi-task CE on the heads, or CE on the answer token (NTP, appendix B.1)."""

    def __init__(self, model: MatchLM, aux_weight: float = DEFAULT_AUX_WEIGHT) -> None:
        super().__init__()
        self.model = model
        self.aux_weights = {name: aux_weight for name in model.config.aux_heads}

    def forward(self, batch: TeacherBatch) -> Losses:
        out = self.model(batch.inputs)
        if self.model.config.objective == "ntp":
            # the answer is "A" (Normal) or "B" (Reproduced): next-token CE over the whole vocabulary
            answers = torch.tensor(self.model.tokens.answers, device=batch.labels.device)[batch.labels]
            ce = F.cross_entropy(out.vocab_logits, answers)
            return Losses(total=ce, parts={"ce_main": ce.detach(), "class": ce.detach()})
        return multitask_loss(out.logits, out.aux_logits, batch.labels, batch.aux_labels, self.aux_weights)


def whisper_states(model: MatchLM) -> Callable[[np.ndarray], np.ndarray] | None:
    """log-mel [80, 3000] -> the teacher's frozen Whisper states [P, Da] (None: the model takes no audio)."""
    encoder = model.audio_encoder
    if encoder is None or model.config.audio_fusion == "none":
        return None

    @torch.inference_mode()
    def encode(log_mel: np.ndarray) -> np.ndarray:
        mel = torch.from_numpy(np.asarray(log_mel, dtype=np.float32))[None].to(next(encoder.parameters()).device)
        return encoder(input_features=mel).last_hidden_state[0].float().cpu().numpy()

    return encode


def train_matchlm(
    model: MatchLM,
    processor: MatchLMProcessor,
    train: TeacherPairDataset,
    train_config: TrainConfig,
    ctx: DistContext | None = None,
    *,
    aux_weight: float = DEFAULT_AUX_WEIGHT,
    name: str = "matchlm",
    progress: bool = True,
) -> TrainResult:
    """Train MatchLM's trainable part (LoRA adapters, audio fusion, heads) in place; leaves it in eval mode."""
    objective = MatchLMObjective(model, aux_weight)
    result = fit(objective, train, TeacherCollate(processor), train_config, ctx, name=name, progress=progress)
    model.eval()
    return result

"""Stage 1 for the feature-level teacher MatchLMF (rci.inference.matchlmf): the multi-task loss of the paper
(Eq. 1) on the same labelled pairs and features the served MatchLite learns from, and its predictions.

    model, result = train_matchlmf(config, PairDataset(examples, features), TrainConfig.matchlm(...))
    preds = predict_matchlmf(model, heldout)                      # Predictions, as for MatchLite
    save_matchlmf(path, model, {"threshold": ...})                # rci.inference.matchlmf.loader
    install_feature_teacher(model_dir, manifest, extractor, ...)  # all of it, for a model dir `rci demo` made

The teacher reads the features the worker stores (VideoFeatures), so it trains and scores wherever the
student does, from the same feature cache, and its logits and pair embedding are what stage 2 distils.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.matchlmf.batch import MatchLMFBatch, build_batch
from rci.inference.matchlmf.config import MatchLMFConfig
from rci.inference.matchlmf.loader import save_matchlmf
from rci.inference.matchlmf.model import MatchLMF
from rci.inference.model_dir import matchlmf_checkpoint
from rci.media.policy import MediaPolicy
from rci.training.corpus.manifest import CorpusManifest
from rci.training.data import PairDataset, PairItem, join_pairs, pair_targets, training_feature_cache
from rci.training.ddp import DistContext
from rci.training.evaluate import PairForward, Predictions, predict
from rci.training.loop import TrainConfig, TrainResult, fit
from rci.training.metrics import average_precision, operating_point
from rci.training.realpairs import realmedia_validation, training_modality_pairs
from rci.training.serving import ServingRecipe, background_frames, serving_training_pairs
from rci.training.stage1 import DEFAULT_AUX_WEIGHT, MatchLiteObjective, seeded

# What the teacher alone is taught: the real-media training pool's modality set (seed 0; pairs over a shared
# template picture that only the voice-over's words or the caption decide), this many sources per subset.
# The student never sees these labels; stage 2 can hand their lesson on through unlabelled pairs.
TEACHER_MODALITY_SOURCES = 100
TEACHER_MODALITY_SEED = 0


@dataclass
class MatchLMFPairBatch:
    """A training or evaluation batch: the model's inputs and the pairs' targets."""

    inputs: MatchLMFBatch
    labels: torch.Tensor  # [B] long
    aux_labels: dict[str, torch.Tensor]  # head -> [B] long, IGNORE_INDEX where undefined
    index: torch.Tensor  # [B] long: positions of the examples in their dataset

    def to(self, device: torch.device) -> MatchLMFPairBatch:
        return replace(self, inputs=self.inputs.to(device), labels=self.labels.to(device),
                       aux_labels={k: v.to(device) for k, v in self.aux_labels.items()}, index=self.index.to(device))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class MatchLMFCollate:
    """PairItems -> MatchLMFPairBatch, padded to the batch's longest video within the config's maxima."""

    def __init__(self, config: MatchLMFConfig) -> None:
        self.config = config

    def __call__(self, items: Sequence[PairItem]) -> MatchLMFPairBatch:
        return MatchLMFPairBatch(inputs=build_batch([(item.query, item.candidate) for item in items], self.config),
                                 **pair_targets(items))


def build_matchlmf(config: MatchLMFConfig, seed: int) -> MatchLMF:
    return seeded(MatchLMF, config, seed)


def train_matchlmf(config: MatchLMFConfig, train: PairDataset, train_config: TrainConfig,
                   ctx: DistContext | None = None, *, aux_weight: float = DEFAULT_AUX_WEIGHT,
                   init: MatchLMF | None = None, name: str = "matchlmf",
                   progress: bool = True) -> tuple[MatchLMF, TrainResult]:
    """Train a MatchLMF (fresh from `config`, or continuing from `init`, e.g. one given its background)
    on `train`; returns it in eval mode on the CPU."""
    model = init if init is not None else build_matchlmf(config, train_config.seed)
    objective = MatchLiteObjective(model, aux_weight)  # the same Eq. 1
    result = fit(objective, train, MatchLMFCollate(config), train_config, ctx, name=name, progress=progress)
    return model.cpu().eval(), result


def matchlmf_forward(model: MatchLMF) -> PairForward:
    def forward(batch: MatchLMFPairBatch) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(batch.inputs)
        return out.logits, out.embedding

    return forward


def predict_matchlmf(model: MatchLMF, dataset: PairDataset, *, batch_size: int = 16,
                     device: torch.device | str = "cpu") -> Predictions:
    """Scores, logits [N,2] and pair embeddings z_t [N,E] of `model` (eval mode) on every pair, in order."""
    model = model.to(device).eval()
    return predict(matchlmf_forward(model), dataset, MatchLMFCollate(model.config), batch_size, device)


def install_feature_teacher(model_dir: Path, manifest: CorpusManifest, extractor: FeatureExtractor, policy: MediaPolicy,
                            config: MatchLMFConfig, train_config: TrainConfig, recipe: ServingRecipe = ServingRecipe(),
                            *, pairs: PairDataset | None = None, modality_sources: int = TEACHER_MODALITY_SOURCES,
                            progress: bool = True) -> tuple[MatchLMF, dict[str, Any]]:  # fmt: skip
    """Train MatchLMF on the serving student's pairs (the corpus encoded in `model_dir`, the real-media training
    pool's; `pairs` when the caller built them already with serving_training_pairs) and on what only the
    teacher learns (the training pool's modality set, `modality_sources` per subset; rendered once per
    machine, ~6 minutes for 100), with the student's background; choose its threshold at the recipe's
    precision on the real validation pairs, as the student's; install it where the shadow consumer loads
    it (rci.inference.model_dir.matchlmf_checkpoint)."""
    cache = training_feature_cache(model_dir)
    if pairs is None:
        examples, features, _ = serving_training_pairs(model_dir, manifest, extractor, policy, recipe, progress=progress)
        pairs = PairDataset(examples, features)
    taught = training_modality_pairs(model_dir, extractor, policy, sources=modality_sources, seed=TEACHER_MODALITY_SEED,
                                     progress=progress)  # fmt: skip
    student_pairs = len(pairs)
    pairs = join_pairs(pairs, taught)
    background = background_frames(manifest, cache, extractor.version, recipe)
    config = replace(config, background_frames=len(background))
    init = build_matchlmf(config, train_config.seed)
    if len(background):
        init.set_background(torch.from_numpy(background))
    model, result = train_matchlmf(config, pairs, train_config, init=init, progress=progress)
    real = realmedia_validation(model_dir, extractor, policy, seed=recipe.seed, progress=progress)
    query_scores, query_labels = real.query_scores(predict_matchlmf(model, PairDataset(real.examples, real.features)).scores)
    point = operating_point(query_scores, query_labels, recipe.target_precision)
    meta = save_matchlmf(matchlmf_checkpoint(model_dir), model, {
        "threshold": float(point.threshold) if point.reached else 0.5,
        "threshold_reached": bool(point.reached),
        "encoder_version": extractor.version,
        "train_pairs": len(pairs),
        "student_pairs": student_pairs,
        "modality_pairs": {"sources": modality_sources, "seed": TEACHER_MODALITY_SEED, "pairs": len(taught)},
        "train_config": train_config.to_dict(),
        "train_seconds": round(sum(epoch.seconds for epoch in result.history), 1),
        "val_average_precision": float(average_precision(query_scores, query_labels)),
    })  # fmt: skip
    return model, meta

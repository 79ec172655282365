"""Evaluation: score val/test pairs, compute AP / F1 / R@P80 per model and per subset, pick the threshold.

    preds = predict(matchlite_forward(model), dataset)           # Predictions: scores, logits, embeddings
    result = evaluate_model("MatchLite V+A+T", {"val": (val_ds, val_preds), "test": (test_ds, test_preds)})
    write_threshold(checkpoint_path, result.operating_point)     # -> meta "threshold" the worker serves

The operating threshold is chosen on validation data only (the lowest score that keeps precision
>= 80%, `rci.training.metrics.operating_point`) and then applied unchanged to test, so the test figures
at that threshold are an honest estimate of what serving will do.

Per-subset figures: many corpus subsets hold one class only (every `visual_copy` pair is
reproduced, every hard negative is not). AP is reported only where a subset has both classes;
elsewhere what matters is how often the val threshold flags it (recall on positive-only subsets,
false-positive rate on negative-only ones), plus the score distributions (report.py plots them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rci.inference.checkpoint import load_checkpoint, save_checkpoint
from rci.inference.matchlite import MatchLite
from rci.inference.matchlm.model import MatchLM
from rci.core.logs import get_logger
from rci.training.data import PairBatch, TeacherBatch, collate_batch
from rci.training.metrics import OperatingPoint, Summary, best_f1, f1_at, operating_point, precision_recall_at, summarize

log = get_logger(__name__)

TARGET_PRECISION = 0.8  # R@P80 and the serving operating point


class LabelledPairs(Protocol):
    """What evaluation needs of a dataset (PairDataset and TeacherPairDataset both have it)."""

    @property
    def labels(self) -> np.ndarray: ...

    @property
    def subsets(self) -> list[str]: ...


@dataclass(frozen=True)
class Predictions:
    scores: np.ndarray  # [N] P(reproduced)
    logits: np.ndarray  # [N,2]
    embeddings: np.ndarray  # [N,d] pair embedding z

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, scores=self.scores, logits=self.logits, embeddings=self.embeddings)

    @classmethod
    def load(cls, path: Path) -> Predictions:
        with np.load(path) as z:
            return cls(z["scores"], z["logits"], z["embeddings"])


# A model's forward on a batch -> (logits [B,2], embedding [B,d]).
PairForward = Callable[[Any], tuple[torch.Tensor, torch.Tensor]]


def matchlite_forward(model: MatchLite) -> PairForward:
    """Logits as served: [0, calibrated logit], whose softmax is MatchLite's calibrated score."""

    def forward(batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(batch.inputs)
        return torch.stack([torch.zeros_like(out.score_logit), out.score_logit], dim=-1), out.embedding

    return forward


def matchlm_forward(model: MatchLM) -> PairForward:
    def forward(batch: TeacherBatch) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(batch.inputs)
        return out.logits, out.embedding

    return forward


@torch.no_grad()
def predict(
    forward: PairForward,
    dataset: Dataset,
    collate: Callable[[list], Any] = collate_batch,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> Predictions:
    """Run `forward` (its model already in eval mode on `device`) over the dataset, in order."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    logits, embeddings = [], []
    for batch in loader:
        batch_logits, batch_z = forward(batch.to(torch.device(device)))
        logits.append(batch_logits.float().cpu())
        embeddings.append(batch_z.float().cpu())
    all_logits = torch.cat(logits)
    return Predictions(
        scores=all_logits.softmax(-1)[:, 1].numpy(),
        logits=all_logits.numpy(),
        embeddings=torch.cat(embeddings).numpy(),
    )


@dataclass(frozen=True)
class SubsetFigures:
    """One subset of one split, at the threshold chosen on validation."""

    pairs: int
    positives: int
    ap: float | None  # only when the subset has both classes
    flag_rate: float  # share of the subset's pairs with score >= threshold
    recall: float | None  # on its positives, when it has any
    false_positive_rate: float | None  # on its negatives, when it has any
    mean_score_pos: float | None
    mean_score_neg: float | None


@dataclass(frozen=True)
class SplitFigures:
    summary: Summary  # AP, best F1, R@P80 on the whole split
    precision_at_threshold: float
    recall_at_threshold: float
    f1_at_threshold: float
    best_f1_threshold: float
    subsets: dict[str, SubsetFigures]


@dataclass(frozen=True)
class ModelEvaluation:
    name: str  # row label, e.g. "MatchLite V+A"
    operating_point: OperatingPoint  # chosen on val
    splits: dict[str, SplitFigures]  # "val", "test"
    info: dict[str, Any] = field(default_factory=dict)  # model_version, parameters, ...

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _subset_figures(scores: np.ndarray, labels: np.ndarray, threshold: float) -> SubsetFigures:
    pos, neg = labels == 1, labels == 0
    flagged = scores >= threshold
    both = bool(pos.any() and neg.any())
    return SubsetFigures(
        pairs=len(labels),
        positives=int(pos.sum()),
        ap=summarize(scores, labels).ap if both else None,
        flag_rate=float(flagged.mean()),
        recall=float(flagged[pos].mean()) if pos.any() else None,
        false_positive_rate=float(flagged[neg].mean()) if neg.any() else None,
        mean_score_pos=float(scores[pos].mean()) if pos.any() else None,
        mean_score_neg=float(scores[neg].mean()) if neg.any() else None,
    )


def split_figures(scores: np.ndarray, labels: np.ndarray, subsets: list[str], threshold: float) -> SplitFigures:
    precision, recall = precision_recall_at(scores, labels, threshold)
    names = sorted(set(subsets))
    subset_arr = np.array(subsets)
    return SplitFigures(
        summary=summarize(scores, labels),
        precision_at_threshold=precision,
        recall_at_threshold=recall,
        f1_at_threshold=f1_at(scores, labels, threshold),
        best_f1_threshold=best_f1(scores, labels)[1],
        subsets={s: _subset_figures(scores[subset_arr == s], labels[subset_arr == s], threshold) for s in names},
    )


def evaluate_model(
    name: str,
    splits: Mapping[str, tuple[LabelledPairs, Predictions]],
    info: Mapping[str, Any] | None = None,
    target_precision: float = TARGET_PRECISION,
) -> ModelEvaluation:
    """Figures per split; the threshold comes from `splits["val"]` and is applied to every split."""
    if "val" not in splits:
        raise ValueError("the operating threshold is chosen on validation data: pass a 'val' split")
    val_ds, val_preds = splits["val"]
    point = operating_point(val_preds.scores, val_ds.labels, target_precision)
    if not point.reached:
        log.warning("no threshold reaches the target precision on val; the model will flag nothing",
                    model=name, target=target_precision)
    figures = {
        split: split_figures(preds.scores, ds.labels, ds.subsets, point.threshold) for split, (ds, preds) in splits.items()
    }
    return ModelEvaluation(name=name, operating_point=point, splits=figures, info=dict(info or {}))


# --- the operating point travels with the model -------------------------------------------


def write_threshold(
    checkpoint: Path,
    point: OperatingPoint,
    target_precision: float = TARGET_PRECISION,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Store the val-chosen threshold in a MatchLite checkpoint's meta (what serving reads); returns meta."""
    model, meta = load_checkpoint(checkpoint)
    meta.update(
        threshold=float(point.threshold),
        threshold_target_precision=float(target_precision),
        threshold_val_precision=float(point.precision),
        threshold_val_recall=float(point.recall),
        threshold_reached=bool(point.reached),
    )
    if model_version is not None:
        meta["model_version"] = model_version
    return save_checkpoint(checkpoint, model, meta)


def save_evaluations(path: Path, evaluations: list[ModelEvaluation]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([e.to_dict() for e in evaluations], indent=2) + "\n")


def jsonable(value: Any) -> Any:
    """NaN / inf -> None and numpy scalars -> Python numbers, so the file is strict JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value

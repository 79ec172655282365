"""Ranking metrics for a rare positive class: AP, best F1, recall at a precision floor (paper 4.1).

Every function takes `scores` (higher = more likely reproduced) and binary `labels` (1 = reproduced)
as 1-D arrays and uses the serving rule of CONTRACT.md: a pair is flagged when `score >= threshold`.
The PR curve therefore has one point per *distinct* score: tied scores enter or leave together,
because no threshold can separate them.

    curve = pr_curve(scores, labels)      # thresholds descending, one point per distinct score
    average_precision(scores, labels)     # sum_k (R_k - R_{k-1}) * P_k   (no interpolation)
    best_f1(scores, labels)               # (f1, threshold) maximising F1 over the curve
    recall_at_precision(scores, labels, 0.8)      # R@P80
    threshold_at_precision(scores, labels, 0.8)   # the operating point chosen on validation data
    roc_auc(scores, labels)               # P(a random positive outscores a random negative)

Numpy only, so evaluation never needs torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall when flagging `score >= thresholds[k]`, thresholds descending."""

    thresholds: np.ndarray  # [K] distinct scores, descending
    precision: np.ndarray  # [K]
    recall: np.ndarray  # [K], non-decreasing
    positives: int  # number of positive labels


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold and what it achieves on the data it was chosen on."""

    threshold: float
    precision: float
    recall: float
    reached: bool  # False: no threshold reaches the precision target; threshold then flags nothing


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in length")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return scores, labels.astype(np.int64)


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> PRCurve:
    """One PR point per distinct score (empty arrays for empty input)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    # Last index of each run of equal scores: the point where that whole run is flagged.
    run_ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tp = np.cumsum(labels)[run_ends]
    flagged = run_ends + 1
    positives = int(labels.sum())
    precision = tp / flagged
    recall = tp / positives if positives else np.zeros_like(precision, dtype=np.float64)
    return PRCurve(thresholds=scores[run_ends], precision=precision, recall=recall, positives=positives)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP = sum over the curve of (R_k - R_{k-1}) * P_k with R_0 = 0 (sklearn's definition).

    NaN when there are no positives: AP is undefined there, and a 0 would read as "worst model".
    """
    curve = pr_curve(scores, labels)
    if curve.positives == 0:
        return math.nan
    recall_gain = np.diff(np.r_[0.0, curve.recall])
    return float(np.sum(recall_gain * curve.precision))


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    denom = precision + recall
    return np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(highest F1 over all thresholds, the highest threshold that reaches it); (0, inf) without positives."""
    curve = pr_curve(scores, labels)
    if curve.positives == 0:
        return 0.0, math.inf
    f1 = _f1(curve.precision, curve.recall)
    best = int(np.argmax(f1))  # first maximum = highest threshold
    return float(f1[best]), float(curve.thresholds[best])


def f1_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """F1 of the fixed rule `score >= threshold` (how a threshold chosen on val does on test)."""
    precision, recall = precision_recall_at(scores, labels, threshold)
    return float(_f1(np.array([precision]), np.array([recall]))[0])


def precision_recall_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(precision, recall) of `score >= threshold`; precision is 1.0 when nothing is flagged."""
    scores, labels = _check(scores, labels)
    flagged = scores >= threshold
    tp = int(np.sum(flagged & (labels == 1)))
    precision = tp / int(flagged.sum()) if flagged.any() else 1.0
    recall = tp / int(labels.sum()) if labels.any() else 0.0
    return precision, recall


def operating_point(scores: np.ndarray, labels: np.ndarray, min_precision: float = 0.8) -> OperatingPoint:
    """The threshold with the most recall among those with precision >= min_precision.

    Among thresholds with that same recall the highest is taken (it is the score of the lowest
    positive it flags): any lower threshold only adds negatives, so it has equal recall and
    lower precision. When no threshold reaches the target the returned threshold is just above
    the highest score: deboosting nothing is the safe default for a precision-first policy.
    """
    if not 0.0 < min_precision <= 1.0:
        raise ValueError(f"min_precision must be in (0, 1], got {min_precision}")
    curve = pr_curve(scores, labels)
    ok = np.flatnonzero(curve.precision >= min_precision)
    if curve.positives == 0 or len(ok) == 0:
        top = float(curve.thresholds[0]) if len(curve.thresholds) else 0.0
        return OperatingPoint(threshold=math.nextafter(top, math.inf), precision=1.0, recall=0.0, reached=False)
    best_recall = curve.recall[ok].max()
    k = int(ok[np.flatnonzero(curve.recall[ok] == best_recall)[0]])  # first = highest threshold
    return OperatingPoint(
        threshold=float(curve.thresholds[k]),
        precision=float(curve.precision[k]),
        recall=float(curve.recall[k]),
        reached=True,
    )


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, min_precision: float = 0.8) -> float:
    """R@P: the most recall any threshold achieves at precision >= min_precision (0 if none does)."""
    return operating_point(scores, labels, min_precision).recall


def threshold_at_precision(scores: np.ndarray, labels: np.ndarray, min_precision: float = 0.8) -> float:
    """The operating threshold for `score >= threshold` (see `operating_point`)."""
    return operating_point(scores, labels, min_precision).threshold


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Probability that a random positive outscores a random negative, ties counting half
    (the Mann-Whitney U statistic over positives x negatives); None without both classes."""
    scores, labels = _check(scores, labels)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = float(_midranks(scores)[labels == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _midranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of ascending scores; tied scores share the mean of the ranks they span."""
    order = np.argsort(scores, kind="stable")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


@dataclass(frozen=True)
class Summary:
    """The paper's three figures (as fractions) plus counts, for one model on one slice."""

    ap: float
    f1: float
    recall_at_p80: float
    pairs: int
    positives: int

    def as_percent(self) -> dict[str, float]:
        return {"AP": 100 * self.ap, "F1": 100 * self.f1, "R@P80": 100 * self.recall_at_p80}


def summarize(scores: np.ndarray, labels: np.ndarray) -> Summary:
    scores, labels = _check(scores, labels)
    return Summary(
        ap=average_precision(scores, labels),
        f1=best_f1(scores, labels)[0],
        recall_at_p80=recall_at_precision(scores, labels, 0.8),
        pairs=len(labels),
        positives=int(labels.sum()),
    )

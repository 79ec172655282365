"""Figures per scorer on the held-out set: ranking metrics overall and per subset, source retrieval.

A query is positive iff it reproduces an earlier original (an easy or a hard copy); unrelated
originals and templates are the negatives. The hard subset is the hard copies against every
negative, the easy subset the easy copies against every negative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rci.training.realset.sets import HARD_EDITS, HeldoutSet
from benchmarks.quality.scorers import ScorerResult
from rci.training.metrics import average_precision, best_f1, f1_at, pr_curve, recall_at_precision

SUBSETS = ("all", "hard", "easy")


def _subset_ids(dataset: HeldoutSet, subset: str) -> list[str]:
    keep = {"all": ("easy", "hard"), "hard": ("hard",), "easy": ("easy",)}[subset]
    return [q.video_id for q in dataset.queries() if q.kind in keep or not q.is_reproduction]


def _ranking(result: ScorerResult, dataset: HeldoutSet, ids: list[str]) -> dict[str, float | None]:
    by_id = dataset.by_id
    scores = np.array([result.scores[i] for i in ids], dtype=np.float64)
    labels = np.array([int(by_id[i].is_reproduction) for i in ids])
    f1, f1_threshold = best_f1(scores, labels)
    positives = [i for i in ids if by_id[i].is_reproduction]
    return {
        "queries": len(ids),
        "positives": int(labels.sum()),
        "chance_ap": float(labels.mean()),
        "ap": average_precision(scores, labels),
        "best_f1": f1,
        "best_f1_threshold": f1_threshold,
        "f1_at_threshold": None if result.threshold is None else f1_at(scores, labels, result.threshold),
        "r_at_p80": recall_at_precision(scores, labels, 0.8),
        "source_retrieval": float(np.mean([result.candidates[i] == by_id[i].source_id for i in positives])),
        "family_retrieval": float(np.mean([_same_family(dataset, result.candidates[i], by_id[i].source_id)
                                           for i in positives])),  # fmt: skip
    }


def _same_family(dataset: HeldoutSet, candidate: str | None, source: str) -> bool:
    """The source itself, or another copy of it (the worker indexes copies too)."""
    if candidate is None:
        return False
    return candidate == source or dataset.by_id[candidate].source_id == source and dataset.by_id[candidate].is_reproduction


def evaluate(result: ScorerResult, dataset: HeldoutSet) -> dict[str, object]:
    by_id = dataset.by_id
    figures: dict[str, object] = {"scorer": result.name, "threshold": result.threshold, "seconds": round(result.seconds, 1),
                                  "notes": result.notes}  # fmt: skip
    for subset in SUBSETS:
        figures[subset] = _ranking(result, dataset, _subset_ids(dataset, subset))
    figures["mean_score"] = {kind: float(np.mean([result.scores[q.video_id] for q in dataset.queries()
                                                  if q.kind == kind]))
                             for kind in ("easy", "hard", "unrelated", "template")}  # fmt: skip
    per_edit = {}
    for edit in HARD_EDITS:
        ids = [q.video_id for q in dataset.queries() if q.kind == "hard" and q.edits[0]["op"] == edit]
        if ids:
            per_edit[edit] = {"n": len(ids), "mean_score": float(np.mean([result.scores[i] for i in ids])),
                              "source_retrieval": float(np.mean([result.candidates[i] == by_id[i].source_id
                                                                 for i in ids]))}  # fmt: skip
    figures["hard_by_edit"] = per_edit
    return figures


def plot_pr(results: list[ScorerResult], dataset: HeldoutSet, path: Path, title: str) -> Path:
    """PR curves, overall and on the hard subset; one colour per scorer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_id = dataset.by_id
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, subset in zip(axes, ("all", "hard"), strict=True):
        ids = _subset_ids(dataset, subset)
        labels = np.array([int(by_id[i].is_reproduction) for i in ids])
        for k, result in enumerate(results):
            scores = np.array([result.scores[i] for i in ids], dtype=np.float64)
            curve = pr_curve(scores, labels)
            component = "alone" in result.name or "(mean)" in result.name
            ax.step(np.r_[0.0, curve.recall], np.r_[curve.precision[0] if len(curve.precision) else 1.0,
                                                     curve.precision], where="post",
                    color=colours(k), linewidth=1.0 if component else 2.0, linestyle=":" if component else "-",
                    label=f"{result.name} (AP {average_precision(scores, labels):.2f})")  # fmt: skip
        ax.axhline(labels.mean(), color="grey", linewidth=0.8, linestyle="--", label=f"chance ({labels.mean():.2f})")
        ax.axhline(0.8, color="black", linewidth=0.5, linestyle=":")
        ax.set_xlabel("recall")
        ax.set_title({"all": "all reproductions vs negatives", "hard": "hard copies vs negatives"}[subset])
        ax.set_xlim(0, 1.01)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("precision")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

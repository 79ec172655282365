"""The ablation report: the paper's Table 2 and Table 4 on this corpus, PR curves, score distributions.

    models = [ReportModel(key, name, role, variant, evaluation, scores_by_split), ...]
    summary = write_report(out_dir, models, {"val": SplitTruth(...), "test": SplitTruth(...)}, setup, notes)

writes into `out_dir`:
    report.md                   the tables, the plots and what they show (the three findings)
    pr_curves.png               precision-recall on test: stage-1 variants + teacher | distillation
    score_distributions.png     every model's scores per corpus subset (held-out pairs), threshold marked
    summary.json                the figures and the findings as data

Where the figures come from:
* overall AP / F1 / R@P80 are on the test split (F1 is the best F1 over thresholds, as the paper;
  "F1 @ thr" applies the threshold chosen on validation);
* the modality subsets (the paper's Figure 4: pairs whose label depends on the audio or on the
  text) are small in a CPU-sized corpus, so their figures pool the held-out splits (val + test).
  All three metrics are threshold-free and no model is selected on validation, so pooling leaks
  nothing; the report says how many pairs each figure rests on;
* every comparison the findings make comes with a paired bootstrap over pairs (stratified by
  label): the 95% interval of the difference. A finding is "yes" only when the whole interval is
  above zero; a positive difference whose interval straddles zero is reported as not shown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rci.training.evaluate import ModelEvaluation, jsonable
from rci.training.metrics import Summary, average_precision, recall_at_precision, summarize

AUDIO_SUBSET = "audio_dependent"
TEXT_SUBSET = "text_dependent"
HELD_OUT = ("val", "test")
REPORT_FILE = "report.md"
PR_FILE = "pr_curves.png"
DIST_FILE = "score_distributions.png"
SUMMARY_FILE = "summary.json"

# roles a ReportModel can have
STAGE1 = "stage1"  # MatchLite modality variants, stage 1 only
TEACHER = "teacher"  # MatchLM
DISTILLED = "distilled"  # MatchLite after stage 2 with lambda > 0
CONTROL = "control"  # MatchLite after the same stage-2 schedule with lambda = 0 (CE only)


@dataclass(frozen=True)
class SplitTruth:
    labels: np.ndarray  # [N] 0/1
    subsets: list[str]  # [N] corpus subset of each pair


@dataclass(frozen=True)
class ReportModel:
    key: str  # file-system name
    name: str  # row label
    role: str  # STAGE1 | TEACHER | DISTILLED | CONTROL
    variant: str  # "V", "V+A", "V+T", "V+A+T"
    evaluation: ModelEvaluation
    scores: Mapping[str, np.ndarray]  # split -> [N] scores, in the SplitTruth's order
    loss_weights: tuple[float, float] | None = None  # stage 2: (lambda * w_logits, lambda * w_emb)


@dataclass(frozen=True)
class Comparison:
    """metric(better) - metric(baseline) on one slice, with a paired bootstrap interval."""

    what: str
    metric: str
    baseline: str
    candidate: str
    slice: str
    pairs: int
    positives: int
    baseline_value: float
    candidate_value: float
    delta: float
    ci_low: float
    ci_high: float

    @property
    def verdict(self) -> str:
        if not math.isfinite(self.delta):
            return "undefined"
        if self.ci_low > 0:
            return "yes"
        if self.delta > 0:
            return "higher, not significant"
        if self.ci_high < 0:
            return "no (lower)"
        return "no"

    def to_dict(self) -> dict[str, Any]:
        return {**jsonable(asdict(self)), "verdict": self.verdict}

    def sentence(self, percent: bool = True) -> str:
        scale = 100.0 if percent else 1.0
        return (f"{self.metric} {_num(self.baseline_value * scale)} -> {_num(self.candidate_value * scale)} "
                f"(delta {_signed(self.delta * scale)}, 95% CI [{_signed(self.ci_low * scale)}, "
                f"{_signed(self.ci_high * scale)}], {self.pairs} pairs, {self.positives} reproduced)")


@dataclass
class ReportSummary:
    files: dict[str, str]
    table2: list[dict[str, Any]]
    table4: list[dict[str, Any]]
    findings: dict[str, Any]
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


# --- slices and metrics ------------------------------------------------------------------------


def held_out(model: ReportModel, truth: Mapping[str, SplitTruth], subset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) over val + test, optionally one subset's pairs only."""
    scores, labels = [], []
    for split in HELD_OUT:
        if split not in truth or split not in model.scores:
            continue
        keep = np.ones(len(truth[split].labels), bool) if subset is None else np.array(truth[split].subsets) == subset
        scores.append(np.asarray(model.scores[split])[keep])
        labels.append(truth[split].labels[keep])
    return (np.concatenate(scores), np.concatenate(labels)) if scores else (np.zeros(0), np.zeros(0, np.int64))


def _summary_or_none(scores: np.ndarray, labels: np.ndarray) -> Summary | None:
    if len(labels) == 0 or labels.min() == labels.max():
        return None  # AP / F1 / R@P80 need both classes
    return summarize(scores, labels)


def bootstrap_delta(
    metric: Callable[[np.ndarray, np.ndarray], float],
    base_scores: np.ndarray,
    cand_scores: np.ndarray,
    labels: np.ndarray,
    n: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(delta, ci_low, ci_high): metric(cand) - metric(base) and its 95% paired, label-stratified bootstrap interval."""
    labels = np.asarray(labels)
    delta = metric(cand_scores, labels) - metric(base_scores, labels)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if len(pos) == 0 or len(neg) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    deltas = np.empty(n)
    for b in range(n):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        deltas[b] = metric(cand_scores[idx], labels[idx]) - metric(base_scores[idx], labels[idx])
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(delta), float(low), float(high)


def recall_at_p80(scores: np.ndarray, labels: np.ndarray) -> float:
    return recall_at_precision(scores, labels, 0.8)


def mean_positive_score(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(scores[labels == 1])) if np.any(labels == 1) else math.nan


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "AP": average_precision,
    "R@P80": recall_at_p80,
    "mean positive score": mean_positive_score,
}


def compare(
    what: str,
    metric: str,
    base: ReportModel,
    cand: ReportModel,
    truth: Mapping[str, SplitTruth],
    *,
    split: str | None = "test",
    subset: str | None = None,
) -> Comparison:
    """Paired comparison of two models on a split (or on the held-out pairs of a subset)."""
    if split is None:
        base_scores, labels = held_out(base, truth, subset)
        cand_scores, _ = held_out(cand, truth, subset)
        where = f"{subset or 'all'} (val+test)"
    else:
        labels = truth[split].labels
        keep = np.ones(len(labels), bool) if subset is None else np.array(truth[split].subsets) == subset
        base_scores, cand_scores, labels = np.asarray(base.scores[split])[keep], np.asarray(cand.scores[split])[keep], labels[keep]
        where = f"{subset or 'all'} ({split})"
    fn = METRICS[metric]
    delta, low, high = bootstrap_delta(fn, base_scores, cand_scores, labels)
    return Comparison(what, metric, base.name, cand.name, where, len(labels), int(np.sum(labels)),
                      fn(base_scores, labels) if len(labels) else math.nan,
                      fn(cand_scores, labels) if len(labels) else math.nan, delta, low, high)


# --- tables --------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.2f}"


def _num(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.2f}"


def _signed(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:+.2f}"


def _slice_figures(summary: Summary | None) -> dict[str, float | None]:
    if summary is None:
        return {"AP": None, "F1": None, "R@P80": None}
    return {"AP": summary.ap, "F1": summary.f1, "R@P80": summary.recall_at_p80}


def table2_rows(models: Sequence[ReportModel], truth: Mapping[str, SplitTruth]) -> list[dict[str, Any]]:
    rows = []
    for m in [m for m in models if m.role in (STAGE1, TEACHER)]:
        test = m.evaluation.splits["test"]
        row: dict[str, Any] = {"model": m.name, "variant": m.variant, "role": m.role,
                               "test": _slice_figures(test.summary)}
        for subset in (AUDIO_SUBSET, TEXT_SUBSET):
            scores, labels = held_out(m, truth, subset)
            row[subset] = _slice_figures(_summary_or_none(scores, labels))
            row[subset]["mean positive score"] = mean_positive_score(scores, labels) if len(labels) else None
            row[subset]["mean negative score"] = float(np.mean(scores[labels == 0])) if np.any(labels == 0) else None
            thr = m.evaluation.operating_point.threshold
            row[subset]["positives flagged"] = float(np.mean(scores[labels == 1] >= thr)) if np.any(labels == 1) else None
        rows.append(row)
    return rows


def table4_rows(models: Sequence[ReportModel]) -> list[dict[str, Any]]:
    rows = []
    order = {STAGE1: 0, CONTROL: 1, DISTILLED: 2, TEACHER: 3}
    chosen = [m for m in models if m.role in (CONTROL, DISTILLED, TEACHER)]
    vat = [m for m in models if m.role == STAGE1 and m.variant == "V+A+T"]
    for m in sorted(vat + chosen, key=lambda m: order[m.role]):
        test = m.evaluation.splits["test"]
        rows.append({
            "model": m.name, "role": m.role,
            "L_logits": None if m.loss_weights is None else m.loss_weights[0],
            "L_emb": None if m.loss_weights is None else m.loss_weights[1],
            **_slice_figures(test.summary),
            "threshold": m.evaluation.operating_point.threshold,
            "precision @ thr": test.precision_at_threshold,
            "recall @ thr": test.recall_at_threshold,
            "F1 @ thr": test.f1_at_threshold,
        })
    return rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _render_table2(rows: list[dict[str, Any]], counts: dict[str, tuple[int, int]]) -> str:
    header = ["model", "modality", "AP", "F1", "R@P80", "audio-dep. AP", "F1", "R@P80", "text-dep. AP", "F1", "R@P80"]
    body = []
    for r in rows:
        cells = [r["model"], r["variant"]]
        for key in ("test", AUDIO_SUBSET, TEXT_SUBSET):
            cells += [_pct(r[key][m]) for m in ("AP", "F1", "R@P80")]
        body.append(cells)
    n = counts
    note = (f"Overall: test split, {n['test'][0]} pairs ({n['test'][1]} reproduced). Audio-dependent: "
            f"{n[AUDIO_SUBSET][0]} held-out pairs ({n[AUDIO_SUBSET][1]} reproduced); text-dependent: "
            f"{n[TEXT_SUBSET][0]} ({n[TEXT_SUBSET][1]} reproduced). Percentages.")
    return _md_table(header, body) + "\n\n" + note


def _render_figure4(rows: list[dict[str, Any]]) -> str:
    header = ["model", "audio-dep. mean score: reproduced", "normal", "reproduced flagged",
              "text-dep. mean score: reproduced", "normal", "reproduced flagged"]
    body = []
    for r in rows:
        cells = [r["model"]]
        for key in (AUDIO_SUBSET, TEXT_SUBSET):
            s = r[key]
            cells += [_num(s["mean positive score"] if s["mean positive score"] is not None else math.nan),
                      _num(s["mean negative score"] if s["mean negative score"] is not None else math.nan),
                      _pct(s["positives flagged"])]
        body.append(cells)
    return _md_table(header, body)


def _render_table4(rows: list[dict[str, Any]], test_counts: tuple[int, int]) -> str:
    header = ["model", "L_logits", "L_emb", "AP", "F1", "R@P80", "val threshold", "P @ thr", "R @ thr", "F1 @ thr"]
    body = []
    for r in rows:
        weight = lambda v: "–" if v is None else f"{v:g}"  # noqa: E731
        body.append([r["model"], weight(r["L_logits"]), weight(r["L_emb"]), _pct(r["AP"]), _pct(r["F1"]),
                     _pct(r["R@P80"]), f"{r['threshold']:.3f}", _pct(r["precision @ thr"]), _pct(r["recall @ thr"]),
                     _pct(r["F1 @ thr"])])
    return (_md_table(header, body) + f"\n\nTest split, {test_counts[0]} pairs ({test_counts[1]} reproduced). "
            "L_logits / L_emb: the loss weights lambda * w of stage 2 (the paper's Table 4 columns). "
            "'@ thr': the threshold chosen at 80% precision on validation, applied to test.")


def _render_baselines(baselines: Mapping[str, Mapping[str, np.ndarray]], truth: Mapping[str, SplitTruth]) -> str:
    """AP of each raw feature cosine, overall (test) and on the modality subsets (held-out)."""
    header = ["raw cosine", "AP (test)", "audio-dep. AP", "cos reproduced", "cos normal", "text-dep. AP",
              "cos reproduced", "cos normal"]
    body = []
    for modality in next(iter(baselines.values())):
        fake = ReportModel(modality, modality, "baseline", "", None, {s: baselines[s][modality] for s in baselines})  # type: ignore[arg-type]
        cells = [modality, _pct(average_precision(baselines["test"][modality], truth["test"].labels))]
        for subset in (AUDIO_SUBSET, TEXT_SUBSET):
            scores, labels = held_out(fake, truth, subset)
            both = len(labels) and labels.min() != labels.max()
            cells += [_pct(average_precision(scores, labels)) if both else "–",
                      f"{np.mean(scores[labels == 1]):.5f}" if np.any(labels == 1) else "–",
                      f"{np.mean(scores[labels == 0]):.5f}" if np.any(labels == 0) else "–"]
        body.append(cells)
    return _md_table(header, body)


# --- plots ---------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curves(path: Path, models: Sequence[ReportModel], truth: Mapping[str, SplitTruth]) -> None:
    from rci.training.metrics import pr_curve

    plt = _plt()
    labels = truth["test"].labels
    panels = [
        ("Stage 1: modalities and the teacher", [m for m in models if m.role in (STAGE1, TEACHER)]),
        ("Stage 2: distillation", [m for m in models if m.role in (CONTROL, DISTILLED, TEACHER)
                                   or (m.role == STAGE1 and m.variant == "V+A+T")]),
    ]
    colours = {m.key: f"C{k % 10}" for k, m in enumerate(models)}  # one colour per model in both panels
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, (title, chosen) in zip(axes, panels, strict=True):
        for m in chosen:
            curve = pr_curve(m.scores["test"], labels)
            ap = average_precision(m.scores["test"], labels)
            # step plot from recall 0: precision of the first flagged run holds until its recall
            recall = np.r_[0.0, curve.recall]
            precision = np.r_[curve.precision[0] if len(curve.precision) else 1.0, curve.precision]
            ax.step(recall, precision, where="post", label=f"{m.name} (AP {100 * ap:.1f})",
                    linestyle="--" if m.role == TEACHER else "-", color=colours[m.key])
        ax.axhline(0.8, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(title)
        ax.set_xlabel("recall")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.legend(loc="lower left", fontsize=8)
    axes[0].set_ylabel("precision")
    fig.suptitle(f"Precision-recall on the test split ({len(labels)} pairs, {int(labels.sum())} reproduced); "
                 "dotted: 80% precision")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_score_distributions(path: Path, models: Sequence[ReportModel], truth: Mapping[str, SplitTruth]) -> None:
    plt = _plt()
    subsets = sorted({s for split in HELD_OUT if split in truth for s in truth[split].subsets})
    cols = min(3, len(subsets))
    rows = math.ceil(len(subsets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False, sharey=True)
    rng = np.random.default_rng(0)
    for ax, subset in zip(axes.flat, subsets, strict=False):
        for k, m in enumerate(models):
            scores, labels = held_out(m, truth, subset)
            jitter = rng.uniform(-0.25, 0.25, len(scores))
            for label, colour in ((0, "tab:blue"), (1, "tab:red")):
                keep = labels == label
                ax.scatter(k + jitter[keep], scores[keep], s=9, color=colour, alpha=0.7, linewidths=0)
            thr = m.evaluation.operating_point.threshold
            if thr <= 1.0:
                ax.hlines(thr, k - 0.4, k + 0.4, color="black", linewidth=1.2)
        _, labels = held_out(models[0], truth, subset)
        ax.set_title(f"{subset} ({len(labels)} pairs, {int(labels.sum())} reproduced)", fontsize=9)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels([m.name.replace("MatchLite ", "ML ").replace("MatchLM ", "LM ") for m in models],
                           rotation=45, ha="right", fontsize=7)
        ax.set_ylim(-0.03, 1.03)
    for ax in list(axes.flat)[len(subsets):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("score")
    fig.suptitle("Scores on held-out pairs (val + test) per subset: red = reproduced, blue = normal, "
                 "black bar = the model's threshold (80% precision on val)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- findings ------------------------------------------------------------------------------------


def _by(models: Sequence[ReportModel], role: str, variant: str | None = None) -> ReportModel | None:
    found = [m for m in models if m.role == role and (variant is None or m.variant == variant)]
    return found[0] if found else None


def findings(models: Sequence[ReportModel], truth: Mapping[str, SplitTruth]) -> tuple[dict[str, Any], list[Comparison]]:
    comps: list[Comparison] = []
    out: dict[str, Any] = {}
    visual = _by(models, STAGE1, "V")

    def modality(key: str, variant: str, subset: str) -> None:
        cand = _by(models, STAGE1, variant)
        if visual is None or cand is None:
            out[key] = {"verdict": "not run"}
            return
        ap = compare(f"{variant} vs V on {subset}", "AP", visual, cand, truth, split=None, subset=subset)
        shift = compare(f"{variant} vs V on {subset}", "mean positive score", visual, cand, truth, split=None, subset=subset)
        comps.extend([ap, shift])
        out[key] = {"verdict": ap.verdict, "ap": ap.to_dict(), "positive_score_shift": shift.to_dict()}

    modality("audio_improves_visual_only", "V+A", AUDIO_SUBSET)
    modality("text_improves_visual_only", "V+T", TEXT_SUBSET)

    stage1, distilled, control, teacher = (_by(models, STAGE1, "V+A+T"), _by(models, DISTILLED),
                                           _by(models, CONTROL), _by(models, TEACHER))
    if stage1 is not None and distilled is not None:
        ap = compare("KD vs no KD", "AP", stage1, distilled, truth)
        rp = compare("KD vs no KD", "R@P80", stage1, distilled, truth)
        comps.extend([ap, rp])
        entry: dict[str, Any] = {"ap": ap.to_dict(), "r_at_p80": rp.to_dict(),
                                 "verdict": "yes" if ap.verdict == rp.verdict == "yes" else
                                 ("higher, not significant" if ap.delta > 0 and rp.delta > 0 else "no")}
        if control is not None:
            cap = compare("KD vs CE-only control", "AP", control, distilled, truth)
            crp = compare("KD vs CE-only control", "R@P80", control, distilled, truth)
            comps.extend([cap, crp])
            entry["vs_control"] = {"ap": cap.to_dict(), "r_at_p80": crp.to_dict()}
        out["distillation_improves_ap_and_r_at_p80"] = entry
    else:
        out["distillation_improves_ap_and_r_at_p80"] = {"verdict": "not run"}

    student = distilled or stage1
    if teacher is not None and student is not None:
        ap = compare("teacher vs student", "AP", student, teacher, truth)
        rp = compare("teacher vs student", "R@P80", student, teacher, truth)
        comps.extend([ap, rp])
        at_least = ap.delta >= 0 and rp.delta >= 0
        significantly_worse = ap.ci_high < 0 or rp.ci_high < 0
        out["teacher_at_least_as_good_as_student"] = {
            "verdict": "yes" if at_least else ("no (significantly worse)" if significantly_worse else "no"),
            "student": student.name, "ap": ap.to_dict(), "r_at_p80": rp.to_dict(),
        }
    else:
        out["teacher_at_least_as_good_as_student"] = {"verdict": "not run"}
    return out, comps


def _finding_text(findings_: dict[str, Any], comps: list[Comparison]) -> str:
    def line(c: Comparison) -> str:
        return f"  - {c.candidate} vs {c.baseline}, {c.slice}: {c.sentence(percent=c.metric != 'mean positive score')}"

    def matching(what: str) -> list[Comparison]:
        return [c for c in comps if c.what == what]

    text = []
    for key, title, what in (
        ("audio_improves_visual_only", "(a) Audio improves visual-only MatchLite on the audio-dependent subset",
         "V+A vs V on " + AUDIO_SUBSET),
        ("text_improves_visual_only", "(a) Text improves visual-only MatchLite on the text-dependent subset",
         "V+T vs V on " + TEXT_SUBSET),
        ("distillation_improves_ap_and_r_at_p80", "(b) Distillation improves MatchLite's AP and R@P80", "KD vs no KD"),
        ("teacher_at_least_as_good_as_student", "(c) The teacher is at least as good as the student",
         "teacher vs student"),
    ):
        verdict = findings_.get(key, {}).get("verdict", "not run")
        text.append(f"- **{title}: {verdict}.**")
        text += [line(c) for c in matching(what)]
        if key == "distillation_improves_ap_and_r_at_p80":
            text += [line(c) for c in matching("KD vs CE-only control")]
    return "\n".join(text)


# --- the report ----------------------------------------------------------------------------------


def _counts(truth: Mapping[str, SplitTruth], models: Sequence[ReportModel]) -> dict[str, tuple[int, int]]:
    counts = {"test": (len(truth["test"].labels), int(truth["test"].labels.sum()))}
    for subset in (AUDIO_SUBSET, TEXT_SUBSET):
        _, labels = held_out(models[0], truth, subset)
        counts[subset] = (len(labels), int(labels.sum()))
    return counts


def write_report(
    out_dir: Path,
    models: Sequence[ReportModel],
    truth: Mapping[str, SplitTruth],
    setup: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    baselines: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    title: str = "MatchLM2Lite on the generated RCI corpus: ablation report",
) -> ReportSummary:
    """Write report.md, the two PNGs and summary.json into `out_dir`; returns the summary."""
    if not models:
        raise ValueError("no models to report on")
    if "test" not in truth:
        raise ValueError("the report needs the test split")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t2, t4 = table2_rows(models, truth), table4_rows(models)
    found, comps = findings(models, truth)
    counts = _counts(truth, models)
    plot_pr_curves(out_dir / PR_FILE, models, truth)
    plot_score_distributions(out_dir / DIST_FILE, models, truth)

    parts = [f"# {title}", ""]
    parts += ["## What it shows", "", _finding_text(found, comps), "",
              "A finding is *yes* only when the 95% paired bootstrap interval of the difference is above zero; "
              "the corpus is small, so say *not shown* rather than *no* where an interval straddles zero.", ""]
    parts += ["## Table 2 analogue: modalities (stage 1) and the teacher", "", _render_table2(t2, counts), ""]
    parts += ["### The positive subsets (the paper's Figure 4)", "",
              "Mean score of the reproduced and the normal pairs of each modality-dependent subset (held-out "
              "pairs) and the share of its reproduced pairs each model flags at its own validation threshold. "
              "A visual-only model cannot tell these pairs apart (same template picture on both sides); "
              "the modality that decides the label should push the reproduced pairs' scores up.", "",
              _render_figure4(t2), ""]
    if baselines:
        parts += ["### What the frozen features carry (no training)", "",
                  "How well the plain cosine of the two videos' frozen features ranks the pairs: visual = mean-frame "
                  "embedding, audio = pooled audio embedding, text = mean text token; mean cosine of the reproduced "
                  "and the normal pairs of each subset. A modality whose cosine separates a subset carries its "
                  "signal; whether a model learns to use it is what Table 2 shows.", "",
                  _render_baselines(baselines, truth), ""]
    parts += ["## Table 4 analogue: distillation", "", _render_table4(t4, counts["test"]), ""]
    parts += ["## Plots", "", f"![PR curves]({PR_FILE})", "", f"![score distributions]({DIST_FILE})", ""]
    if setup:
        parts += ["## Setup", ""]
        parts += [f"- **{k}**: {v}" for k, v in setup.items()]
        parts += [""]
    if notes:
        parts += ["## Notes and deviations from the paper", ""] + [f"- {n}" for n in notes] + [""]
    (out_dir / REPORT_FILE).write_text("\n".join(parts))

    summary = ReportSummary(
        files={"report": REPORT_FILE, "pr_curves": PR_FILE, "score_distributions": DIST_FILE, "summary": SUMMARY_FILE},
        table2=t2, table4=t4, findings=found, comparisons=[c.to_dict() for c in comps],
    )
    payload = {**summary.to_dict(), "setup": jsonable(json.loads(json.dumps(dict(setup or {}), default=str))),
               "models": [{"key": m.key, "name": m.name, "role": m.role, "variant": m.variant,
                           "evaluation": m.evaluation.to_dict()} for m in models]}
    (out_dir / SUMMARY_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    return summary


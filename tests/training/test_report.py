"""The report writer on made-up scores whose findings are known in advance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rci.training.evaluate import evaluate_model
from rci.training.report import (
    AUDIO_SUBSET,
    CONTROL,
    DISTILLED,
    STAGE1,
    TEACHER,
    TEXT_SUBSET,
    ReportModel,
    SplitTruth,
    bootstrap_delta,
    write_report,
)
from rci.training.metrics import average_precision

SUBSETS = ("visual_copy", "unrelated", AUDIO_SUBSET, TEXT_SUBSET)
PNG = b"\x89PNG\r\n\x1a\n"


class _Labelled:
    def __init__(self, truth: SplitTruth) -> None:
        self.labels, self.subsets = truth.labels, truth.subsets


def _truth(seed: int, per_subset: int = 24) -> SplitTruth:
    rng = np.random.default_rng(seed)
    subsets = [s for s in SUBSETS for _ in range(per_subset)]
    labels = np.array([1 if s == "visual_copy" else 0 if s == "unrelated" else int(rng.integers(2)) for s in subsets])
    labels[[SUBSETS.index(AUDIO_SUBSET) * per_subset, SUBSETS.index(TEXT_SUBSET) * per_subset]] = 1
    labels[[SUBSETS.index(AUDIO_SUBSET) * per_subset + 1, SUBSETS.index(TEXT_SUBSET) * per_subset + 1]] = 0
    return SplitTruth(labels, subsets)


def _scores(truth: SplitTruth, sees: set[str], skill: float, seed: int) -> np.ndarray:
    """Separates the labels by `skill` where it sees the deciding modality, guesses elsewhere."""
    rng = np.random.default_rng(seed)
    subsets = np.array(truth.subsets)
    blind = (np.isin(subsets, [AUDIO_SUBSET]) & ("audio" not in sees)) | (np.isin(subsets, [TEXT_SUBSET]) & ("text" not in sees))
    logits = np.where(blind, 0.0, skill * (2 * truth.labels - 1)) + rng.normal(0, 1, len(subsets))
    return 1 / (1 + np.exp(-logits))


def _model(key, name, role, variant, sees, skill, truth, seed, weights=None) -> ReportModel:
    scores = {split: _scores(t, sees, skill, seed + i) for i, (split, t) in enumerate(truth.items())}
    evaluation = evaluate_model(name, {split: (_Labelled(t), _Preds(scores[split])) for split, t in truth.items()})
    return ReportModel(key, name, role, variant, evaluation, scores, weights)


class _Preds:
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    truth = {"val": _truth(1), "test": _truth(2)}
    models = [
        _model("v", "MatchLite V", STAGE1, "V", set(), 2.0, truth, 10),
        _model("va", "MatchLite V+A", STAGE1, "V+A", {"audio"}, 2.0, truth, 20),
        _model("vt", "MatchLite V+T", STAGE1, "V+T", {"text"}, 2.0, truth, 30),
        _model("vat", "MatchLite V+A+T", STAGE1, "V+A+T", {"audio", "text"}, 0.5, truth, 40),
        _model("lm", "MatchLM V+A+T", TEACHER, "V+A+T", {"audio", "text"}, 0.3, truth, 50),
        _model("ce", "MatchLite V+A+T, lambda 0", CONTROL, "V+A+T", {"audio", "text"}, 0.5, truth, 60, (0.0, 0.0)),
        _model("kd", "MatchLite V+A+T w/ KD", DISTILLED, "V+A+T", {"audio", "text"}, 4.0, truth, 70, (1.5, 1.5)),
    ]
    out = tmp_path_factory.mktemp("report")
    baselines = {split: {"text": _scores(t, {"text"}, 3.0, 80 + i)} for i, (split, t) in enumerate(truth.items())}
    summary = write_report(out, models, truth, setup={"corpus": "made up"}, notes=["a note"], baselines=baselines)
    return out, summary


def test_report_has_both_tables_plots_and_summary(report):
    out, summary = report
    text = (out / "report.md").read_text()
    assert "## Table 2 analogue" in text and "## Table 4 analogue" in text and "Figure 4" in text
    for name in ("MatchLite V", "MatchLite V+A", "MatchLite V+T", "MatchLite V+A+T", "MatchLM V+A+T",
                 "MatchLite V+A+T w/ KD"):
        assert f"| {name} |" in text, name
    assert "![PR curves](pr_curves.png)" in text and "![score distributions](score_distributions.png)" in text
    assert "What the frozen features carry" in text and "| text |" in text
    assert "- **corpus**: made up" in text and "- a note" in text
    for png in ("pr_curves.png", "score_distributions.png"):
        assert (out / png).read_bytes()[:8] == PNG and (out / png).stat().st_size > 10_000
    data = json.loads((out / "summary.json").read_text())
    assert {row["model"] for row in data["table2"]} == {"MatchLite V", "MatchLite V+A", "MatchLite V+T",
                                                       "MatchLite V+A+T", "MatchLM V+A+T"}
    assert [row["role"] for row in data["table4"]] == [STAGE1, CONTROL, DISTILLED, TEACHER]
    assert data["table4"][2]["L_logits"] == 1.5 and data["table4"][0]["L_logits"] is None
    assert len(data["models"]) == 7


def test_findings_follow_the_scores(report):
    _, summary = report
    found = summary.findings
    # V+A sees the audio that decides the audio-dependent pairs, V guesses: a clear, significant gain
    assert found["audio_improves_visual_only"]["verdict"] == "yes"
    assert found["text_improves_visual_only"]["verdict"] == "yes"
    assert found["audio_improves_visual_only"]["ap"]["slice"] == f"{AUDIO_SUBSET} (val+test)"
    assert found["distillation_improves_ap_and_r_at_p80"]["verdict"] == "yes"
    assert "vs_control" in found["distillation_improves_ap_and_r_at_p80"]
    # the made-up teacher is much weaker than the distilled student, and the report says so
    assert found["teacher_at_least_as_good_as_student"]["verdict"].startswith("no")
    text = (report[0] / "report.md").read_text()
    assert "(c) The teacher is at least as good as the student: no" in text


def test_bootstrap_interval_brackets_the_difference():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(30), np.zeros(30)].astype(int)
    good = labels + rng.normal(0, 0.5, 60)
    noisy = labels + rng.normal(0, 2.0, 60)
    delta, low, high = bootstrap_delta(average_precision, noisy, good, labels, n=300)
    assert delta == pytest.approx(average_precision(good, labels) - average_precision(noisy, labels))
    assert low <= delta <= high and low > 0
    same = bootstrap_delta(average_precision, good, good, labels, n=50)
    assert same == (0.0, 0.0, 0.0)

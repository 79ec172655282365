import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rci.training.metrics import (
    average_precision,
    best_f1,
    f1_at,
    operating_point,
    pr_curve,
    precision_recall_at,
    recall_at_precision,
    roc_auc,
    summarize,
    threshold_at_precision,
)

# Five pairs, positives at ranks 1, 3, 5:
#   threshold  0.9   0.8   0.7   0.6   0.5
#   precision  1/1   1/2   2/3   2/4   3/5
#   recall     1/3   1/3   2/3   2/3   3/3
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
LABELS = np.array([1, 0, 1, 0, 1])


def brute_force_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """Count TP/FP from scratch at every distinct threshold: sum of (recall gain) x precision."""
    total, previous_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        flagged = scores >= t
        tp = int(np.sum(flagged & (labels == 1)))
        precision, recall = tp / int(flagged.sum()), tp / int(labels.sum())
        total += (recall - previous_recall) * precision
        previous_recall = recall
    return total


def test_pr_curve_by_hand():
    curve = pr_curve(SCORES, LABELS)
    np.testing.assert_allclose(curve.thresholds, SCORES)
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 2 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    assert curve.positives == 3


def test_average_precision_by_hand():
    # 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5
    assert average_precision(SCORES, LABELS) == pytest.approx(34 / 45)
    assert average_precision(SCORES[::-1], LABELS[::-1]) == pytest.approx(34 / 45)  # order of input is irrelevant


def test_ties_enter_together():
    # 0.9 flags both tied pairs at once (P=1/2, R=1/2); 0.1 flags all (P=2/3, R=1).
    scores, labels = np.array([0.9, 0.9, 0.1]), np.array([1, 0, 1])
    curve = pr_curve(scores, labels)
    np.testing.assert_allclose(curve.thresholds, [0.9, 0.1])
    assert average_precision(scores, labels) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # the tie cannot be split, whichever order the input lists it in
    assert average_precision(scores[[1, 0, 2]], labels[[1, 0, 2]]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_perfect_and_inverted_ranking():
    labels = np.array([1, 1, 0, 0, 0])
    assert average_precision(np.array([5, 4, 3, 2, 1.0]), labels) == pytest.approx(1.0)
    # positives ranked last: precision 1/4 and 2/5 at their ranks
    assert average_precision(np.array([1, 2, 3, 4, 5.0]), labels) == pytest.approx(0.5 * (1 / 4 + 2 / 5))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 1)), min_size=1, max_size=40).filter(
        lambda rows: any(label for _, label in rows)
    )
)
def test_average_precision_matches_brute_force(rows):
    # integer scores from a small range: plenty of ties
    scores = np.array([s / 12 for s, _ in rows])
    labels = np.array([label for _, label in rows])
    assert average_precision(scores, labels) == pytest.approx(brute_force_ap(scores, labels))


def test_average_precision_is_mean_precision_at_positives_without_ties():
    rng = np.random.default_rng(0)
    scores, labels = rng.random(200), (rng.random(200) < 0.1).astype(int)
    order = np.argsort(-scores)
    hits = np.cumsum(labels[order])
    precision_at_positive = (hits / np.arange(1, 201))[labels[order] == 1]
    assert average_precision(scores, labels) == pytest.approx(precision_at_positive.mean())


def test_best_f1_by_hand():
    f1, threshold = best_f1(SCORES, LABELS)
    assert f1 == pytest.approx(2 * 0.6 * 1.0 / 1.6)  # P=3/5, R=1 at 0.5
    assert threshold == 0.5
    assert f1_at(SCORES, LABELS, threshold) == pytest.approx(f1)
    assert f1_at(SCORES, LABELS, 0.7) == pytest.approx(2 / 3)  # P=2/3, R=2/3


def test_recall_and_threshold_at_precision_by_hand():
    # only the top pair keeps precision >= 0.8
    assert recall_at_precision(SCORES, LABELS, 0.8) == pytest.approx(1 / 3)
    assert threshold_at_precision(SCORES, LABELS, 0.8) == 0.9
    # precision >= 0.6 is reached with full recall at 0.5
    assert recall_at_precision(SCORES, LABELS, 0.6) == pytest.approx(1.0)
    assert threshold_at_precision(SCORES, LABELS, 0.6) == 0.5


def test_threshold_is_the_lowest_flagged_positive():
    # A negative below the last positive keeps precision 3/4 >= 0.7 but adds no recall:
    # the highest threshold with the best recall is the positive's score, not the negative's.
    scores, labels = np.array([0.9, 0.8, 0.7, 0.6, 0.1]), np.array([1, 1, 0, 1, 0])
    point = operating_point(scores, labels, 0.7)
    assert point.reached
    assert (point.threshold, point.recall, point.precision) == (0.6, 1.0, 0.75)
    assert precision_recall_at(scores, labels, point.threshold) == (0.75, 1.0)  # the serving rule agrees


def test_unreachable_precision_flags_nothing():
    scores, labels = np.array([0.9, 0.8, 0.3]), np.array([0, 1, 0])
    point = operating_point(scores, labels, 0.8)
    assert not point.reached
    assert point.threshold > 0.9 and point.recall == 0.0
    assert not (scores >= point.threshold).any()
    assert recall_at_precision(scores, labels, 0.8) == 0.0


def test_no_positives():
    scores, labels = np.array([0.2, 0.1]), np.array([0, 0])
    assert math.isnan(average_precision(scores, labels))
    assert best_f1(scores, labels)[0] == 0.0
    assert not operating_point(scores, labels).reached


def test_summary_and_validation():
    summary = summarize(SCORES, LABELS)
    assert (summary.pairs, summary.positives) == (5, 3)
    assert summary.as_percent()["AP"] == pytest.approx(100 * 34 / 45)
    with pytest.raises(ValueError, match="differ"):
        average_precision(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="0 or 1"):
        average_precision(np.zeros(2), np.array([0, 2]))
    with pytest.raises(ValueError, match="NaN"):
        average_precision(np.array([np.nan, 0.1]), np.array([0, 1]))


def brute_force_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Every positive against every negative: a win counts 1, a tie 1/2."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_roc_auc_counts_wins_and_half_ties() -> None:
    assert roc_auc(SCORES, LABELS) == pytest.approx(3 / 6)  # 0.9 beats both, 0.7 one, 0.5 none
    assert roc_auc(np.array([0.5, 0.5, 0.9]), np.array([1, 0, 0])) == pytest.approx(0.25)
    assert roc_auc(np.array([0.2, 0.8]), np.array([0, 1])) == 1.0
    assert roc_auc(np.array([0.2, 0.8]), np.array([1, 1])) is None  # undefined without negatives


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=40))
@settings(max_examples=200, deadline=None)
def test_roc_auc_matches_brute_force(pairs: list[tuple[int, int]]) -> None:
    scores = np.array([s / 5 for s, _ in pairs])  # few distinct values: many ties
    labels = np.array([y for _, y in pairs])
    if labels.min() == labels.max():
        assert roc_auc(scores, labels) is None
    else:
        assert roc_auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels))

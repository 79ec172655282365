"""Shadow consumer logic: deterministic sampling by video_id, agreement, aggregates."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rci.streams.contracts import ScoreRecord
from rci.streams.shadow.logic import ShadowAggregate, agreement, is_sampled, sample_point, shadow_record

IDS = [f"video-{i:05d}" for i in range(10_000)]


def test_sampling_is_stable_across_calls():
    first = [is_sampled(v, 0.1) for v in IDS]
    assert first == [is_sampled(v, 0.1) for v in IDS]


def test_sampling_is_stable_across_processes_whatever_their_hash_seed():
    # Python's hash() is salted per process; the sample must not be
    code = (
        "import json, sys; from rci.streams.shadow.logic import is_sampled; "
        "ids = [f'video-{i:05d}' for i in range(10000)]; "
        "print(json.dumps([i for i in ids if is_sampled(i, 0.1)]))"
    )
    expected = [v for v in IDS if is_sampled(v, 0.1)]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == expected


def test_rate_one_samples_all_and_rate_zero_none():
    assert all(is_sampled(v, 1.0) for v in IDS)
    assert not any(is_sampled(v, 0.0) for v in IDS)


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5])
def test_rate_samples_about_that_fraction(rate):
    count = sum(is_sampled(v, rate) for v in IDS)
    sd = math.sqrt(len(IDS) * rate * (1 - rate))
    assert abs(count - rate * len(IDS)) <= 4 * sd  # binomial, 4 standard deviations


def test_smaller_rate_samples_a_subset():
    small = {v for v in IDS if is_sampled(v, 0.01)}
    assert small and small <= {v for v in IDS if is_sampled(v, 0.1)}


def test_sample_point_is_sha256_based_and_rate_is_checked():
    assert sample_point("a") == int("ca978112ca1bbdca", 16) / 2**64  # sha256("a") starts ca978112ca1bbdca
    with pytest.raises(ValueError):
        is_sampled("a", 1.5)


def test_agreement_is_the_same_side_of_the_threshold():
    assert agreement(0.9, 0.7, 0.5) and agreement(0.1, 0.49, 0.5)
    assert not agreement(0.5, 0.49, 0.5)  # deboost is score >= threshold
    assert agreement(0.5, 0.5, 0.5)
    with pytest.raises(ValueError):
        agreement(float("nan"), 0.2, 0.5)


def test_aggregate_rate_gap_and_histograms():
    agg = ShadowAggregate(threshold=0.5, bins=4)
    assert math.isnan(agg.snapshot().agreement_rate)
    pairs = [(0.9, 0.8), (0.2, 0.6), (0.0, 0.1), (1.0, 0.3)]
    assert [agg.add(s, t) for s, t in pairs] == [True, False, True, False]
    snap = agg.snapshot()
    assert snap.pairs == 4 and snap.agreement_rate == 0.5
    assert snap.mean_abs_gap == pytest.approx((0.1 + 0.4 + 0.1 + 0.7) / 4)
    assert snap.student_histogram == (2, 0, 0, 2)  # 0.0, 0.2 | - | - | 0.9, 1.0 (the top bin holds 1.0)
    assert snap.teacher_histogram == (1, 1, 1, 1)
    assert (snap.student_deboosts, snap.teacher_deboosts) == (2, 2)
    assert agg.bin_edges() == (0.0, 0.25, 0.5, 0.75, 1.0)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=50))
def test_aggregate_matches_a_direct_computation(pairs):
    agg = ShadowAggregate(threshold=0.5)
    for s, t in pairs:
        agg.add(s, t)
    snap = agg.snapshot()
    assert snap.agreement_rate == sum(agreement(s, t, 0.5) for s, t in pairs) / len(pairs)
    assert snap.mean_abs_gap == pytest.approx(sum(abs(s - t) for s, t in pairs) / len(pairs))
    assert sum(snap.student_histogram) == sum(snap.teacher_histogram) == len(pairs)


def test_shadow_record_uses_the_students_threshold():
    scored = ScoreRecord(
        video_id="q1", candidate_id="c1", retrieval_similarity=0.9, score=0.7, deboost=True, threshold=0.6,
        model_version="matchlite-x", modalities=["visual"], published_at="2026-11-22T10:00:00Z",
        scored_at="2026-11-22T10:00:01Z", latency_ms=1000.0,
    )
    record = shadow_record(scored, 0.55, "matchlm-y", "2026-11-22T10:00:02Z")
    assert (record.student_score, record.teacher_score, record.agree) == (0.7, 0.55, False)
    assert (record.video_id, record.candidate_id, record.teacher_model_version) == ("q1", "c1", "matchlm-y")
    assert json.loads(record.to_json_bytes())["agree"] is False

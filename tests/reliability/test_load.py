"""benchmarks.load: its figures from samples, and a short run on the real stack (the full one is
`python -m benchmarks.load`, 10 minutes at 2x capacity then until drained)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.load import LoadPlan, LoadResult, Sample, report, run_load


def test_figures_from_samples():
    plan = LoadPlan(capacity_events_per_s=2.0, multiple=2.0, duration_s=100.0, warmup_s=20.0, sample_s=10.0)
    result = LoadResult(plan=plan, produced=400, scored=400, load_end_s=100.0, drained_at_s=150.0)
    for t in range(0, 160, 10):
        lag = 2 * t if t <= 100 else max(0, 200 - 4 * (t - 100))
        result.samples.append(Sample(float(t), min(400, 4 * t), min(400, 4 * t) - lag, lag, 1000.0 + (50 if t == 60 else 0), 0.0))
    f = result.figures()
    assert (f["peak_lag"], f["peak_lag_at_s"], f["lag_at_load_end"]) == (200, 100.0, 200)
    assert f["lag_growth_events_per_s"] == 2.0 == f["expected_lag_growth_events_per_s"]
    assert f["drain_s"] == 50.0 and f["events_lost"] == 0
    assert (f["rss_baseline_mb"], f["rss_growth_peak_pct"], f["rss_growth_end_pct"]) == (1000.0, 5.0, 0.0)
    assert "| peak consumer lag | 200 events at t=100.0 s |" in report(result)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_short_load_run_scores_everything_and_drains(tmp_path: Path):
    plan = LoadPlan(capacity_events_per_s=2.0, multiple=2.0, duration_s=15.0, warmup_s=5.0, sample_s=1.0,
                    drain_timeout_s=180.0, batch_size=8, max_frames=4, clip_seconds=2.0, library=4, partitions=2)  # fmt: skip
    result = run_load(plan, tmp_path)
    f = result.figures()
    assert result.worker_alive and f["events_produced"] == plan.events == f["events_scored"]
    assert not result.lost and f["drain_s"] is not None
    assert f["peak_lag"] is not None and result.samples[-1].lag == 0

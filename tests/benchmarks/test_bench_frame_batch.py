"""The frame-batch benchmark at a tiny size: the worker's own SSCD encoder timed at two batch sizes."""

from __future__ import annotations

import math

import pytest

from benchmarks import bench_frame_batch
from benchmarks.record import RESULTS_FILE


def test_every_batch_size_is_timed_and_compared_with_the_worker_s_batch(capsys: pytest.CaptureFixture[str]):
    before = RESULTS_FILE.read_bytes()
    rows = bench_frame_batch.run([1, 2], n_frames=2, reps=1, seed=0)
    assert [row[0] for row in rows] == [1, 2]
    for _, fps, cpu_ms, relative in rows:
        assert math.isfinite(fps) and fps > 0 and cpu_ms > 0
        assert relative == "-"  # the worker's batch (32) was not among the sizes: nothing to compare with
    assert bench_frame_batch.main(["--batches", "1,32", "--frames", "32", "--reps", "1", "--no-record"]) == 0
    table = capsys.readouterr().out
    assert "| 32 |" in table and table.count("\n| ") >= 3  # header, batch 1, batch 32
    assert RESULTS_FILE.read_bytes() == before  # --no-record leaves RESULTS.md alone


def test_a_batch_larger_than_the_frames_is_refused():
    with pytest.raises(SystemExit):
        bench_frame_batch.main(["--batches", "64", "--frames", "8", "--no-record"])

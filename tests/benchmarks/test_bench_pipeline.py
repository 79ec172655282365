"""The whole-pipeline benchmark at a tiny size: real stack, one `rci worker`, one offered load.

Checks that the figures it records are sane (every event scored once, rates and latencies
positive and finite, the slowest stage really is the slowest) and that a no-record run leaves
benchmarks/RESULTS.md alone.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_pipeline
from benchmarks.record import RESULTS_FILE

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

TINY = ["--batch-size", "4", "--library", "2", "--stage-batches", "1", "--loads", "1", "--no-burst",
        "--min-events", "6", "--max-events", "6", "--partitions", "2", "--clip-seconds", "2", "--max-frames", "4",
        "--no-record"]  # fmt: skip


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_tiny_pipeline_benchmark_scores_every_event_and_reports_sane_figures(tmp_path: Path):
    results_before = RESULTS_FILE.read_bytes() if RESULTS_FILE.exists() else None
    out = tmp_path / "pipeline.json"

    result = bench_pipeline.main([*TINY, "--json", str(out)])

    saved = json.loads(out.read_text())  # strict JSON (no NaN), the shape load tests read
    assert saved["capacity"] == json.loads(json.dumps(result["capacity"]))
    assert (RESULTS_FILE.read_bytes() if RESULTS_FILE.exists() else None) == results_before

    stages = {s["stage"]: s for s in saved["stages"]}
    assert set(stages) == set(bench_pipeline.STAGES)
    for stage in stages.values():
        assert stage["events"] == 4 and positive(stage["events_per_s"]) and positive(stage["ms_per_batch"]), stage
    slowest = saved["slowest_stage"]
    assert slowest["events_per_s"] == min(s["events_per_s"] for name, s in stages.items() if name != "parse")
    assert stages[slowest["stage"]]["events_per_s"] == slowest["events_per_s"]
    assert positive(saved["in_process_sequential_events_per_s"]) and positive(saved["in_process_cpu_ms_per_event"])
    assert saved["in_process_sequential_events_per_s"] <= slowest["events_per_s"]

    [load] = saved["loads"]
    assert load["events"] == 6 and load["scored"] == 6 and load["duplicates"] == 0, load
    assert load["offered_events_per_s"] == pytest.approx(slowest["events_per_s"], rel=1e-3)
    for key in ("achieved_events_per_s", "e2e_p50_ms", "e2e_p99_ms", "e2e_max_ms", "worker_latency_p50_ms",
                "worker_latency_p99_ms", "mean_batch_size", "worker_cpu_ms_per_event"):  # fmt: skip
        assert positive(load[key]), (key, load)
    assert load["e2e_p50_ms"] <= load["e2e_p99_ms"] <= load["e2e_max_ms"]
    # the score is read after the worker computed it: publish->read is never shorter than publish->scored
    assert load["e2e_p50_ms"] >= load["worker_latency_p50_ms"] - 5
    assert 1 <= load["mean_batch_size"] <= 4
    assert positive(load["worker_stage_ms_per_event"]["features"])
    assert 0 < load["machine_busy"] <= 1, load  # the worker was encoding: some core was busy
    cores = load["cores_by_process"]
    assert set(cores) == set(bench_pipeline.CPU_GROUPS)
    assert positive(cores["worker"]) and positive(cores["services"]), cores  # it encoded; the broker served
    stage_cores = saved["stages_cores_by_process"]
    assert positive(stage_cores["harness"]) and stage_cores["worker"] == 0, stage_cores  # no worker yet
    assert positive(saved["single_event_e2e_ms"])
    assert saved["p99_at_half_load_over_single_event"] is None  # no 0.5x load in this run

    capacity = saved["capacity"]
    assert capacity["events_per_s"] == load["achieved_events_per_s"]
    assert positive(capacity["ratio_to_slowest_stage"]) and positive(capacity["ratio_to_in_process_sequential"])
    ratio = capacity["events_per_s"] / slowest["events_per_s"]
    assert capacity["ratio_to_slowest_stage"] == pytest.approx(ratio, rel=0.01)
    assert saved["dead_letters"] == 0 and saved["consumer_errors"] == []


def test_cores_since_splits_each_group_s_cpu_by_the_wall_time_between_snapshots():
    before = bench_pipeline.CpuSnapshot(10.0, {1: ("worker", 5.0), 2: ("services", 1.0), 3: ("other", 2.0)})
    after = bench_pipeline.CpuSnapshot(14.0, {1: ("worker", 9.0), 2: ("services", 3.0), 4: ("harness", 0.4)})
    cores = after.cores_since(before)
    # pid 4 was born in between (counts whole); pid 3 ended in between (its last seconds are lost)
    assert cores == {"worker": 1.0, "harness": 0.1, "services": 0.5, "other": 0.0}


def test_the_snapshot_finds_this_process_as_the_harness_and_its_children_as_services():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        snap = bench_pipeline.CpuSnapshot.take()
        assert snap.used[os.getpid()][0] == "harness"
        assert snap.used[child.pid][0] == "services"
        assert bench_pipeline.CpuSnapshot.take(worker_pid=child.pid).used[child.pid][0] == "worker"
    finally:
        child.kill()
        child.wait()

"""benchmarks.bench_teacher's parts that need no trained models: the paired comparison and the cost per pair.
(The whole run trains a teacher and renders a held-out set: minutes, so it is a benchmark, not a test.)"""

from __future__ import annotations

import re

import numpy as np
import torch

from benchmarks import bench_teacher
from rci.inference.matchlmf.batch import build_batch
from rci.inference.matchlmf.model import MatchLMF
from tests.inference.matchlmf.matchlmf_inputs import CONFIG, make_video


def _interval(cell: str) -> tuple[float, float, float]:
    delta, low, high = map(float, re.fullmatch(r"([+-][0-9.]+) \[([+-][0-9.]+), ([+-][0-9.]+)\]", cell).groups())
    return delta, low, high


def test_a_candidate_that_ranks_every_pair_right_beats_a_noisy_base_with_an_interval_above_zero():
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 0], 100)
    perfect = labels + 0.01 * rng.random(200)
    noisy = labels + rng.normal(scale=0.8, size=200)
    rows = bench_teacher.compare(noisy, perfect, labels, np.ones(200, bool))
    assert [row[0] for row in rows] == ["AP", "R@P80"]
    for _, base, cand, cell in rows:
        delta, low, high = _interval(cell)
        assert float(cand) == 100.0 > float(base)
        assert 0 < low <= delta <= high
    same = bench_teacher.compare(noisy, noisy, labels, np.ones(200, bool))
    assert all(_interval(cell) == (0.0, 0.0, 0.0) for *_, cell in same)  # no difference, no interval


def test_the_cost_per_pair_counts_the_forward_passes_flops():
    torch.manual_seed(0)
    model = MatchLMF(CONFIG).eval()
    pairs = [(make_video(f"q{i}", i, audio_s=2.0), make_video(f"c{i}", 50 + i)) for i in range(4)]
    gflops, ms = bench_teacher.cost_per_pair(model, build_batch(pairs, CONFIG), repeats=2)
    per_layer = 2 * CONFIG.d_model * CONFIG.d_model * 3  # the qkv projection alone, per token
    assert gflops * 1e9 > per_layer  # at least one layer's projection of one token
    assert ms > 0

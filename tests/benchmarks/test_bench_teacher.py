"""benchmarks.bench_teacher's part that needs no trained models: the paired comparison (its cost per pair is
benchmarks.bench_cost's, tested there).
(The whole run trains a teacher and renders a held-out set: minutes, so it is a benchmark, not a test.)"""

from __future__ import annotations

import re

import numpy as np

from benchmarks import bench_teacher


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


def test_pair_groups_keep_the_served_pairs_their_hard_copies_and_each_modality_subset_apart():
    groups = np.array(["easy", "hard", "unrelated", "template", "audio_dependent", "audio_dependent", "text_dependent"])
    labels = np.array([1, 1, 0, 0, 1, 0, 1])
    where = bench_teacher.pair_groups(groups, labels)
    as_lists = {name: np.flatnonzero(keep).tolist() for name, keep in where.items()}
    assert as_lists == {
        "all held-out pairs": [0, 1, 2, 3, 4, 5, 6],
        "served pairs (bench sets)": [0, 1, 2, 3],
        "served hard copies vs served negatives": [1, 2, 3],
        "audio-dependent (modality set)": [4, 5],
        "text-dependent (modality set)": [6],
    }
    served_only = bench_teacher.pair_groups(groups[:4], labels[:4])
    assert list(served_only) == ["served pairs (bench sets)", "served hard copies vs served negatives"]


def test_a_scale_fills_what_the_command_line_leaves_out():
    default = bench_teacher.parse_args([])
    assert (default.seeds, default.modality_sources, default.epochs) == ([0, 1, 2], 100, 8)
    paper = bench_teacher.parse_args(["--scale", "paper", "--epochs", "3"])
    assert paper.seeds == bench_teacher.SCALES["paper"]["seeds"] and paper.modality_sources == 200
    assert paper.epochs == 3  # given, kept


def test_the_paper_scale_fits_the_pools():
    """Each modality set the paper scale asks for has the template pictures it needs (planned, not rendered)."""
    from rci.training.realset.modalities import plan_modality_set
    from rci.training.realset.pools import BENCH, TRAINING

    scale = bench_teacher.SCALES["paper"]
    for pools, sources in ((BENCH, scale["modality_sources"]), (TRAINING, max(scale["teacher_sources"], scale["unlabelled_sources"]))):
        videos, pairs, _ = plan_modality_set(sources, seed=0, pools=pools)
        assert len(pairs) == 4 * sources

"""Matched segments from constructed similarity maps (1 fps frames)."""

from __future__ import annotations

import numpy as np

from rci.inference.evidence import EvidenceParams, matched_segments


def background(m: int, n: int, seed: int = 0) -> np.ndarray:
    """Unrelated content: cosines well below the threshold."""
    return np.random.default_rng(seed).uniform(-0.2, 0.4, size=(m, n)).astype(np.float32)


def band(sim: np.ndarray, q0: int, c0: int, length: int, value: float = 0.95) -> np.ndarray:
    for k in range(length):
        sim[q0 + k, c0 + k] = value
    return sim


def all_valid(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.ones(m, bool), np.ones(n, bool)


def test_offset_trim_gives_its_segment():
    """Query = candidate seconds 5..15 re-uploaded from second 2 of the query."""
    sim = band(background(20, 30), q0=2, c0=5, length=10)
    assert matched_segments(sim, *all_valid(20, 30)) == [[2.0, 12.0, 5.0, 15.0]]


def test_unrelated_map_has_no_segment():
    assert matched_segments(background(20, 30), *all_valid(20, 30)) == []


def test_single_frame_coincidence_is_not_a_segment():
    sim = background(10, 10)
    sim[3, 7] = 0.99
    assert matched_segments(sim, *all_valid(10, 10)) == []


def test_a_dropped_frame_does_not_split_the_segment():
    sim = band(background(20, 20), q0=0, c0=3, length=12)
    sim[6, 9] = 0.1  # one re-encoded frame no longer matches
    assert matched_segments(sim, *all_valid(20, 20)) == [[0.0, 12.0, 3.0, 15.0]]


def test_long_gap_gives_two_segments():
    sim = band(background(30, 30), q0=0, c0=0, length=6)
    sim = band(sim, q0=15, c0=20, length=8)  # a compilation: two excerpts of the candidate
    assert matched_segments(sim, *all_valid(30, 30)) == [[0.0, 6.0, 0.0, 6.0], [15.0, 23.0, 20.0, 28.0]]


def test_jitter_onto_the_next_diagonal_is_merged():
    sim = band(background(20, 20), q0=0, c0=4, length=5)
    sim = band(sim, q0=5, c0=10, length=5)  # frame sampling slipped by one second halfway
    assert matched_segments(sim, *all_valid(20, 20)) == [[0.0, 10.0, 4.0, 15.0]]


def test_padded_cells_are_ignored():
    sim = background(12, 12)
    sim = band(sim, q0=8, c0=8, length=4, value=1.0)  # high values, but on padded frames
    q_mask = np.arange(12) < 8
    assert matched_segments(sim, q_mask, np.ones(12, bool)) == []


def test_weaker_overlapping_alignment_is_suppressed():
    sim = band(background(20, 40), q0=0, c0=0, length=10)
    sim = band(sim, q0=2, c0=25, length=4, value=0.8)  # the same query stretch, weaker elsewhere
    assert matched_segments(sim, *all_valid(20, 40)) == [[0.0, 10.0, 0.0, 10.0]]


def test_durations_clip_the_last_second_and_fps_scales():
    sim = band(background(6, 6), q0=0, c0=0, length=6)
    assert matched_segments(sim, *all_valid(6, 6), query_duration_s=5.5, candidate_duration_s=5.2) == [
        [0.0, 5.5, 0.0, 5.2]
    ]
    assert matched_segments(sim, *all_valid(6, 6), EvidenceParams(fps=2.0)) == [[0.0, 3.0, 0.0, 3.0]]


def test_nan_cells_are_not_matches():
    sim = band(background(8, 8), q0=0, c0=0, length=8)
    sim[:, :] = np.nan
    assert matched_segments(sim, *all_valid(8, 8)) == []

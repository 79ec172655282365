"""The frame-set similarity retrieval re-ranks with."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rci.inference.features import VideoFeatures, frame_similarity
from rci.retrieval.similarity import chamfer, frame_set_similarity


def video(frames: np.ndarray, pad: int = 2) -> VideoFeatures:
    d = frames.shape[1]
    visual = np.concatenate([frames, np.full((pad, d), 7.0, np.float32)]).astype(np.float32)  # padding is garbage
    return VideoFeatures(
        video_id="v", encoder_version="e", visual=visual, visual_mask=np.array([True] * len(frames) + [False] * pad),
        audio=np.zeros(4, np.float32), has_audio=False, text=np.zeros((1, 4), np.float32),
        text_mask=np.zeros(1, bool), duration_s=float(len(frames)),
    )


def test_chamfer_averages_each_sides_best_match_in_both_directions():
    sim = np.array([[1.0, 0.2, 0.0], [0.1, 0.4, 0.3]])
    # rows: best 1.0 and 0.4 -> 0.7; columns: 1.0, 0.4, 0.3 -> 0.5667
    assert chamfer(sim) == pytest.approx(0.5 * (0.7 + 1.7 / 3))
    assert chamfer(np.zeros((0, 3))) == -1.0


def test_frame_sets_ignore_padding_and_scale_and_favour_the_whole_video_over_one_shared_frame():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(6, 16)).astype(np.float32)
    copy = source[1:5] * 3.0 + rng.normal(scale=0.05, size=(4, 16)).astype(np.float32)  # trimmed, rescaled
    decoy = rng.normal(size=(6, 16)).astype(np.float32)
    decoy[0] = copy[0]  # shares one frame exactly
    assert frame_set_similarity(video(copy), video(source)) > 0.8
    assert frame_set_similarity(video(copy), video(decoy)) < frame_set_similarity(video(copy), video(source))
    assert frame_set_similarity(video(copy), video(source)) == pytest.approx(
        frame_set_similarity(video(source), video(copy)), abs=1e-6)


def test_a_video_without_frames_is_dissimilar_to_everything():
    empty = video(np.zeros((0, 16), np.float32))
    assert frame_set_similarity(empty, video(np.ones((3, 16), np.float32))) == -1.0


def test_two_view_frames_match_on_their_best_pair_of_views():
    # A re-crop's centre view is its source's whole view: one view pair alike, the others not.
    rng = np.random.default_rng(1)
    centre, whole, other = (rng.normal(size=(3, 16)).astype(np.float32) for _ in range(3))
    source = np.concatenate([centre, whole], axis=1)  # [3, 2 * 16]
    recrop = np.concatenate([whole * 2.0, other], axis=1)  # its centre is the source's whole frame
    matrix = frame_similarity(recrop, source, views=2)
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-5)
    one_view = frame_similarity(recrop, source, views=1)  # the same numbers read as one 32-d view
    assert np.diag(one_view).max() < 0.9
    with pytest.raises(ValueError, match="views"):
        frame_similarity(np.zeros((2, 15), np.float32), np.zeros((2, 15), np.float32), views=2)


def test_frame_sets_of_different_view_counts_are_refused():
    frames = np.ones((3, 16), np.float32)
    two = replace(video(frames), visual_views=2)
    with pytest.raises(ValueError, match="different encoders"):
        frame_set_similarity(two, video(frames))
    assert frame_set_similarity(two, two) == pytest.approx(1.0)

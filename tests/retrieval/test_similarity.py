"""The frame-set similarity retrieval re-ranks with."""

from __future__ import annotations

import numpy as np
import pytest

from rci.inference.features import VideoFeatures
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

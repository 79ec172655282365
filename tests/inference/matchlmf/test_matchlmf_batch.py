"""build_batch: padding, per-second fingerprint bits, the audio map, and feature checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from tests.inference.matchlmf.matchlmf_inputs import CONFIG, make_video

from rci.inference.matchlmf.batch import build_batch, fingerprint_seconds
from rci.media.fingerprint import HOP_S, second_similarity


def test_bits_are_averaged_over_the_sub_fingerprints_of_each_second():
    # sub-fingerprints 0..8 start in second 0, 9.. in second 1
    assert np.floor(8 * HOP_S) == 0 and np.floor(9 * HOP_S) == 1
    second_0 = [1, 1, 1, 0, 0, 0, 0, 0, 0x8000_0000]  # bit 0 in 3 of 9, bit 31 in 1 of 9
    second_1 = [0b11, 0b10, 0xFFFF_FFFF]  # bit 0 in 2 of 3, bit 1 in all, bits 2..31 in 1 of 3
    bits = fingerprint_seconds(np.array(second_0 + second_1, np.uint32), max_seconds=10)

    expected = np.zeros((2, 32))
    expected[0, 0], expected[0, 31] = 3 / 9, 1 / 9
    expected[1, 0], expected[1, 1], expected[1, 2:] = 2 / 3, 1.0, 1 / 3
    np.testing.assert_array_equal(bits, expected.astype(np.float32))
    np.testing.assert_array_equal(fingerprint_seconds(np.array(second_0 + second_1, np.uint32), 1), bits[:1])
    assert fingerprint_seconds(np.zeros(0, np.uint32), 10).shape == (0, 32)


def test_pads_to_the_longest_video_and_masks_the_rest():
    short, long = make_video("a", 1, frames=2, tokens=1), make_video("b", 2, frames=5, tokens=4, audio_s=4.0)
    batch = build_batch([(short, long), (long, short)], CONFIG)
    assert len(batch) == 2
    assert batch.q_visual.shape == (2, 5, CONFIG.visual_dim) and batch.c_text.shape == (2, 4, CONFIG.text_dim)
    assert batch.q_visual_mask.tolist() == [[True] * 2 + [False] * 3, [True] * 5]
    assert batch.q_text_mask.sum(dim=1).tolist() == [1, 4]
    torch.testing.assert_close(batch.q_visual[0, :2], torch.from_numpy(short.visual[:2]))
    assert not batch.q_visual[0, 2:].any()
    assert batch.q_audio.shape == (2, 4, 32) and batch.q_audio_mask.sum(dim=1).tolist() == [0, 4]
    assert not batch.audio_map.any()  # one side without audio in each pair: no agreement to show
    assert batch.q_visual_mask.dtype == torch.bool and batch.audio_map.dtype == torch.float32


def test_audio_map_is_the_centred_per_second_agreement():
    query, candidate = make_video("q", 3, audio_s=3.0), make_video("c", 4, audio_s=5.0)
    batch = build_batch([(query, candidate)], CONFIG)
    expected = second_similarity(query.audio_fingerprint, candidate.audio_fingerprint, 3, 5)
    np.testing.assert_array_equal(batch.audio_map[0, :3, :5].numpy(), expected)
    assert not batch.audio_map[0, 3:].any()
    same = build_batch([(query, query)], CONFIG).audio_map[0]
    assert same.diagonal().min() > 0.99 and abs(float(batch.audio_map.mean())) < 0.3  # copies ~1, chance ~0


def test_clamps_long_videos_to_the_configs_maxima():
    long = make_video("long", 5, frames=12, tokens=6, audio_s=9.0)
    batch = build_batch([(long, long)], replace(CONFIG, text_tokens=4))
    assert batch.q_visual.shape[1] == CONFIG.max_frames
    assert batch.q_audio.shape[1] == CONFIG.max_audio_seconds and batch.q_text.shape[1] == 4


def test_a_side_without_anything_still_gets_one_masked_slot():
    empty = make_video("empty", 6, frames=0, tokens=0)
    batch = build_batch([(empty, empty)], CONFIG)
    assert batch.q_visual.shape[1] == batch.q_audio.shape[1] == batch.q_text.shape[1] == 1
    assert not batch.q_visual_mask.any() and not batch.c_audio_mask.any() and not batch.q_text_mask.any()


def test_features_of_another_encoder_are_refused():
    video = make_video("v", 7)
    one_view = replace(video, visual_views=1)  # same width, but one view of 32 instead of two of 16
    with pytest.raises(ValueError, match="1 views per frame, the model 2"):
        build_batch([(video, one_view)], CONFIG)
    with pytest.raises(ValueError, match="visual width 16"):
        build_batch([(replace(video, visual=video.visual[:, :16]), video)], CONFIG)


def test_to_casts_floats_only():
    batch = build_batch([(make_video("a", 8), make_video("b", 9))], CONFIG).to("cpu", torch.float64)
    assert batch.q_visual.dtype == torch.float64 and batch.q_visual_mask.dtype == torch.bool

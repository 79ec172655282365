"""VideoInput pairs -> MatchLMBatch: frames allocated and resized, slots counted, audio masked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.inference.matchlm.matchlm_inputs import make_video

from rci.inference.matchlm.frames import allocate_frames
from rci.inference.matchlm.processor import VideoInput
from rci.media.decoded import DecodedMedia


def test_batch_layout_matches_the_allocation(tiny):
    model, processor = tiny
    config = processor.config
    pairs = [(make_video(1, 20), make_video(2, 3)), (make_video(3, 2), make_video(4, 2, audio=None))]
    batch = processor(pairs)
    expected = [n for q, c in pairs for n in allocate_frames(
        (q.duration_s, c.duration_s), (len(q.frames), len(c.frames)), config.frame_budget, config.min_frames)]
    assert batch.frames_per_video.tolist() == expected == [6, 2, 2, 2]
    size = processor.image.size
    assert batch.pixel_values.shape == (sum(expected), 3, size, size)
    video_slots = (batch.input_ids == processor.tokens.video).sum(dim=1)
    per_pair = [sum(processor.video_token_count(n) for n in expected[i : i + 2]) for i in (0, 2)]
    assert video_slots.tolist() == per_pair
    assert (batch.input_ids == processor.tokens.audio).sum(dim=1).tolist() == [2, 2]
    # right padded: the shorter row ends in pad tokens with mask 0
    lengths = batch.attention_mask.sum(dim=1)
    assert lengths[0] > lengths[1]
    assert torch.all(batch.input_ids[1, lengths[1]:] == processor.tokens.pad)
    assert batch.has_audio.tolist() == [True, True, True, False]
    assert batch.audio_mask.sum(dim=1).tolist() == [1000, 150, 100, 0]  # 50 Whisper positions per second


def test_precomputed_features_and_log_mel_cannot_mix(tiny):
    _, processor = tiny
    with pytest.raises(ValueError, match="not a mix"):
        processor([(make_video(1, 3), make_video(2, 3, audio="features"))])
    with pytest.raises(ValueError, match="expects 32"):
        processor([(make_video(1, 3, audio="features", audio_dim=8), make_video(2, 3, audio=None))])


def test_pooled_feature_vector_is_one_audio_token(tiny):
    _, processor = tiny
    pooled = VideoInput(frames=np.zeros((2, 8, 8, 3), np.uint8), duration_s=2.0, audio_features=np.ones(32, np.float32))
    batch = processor([(pooled, make_video(1, 2, audio=None))])
    assert batch.audio_features.shape == (2, 1, 32) and batch.audio_mask.tolist() == [[True], [False]]


def test_from_decoded_keeps_real_frames_and_log_mel():
    frames = np.zeros((6, 224, 224, 3), np.uint8)
    frames[:4] = 7
    mask = np.array([True] * 4 + [False] * 2)
    media = DecodedMedia(frames=frames, frame_mask=mask, audio=np.zeros(16000, np.float32),
                         log_mel=np.zeros((80, 3000), np.float32), duration_s=4.0)
    video = VideoInput.from_decoded(media, title="t", sticker_text="s")
    assert video.frames.shape == (4, 224, 224, 3) and np.all(video.frames == 7)
    assert video.has_audio and video.text == "t s"
    with pytest.raises(ValueError, match="not both"):
        VideoInput(frames=frames, duration_s=1.0, log_mel=media.log_mel, audio_features=np.zeros(32, np.float32))


def test_videos_of_different_sizes_and_a_video_without_frames(tiny):
    model, processor = tiny
    audio_only = VideoInput(frames=np.zeros((0, 224, 224, 3), np.uint8), duration_s=5.0,
                            log_mel=np.zeros((80, 3000), np.float32))
    batch = processor([(make_video(1, 3), audio_only)])  # 64 px frames next to none at all
    assert batch.frames_per_video.tolist() == [3, 0]
    assert int((batch.input_ids == processor.tokens.video).sum()) == processor.video_token_count(3)
    with torch.no_grad():
        assert torch.isfinite(model(batch).score).all()

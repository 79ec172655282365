"""Saliency pooling of Whisper tokens into one audio token, and the late-fusion ablation."""

from __future__ import annotations

import torch

from rci.inference.matchlm.audio import EarlyAudioFusion, LateAudioFusion, SaliencyPooling, audio_token_mask, masked_mean


def seeded(build, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def test_saliency_weights_sum_to_one_and_padding_gets_zero():
    pool = seeded(lambda: SaliencyPooling(8))
    tokens = torch.randn(3, 10, 8)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2] = False  # no real token at all
    pooled, weights = pool(tokens, mask)
    torch.testing.assert_close(weights[:2].sum(dim=-1), torch.ones(2))
    assert torch.all(weights[1, 4:] == 0) and torch.all(weights[1, :4] > 0)
    assert torch.all(weights[2] == 0) and torch.all(pooled[2] == 0)
    torch.testing.assert_close(pooled[1], (weights[1, :, None] * tokens[1]).sum(0))


def test_padding_values_do_not_change_the_pooled_token():
    pool = seeded(lambda: SaliencyPooling(8))
    tokens = torch.randn(1, 6, 8)
    mask = torch.tensor([[True, True, True, False, False, False]])
    noisy = tokens.clone()
    noisy[0, 3:] = 1e3
    torch.testing.assert_close(pool(tokens, mask)[0], pool(noisy, mask)[0])


def test_audio_token_mask_covers_the_real_duration_at_50_per_second():
    assert int(audio_token_mask(3.0, 1500).sum()) == 150
    assert int(audio_token_mask(45.0, 1500).sum()) == 1500  # longer than Whisper's 30 s window
    assert int(audio_token_mask(0.0, 1500).sum()) == 1  # never empty
    assert audio_token_mask(7.3, 1500)[:365].all() and not audio_token_mask(7.3, 1500)[366:].any()


def test_missing_audio_gets_the_learned_placeholder():
    fusion = seeded(lambda: EarlyAudioFusion(8, 16))
    with torch.no_grad():
        fusion.missing.fill_(0.25)
    tokens, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    audio, weights = fusion(tokens, mask, torch.tensor([True, False]))
    assert audio.shape == (2, 16)
    assert torch.all(audio[1] == 0.25) and not torch.all(audio[0] == 0.25)
    assert torch.all(weights[1] == 0)


def test_late_fusion_concatenates_the_two_videos_means():
    late = seeded(lambda: LateAudioFusion(4, 6))
    tokens = torch.randn(4, 5, 4)  # 2 pairs x 2 videos
    mask = torch.ones(4, 5, dtype=torch.bool)
    present = torch.tensor([True, True, True, False])
    out = late(tokens, mask, present)
    means = masked_mean(tokens, mask & present[:, None])
    assert out.shape == (2, 6)
    assert torch.all(means[3] == 0)
    torch.testing.assert_close(out[1], late.proj(torch.cat([means[2], means[3]])))

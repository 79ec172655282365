"""Tiny encoders for fast CPU tests: same code paths as the paper-size ones, far fewer weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from rci.inference.encoders.audio import AudioEncoderConfig, WhisperAudioEncoder, WhisperClipEmbedder
from rci.inference.encoders.bundle import EncoderBundle
from rci.inference.encoders.text import TextEncoderConfig, TokenEmbedder, TransformerTextEncoder, default_text_model_dir
from rci.inference.encoders.visual import SwinFrameEmbedder, SwinVisualEncoder, VisualEncoderConfig
from rci.media.decoded import DecodedMedia
from tests.torch_threads import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)

TINY_VISUAL = VisualEncoderConfig(
    image_size=56, embed_dim=16, depths=(1, 1), num_heads=(1, 2), drop_path_rate=0.0, out_dim=128
)
TINY_AUDIO = AudioEncoderConfig(d_model=32, layers=1, heads=2, ffn_dim=64)


def seeded(build, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_text_model_dir(), local_files_only=True)


@pytest.fixture
def tiny_visual() -> SwinVisualEncoder:
    return SwinVisualEncoder(seeded(lambda: SwinFrameEmbedder(TINY_VISUAL)), device="cpu", batch_size=4)


@pytest.fixture
def tiny_audio() -> WhisperAudioEncoder:
    return WhisperAudioEncoder(seeded(lambda: WhisperClipEmbedder(TINY_AUDIO)), device="cpu", batch_size=2)


@pytest.fixture
def tiny_text(tokenizer) -> TransformerTextEncoder:
    config = TextEncoderConfig.tiny(vocab_size=len(tokenizer), hidden_size=32)
    return TransformerTextEncoder(seeded(lambda: TokenEmbedder(config)), tokenizer, device="cpu")


@pytest.fixture
def tiny_bundle(tiny_visual, tiny_audio, tiny_text) -> EncoderBundle:
    return EncoderBundle(visual=tiny_visual, audio=tiny_audio, text=tiny_text)


def synthetic_media(seed: int, real_frames: int = 3, max_frames: int = 5, audio: bool = True) -> DecodedMedia:
    """DecodedMedia as rci.media.decode would give it: padded frames + mask, optional 30 s log-mel."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((max_frames, 224, 224, 3), np.uint8)
    frames[:real_frames] = rng.integers(0, 256, (real_frames, 224, 224, 3), dtype=np.uint8)
    mask = np.arange(max_frames) < real_frames
    wave = rng.uniform(-0.5, 0.5, 16_000).astype(np.float32) if audio else None
    log_mel = rng.normal(size=(80, 3000)).astype(np.float32) if audio else None
    return DecodedMedia(frames=frames, frame_mask=mask, audio=wave, log_mel=log_mel, duration_s=float(real_frames))

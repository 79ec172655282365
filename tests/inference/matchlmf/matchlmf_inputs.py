"""Synthetic VideoFeatures in the widths of a tiny MatchLMF config, for the matchlmf tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rci.inference.features import VideoFeatures
from rci.inference.matchlmf.config import MatchLMFConfig
from rci.media.fingerprint import HOP_S

# Narrow features (2 views of 16, text 8) and short inputs keep every forward pass in milliseconds.
CONFIG = MatchLMFConfig.tiny(view_dim=16, text_dim=8, max_frames=8, text_tokens=6, max_audio_seconds=6)


def make_video(
    video_id: str,
    seed: int,
    frames: int = 4,
    tokens: int = 3,
    audio_s: float = 0.0,
    visual: np.ndarray | None = None,
    config: MatchLMFConfig = CONFIG,
) -> VideoFeatures:
    """`frames` random frames (or the given [frames, V*Dv] rows), `tokens` text tokens and `audio_s` seconds
    of random fingerprint (no audio at 0), padded to the config's maxima as the feature cache stores them."""
    rng = np.random.default_rng(seed)
    rows = visual if visual is not None else rng.normal(size=(frames, config.visual_dim))
    length = max(config.max_frames, len(rows))
    padded = np.zeros((length, config.visual_dim), np.float32)
    padded[: len(rows)] = rows
    text = np.zeros((config.text_tokens, config.text_dim), np.float32)
    text[:tokens] = rng.normal(size=(tokens, config.text_dim))
    fingerprint = rng.integers(0, 2**32, size=int(audio_s / HOP_S), dtype=np.uint32)
    return VideoFeatures(
        video_id=video_id,
        encoder_version="test-enc",
        visual=padded,
        visual_mask=np.arange(length) < len(rows),
        audio=np.zeros(8, np.float32),
        has_audio=audio_s > 0,
        text=text,
        text_mask=np.arange(config.text_tokens) < tokens,
        duration_s=float(len(rows)),
        audio_fingerprint=fingerprint,
        visual_views=config.visual_views,
    )


def noisy_copy(source: VideoFeatures, seed: int, noise: float = 0.1, config: MatchLMFConfig = CONFIG) -> VideoFeatures:
    """A re-upload: the source's frames plus noise, its fingerprint; new text (titles change)."""
    rng = np.random.default_rng(seed)
    frames = source.visual[source.visual_mask]
    rows = frames + rng.normal(scale=noise * frames.std(), size=frames.shape)
    fresh = make_video(f"{source.video_id}-copy", seed, visual=rows.astype(np.float32),
                       tokens=int(source.text_mask.sum()), config=config)
    return replace(fresh, has_audio=source.has_audio, audio_fingerprint=source.audio_fingerprint)

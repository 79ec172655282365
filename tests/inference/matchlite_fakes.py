"""Synthetic VideoFeatures and a small random-weight MatchLite for the inference tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rci.inference.checkpoint import save_checkpoint
from rci.inference.features import FeatureSpec, VideoFeatures
from rci.inference.matchlite import MatchLite, MatchLiteConfig
from rci.media.fingerprint import HOP_S

SPEC = FeatureSpec()


def make_features(
    video_id: str,
    seed: int,
    frames: int = 8,
    tokens: int = 10,
    audio: bool = True,
    visual: np.ndarray | None = None,
) -> VideoFeatures:
    """A video with `frames` real frames (or the given [frames, Dv] rows) and `tokens` text tokens."""
    rng = np.random.default_rng(seed)
    if visual is not None:
        frames = len(visual)
    padded = np.zeros((SPEC.max_frames, SPEC.visual_dim), np.float32)
    padded[:frames] = visual if visual is not None else rng.normal(size=(frames, SPEC.visual_dim))
    text = np.zeros((SPEC.text_tokens, SPEC.text_dim), np.float32)
    text[:tokens] = rng.normal(size=(tokens, SPEC.text_dim))
    return VideoFeatures(
        video_id=video_id,
        encoder_version="test-enc",
        visual=padded,
        visual_mask=np.arange(SPEC.max_frames) < frames,
        audio=rng.normal(size=SPEC.audio_dim).astype(np.float32) if audio else np.zeros(SPEC.audio_dim, np.float32),
        has_audio=audio,
        text=text,
        text_mask=np.arange(SPEC.text_tokens) < tokens,
        duration_s=float(frames),
        audio_fingerprint=random_fingerprint(rng, frames) if audio else np.zeros(0, np.uint32),
    )


def random_fingerprint(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Chromaprint-shaped noise: one uint32 per HOP_S; two of them agree on about half their bits."""
    return rng.integers(0, 2**32, size=int(seconds / HOP_S), dtype=np.uint32)


def trimmed_copy(source: VideoFeatures, start: int, stop: int, seed: int, noise: float = 0.05) -> VideoFeatures:
    """A re-upload of source frames [start, stop) with a little noise: the reproduced case."""
    rng = np.random.default_rng(seed)
    rows = source.visual[start:stop] + rng.normal(scale=noise, size=(stop - start, SPEC.visual_dim))
    copy = make_features(f"{source.video_id}-copy", seed, visual=rows.astype(np.float32))
    fingerprint = source.audio_fingerprint[int(start / HOP_S) : int(stop / HOP_S)]
    return replace(copy, audio=source.audio, has_audio=source.has_audio, text=source.text, text_mask=source.text_mask,
                   audio_fingerprint=fingerprint)


def small_model(seed: int = 0, **overrides: object) -> MatchLite:
    torch.manual_seed(seed)
    return MatchLite(MatchLiteConfig.small(**overrides)).eval()


def small_checkpoint(path: Path, seed: int = 0, **overrides: object) -> Path:
    save_checkpoint(path, small_model(seed, **overrides), {"model_version": "test-small", "threshold": 0.6})
    return path

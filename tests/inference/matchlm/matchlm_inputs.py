"""Video inputs for MatchLM tests: random frames at 1 fps and random log-mel or Whisper features."""

from __future__ import annotations

import numpy as np

from rci.inference.matchlm.processor import VideoInput


def make_video(seed: int, frames: int, duration_s: float | None = None, *, audio: str | None = "log_mel",
               title: str = "the cat plays piano", sticker: str = "", audio_dim: int = 32) -> VideoInput:
    """Random frames at 1 fps (64 px: the processor resizes), random log-mel or Whisper features."""
    rng = np.random.default_rng(seed)
    duration = float(frames) if duration_s is None else duration_s
    log_mel = features = None
    if audio == "log_mel":
        log_mel = rng.standard_normal((80, 3000)).astype(np.float32)
    elif audio == "features":
        features = rng.standard_normal((1500, audio_dim)).astype(np.float32)
    return VideoInput(
        frames=rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8),
        duration_s=duration,
        title=title,
        sticker_text=sticker,
        log_mel=log_mel,
        audio_features=features,
    )

"""What decoding one media file yields: the input of the frozen encoders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_SIZE = 224  # frames are resized to FRAME_SIZE x FRAME_SIZE (see rci.media.decode for aspect handling)
WHOLE_SIZE = 224  # the whole frame's longer side (its shorter side keeps the aspect ratio, a multiple of 8)
SAMPLE_RATE = 16_000  # audio resampled to 16 kHz mono
N_MELS = 80  # Whisper's log-mel front end
FPS = 1.0  # frames sampled at 1 fps


@dataclass(frozen=True)
class DecodedMedia:
    frames: np.ndarray  # [M, 224, 224, 3] uint8 RGB, all-zero rows where frame_mask is False
    frame_mask: np.ndarray  # [M] bool, True for real frames (M = max_frames)
    audio: np.ndarray | None  # [S] float32 mono 16 kHz in [-1, 1]; None when there is no audio track
    log_mel: np.ndarray | None  # [80, 3000] float32 Whisper log-mel of the first 30 s; None without audio
    duration_s: float
    # [M, h, w, 3] uint8 RGB: each kept frame whole, aspect kept, longer side WHOLE_SIZE (one h x w per video);
    # None without video frames. The copy-detection encoder's second view (rci.inference.encoders.copy_detection).
    wholes: np.ndarray | None = None

    @property
    def has_video(self) -> bool:
        return bool(self.frame_mask.any())

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

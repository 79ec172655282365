"""Procedural per-frame embeddings with scene structure, and copies of them, for tests and benchmarks.

No trained encoder runs here, so retrieval is exercised on a generative stand-in for Swin-T
frame embeddings that keeps the properties retrieval depends on:

* a video is a run of scenes of 3-8 frames; frames of one scene are near-identical;
* every scene vector shares a global direction and one of a few topic directions, so
  unrelated videos are not orthogonal (their mean embeddings are fairly similar);
* a copy re-encodes frames (noise), may keep only a sub-range of the source (trim), and may
  splice foreign footage around it (re-edit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SceneModel:
    dim: int = 128
    topics: int = 20
    scene_frames: tuple[int, int] = (3, 8)  # inclusive range of frames per scene
    common_weight: float = 1.0  # shared by every video
    topic_weight: float = 0.8  # shared by videos of one topic
    scene_weight: float = 0.9  # specific to one scene
    frame_noise: float = 0.25  # frame-to-frame change inside a scene


class FrameSequences:
    """A seeded source of videos ([N, D] unit frame rows) and of copies of them."""

    def __init__(self, model: SceneModel = SceneModel(), seed: int = 0) -> None:
        self.model = model
        self.rng = np.random.default_rng(seed)
        self._common = unit(self.rng.standard_normal(model.dim))
        self._topics = unit(self.rng.standard_normal((model.topics, model.dim)))

    def video(self, n_frames: int) -> np.ndarray:
        """[n_frames, D] frames of a new, unrelated video."""
        m, rng = self.model, self.rng
        topic = self._topics[rng.integers(m.topics)]
        lengths = rng.integers(m.scene_frames[0], m.scene_frames[1] + 1, size=n_frames)  # enough scenes
        n_scenes = int(np.searchsorted(np.cumsum(lengths), n_frames) + 1)
        scenes = unit(m.common_weight * self._common + m.topic_weight * topic
                      + m.scene_weight * unit(rng.standard_normal((n_scenes, m.dim))))  # [S, D]
        scene_of_frame = np.repeat(np.arange(n_scenes), lengths[:n_scenes])[:n_frames]  # [n_frames]
        return self._jitter(scenes[scene_of_frame], m.frame_noise)

    def videos(self, count: int, frames: tuple[int, int] = (12, 32)) -> list[np.ndarray]:
        return [self.video(int(self.rng.integers(frames[0], frames[1] + 1))) for _ in range(count)]

    def noisy_copy(self, source: np.ndarray, noise: float = 0.35) -> np.ndarray:
        """The whole source, re-encoded (filters, crops, compression)."""
        return self._jitter(source, noise)

    def trimmed_copy(self, source: np.ndarray, keep: tuple[float, float] = (0.2, 0.5), noise: float = 0.35,
                     max_frames: int = 32) -> np.ndarray:
        """A re-encoded sub-range (`keep` of the source's length) spliced into foreign footage."""
        n = len(source)
        length = int(self.rng.integers(max(4, int(n * keep[0])), max(5, int(n * keep[1])) + 1))
        length = min(length, n)
        start = int(self.rng.integers(0, n - length + 1))
        part = self._jitter(source[start : start + length], noise)
        foreign = self.video(int(self.rng.integers(1, length + 1)))
        cut = int(self.rng.integers(0, len(foreign) + 1))
        return np.concatenate([foreign[:cut], part, foreign[cut:]])[:max_frames]

    def _jitter(self, frames: np.ndarray, noise: float) -> np.ndarray:
        return unit(frames + noise * unit(self.rng.standard_normal(frames.shape)))


def unit(x: np.ndarray) -> np.ndarray:
    """L2-normalise the last axis, as float32."""
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

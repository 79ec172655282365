"""Per-frame visual features -> the vectors a video is indexed and searched with.

Two granularities (MLT-Dedup, /work/shared/paper/related-abstracts.txt, retrieves with sparse
clip-level embeddings; MatchLM2Lite retrieves with one visual embedding per video):

* ``clip`` (default): the mean of every `clip_frames` consecutive frames (L2-normalised).
  Stored videos get non-overlapping clips (sparse: C = ceil(frames / clip_frames)); queries
  slide their window by `query_stride` frames so a trimmed copy lines up with the source's
  clip boundaries. The index ranks a video by its best clip-to-clip cosine.
* ``video``: one L2-normalised mean of all frames (VideoFeatures.video_embedding()).

The default clip is one frame (RCI_RETRIEVAL_CLIP_FRAMES=1): every decoded frame is a vector, so a
picture-in-picture, a split-screen duet or a vertical re-crop, whose frames are each only partly
like the source's, are not averaged away, and the index's shortlist (RCI_RETRIEVAL_TOP_K) is then
re-ranked on whole frame sets (rci.retrieval.similarity). On procedural frame sequences without a
re-rank, longer clips win (benchmarks/RESULTS.md, "Retrieval granularity";
`python -m benchmarks.bench_retrieval --only granularity`):

    copies                          video mean   clip 4 / query stride 4   stride 2   stride 1
    full length, noise 0.35            1.00              1.00                1.00       1.00
    trim 20-50%, noise 0.35            0.86              1.00                1.00       1.00
    trim 10-20%, noise 0.9             0.53              0.97                0.98       0.985
    trim 10-20%, noise 1.2             0.42              0.85                0.95       0.965

Frames cost one stored vector per decoded second (up to RCI_MEDIA_MAX_FRAMES) and as many query vectors,
per view: features holding two views of each frame (the centre square and the whole frame,
VideoFeatures.visual_views) give each view its own vectors, so a query's centre can find a source's
whole frame (a vertical re-crop, a zoom) and the reverse (a picture-in-picture).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from rci.core.settings import Settings
from rci.inference.features import split_views
from rci.retrieval.errors import InvalidRecord


class Granularity(StrEnum):
    CLIP = "clip"
    VIDEO = "video"


@dataclass(frozen=True)
class VectorSpec:
    granularity: Granularity = Granularity.CLIP
    clip_frames: int = 1  # frames per clip (1: every frame is a vector, at 1 fps one per second)
    query_stride: int = 1  # frames between consecutive query clips

    @classmethod
    def from_settings(cls, settings: Settings) -> VectorSpec:
        """The spec the service runs with: RCI_RETRIEVAL_GRANULARITY (clip by default), RCI_RETRIEVAL_CLIP_FRAMES."""
        frames = settings.retrieval_clip_frames
        return cls(Granularity(settings.retrieval_granularity), clip_frames=frames, query_stride=max(1, frames // 2))

    @property
    def kind(self) -> str:
        """Tag stored with the collection so that a store never mixes incompatible vectors."""
        if self.granularity is Granularity.VIDEO:
            return "video-mean"
        return f"clip-mean-{self.clip_frames}"


def index_vectors(frames: np.ndarray, mask: np.ndarray, spec: VectorSpec, views: int = 1) -> np.ndarray:
    """[M, V*D] frames of V views + [M] real-frame mask -> [V*C, D] vectors to store for the video."""
    return _per_view(frames, views, lambda view: _vectors(view, mask, spec, stride=spec.clip_frames))


def query_vectors(frames: np.ndarray, mask: np.ndarray, spec: VectorSpec, views: int = 1) -> np.ndarray:
    """[M, V*D] frames of V views + [M] real-frame mask -> [V*C, D] vectors to search with."""
    return _per_view(frames, views, lambda view: _vectors(view, mask, spec, stride=spec.query_stride))


def _per_view(frames: np.ndarray, views: int, vectors: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    try:
        parts = split_views(frames, views)
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from exc
    return np.concatenate([vectors(view) for view in parts])


def _vectors(frames: np.ndarray, mask: np.ndarray, spec: VectorSpec, stride: int) -> np.ndarray:
    real = np.asarray(frames, dtype=np.float32)[np.asarray(mask, dtype=bool)]  # [N, D]
    if len(real) == 0:
        raise InvalidRecord("a video without visual frames has no retrieval vectors")
    if spec.granularity is Granularity.VIDEO:
        return _unit(real.mean(axis=0, keepdims=True))
    return _unit(window_means(real, spec.clip_frames, stride))


def window_means(frames: np.ndarray, width: int, stride: int) -> np.ndarray:
    """[N, D] -> [W, D] means of `width`-frame windows every `stride` frames.

    The last window is aligned to the end so that every frame is covered by a full window;
    videos shorter than `width` give one window over all their frames.
    """
    n = len(frames)
    if n <= width:
        return frames.mean(axis=0, keepdims=True)
    starts = list(range(0, n - width + 1, stride))
    if starts[-1] + width < n:
        starts.append(n - width)
    csum = np.concatenate([np.zeros_like(frames[:1]), np.cumsum(frames, axis=0)])  # [N+1, D]
    idx = np.asarray(starts)
    return (csum[idx + width] - csum[idx]) / width


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)

"""The vector-store interface retrieval is used through; `rci.retrieval.milvus` implements it.

A video is stored as C retrieval vectors (C = 1 for a video-level mean, C = number of clips
for clip-level vectors, see `rci.retrieval.vectors`). A search scores each stored video by the
best cosine similarity between any of the query's vectors and any of the video's vectors,
and only ever returns videos published strictly before the query, never the query itself
(the online path of DESIGN.md: "the most similar earlier video").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np

from rci.core import rfc3339
from rci.retrieval.errors import InvalidRecord


@dataclass(frozen=True)
class VideoRecord:
    """One indexed video."""

    video_id: str
    embeddings: np.ndarray  # [C, D] float32, rows L2-normalised (rci.retrieval.vectors.index_vectors)
    published_at: str  # RFC 3339; stored as epoch milliseconds for filtering
    creator_id: str = ""
    media_uri: str = ""
    feature_key: str = ""  # where the video's VideoFeatures live in the feature cache


@dataclass(frozen=True)
class SearchQuery:
    """A newly published video looking for its most similar earlier video."""

    video_id: str
    embeddings: np.ndarray  # [C, D] float32, rows L2-normalised (rci.retrieval.vectors.query_vectors)
    published_at: str  # RFC 3339


@dataclass(frozen=True)
class Hit:
    """An earlier video, with the best cosine similarity between its vectors and the query's."""

    video_id: str
    similarity: float
    published_at: str  # RFC 3339 UTC, millisecond precision
    creator_id: str
    media_uri: str
    feature_key: str


class VectorStore(Protocol):
    """Earlier videos by visual similarity. Implementations are synchronous and not thread-safe."""

    def upsert(self, records: Sequence[VideoRecord]) -> None:
        """Insert or replace videos by video_id; visible to the very next search."""
        ...

    def search(self, queries: Sequence[SearchQuery], top_k: int = 1) -> list[list[Hit]]:
        """Per query, in order: up to top_k earlier videos, most similar first."""
        ...

    def count(self) -> int:
        """Number of distinct videos stored."""
        ...

    def close(self) -> None: ...


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_ms(published_at: str) -> int:
    """RFC 3339 timestamp -> integer milliseconds since the epoch (UTC), parsed exactly as the
    contracts validate it (rci.core.rfc3339: `t`/`z` in lower case, a space separator, any fraction)."""
    try:
        return rfc3339.epoch_ms(published_at)  # integer arithmetic: no float rounding
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(f"published_at {published_at!r} is not RFC 3339 with a UTC offset") from exc


def from_epoch_ms(ms: int) -> str:
    """Integer epoch milliseconds -> RFC 3339 UTC, e.g. 2026-11-22T10:00:00.123Z."""
    return rfc3339.format(_EPOCH + timedelta(milliseconds=int(ms)))


def checked_embeddings(video_id: str, embeddings: np.ndarray, dim: int) -> np.ndarray:
    """[C, dim] finite float32 with unit rows, or InvalidRecord naming the video."""
    arr = np.asarray(embeddings, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != dim:
        raise InvalidRecord(f"{video_id}: embeddings must be [C>=1, {dim}], got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise InvalidRecord(f"{video_id}: embeddings contain NaN or inf")
    norms = np.linalg.norm(arr, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        raise InvalidRecord(f"{video_id}: embedding rows must be L2-normalised (norms {norms.min():.3f}..{norms.max():.3f})")
    return arr

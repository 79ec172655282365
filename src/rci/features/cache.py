"""The feature cache: each video is encoded once per encoder version (DESIGN.md, "Features").

Layout in the object store: `features/<encoder_version>/<video_id>.npz`, one
`VideoFeatures.to_bytes()` blob per video. The encoder version is part of the key, so new
encoders never read stale features and an old version's entries can be dropped by prefix.
"""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import Awaitable, Callable

from rci.inference.features import VideoFeatures
from rci.core.logs import get_logger
from rci.storage.errors import ObjectNotFound
from rci.storage.objects import ObjectStore

log = get_logger(__name__)

# What np.load / VideoFeatures.from_bytes raise on bytes that are not a complete feature record.
_UNREADABLE = (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile)


def feature_key(video_id: str, encoder_version: str) -> str:
    return f"features/{encoder_version}/{video_id}.npz"


class FeatureCache:
    """`VideoFeatures` by (video_id, encoder_version) in an `ObjectStore`.

    Concurrent `get_or_compute` calls for the same video in one process share one computation.
    Across processes the store's atomic writes make a duplicate computation harmless (same
    inputs, same features, last write wins).
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._inflight: dict[tuple[str, str], asyncio.Task[VideoFeatures]] = {}

    async def get(self, video_id: str, encoder_version: str) -> VideoFeatures | None:
        """The cached features, or None on a miss (an unreadable entry counts as a miss)."""
        key = feature_key(video_id, encoder_version)
        try:
            blob = await self.store.get(key)
        except ObjectNotFound:
            return None
        try:
            features = VideoFeatures.from_bytes(blob)
        except _UNREADABLE as exc:  # a torn or foreign blob: recompute rather than fail the event
            log.warning("unreadable feature cache entry, treating as a miss", key=key, error=repr(exc))
            return None
        if (features.video_id, features.encoder_version) != (video_id, encoder_version):
            log.warning("feature cache entry belongs to another video", key=key, found=features.video_id)
            return None
        return features

    async def put(self, features: VideoFeatures) -> None:
        await self.store.put(feature_key(features.video_id, features.encoder_version), features.to_bytes())

    async def get_or_compute(
        self,
        video_id: str,
        encoder_version: str,
        compute: Callable[[], Awaitable[VideoFeatures]],
    ) -> VideoFeatures:
        """Cached features, or `compute()`'s result stored first. A failed store write propagates
        (StorageUnavailable is transient): returning uncached features would let later events find
        this video as a candidate whose features are missing."""
        cached = await self.get(video_id, encoder_version)
        if cached is not None:
            return cached
        key = (video_id, encoder_version)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._compute_and_store(video_id, encoder_version, compute))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one caller being cancelled must not cancel the work others are waiting for
        return await asyncio.shield(task)

    async def _compute_and_store(
        self, video_id: str, encoder_version: str, compute: Callable[[], Awaitable[VideoFeatures]]
    ) -> VideoFeatures:
        features = await compute()
        if (features.video_id, features.encoder_version) != (video_id, encoder_version):
            raise ValueError(
                f"compute() for {video_id}@{encoder_version} returned {features.video_id}@{features.encoder_version}"
            )
        await self.put(features)
        return features

    def _forget(self, key: tuple[str, str], task: asyncio.Task[VideoFeatures]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

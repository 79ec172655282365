"""The feature cache: each video's content is encoded once per encoder version (DESIGN.md, "Features").

Keyed by content, not by `video_id` alone (issue 15): an entry belongs to one (video_id, media_uri)
pair, so a later event with the same id and another URI misses the cache and goes through the
allow-listed fetch again (a URI outside the allowed prefixes is dead-lettered, not served the first
event's features and, through them, its score). A re-delivery of the same event hits.

Layout in the object store, one `VideoFeatures.to_bytes()` blob per entry:

    features/<encoder_version>/<video_id>.<uri digest>.npz   the features (`feature_key`)
    features/<encoder_version>/latest/<video_id>.key         the content key last stored for the id
    features/<encoder_version>/<video_id>.<uri digest>.frames.jpg   the frames' contact sheet (`frames_key`),
                                                             what the review page shows (rci.media.thumbnails)

`<uri digest>` is the first 16 hex digits of the SHA-256 of `media_uri` (fixed length, so a key
names exactly one (id, digest) pair). The encoder version is part of every key, so new encoders
never read stale features and an old version's entries can be dropped by prefix.

Why the `latest` pointer: retrieval's candidates are looked up by `video_id` alone (the pipeline's
`cached(video_id)`; Milvus upserts one row set per id, so the id names the video it indexed last).
Each time features are stored, the pointer is moved to them, so `get(video_id, version)` without a
URI answers the features last computed for that id. It is a plain object written after the
features (a reader never follows it to a missing entry); when two URIs of one id race, either
pointer is the id's content. An id with no pointer falls back to the layout before content keys
(`features/<encoder_version>/<video_id>.npz`), so videos indexed before this change stay candidates.
Limit: the pointer is "last stored", Milvus is "last indexed"; they differ only when the same id
arrives with several URIs (an anomaly) and an older one is re-delivered or is not indexed.
"""

from __future__ import annotations

import asyncio
import hashlib
import zipfile
from collections.abc import Awaitable, Callable

from rci.inference.features import VideoFeatures
from rci.core.logs import get_logger
from rci.storage.errors import ObjectNotFound
from rci.storage.objects import ObjectStore

log = get_logger(__name__)

# What np.load / VideoFeatures.from_bytes raise on bytes that are not a complete feature record.
_UNREADABLE = (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile)
URI_DIGEST_HEX = 16
FRAMES_SUFFIX = ".frames.jpg"
NO_URI = ""  # callers that store features without a source (benchmarks): one entry per id


def uri_digest(media_uri: str) -> str:
    """16 hex digits of the SHA-256 of the URI: what tells two contents of one video_id apart."""
    return hashlib.sha256(media_uri.encode("utf-8")).hexdigest()[:URI_DIGEST_HEX]


def feature_key(video_id: str, encoder_version: str, media_uri: str) -> str:
    """Where the features of `video_id` fetched from `media_uri` live (also stored in Milvus rows)."""
    return f"features/{encoder_version}/{video_id}.{uri_digest(media_uri)}.npz"


def frames_key(video_id: str, encoder_version: str, media_uri: str) -> str:
    """Where the contact sheet of the frames behind `feature_key(...)`'s features lives."""
    return _frames_beside(feature_key(video_id, encoder_version, media_uri))


def _frames_beside(features_key: str) -> str:
    """The contact sheet's key next to a features entry's key (same id and digest)."""
    return features_key.removesuffix(".npz") + FRAMES_SUFFIX


def latest_key(video_id: str, encoder_version: str) -> str:
    """The pointer object: the content key last stored for `video_id`."""
    return f"features/{encoder_version}/latest/{video_id}.key"


def legacy_feature_key(video_id: str, encoder_version: str) -> str:
    """Where features lived before content keys (read only, as a fallback)."""
    return f"features/{encoder_version}/{video_id}.npz"


class FeatureCache:
    """`VideoFeatures` by (video_id, encoder_version, media_uri) in an `ObjectStore`.

    Concurrent `get_or_compute` calls for the same content in one process share one computation.
    Across processes the store's atomic writes make a duplicate computation harmless (same
    inputs, same features, last write wins).
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._inflight: dict[str, asyncio.Task[VideoFeatures]] = {}

    async def get(self, video_id: str, encoder_version: str, media_uri: str | None = None) -> VideoFeatures | None:
        """The cached features, or None on a miss (an unreadable entry counts as a miss).

        With `media_uri`: the features of exactly that content. Without: the features last stored
        for the id (the `latest` pointer), what retrieval's candidates and training read.
        """
        if media_uri is not None:
            return await self._read(feature_key(video_id, encoder_version, media_uri), video_id, encoder_version)
        key = await self._latest(video_id, encoder_version)
        if key is None:
            return await self._read(legacy_feature_key(video_id, encoder_version), video_id, encoder_version)
        return await self._read(key, video_id, encoder_version)

    async def put(self, features: VideoFeatures, media_uri: str = NO_URI) -> None:
        """Store the features of `media_uri`'s content, then point the id at them."""
        key = feature_key(features.video_id, features.encoder_version, media_uri)
        await self.store.put(key, features.to_bytes())
        await self.store.put(latest_key(features.video_id, features.encoder_version), key.encode("utf-8"))

    async def put_frames(self, video_id: str, encoder_version: str, media_uri: str, sheet: bytes) -> None:
        """Store the frames' contact sheet; written before the features, so the pointer never names features
        whose frames are still on their way."""
        await self.store.put(frames_key(video_id, encoder_version, media_uri), sheet)

    async def frames(self, video_id: str, encoder_version: str) -> bytes | None:
        """The contact sheet of the content last stored for the id; None when none was stored with it."""
        key = await self._latest(video_id, encoder_version)
        if key is None:
            return None
        try:
            return await self.store.get(_frames_beside(key))
        except ObjectNotFound:
            return None

    async def get_or_compute(
        self,
        video_id: str,
        encoder_version: str,
        media_uri: str,
        compute: Callable[[], Awaitable[VideoFeatures]],
    ) -> VideoFeatures:
        """Cached features of this content, or `compute()`'s result stored first. A failed store write
        propagates (StorageUnavailable is transient): returning uncached features would let later
        events find this video as a candidate whose features are missing."""
        cached = await self.get(video_id, encoder_version, media_uri)
        if cached is not None:
            return cached
        key = feature_key(video_id, encoder_version, media_uri)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._compute_and_store(video_id, encoder_version, media_uri, compute))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one caller being cancelled must not cancel the work others are waiting for
        return await asyncio.shield(task)

    async def _latest(self, video_id: str, encoder_version: str) -> str | None:
        try:
            raw = await self.store.get(latest_key(video_id, encoder_version))
        except ObjectNotFound:
            return None
        key = raw.decode("utf-8", errors="replace").strip()
        # A pointer only ever names this id's own content under this version.
        prefix = f"features/{encoder_version}/{video_id}."
        suffix_length = URI_DIGEST_HEX + len(".npz")
        if not (key.startswith(prefix) and key.endswith(".npz") and len(key) == len(prefix) + suffix_length):
            log.warning("feature cache pointer names another entry, treating as a miss", video_id=video_id, found=key[:200])
            return None
        return key

    async def _read(self, key: str, video_id: str, encoder_version: str) -> VideoFeatures | None:
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

    async def _compute_and_store(
        self, video_id: str, encoder_version: str, media_uri: str, compute: Callable[[], Awaitable[VideoFeatures]]
    ) -> VideoFeatures:
        features = await compute()
        if (features.video_id, features.encoder_version) != (video_id, encoder_version):
            raise ValueError(
                f"compute() for {video_id}@{encoder_version} returned {features.video_id}@{features.encoder_version}"
            )
        await self.put(features, media_uri)
        return features

    def _forget(self, key: str, task: asyncio.Task[VideoFeatures]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

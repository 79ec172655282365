"""The one features path: fetch (allow-listed) -> decode -> frozen encoders -> feature cache.

    pipeline = FeaturePipeline(FeatureExtractor(bundle), FeatureCache(store), policy, s3)
    await pipeline.features_for(event)                    # the worker: one video, cache first
    await pipeline.extract_all(events, batch_size=8)      # many videos, encoded in batches
    extract_features(pipeline, events, on_progress=...)   # the same from synchronous code (training, CLI)

A video is anything with `video_id`, `media_uri` and `text`: a `video.published` event is one, so
the worker, `rci features extract` and training (a corpus's events) all hand their events in as they
are. Decoding and encoding are CPU-heavy and run in an executor, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from rci.core.logs import bind_video, get_logger
from rci.features.cache import FeatureCache
from rci.inference.encoders.extract import EncoderInput, FeatureExtractor
from rci.inference.features import VideoFeatures
from rci.media.decoded import DecodedMedia
from rci.media.errors import MediaRejected
from rci.media.policy import MediaPolicy
from rci.media.reader import MediaReader
from rci.media.thumbnails import contact_sheet
from rci.storage.s3 import S3Client

log = get_logger(__name__)
T = TypeVar("T")


class PublishedVideo(Protocol):
    """What the features need to know about a video (`rci.streams.contracts.PublishedEvent` is one)."""

    @property
    def video_id(self) -> str: ...

    @property
    def media_uri(self) -> str: ...

    @property
    def text(self) -> str: ...


@dataclass
class ExtractionSummary:
    """How a run over many videos went, updated as it goes (progress callbacks see it grow)."""

    videos: int
    encoded: int = 0
    already_cached: int = 0
    rejected: dict[str, MediaRejected] = field(default_factory=dict)  # video_id -> why

    @property
    def done(self) -> int:
        return self.encoded + self.already_cached + len(self.rejected)


ProgressCallback = Callable[[ExtractionSummary], None]


class FeaturePipeline:
    """Each video is encoded once per encoder version: the feature cache answers, or media is
    fetched, decoded and encoded, and the features are cached before they are returned."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        cache: FeatureCache,
        policy: MediaPolicy,
        s3: S3Client | None = None,
        executor: Executor | None = None,  # None: the event loop's default executor
        keep_frames: bool = False,  # also store each video's contact sheet (the review page's frames)
    ) -> None:
        self.extractor = extractor
        self.keep_frames = keep_frames
        self.cache = cache
        self.media = MediaReader(policy, s3, executor)
        self._executor = executor

    @property
    def encoder_version(self) -> str:
        return self.extractor.version

    async def cached(self, video_id: str, media_uri: str | None = None) -> VideoFeatures | None:
        """Cached features of that content; without `media_uri`, those last stored for the id
        (retrieval's candidates, found by id; rci.features.cache explains the pointer)."""
        return await self.cache.get(video_id, self.encoder_version, media_uri)

    async def features_for(self, video: PublishedVideo) -> VideoFeatures:
        """One video's features; raises MediaRejected for bad media, TransientError for infrastructure.
        Cached by content (video_id and media_uri): the same id with another URI is fetched, through
        the allow-list, again. Concurrent calls for the same video share one computation
        (FeatureCache.get_or_compute)."""
        return await self.cache.get_or_compute(
            video.video_id, self.encoder_version, video.media_uri, lambda: self._encode_one(video)
        )

    async def extract_all(
        self,
        videos: Sequence[PublishedVideo],
        *,
        batch_size: int = 8,
        force: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> ExtractionSummary:
        """Encode every video not cached yet (all of them with `force`), `batch_size` at a time.

        A video whose media is rejected is logged with its reject code and counted; the others go on.
        """
        summary = ExtractionSummary(videos=len(videos))
        report = on_progress or (lambda _summary: None)
        todo = []
        for video in videos:
            if not force and await self.cached(video.video_id, video.media_uri) is not None:
                summary.already_cached += 1
                report(summary)
            else:
                todo.append(video)
        for start in range(0, len(todo), batch_size):
            inputs, uris = [], []
            for video in todo[start : start + batch_size]:
                decoded = await self._decode_or_count_rejection(video, summary, report)
                if decoded is not None:
                    await self._store_frames(video.video_id, video.media_uri, decoded)
                    inputs.append(EncoderInput(video.video_id, decoded, video.text))
                    uris.append(video.media_uri)
            if inputs:
                await self._encode_and_cache(inputs, uris)
                summary.encoded += len(inputs)
                report(summary)
        return summary

    async def aclose(self) -> None:
        """Close the clients the pipeline was given (the feature store's and the media S3 client)."""
        await self.cache.store.close()
        if self.media.s3 is not None:
            await self.media.s3.close()

    @property
    def policy(self) -> MediaPolicy:
        return self.media.policy

    async def _decode(self, video: PublishedVideo) -> DecodedMedia:
        return await self.media.decode(video.media_uri)

    async def _encode_one(self, video: PublishedVideo) -> VideoFeatures:
        decoded = await self._decode(video)
        await self._store_frames(video.video_id, video.media_uri, decoded)
        return await self._off_loop(self.extractor.encode_video, video.video_id, decoded, video.text)

    async def _store_frames(self, video_id: str, media_uri: str, decoded: DecodedMedia) -> None:
        """The frames' contact sheet, before the features that will point at it (rci.features.cache)."""
        if not self.keep_frames:
            return
        sheet = await self._off_loop(contact_sheet, decoded.frames, decoded.frame_mask)
        if sheet is not None:
            await self.cache.put_frames(video_id, self.encoder_version, media_uri, sheet)

    async def _decode_or_count_rejection(
        self, video: PublishedVideo, summary: ExtractionSummary, report: ProgressCallback
    ) -> DecodedMedia | None:
        with bind_video(video.video_id):
            try:
                return await self._decode(video)
            except MediaRejected as exc:
                log.warning("media rejected", code=exc.code.value, detail=exc.detail)
                summary.rejected[video.video_id] = exc
                report(summary)
                return None

    async def _encode_and_cache(self, inputs: list[EncoderInput], media_uris: list[str]) -> None:
        features = await self._off_loop(self.extractor.encode_videos, inputs)
        await asyncio.gather(*(self.cache.put(f, uri) for f, uri in zip(features, media_uris, strict=True)))

    async def _off_loop(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def extract_features(
    pipeline: FeaturePipeline,
    videos: Sequence[PublishedVideo],
    *,
    batch_size: int = 8,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ExtractionSummary:
    """`FeaturePipeline.extract_all` from synchronous code: all videos on one event loop.

    The pipeline's clients are closed before that loop ends: aiobotocore clients belong to the loop
    that opened them (a later call opens them again on its own loop).
    """

    async def run() -> ExtractionSummary:
        try:
            return await pipeline.extract_all(videos, batch_size=batch_size, force=force, on_progress=on_progress)
        finally:
            await pipeline.aclose()

    return asyncio.run(run())

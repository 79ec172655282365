"""One batch of `rci.scores` records in, the sampled pairs' `rci.shadow` records written and returned.

Broker-free like the worker's `rci.streams.pipeline`: the catalog, the teacher's inputs (decoded media for
MatchLM, the worker's stored features for MatchLMF), the teacher and the writer are structural interfaces,
real in `rci.streams.shadow.components`, in-memory in tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from rci.core import rfc3339
from rci.core.logs import bind_video, get_logger
from rci.inference.features import VideoFeatures
from rci.inference.matchlm.processor import VideoInput
from rci.media.decoded import DecodedMedia
from rci.media.errors import MediaRejected
from rci.streams.contracts import PublishedEvent, ScoreRecord, ShadowRecord
from rci.streams.shadow.logic import TeacherScorer, is_sampled, shadow_record
from rci.streams.shadow.metrics import ShadowMetrics

log = get_logger(__name__)

TEACHER_BATCH = 4  # pairs per MatchLM forward pass


# --- what the runner needs (structural interfaces) ----------------------------------------------


class VideoLookup(Protocol):
    async def events(self, video_ids: set[str]) -> dict[str, PublishedEvent]:
        """The published events of the known videos among `video_ids`."""
        ...


class MediaReader(Protocol):
    """rci.media.reader.MediaReader: fetch under the media policy, decode off the loop."""

    async def decode(self, media_uri: str) -> DecodedMedia:
        """The media, decoded; MediaRejected when it cannot be, TransientError for infra."""
        ...


class FeatureStore(Protocol):
    """rci.features.cache.FeatureCache: the features the worker stored for a video."""

    async def get(self, video_id: str, encoder_version: str, media_uri: str | None = None) -> VideoFeatures | None: ...


class PairInputs(Protocol):
    """What the teacher reads for each video: decoded media (MatchLM) or the worker's stored features (MatchLMF)."""

    skip_reason: str  # the skip metric's label for a video it has no input for

    async def for_video(self, event: PublishedEvent) -> object | None:
        """The video's input, or None when there is none (counted under skip_reason)."""
        ...


class ShadowWriter(Protocol):
    async def write(self, records: Sequence[ShadowRecord]) -> None:
        """Produce every record and return once the broker acknowledged all of them."""
        ...


# --- the batch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    scored: ScoreRecord
    query: PublishedEvent
    candidate: PublishedEvent


class ShadowRunner:
    """One batch of score records in, the sampled pairs' shadow records written (and returned)."""

    def __init__(
        self,
        lookup: VideoLookup,
        inputs: PairInputs,
        teacher: TeacherScorer,
        writer: ShadowWriter,
        metrics: ShadowMetrics,
        sample_rate: float,
        teacher_thread: Executor | None = None,
    ) -> None:
        self.lookup = lookup
        self.inputs = inputs
        self.teacher = teacher
        self.writer = writer
        self.metrics = metrics
        self.sample_rate = sample_rate
        self._teacher_thread = teacher_thread or ThreadPoolExecutor(max_workers=1, thread_name_prefix="teacher")

    async def handle(self, values: Sequence[bytes | None]) -> list[ShadowRecord]:
        """Safe to retry as a whole: nothing is written before the teacher has scored every pair."""
        sampled = self.sample(values)
        if not sampled:
            return []
        with self.metrics.stage("lookup"):
            pairs = await self._pairs(sampled)
        with self.metrics.stage("inputs"):
            pairs, inputs = await self._inputs(pairs)
        if not pairs:
            return []
        with self.metrics.stage("teacher"):
            loop = asyncio.get_running_loop()
            scores = await loop.run_in_executor(
                self._teacher_thread, partial(self.teacher.score_pairs, inputs, batch_size=TEACHER_BATCH)
            )
        scored_at = rfc3339.now()
        records = [
            shadow_record(p.scored, s.score, self.teacher.model_version, scored_at)
            for p, s in zip(pairs, scores, strict=True)
        ]
        with self.metrics.stage("write"):
            await self.writer.write(records)
        for pair, record in zip(pairs, records, strict=True):
            self.metrics.observe(pair.scored, record)
        return records

    def sample(self, values: Sequence[bytes | None]) -> list[ScoreRecord]:
        """The records chosen by the hash sample that name a candidate (the others are counted)."""
        chosen = []
        for value in values:
            scored = _parse_score(value)
            if scored is None:
                self.metrics.skipped.labels("invalid_record").inc()
            elif is_sampled(scored.video_id, self.sample_rate):
                self.metrics.sampled.inc()
                if scored.candidate_id is None:
                    self.metrics.skipped.labels("no_candidate").inc()
                else:
                    chosen.append(scored)
        return chosen

    async def _pairs(self, sampled: list[ScoreRecord]) -> list[_Pair]:
        events = await self.lookup.events({s.video_id for s in sampled} | {s.candidate_id for s in sampled})
        pairs = []
        for scored in sampled:
            query, candidate = events.get(scored.video_id), events.get(scored.candidate_id)
            if query is None or candidate is None:
                self.metrics.skipped.labels("unknown_video").inc()
                log.warning("shadow.unknown_video", video_id=scored.video_id, candidate_id=scored.candidate_id,
                            missing=[v for v, e in ((scored.video_id, query), (scored.candidate_id, candidate))
                                     if e is None])  # fmt: skip
                continue
            pairs.append(_Pair(scored, query, candidate))
        return pairs

    async def _inputs(self, pairs: list[_Pair]) -> tuple[list[_Pair], list[tuple[object, object]]]:
        """Each distinct video's input once; pairs where either has none are dropped (and counted)."""
        events = {e.video_id: e for p in pairs for e in (p.query, p.candidate)}
        found = dict(zip(events, await asyncio.gather(*(self.inputs.for_video(e) for e in events.values())), strict=True))
        kept, inputs = [], []
        for pair in pairs:
            query, candidate = found[pair.query.video_id], found[pair.candidate.video_id]
            if query is None or candidate is None:
                self.metrics.skipped.labels(self.inputs.skip_reason).inc()
                continue
            kept.append(pair)
            inputs.append((query, candidate))
        return kept, inputs

    def close(self) -> None:
        self._teacher_thread.shutdown(wait=True)


def _parse_score(value: bytes | None) -> ScoreRecord | None:
    if value is None:
        return None
    try:
        return ScoreRecord.model_validate_json(value)
    except ValueError:  # pydantic's ValidationError is a ValueError
        log.warning("shadow.invalid_score_record", value=value[:200])
        return None


class DecodedInputs:
    """MatchLM's input: each video fetched and decoded under the media policy, with its title and sticker."""

    skip_reason = "media_rejected"

    def __init__(self, media: MediaReader) -> None:
        self.media = media

    async def for_video(self, event: PublishedEvent) -> VideoInput | None:
        with bind_video(event.video_id):
            try:
                decoded = await self.media.decode(event.media_uri)
            except MediaRejected as exc:
                log.warning("shadow.media_rejected", code=exc.code.value, detail=exc.detail)
                return None
        return VideoInput.from_decoded(decoded, title=event.title, sticker_text=event.sticker_text or "")


class StoredFeatures:
    """MatchLMF's input: the features the worker stored for the video, under the teacher's encoder version
    (nothing decoded twice). A video the worker never encoded with those encoders has none."""

    skip_reason = "no_features"

    def __init__(self, store: FeatureStore, encoder_version: str) -> None:
        self.store = store
        self.encoder_version = encoder_version

    async def for_video(self, event: PublishedEvent) -> VideoFeatures | None:
        features = await self.store.get(event.video_id, self.encoder_version, event.media_uri)
        if features is None:
            log.warning("shadow.no_features", video_id=event.video_id, encoder_version=self.encoder_version)
        return features

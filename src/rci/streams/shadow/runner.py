"""One batch of `rci.scores` records in, the sampled pairs' `rci.shadow` records written and returned.

Broker-free like the worker's `rci.streams.pipeline`: the catalog, the media, the teacher and the
writer are structural interfaces, real in `rci.streams.shadow.components`, in-memory in tests.
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
        media: MediaReader,
        teacher: TeacherScorer,
        writer: ShadowWriter,
        metrics: ShadowMetrics,
        sample_rate: float,
        teacher_thread: Executor | None = None,
    ) -> None:
        self.lookup = lookup
        self.media = media
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
        with self.metrics.stage("media"):
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

    async def _inputs(self, pairs: list[_Pair]) -> tuple[list[_Pair], list[tuple[VideoInput, VideoInput]]]:
        """Decode each distinct video once; pairs with rejected media are dropped (and counted)."""
        events = {e.video_id: e for p in pairs for e in (p.query, p.candidate)}
        decoded = await asyncio.gather(*(self._decode(e) for e in events.values()))
        media = dict(zip(events, decoded, strict=True))
        kept, inputs = [], []
        for pair in pairs:
            query, candidate = media[pair.query.video_id], media[pair.candidate.video_id]
            if query is None or candidate is None:
                self.metrics.skipped.labels("media_rejected").inc()
                continue
            kept.append(pair)
            inputs.append((_video_input(query, pair.query), _video_input(candidate, pair.candidate)))
        return kept, inputs

    async def _decode(self, event: PublishedEvent) -> DecodedMedia | None:
        with bind_video(event.video_id):
            try:
                return await self.media.decode(event.media_uri)
            except MediaRejected as exc:
                log.warning("shadow.media_rejected", code=exc.code.value, detail=exc.detail)
                return None

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


def _video_input(media: DecodedMedia, event: PublishedEvent) -> VideoInput:
    return VideoInput.from_decoded(media, title=event.title, sticker_text=event.sticker_text or "")

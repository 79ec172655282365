"""`rci index rebuild`: re-encode and re-index the published videos for the current encoders.

The worker's Milvus collection and the feature cache are both keyed by the encoder version
(`rci.retrieval.milvus.collection_name`, `rci.features.cache.feature_key`), so new encoders in
RCI_MODEL_DIR start an empty index. Milvus rows do not hold the title and sticker text the
features need, so the rebuild replays the input topic itself:

1. A plain consumer (the project's client config, security included; no group joins, no commits)
   is assigned every partition of `video.published` from its low watermark up to the high
   watermark read at start, so the replay ends even while publishers keep writing.
2. Each record is validated as the worker validates it (the contract parser; a record without a
   key is invalid too). Invalid records are counted and skipped, never dead-lettered from here.
3. Valid events go through the one features path (`rci.features.pipeline`, built as the worker
   builds it: `components.open_feature_pipeline`), `batch_size` videos per encoder call; videos
   already in the feature cache for this encoder version are read, not re-encoded. Media that can
   no longer be fetched or decoded (MediaRejected) is counted and skipped.
4. The videos are upserted into this encoder version's collection through the worker's own
   indexing code (`components.MilvusCandidateIndex.add`): the same record, keyed by video_id,
   so a second run leaves the index as it was. Videos named in the `rci forget` record
   (`rci.streams.forget`) are skipped: a rebuild does not bring a forgotten video back.

Infrastructure failures (broker, object store, Milvus) stop the rebuild with their error; since
every step is idempotent, running it again is the retry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from rci.core.errors import RejectedEvent
from rci.core.logs import bind_video, get_logger
from rci.core.settings import Settings
from rci.features.pipeline import FeaturePipeline
from rci.inference.encoders.bundle import EncoderBundle
from rci.inference.features import VideoFeatures
from rci.media.errors import MediaRejected
from rci.retrieval.milvus import collection_name
from rci.streams.components import MilvusCandidateIndex, open_candidate_index, open_feature_pipeline
from rci.streams.contracts import PublishedEvent, parse_published_record
from rci.streams.forget import forgotten_ids
from rci.streams.kafka import BrokerUnavailable, KafkaClientError, make_consumer

log = get_logger(__name__)

DEFAULT_BATCH_SIZE = 8
IDLE_TIMEOUT_S = 60.0  # no record and no progress for this long while records remain: the broker is gone
_POLL_S = 0.5


@dataclass
class RebuildSummary:
    """How a rebuild went, updated as it goes (the progress callback sees it grow)."""

    topic: str
    records: int  # records between the low and high watermarks at start: what the replay reads
    collection: str = ""  # the Milvus collection written ("" on a dry run)
    dry_run: bool = False
    read: int = 0
    valid: int = 0  # valid records (a video published twice counts twice)
    valid_ids: set[str] = field(default_factory=set)
    skipped_invalid: int = 0  # records that fail the contract, by RejectCode in `invalid_codes`
    invalid_codes: Counter[str] = field(default_factory=Counter)
    indexed_ids: set[str] = field(default_factory=set)
    media_rejected_ids: set[str] = field(default_factory=set)
    no_visual_ids: set[str] = field(default_factory=set)  # decodable but without frames: nothing to index
    unreplayable: int = 0  # offsets below the low watermarks: deleted by retention before this run
    skipped_forgotten: int = 0  # valid records of videos named in the `rci forget` record: not indexed again
    seconds: float = 0.0

    @property
    def indexed(self) -> int:
        """Distinct videos upserted into the collection."""
        return len(self.indexed_ids)

    @property
    def videos(self) -> int:
        """Distinct videos among the valid records: what a full run tries to index."""
        return len(self.valid_ids)

    @property
    def skipped_media(self) -> int:
        return len(self.media_rejected_ids - self.indexed_ids)

    @property
    def skipped_no_visual(self) -> int:
        return len(self.no_visual_ids - self.indexed_ids)

    def fields(self) -> dict[str, object]:
        """The figures, flat: for the structured log line and the printed summary."""
        return {
            "topic": self.topic, "collection": self.collection, "dry_run": self.dry_run,
            "records": self.records, "read": self.read, "valid": self.valid, "videos": self.videos,
            "indexed": self.indexed, "skipped_invalid": self.skipped_invalid,
            "skipped_media": self.skipped_media, "skipped_no_visual": self.skipped_no_visual,
            "unreplayable": self.unreplayable, "skipped_forgotten": self.skipped_forgotten,
            "seconds": round(self.seconds, 2),
        }  # fmt: skip


ProgressCallback = Callable[[RebuildSummary], None]


# --- replaying the topic up to where it was at start ----------------------------------------------
@dataclass(frozen=True)
class PartitionRange:
    partition: int
    low: int  # first offset still in the log
    high: int  # the high watermark at start: one past the last record to replay


class TopicReplay:
    """Every record of `topic` between the low and high watermarks read at construction, in batches.

    The consumer is assigned the partitions (no group membership, nothing committed), so a replay
    never disturbs the worker's consumer group and can run beside it.
    """

    def __init__(self, consumer: Consumer, topic: str, timeout_s: float = 10.0, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self._consumer = consumer
        self.topic = topic
        self._idle_timeout_s = idle_timeout_s
        self.ranges = self._ranges(timeout_s)

    @property
    def records(self) -> int:
        return sum(r.high - r.low for r in self.ranges)

    @property
    def unreplayable(self) -> int:
        return sum(r.low for r in self.ranges)

    def batches(self, size: int) -> Iterator[list[Message]]:
        """Lists of at most `size` records until every partition reached its high watermark."""
        ends = {r.partition: r.high for r in self.ranges if r.high > r.low}
        if not ends:
            return
        self._consumer.assign([TopicPartition(self.topic, r.partition, r.low) for r in self.ranges if r.partition in ends])
        last_progress = time.monotonic()
        while ends:
            batch = [m for m in self._consumer.consume(num_messages=size, timeout=_POLL_S) if self._keep(m, ends)]
            finished = [p for p in ends if self._position(p) >= ends[p]]  # also past trailing gaps (txn markers)
            for p in finished:
                del ends[p]
            if finished:
                self._consumer.pause([TopicPartition(self.topic, p) for p in finished])  # nothing past the watermark
            if batch or finished:
                last_progress = time.monotonic()
                if batch:
                    yield batch
            elif time.monotonic() - last_progress > self._idle_timeout_s:
                raise BrokerUnavailable(
                    f"{self.topic}: no record for {self._idle_timeout_s:.0f}s with partitions {sorted(ends)} unfinished"
                )

    def _keep(self, msg: Message, ends: dict[int, int]) -> bool:
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                return False
            raise KafkaClientError(f"consuming {self.topic}: {msg.error().str()}")
        return msg.partition() in ends and msg.offset() < ends[msg.partition()]

    def _position(self, partition: int) -> int:
        offset = self._consumer.position([TopicPartition(self.topic, partition)])[0].offset
        return offset if offset >= 0 else -1  # OFFSET_INVALID before the first fetch

    def _ranges(self, timeout_s: float) -> list[PartitionRange]:
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=timeout_s).topics.get(self.topic)
            if metadata is None or metadata.error is not None:
                reason = metadata.error.str() if metadata is not None else "not in the metadata"
                raise KafkaClientError(f"topic {self.topic} cannot be replayed: {reason}")
            return [
                PartitionRange(p, *self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=timeout_s))
                for p in sorted(metadata.partitions)
            ]
        except KafkaException as exc:
            raise BrokerUnavailable(f"reading the offsets of {self.topic}: {exc.args[0] if exc.args else exc}") from exc


# --- the rebuild ----------------------------------------------------------------------------------
class Reindexer:
    """Features and index writes for batches of valid events (the worker's own parts)."""

    def __init__(self, features: FeaturePipeline, index: MilvusCandidateIndex, summary: RebuildSummary) -> None:
        self.features = features
        self.index = index
        self.summary = summary

    async def add(self, events: list[PublishedEvent]) -> None:
        latest = list({e.video_id: e for e in events}.values())  # a re-published video: its last record
        extraction = await self.features.extract_all(latest, batch_size=len(latest))  # one encoder call
        items = []
        for event in latest:
            features = await self._features(event) if event.video_id not in extraction.rejected else None
            if features is None:
                self.summary.media_rejected_ids.add(event.video_id)
            elif not features.has_visual:  # MilvusCandidateIndex.add leaves these out, as in the worker
                self.summary.no_visual_ids.add(event.video_id)
            else:
                items.append((event, features))
        await self.index.add(items)
        self.summary.indexed_ids.update(event.video_id for event, _ in items)

    async def _features(self, event: PublishedEvent) -> VideoFeatures | None:
        try:
            return await self.features.features_for(event)  # cached by extract_all: a read, not an encode
        except MediaRejected as exc:  # only if the cache entry was unreadable and the media is gone since
            with bind_video(event.video_id):
                log.warning("media rejected", code=exc.code.value, detail=exc.detail)
            return None

    async def aclose(self) -> None:
        self.index.close()
        await self.features.aclose()


def rebuild_index(
    settings: Settings,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    on_progress: ProgressCallback | None = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> RebuildSummary:
    """Replay `settings.topic_published` into the current encoder version's collection (see the module doc).

    `dry_run` reads and validates the records only: no models, no media, no Milvus.
    """
    return asyncio.run(_rebuild(settings, batch_size, dry_run, on_progress or (lambda _s: None), idle_timeout_s))


async def _rebuild(
    settings: Settings, batch_size: int, dry_run: bool, report: ProgressCallback, idle_timeout_s: float
) -> RebuildSummary:
    started = time.monotonic()
    consumer = make_consumer(settings, f"rci-index-rebuild-{uuid.uuid4().hex[:12]}", enable_partition_eof=True,
                             auto_offset_reset="earliest")  # a replay reads what retention kept
    reindexer: Reindexer | None = None
    try:
        replay = TopicReplay(consumer, settings.topic_published, idle_timeout_s=idle_timeout_s)
        summary = RebuildSummary(settings.topic_published, replay.records, dry_run=dry_run,
                                 unreplayable=replay.unreplayable)  # fmt: skip
        if replay.unreplayable:
            log.warning("index.rebuild_retention_gap", topic=replay.topic, offsets=replay.unreplayable,
                        detail="records below the low watermarks were deleted by retention and cannot be re-indexed")
        if not dry_run:
            encoders = EncoderBundle.load(settings.resolved_model_dir, device=settings.device)
            reindexer = Reindexer(open_feature_pipeline(settings, encoders), open_candidate_index(settings, encoders), summary)
            summary.collection = collection_name(settings.milvus_collection, encoders.version)
        log.info("index.rebuild_started", topic=replay.topic, records=replay.records, collection=summary.collection,
                 dry_run=dry_run, partitions=len(replay.ranges))  # fmt: skip
        report(summary)
        forgotten = forgotten_ids(settings)
        for batch in replay.batches(batch_size):
            valid = _validate(batch, summary)
            events = [e for e in valid if e.video_id not in forgotten]  # a takedown is not undone by a rebuild
            summary.skipped_forgotten += len(valid) - len(events)
            if reindexer is not None and events:
                await reindexer.add(events)
            summary.read += len(batch)
            summary.seconds = time.monotonic() - started
            report(summary)
    finally:
        consumer.close()
        if reindexer is not None:
            await reindexer.aclose()
    summary.seconds = time.monotonic() - started
    log.info("index.rebuild_done", invalid_codes=dict(summary.invalid_codes), **summary.fields())
    return summary


def _validate(batch: list[Message], summary: RebuildSummary) -> list[PublishedEvent]:
    events = []
    for msg in batch:
        try:
            events.append(parse_published_record(msg.value(), msg.key()))  # as the worker reads it
        except RejectedEvent as rejection:
            summary.skipped_invalid += 1
            summary.invalid_codes[rejection.code.value] += 1
            log.info("index.rebuild_skipped_record", partition=msg.partition(), offset=msg.offset(),
                     code=rejection.code.value)  # fmt: skip
    summary.valid += len(events)
    summary.valid_ids.update(e.video_id for e in events)
    return events

"""`rci replay`: re-score a window of `video.published` into `rci.scores` with the models in RCI_MODEL_DIR.

After a model update (or a fix), the videos published in a window are scored again, through the
worker's own path, not a second one:

1. The window: every partition from the first record at or after `--since` (the broker's time index,
   `offsets_for_times`), or the partitions named by `--offsets PARTITION:OFFSET,...` from those
   offsets, up to the high watermark read at start, through `rci.streams.reindex.TopicReplay` (a
   plain assigned consumer: no group joins, nothing committed, the worker's group is not disturbed).
   An offset below a partition's low watermark was deleted by retention: the window starts at the
   low watermark and the gap is reported.
2. Each batch goes through the worker's `BatchRunner` on the worker's `ScoringPipeline`
   (`rci.streams.service.open_scoring_pipeline`: features cache, retrieval, MatchLite, the score
   memo), so a replay scores exactly as the worker does: transient failures are retried, a poison
   record is isolated. The scored videos are upserted into the index again (idempotent).
3. Scores are written to `rci.scores` and acknowledged. Records the contract refuses are counted by
   code and not dead-lettered again (the worker did that when they arrived). Events of videos named
   in the `rci forget` record are skipped: a replay must not bring a forgotten video back.

Scores under the same `model_version` come from the score memo: a replay under an unchanged model
writes records identical to the first ones (apart from `scored_at` and `latency_ms`, as any
re-delivery); under a new model version it writes new scores, and consumers keep the latest
`model_version` per video (docs/contract.md). `latency_ms` of a replayed score counts from the
original record's Kafka timestamp.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from rci.core import rfc3339
from rci.core.errors import ConfigError
from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.streams.forget import forgotten_ids
from rci.streams.kafka import BrokerUnavailable, make_consumer
from rci.streams.metrics import WorkerMetrics
from rci.streams.pipeline import InputRecord, Outcome
from rci.streams.reindex import IDLE_TIMEOUT_S, PartitionRange, TopicReplay
from rci.streams.sink import OutcomeSink, open_sink

log = get_logger(__name__)


class ReplayWindowError(ConfigError):
    """The asked window cannot be read: a partition that does not exist, an unparsable time or offset."""


@dataclass
class ReplaySummary:
    """How a replay went, updated as it goes (the progress callback sees it grow)."""

    topic: str
    windows: list[PartitionRange]  # per partition: [low, high) replayed
    model_version: str = ""
    read: int = 0
    scored_ids: Counter[str] = field(default_factory=Counter)  # scores written, by video
    skipped_codes: Counter[str] = field(default_factory=Counter)  # records the contract refuses, by code
    skipped_forgotten: int = 0
    unreplayable: int = 0  # asked offsets already deleted by retention
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(w.high - w.low for w in self.windows)

    @property
    def scored(self) -> int:
        return sum(self.scored_ids.values())

    @property
    def skipped_invalid(self) -> int:
        return sum(self.skipped_codes.values())

    def fields(self) -> dict[str, object]:
        return {
            "topic": self.topic, "model_version": self.model_version, "records": self.records, "read": self.read,
            "scored": self.scored, "skipped_invalid": self.skipped_invalid, "skipped_forgotten": self.skipped_forgotten,
            "unreplayable": self.unreplayable, "seconds": round(self.seconds, 2),
            "windows": {w.partition: [w.low, w.high] for w in self.windows},
        }  # fmt: skip


ProgressCallback = Callable[[ReplaySummary], None]


def parse_offsets(text: str) -> dict[int, int]:
    """`0:120,3:7` -> {0: 120, 3: 7}."""
    starts: dict[int, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        partition, sep, offset = part.partition(":")
        try:
            p, o = int(partition), int(offset)
        except ValueError:
            p = o = -1
        if not sep or p < 0 or o < 0:
            raise ReplayWindowError(f"--offsets: {part!r} is not PARTITION:OFFSET (two integers >= 0)")
        if p in starts:
            raise ReplayWindowError(f"--offsets: partition {p} is named twice")
        starts[p] = o
    if not starts:
        raise ReplayWindowError("--offsets: no PARTITION:OFFSET given")
    return starts


class ScoresOnlySink:
    """The worker's sink, minus dead letters: a replay does not dead-letter a record a second time."""

    def __init__(self, sink: OutcomeSink) -> None:
        self._sink = sink

    @property
    def max_record_bytes(self) -> int:
        return self._sink.max_record_bytes

    async def write(self, outcomes: Sequence[Outcome]) -> None:
        scores = [o for o in outcomes if o.score is not None]
        if scores:
            await self._sink.write(scores)


def replay_scores(
    settings: Settings,
    *,
    since: str | None = None,
    offsets: dict[int, int] | None = None,
    batch_size: int | None = None,
    on_progress: ProgressCallback | None = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> ReplaySummary:
    """Re-score the window (exactly one of `since`, an RFC 3339 time, and `offsets`) into rci.scores."""
    if (since is None) == (offsets is None):
        raise ReplayWindowError("give exactly one of --since TIME and --offsets PARTITION:OFFSET[,..]")
    since_ms = None
    if since is not None:
        try:
            since_ms = rfc3339.epoch_ms(since)
        except ValueError as exc:
            raise ReplayWindowError(f"--since: {since!r} is not an RFC 3339 time ({exc})") from exc
    return asyncio.run(_replay(settings, since_ms, offsets, batch_size or settings.batch_max_size,
                               on_progress or (lambda _s: None), idle_timeout_s))  # fmt: skip


async def _replay(
    settings: Settings, since_ms: int | None, offsets: dict[int, int] | None, batch_size: int,
    report: ProgressCallback, idle_timeout_s: float,
) -> ReplaySummary:  # fmt: skip
    from rci.streams.service import open_scoring_pipeline  # the faust worker's module: imported when scoring
    from rci.streams.worker import BatchRunner

    started = time.monotonic()
    consumer = make_consumer(settings, f"rci-replay-{uuid.uuid4().hex[:12]}", enable_partition_eof=True,
                             auto_offset_reset="earliest")  # fmt: skip
    parts = None
    try:
        replay = TopicReplay(consumer, settings.topic_published, idle_timeout_s=idle_timeout_s)
        starts = _starts(consumer, replay, since_ms, offsets)
        summary = ReplaySummary(replay.topic, [], unreplayable=sum(max(0, r.low - starts[r.partition])
                                                                  for r in replay.ranges if r.partition in starts))
        replay.ranges = summary.windows = [PartitionRange(r.partition, min(max(r.low, starts[r.partition]), r.high), r.high)
                                           for r in replay.ranges if r.partition in starts]  # fmt: skip
        if summary.unreplayable:
            log.warning("replay.retention_gap", topic=replay.topic, offsets=summary.unreplayable,
                        detail="asked records below the low watermarks were deleted by retention")
        forgotten = forgotten_ids(settings)
        metrics = WorkerMetrics()
        pipeline, parts = await open_scoring_pipeline(settings, metrics)
        summary.model_version = parts.model.model_version
        sink = ScoresOnlySink(await asyncio.to_thread(open_sink, settings))
        runner = BatchRunner(pipeline, sink, metrics, poison_max_attempts=settings.poison_max_attempts)  # type: ignore[arg-type]
        log.info("replay.started", **summary.fields())
        report(summary)
        for batch in replay.batches(batch_size):
            records = [_input_record(m) for m in batch]
            kept = [r for r in records if (r.key or b"").decode("utf-8", "replace") not in forgotten]
            summary.skipped_forgotten += len(records) - len(kept)
            if kept:
                for outcome in await runner.handle(kept):
                    if outcome.score is not None:
                        summary.scored_ids[outcome.score.video_id] += 1
                    else:
                        summary.skipped_codes[outcome.dead_letter.error.value] += 1
            summary.read += len(batch)
            summary.seconds = time.monotonic() - started
            report(summary)
    finally:
        consumer.close()
        if parts is not None:
            await parts.aclose()
    summary.seconds = time.monotonic() - started
    log.info("replay.done", skipped_codes=dict(summary.skipped_codes), **summary.fields())
    return summary


def _starts(consumer: Consumer, replay: TopicReplay, since_ms: int | None, offsets: dict[int, int] | None) -> dict[int, int]:
    """The first offset to replay, per partition in the window."""
    partitions = {r.partition: r for r in replay.ranges}
    if offsets is not None:
        unknown = sorted(set(offsets) - partitions.keys())
        if unknown:
            raise ReplayWindowError(f"{replay.topic} has partitions {sorted(partitions)}, not {unknown}")
        return dict(offsets)
    asked = [TopicPartition(replay.topic, p, since_ms) for p in partitions]
    try:
        found = consumer.offsets_for_times(asked, timeout=10.0)
    except KafkaException as exc:
        raise BrokerUnavailable(f"finding offsets by time in {replay.topic}: {exc.args[0] if exc.args else exc}") from exc
    # -1: no record at or after the time in that partition, so nothing of it is replayed
    return {tp.partition: (tp.offset if tp.offset >= 0 else partitions[tp.partition].high) for tp in found}


def _input_record(msg: Message) -> InputRecord:
    _kind, timestamp_ms = msg.timestamp()
    return InputRecord(key=msg.key(), value=msg.value(), topic=msg.topic(), partition=msg.partition(),
                       offset=msg.offset(), timestamp_ms=max(0, timestamp_ms))  # fmt: skip

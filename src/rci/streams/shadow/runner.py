"""`rci shadow`: re-score a deterministic sample of `rci.scores` with the teacher MatchLM.

Per sampled score record (CONTRACT.md `rci.shadow`, default 1% by a hash of `video_id`):
look up what both videos were published with (`rci.streams.catalog`), fetch and decode their
media under the same allow-list and limits as the worker, score the pair with MatchLM, write
one `rci.shadow` record keyed by `video_id`, and export agreement metrics on Prometheus.
Records without a candidate are skipped (there is no pair; the student's 0 is a rule, not a
prediction), as are pairs whose video is unknown to the catalog or whose media is now rejected;
each skip is counted under its reason.

Why a plain confluent-kafka loop and not faust like the worker: the shadow commits offsets
itself, after its records are acknowledged, which a poll loop says in three lines; it also
reads `video.published` across all partitions with `assign()`, which faust would only do as a
GlobalTable with a changelog topic and local RocksDB state.

It never slows the main path: its own process and consumer group (the worker's offsets and
lag are untouched), at most `batch_max_size` score records in flight per batch, and all
blocking work off the event loop: the consumer on one thread, the catalog on another, decoding
on a small pool, the teacher on its own thread. `max.poll.interval.ms` is raised so that a
slow teacher batch (CPU, large model) does not cost the group membership.

Delivery: offsets are committed only after the batch's shadow records were acknowledged, so a
crash re-delivers at most the batch in flight (at least once; sampling by hash picks the same
records again). Transient failures (broker, S3, catalog lag) retry the batch with backoff;
any other exception exits with code 70 without committing. SIGTERM / SIGINT: the batch in
flight finishes and is committed, then the consumer leaves the group and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rci.inference.matchlm.processor import VideoInput
from rci.media.decode import decode_media
from rci.media.decoded import DecodedMedia
from rci.media.errors import MediaRejected
from rci.media.fetch import fetch_media
from rci.media.policy import MediaPolicy, media_policy
from rci.core import rfc3339
from rci.core.errors import ConfigError, ModelError, TransientError
from rci.core.logs import bind_video, get_logger
from rci.core.settings import Settings
from rci.storage.s3 import S3Client, s3_config
from rci.streams.catalog import PublishedCatalog
from rci.streams.contracts import PublishedEvent, ScoreRecord, ShadowRecord
from rci.streams.kafka import make_consumer, make_producer
from rci.streams.metrics import serve_metrics
from rci.streams.retry import retry_transient
from rci.streams.shadow_logic import HISTOGRAM_BINS, ShadowAggregate, TeacherScorer, is_sampled, shadow_record

log = get_logger(__name__)

EXIT_BUG = 70  # EX_SOFTWARE: unexpected error, the batch left uncommitted
EXIT_CONFIG = 78  # EX_CONFIG: no teacher, bad settings
POLL_TIMEOUT_S = 0.5
MAX_POLL_INTERVAL_MS = 30 * 60 * 1000  # a teacher batch may take minutes on a CPU
TEACHER_BATCH = 4  # pairs per MatchLM forward pass


# --- metrics ------------------------------------------------------------------------------------


class ShadowMetrics:
    """The shadow consumer's own registry (a separate process from the worker, so separate metrics).

    Agreement over any time window is `rate(rci_shadow_pairs_total{agree="true"}) /
    rate(rci_shadow_pairs_total)`; the gauges hold the running values since the process started.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        score_buckets = tuple(i / HISTOGRAM_BINS for i in range(1, HISTOGRAM_BINS + 1))
        self.scores_in = Counter("rci_shadow_scores_in", "rci.scores records consumed", registry=r)
        self.sampled = Counter("rci_shadow_sampled", "score records chosen by the sample", registry=r)
        self.skipped = Counter("rci_shadow_skipped", "sampled records not re-scored", ["reason"], registry=r)
        self.pairs = Counter("rci_shadow_pairs", "pairs scored by the teacher", ["agree"], registry=r)
        self.retries = Counter("rci_shadow_transient_retries", "batches retried after a transient error", registry=r)
        self.score = Histogram("rci_shadow_score", "scores of the sampled pairs", ["model"], buckets=score_buckets,
                               registry=r)  # fmt: skip
        self.abs_gap = Histogram("rci_shadow_abs_gap", "|student - teacher| per pair",
                                 buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0), registry=r)  # fmt: skip
        self.agreement_rate = Gauge("rci_shadow_agreement_rate", "share of pairs with the same deboost decision",
                                    ["student_model_version"], registry=r)  # fmt: skip
        self.mean_abs_gap = Gauge("rci_shadow_mean_abs_gap", "mean |student - teacher| score gap",
                                  ["student_model_version"], registry=r)  # fmt: skip
        self.stage_seconds = Histogram("rci_shadow_stage_seconds", "time per stage per batch", ["stage"],
                                       buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=r)  # fmt: skip
        self._aggregates: dict[str, ShadowAggregate] = {}

    def observe(self, scored: ScoreRecord, record: ShadowRecord) -> None:
        """Count one shadow record; the running aggregates are per student model version."""
        self.pairs.labels(str(record.agree).lower()).inc()
        self.score.labels("student").observe(record.student_score)
        self.score.labels("teacher").observe(record.teacher_score)
        self.abs_gap.observe(abs(record.student_score - record.teacher_score))
        version = record.student_model_version
        aggregate = self._aggregates.get(version)
        if aggregate is None or aggregate.threshold != scored.threshold:  # a new operating point starts afresh
            aggregate = self._aggregates[version] = ShadowAggregate(scored.threshold)
        aggregate.add(record.student_score, record.teacher_score)
        snapshot = aggregate.snapshot()
        self.agreement_rate.labels(version).set(snapshot.agreement_rate)
        self.mean_abs_gap.labels(version).set(snapshot.mean_abs_gap)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(name).observe(time.perf_counter() - start)


# --- what the runner needs (structural interfaces) ----------------------------------------------


class VideoLookup(Protocol):
    async def events(self, video_ids: set[str]) -> dict[str, PublishedEvent]:
        """The published events of the known videos among `video_ids`."""
        ...


class MediaReader(Protocol):
    async def decode(self, event: PublishedEvent) -> DecodedMedia:
        """The event's media, decoded; MediaRejected when it cannot be, TransientError for infra."""
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
                return await self.media.decode(event)
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


# --- concrete parts -----------------------------------------------------------------------------


class CatalogLookup:
    """`VideoLookup` on the published catalog: read, and on a miss catch up with the topic once.

    A scored video was published before its score was written, so after one catch-up a video
    still missing is truly unknown (e.g. past the topic's retention before the catalog saw it).
    """

    def __init__(self, catalog: PublishedCatalog) -> None:
        self._catalog = catalog
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog")

    async def events(self, video_ids: set[str]) -> dict[str, PublishedEvent]:
        found = await self._run(self._catalog.get, video_ids)
        if len(found) < len(video_ids):
            await self._run(self._catalog.catch_up)
            found = await self._run(self._catalog.get, video_ids)
        return found

    async def catch_up(self) -> int:
        return await self._run(self._catalog.catch_up)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._catalog.close()


class FetchingMediaReader:
    """Fetch under the media policy (allow-list, size), decode on a small pool (PyAV frees the GIL)."""

    def __init__(self, policy: MediaPolicy, s3: S3Client | None, executor: Executor) -> None:
        self._policy = policy
        self._s3 = s3
        self._executor = executor

    async def decode(self, event: PublishedEvent) -> DecodedMedia:
        source = await fetch_media(event.media_uri, self._policy, self._s3)
        return await asyncio.get_running_loop().run_in_executor(self._executor, decode_media, source, self._policy)


class ShadowSinkError(TransientError):
    """The broker did not acknowledge every shadow record (retry the batch)."""


class KafkaShadowWriter:
    """`rci.shadow` records keyed by video_id, flushed before `write` returns."""

    def __init__(self, producer: object, topic: str, flush_timeout_s: float = 30.0) -> None:
        self._producer = producer
        self._topic = topic
        self._flush_timeout_s = flush_timeout_s

    async def write(self, records: Sequence[ShadowRecord]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._write_blocking, list(records))

    def _write_blocking(self, records: list[ShadowRecord]) -> None:
        failures: list[str] = []

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                failures.append(str(err))

        for record in records:
            while True:
                try:
                    self._producer.produce(self._topic, value=record.to_json_bytes(),
                                           key=record.video_id.encode("utf-8"), on_delivery=on_delivery)  # fmt: skip
                    break
                except BufferError:
                    self._producer.poll(0.1)  # local queue full: let deliveries drain
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining or failures:
            raise ShadowSinkError(f"{remaining} shadow records unacknowledged, {len(failures)} failed: {failures[:3]}")


def load_teacher(settings: Settings):
    """MatchLM from `<model_dir>/matchlm/` on the configured device (ModelError when absent)."""
    from rci.inference.encoders.base import pick_device
    from rci.inference.matchlm.loader import load_matchlm
    from rci.inference.model_dir import matchlm_dir

    return load_matchlm(matchlm_dir(settings.resolved_model_dir), device=pick_device(settings.device))


# --- the consumer loop --------------------------------------------------------------------------


class ShadowLoop:
    """Poll a batch of `rci.scores`, hand it to the runner, commit after its records were acked."""

    def __init__(self, consumer: Consumer, runner: ShadowRunner, batch_size: int) -> None:
        self.consumer = consumer
        self.runner = runner
        self.batch_size = batch_size
        self._kafka = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka")  # the consumer's only thread

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; the batch in flight when it is set still finishes and commits."""
        metrics = self.runner.metrics
        while not stop.is_set():
            messages = await self._call(self.consumer.consume, self.batch_size, POLL_TIMEOUT_S)
            records = [m for m in messages if _usable(m)]
            if not records:
                continue
            metrics.scores_in.inc(len(records))
            values = [m.value() for m in records]
            await retry_transient(lambda: self.runner.handle(values), what="shadow batch",
                                  on_retry=lambda _exc: metrics.retries.inc())  # fmt: skip
            await self._call(self._commit, records)

    def _commit(self, records: list[Message]) -> None:
        offsets: dict[tuple[str, int], int] = {}
        for m in records:
            offsets[(m.topic(), m.partition())] = max(offsets.get((m.topic(), m.partition()), -1), m.offset() + 1)
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        except KafkaException as exc:  # e.g. the partitions moved in a rebalance: their records come again
            log.warning("shadow.commit_failed", error=str(exc))

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._kafka, fn, *args)

    async def aclose(self) -> None:
        await self._call(self.consumer.close)  # leaves the group now, not after the session timeout
        self._kafka.shutdown(wait=True)


def _usable(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    log.warning("shadow.consume_error", code=error.name(), reason=error.str())
    return False


# --- the service --------------------------------------------------------------------------------


async def serve_shadow(settings: Settings, stop: asyncio.Event, metrics: ShadowMetrics | None = None) -> None:
    """Load the teacher, catch the catalog up, then consume `rci.scores` until `stop` is set."""
    metrics = metrics or ShadowMetrics()
    loop = asyncio.get_running_loop()
    teacher = await loop.run_in_executor(None, load_teacher, settings)
    lookup = CatalogLookup(await loop.run_in_executor(None, PublishedCatalog.open, settings))
    decode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")
    s3 = S3Client(s3_config(settings)) if any(p.startswith("s3://") for p in settings.resolved_media_prefixes) else None
    runner = ShadowRunner(
        lookup, FetchingMediaReader(media_policy(settings), s3, decode_pool), teacher,
        KafkaShadowWriter(make_producer(settings), settings.topic_shadow), metrics, settings.shadow_sample_rate,
    )  # fmt: skip
    consumer = make_consumer(settings, settings.shadow_group, max_poll_interval_ms=MAX_POLL_INTERVAL_MS)
    shadow_loop = ShadowLoop(consumer, runner, settings.batch_max_size)
    try:
        known = await retry_transient(lookup.catch_up, what="catalog catch-up")
        consumer.subscribe([settings.topic_scores])
        log.info("shadow ready", group=settings.shadow_group, topic=settings.topic_scores,
                 sample_rate=settings.shadow_sample_rate, teacher=teacher.model_version, catalog_read=known)  # fmt: skip
        await shadow_loop.run(stop)
    finally:
        await shadow_loop.aclose()
        runner.close()
        lookup.close()
        decode_pool.shutdown(wait=False)
        if s3 is not None:
            await s3.close()


def run_shadow(settings: Settings) -> int:
    """Block serving until SIGTERM / SIGINT; -> the process exit code."""
    metrics = ShadowMetrics()
    serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
    return asyncio.run(_main(settings, metrics))


async def _main(settings: Settings, metrics: ShadowMetrics) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve_shadow(settings, stop, metrics)
    except (ConfigError, ModelError) as exc:
        log.error("shadow cannot start", error=str(exc))
        return EXIT_CONFIG
    except Exception:
        log.exception("unexpected error in the shadow consumer; exiting without committing the batch")
        return EXIT_BUG
    log.info("shadow stopped")
    return 0


"""What was published, by video_id: `video.published` materialised into SQLite for the shadow consumer.

`rci.scores` names the two videos of a pair but not their media or text, and the teacher needs
both (frames, audio, title and sticker text). Every scored video, query and candidate alike,
was published on `video.published` before its score was written, so that topic is the one
complete source. The catalog reads all its partitions (a "global table": the candidate of a
pair can live on any partition, so no consumer group splits them) and keeps the latest valid
event per video.

Why not Milvus (it stores media_uri): it has no title or sticker text, and a Milvus Lite file
is locked by the one process that opens it (the worker), so a second process cannot read it.

Consistency: rows and the next offset per partition are written in one SQLite transaction,
so the file never claims offsets whose rows it lacks; a restart resumes from the stored
offsets. Several shadow processes may share the file (WAL, busy timeout): they write the same
rows, and a stored offset only ever moves forward.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from rci.core.errors import RejectedEvent, TransientError
from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.streams.contracts import PublishedEvent, parse_published
from rci.streams.kafka import make_consumer

log = get_logger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS videos (video_id TEXT PRIMARY KEY, event TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS positions ("
    " topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,"
    " PRIMARY KEY (topic, partition))",
)
_CONSUME_BATCH = 500
_SQL_VARIABLES = 500  # ids per SELECT ... IN (...), well under SQLite's limit


class CatalogLagging(TransientError):
    """The catalog could not reach the end of `video.published` in time (broker slow or down)."""


def catalog_path(settings: Settings) -> Path:
    """One file per published topic under the data dir (shared by shadow processes on one host)."""
    return settings.data_dir.absolute() / "shadow" / f"catalog-{settings.topic_published}.sqlite"


class PublishedCatalog:
    """The latest valid `video.published` event of every video. Not thread-safe: use from one thread."""

    def __init__(self, path: Path, consumer: Consumer, topic: str, timeout_s: float = 10.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: opened on one thread, then used from the caller's single worker thread
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._consumer = consumer
        self._topic = topic
        self._timeout_s = timeout_s
        self._assigned: set[int] = set()

    @classmethod
    def open(cls, settings: Settings) -> PublishedCatalog:
        # assign(), never subscribe(): the group id is required by the client but no group is joined
        # earliest: an offset lost to retention restarts at the oldest record kept, never skips to the end
        consumer = make_consumer(settings, f"{settings.shadow_group}.catalog", auto_offset_reset="earliest")
        return cls(catalog_path(settings), consumer, settings.topic_published)

    # --- reads ---------------------------------------------------------------------------------

    def get(self, video_ids: Iterable[str]) -> dict[str, PublishedEvent]:
        """The known events among `video_ids` (unknown ids are simply absent)."""
        ids = sorted(set(video_ids))
        found: dict[str, PublishedEvent] = {}
        for start in range(0, len(ids), _SQL_VARIABLES):
            chunk = ids[start : start + _SQL_VARIABLES]
            rows = self._db.execute(
                f"SELECT video_id, event FROM videos WHERE video_id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update((vid, PublishedEvent.model_validate_json(event)) for vid, event in rows)
        return found

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM videos").fetchone()[0])

    # --- keeping up with the topic ------------------------------------------------------------

    def catch_up(self, timeout_s: float = 120.0) -> int:
        """Apply every record published before this call; -> records read. CatalogLagging on timeout."""
        ends = self._end_offsets()
        deadline = time.monotonic() + timeout_s
        read = 0
        while self._behind(ends):
            if time.monotonic() > deadline:
                raise CatalogLagging(f"{self._topic}: not at the end after {timeout_s:.0f}s ({read} records read)")
            messages = self._consumer.consume(_CONSUME_BATCH, 0.5)
            self._apply(messages)
            read += len(messages)
        return read

    def _end_offsets(self) -> dict[int, tuple[int, int]]:
        """partition -> (low, high) watermarks; assigns partitions seen for the first time."""
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=self._timeout_s)
        except KafkaException as exc:
            raise CatalogLagging(f"no metadata for {self._topic}: {exc}") from exc
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            raise CatalogLagging(f"{self._topic} is not served: {topic.error if topic else 'unknown topic'}")
        new = sorted(set(topic.partitions) - self._assigned)
        if new:
            stored = self._stored_offsets()
            self._consumer.incremental_assign(
                [TopicPartition(self._topic, p, stored.get(p, OFFSET_BEGINNING)) for p in new]
            )
            self._assigned.update(new)
        ends = {}
        for p in sorted(self._assigned):
            try:
                ends[p] = self._consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=self._timeout_s)
            except KafkaException as exc:
                raise CatalogLagging(f"no watermarks for {self._topic}[{p}]: {exc}") from exc
        return ends

    def _behind(self, ends: dict[int, tuple[int, int]]) -> bool:
        stored = self._stored_offsets()
        positions = {tp.partition: tp.offset for tp in self._consumer.position(
            [TopicPartition(self._topic, p) for p in ends])}  # fmt: skip
        # the next offset to read is the furthest of: stored, fetched (skips gaps), the log start
        return any(max(stored.get(p, 0), positions.get(p, -1), low) < high for p, (low, high) in ends.items())

    def _apply(self, messages: Sequence[Message]) -> None:
        rows: list[tuple[str, str]] = []
        next_offsets: dict[int, int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("catalog.consume_error", code=error.name(), reason=error.str())
                continue
            next_offsets[message.partition()] = message.offset() + 1
            try:
                event = parse_published(message.value(), message.key())
            except RejectedEvent:
                continue  # the worker dead-letters it; it is never scored, so never looked up
            rows.append((event.video_id, event.model_dump_json()))
        if next_offsets:
            self._store(rows, next_offsets)

    def _store(self, rows: list[tuple[str, str]], next_offsets: dict[int, int]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO videos (video_id, event) VALUES (?, ?) "
                "ON CONFLICT (video_id) DO UPDATE SET event = excluded.event",
                rows,
            )
            self._db.executemany(
                "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                [(self._topic, p, o) for p, o in next_offsets.items()],
            )

    def _stored_offsets(self) -> dict[int, int]:
        rows = self._db.execute("SELECT partition, next_offset FROM positions WHERE topic = ?", (self._topic,))
        return {int(p): int(o) for p, o in rows}

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock up front: processes sharing the file wait for
        # each other (busy timeout) instead of failing half-way through a transaction
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        try:
            self._consumer.close()
        finally:
            self._db.close()


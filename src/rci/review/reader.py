"""Feeds the review page's index from Kafka: every contract topic the page shows, from the earliest record
kept, then live. Its own consumer group, named per process and never committed: the page is a reader, like
`rci tail`. A record that breaks its contract is skipped and counted, never a reason to stop reading."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable

from confluent_kafka import KafkaError
from pydantic import ValidationError

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.review.index import ReviewIndex
from rci.streams.contracts import DeadLetterRecord, PublishedEvent, ReviewVerdict, ScoreRecord, ShadowRecord
from rci.streams.kafka import make_consumer

log = get_logger(__name__)


def record_handlers(settings: Settings, index: ReviewIndex) -> dict[str, Callable[[bytes | None, bytes], None]]:
    """topic -> what to do with one (key, value) of it."""
    return {
        settings.topic_scores: lambda _k, v: index.add_score(ScoreRecord.model_validate_json(v)),
        settings.topic_published: lambda _k, v: index.add_event(PublishedEvent.model_validate_json(v)),
        settings.topic_shadow: lambda _k, v: index.add_shadow(ShadowRecord.model_validate_json(v)),
        settings.topic_reviews: lambda _k, v: index.add_verdict(ReviewVerdict.model_validate_json(v)),
        settings.topic_dlq: lambda k, v: index.add_dead_letter((k or b"").decode("utf-8", "replace"),
                                                               DeadLetterRecord.model_validate_json(v)),
    }  # fmt: skip


class TopicReader(threading.Thread):
    """Reads the topics into `index` until stop(); `read` counts records per topic, `skipped` the invalid."""

    def __init__(self, settings: Settings, index: ReviewIndex) -> None:
        super().__init__(daemon=True, name="review-reader")
        self._handlers = record_handlers(settings, index)
        self._consumer = make_consumer(settings, f"rci-review-{uuid.uuid4().hex[:12]}", **{"auto.offset.reset": "earliest"})
        self._stopping = threading.Event()
        self.read: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    def run(self) -> None:
        self._consumer.subscribe(list(self._handlers))
        try:
            while not self._stopping.is_set():
                for message in self._consumer.consume(500, timeout=0.5):
                    self._handle(message)
        finally:
            self._consumer.close()

    def _handle(self, message: object) -> None:
        if message.error():
            if message.error().code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                log.warning("review reader: consume error", error=str(message.error()))
            return
        topic = message.topic()
        if message.value() is None:
            return  # a tombstone: nothing to show
        try:
            self._handlers[topic](message.key(), message.value())
            self.read[topic] += 1
        except ValidationError as exc:
            self.skipped[topic] += 1
            log.warning("review reader: record breaks its contract, skipped", topic=topic,
                        offset=message.offset(), error=str(exc.errors()[:1]))  # fmt: skip

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self.join(timeout_s)

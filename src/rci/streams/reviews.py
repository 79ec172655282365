"""Moderators' verdicts the scoring path obeys: a deboost a reviewer overturned is not given again.

`rci review` writes verdicts to `rci.reviews` (docs/contract.md). When the latest verdict on a (video,
candidate) pair overturned a deboost, the worker, a re-delivery and `rci replay` score that pair as before
but do not deboost it (rci.streams.pipeline marks the record `evidence.review = "overturned"`). The topic
is read to its end before the first batch (so a replay sees every verdict given before it), then followed
live in a thread.
"""

from __future__ import annotations

import threading
import uuid

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.streams.contracts import ReviewVerdict
from rci.streams.kafka import KafkaClientError, make_consumer
from rci.streams.reindex import TopicReplay

log = get_logger(__name__)


class ReviewedPairs:
    """The latest verdict per pair; `overturned(video, candidate)` is True when it overturned a deboost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._overturned: dict[tuple[str, str], bool] = {}

    def add(self, verdict: ReviewVerdict) -> None:
        if verdict.candidate_id is None:
            return
        with self._lock:
            self._overturned[(verdict.video_id, verdict.candidate_id)] = verdict.verdict == "overturn" and verdict.deboost

    def overturned(self, video_id: str, candidate_id: str) -> bool:
        with self._lock:
            return self._overturned.get((video_id, candidate_id), False)

    def __len__(self) -> int:
        with self._lock:
            return sum(self._overturned.values())


class ReviewFollower(threading.Thread):
    """Keeps `pairs` up to date with `rci.reviews` after it was read to its end."""

    def __init__(self, consumer: Consumer, pairs: ReviewedPairs) -> None:
        super().__init__(daemon=True, name="reviews-follower")
        self._consumer = consumer
        self._pairs = pairs
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                for message in self._consumer.consume(100, timeout=1.0):
                    _feed(self._pairs, message)
        finally:
            self._consumer.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self.join(timeout_s)


def follow_reviews(settings: Settings) -> tuple[ReviewedPairs, ReviewFollower | None]:
    """Read `rci.reviews` to its end now (blocking), then follow it in a thread; no topic, no verdicts (warned)."""
    pairs = ReviewedPairs()
    consumer = make_consumer(settings, f"rci-reviews-{uuid.uuid4().hex[:12]}")
    try:
        replay = TopicReplay(consumer, settings.topic_reviews)
        for batch in replay.batches(500):
            for message in batch:
                _feed(pairs, message)
    except KafkaClientError as exc:  # no such topic (a cluster set up before it: `rci topics create` adds it)
        consumer.close()
        log.warning("no moderators' verdicts: overturned deboosts are not remembered", topic=settings.topic_reviews,
                    error=str(exc))  # fmt: skip
        return pairs, None
    live = [TopicPartition(settings.topic_reviews, r.partition, r.high) for r in replay.ranges]
    consumer.assign(live)
    consumer.resume(live)  # the replay paused each partition it finished; assign() keeps that
    log.info("moderators' verdicts read", topic=settings.topic_reviews, overturned_deboosts=len(pairs))
    follower = ReviewFollower(consumer, pairs)
    follower.start()
    return pairs, follower


def _feed(pairs: ReviewedPairs, message: Message) -> None:
    if message.error():
        if message.error().code() != KafkaError._PARTITION_EOF:
            log.warning("reading moderators' verdicts", error=str(message.error()))
        return
    try:
        pairs.add(ReviewVerdict.model_validate_json(message.value() or b""))
    except ValidationError:
        log.warning("a verdict breaks the contract, ignored", offset=message.offset(), partition=message.partition())

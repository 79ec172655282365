"""Writes a batch's outcomes to `rci.scores` / `video.published.dlq` and waits for the broker's ack.

The worker commits input offsets only after `write` returns, so a crash before that point
re-delivers the batch (at least once) and nothing is lost. `AcknowledgedWriter` is that write
path on its own (produce, flush, check every ack); the shadow consumer writes through it too.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable, Sequence

from rci.core.errors import TransientError
from rci.streams.contracts import DeadLetterRecord
from rci.core.settings import Settings
from rci.streams.kafka import (
    DEFAULT_MAX_MESSAGE_BYTES,
    RecordProducer,
    make_producer,
    produce_with_backpressure,
    topic_max_message_bytes,
)
from rci.streams.pipeline import Outcome

KeyedRecord = tuple[str, bytes | None, bytes]  # (topic, key, value)


class SinkError(TransientError):
    """The broker did not acknowledge every output record (retry the batch)."""


class AcknowledgedWriter:
    """Produces records and returns only once the broker acknowledged every one; SinkError otherwise."""

    def __init__(self, producer: RecordProducer, flush_timeout_s: float = 30.0) -> None:
        self._producer = producer
        self._flush_timeout_s = flush_timeout_s

    async def write(self, records: Sequence[KeyedRecord]) -> None:
        """`write_blocking` off the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.write_blocking, list(records))

    def write_blocking(self, records: Iterable[KeyedRecord]) -> None:
        failures: list[str] = []

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                failures.append(str(err))

        for topic, key, value in records:
            produce_with_backpressure(self._producer, topic, value, key, on_delivery)
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining or failures:
            raise SinkError(f"{remaining} records unacknowledged, {len(failures)} failed: {failures[:3]}")


# Room left in a record for Kafka's own framing (batch header, record header, headers) besides key and value.
RECORD_OVERHEAD_BYTES = 512


class OutcomeSink:
    """`max_record_bytes`: the largest record the DLQ topic takes (its `max.message.bytes`). A dead
    letter that would be larger (an input near the input topic's own limit, +33% for base64) is
    written with its `original` cut to fit and the cut stated in `detail`: a record the broker
    refused would otherwise be retried forever and block its partition."""

    def __init__(
        self,
        producer: RecordProducer,
        scores_topic: str,
        dlq_topic: str,
        flush_timeout_s: float = 30.0,
        max_record_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._writer = AcknowledgedWriter(producer, flush_timeout_s)
        self._scores_topic = scores_topic
        self._dlq_topic = dlq_topic
        self._max_record_bytes = max_record_bytes

    @property
    def max_record_bytes(self) -> int:
        return self._max_record_bytes

    async def write(self, outcomes: Sequence[Outcome]) -> None:
        """Produce one record per outcome, keyed like its input; return once all are acknowledged."""
        await asyncio.get_running_loop().run_in_executor(None, self._write_blocking, list(outcomes))

    def _write_blocking(self, outcomes: list[Outcome]) -> None:
        # routed on the executor's thread: cutting a large dead letter to fit is not the event loop's work
        self._writer.write_blocking([self._route(outcome) for outcome in outcomes])

    def _route(self, outcome: Outcome) -> KeyedRecord:
        """Scores are keyed by video_id (CONTRACT.md); dead letters keep the original key."""
        if outcome.score is not None:
            return self._scores_topic, outcome.score.video_id.encode("utf-8"), outcome.score.to_json_bytes()
        key = outcome.record.key
        room = self._max_record_bytes - RECORD_OVERHEAD_BYTES - len(key or b"")
        return self._dlq_topic, key, fit_dead_letter(outcome.dead_letter, room).to_json_bytes()


def open_sink(settings: Settings) -> OutcomeSink:
    """The worker's sink: its record limit is the DLQ topic's (asked from the broker; Kafka's default
    if unknown), and its producer's own limit never refuses what that topic takes. Blocking."""
    limit = topic_max_message_bytes(settings, settings.topic_dlq, timeout_s=30.0) or DEFAULT_MAX_MESSAGE_BYTES
    producer = make_producer(settings, message_max_bytes=max(limit, DEFAULT_MAX_MESSAGE_BYTES))
    return OutcomeSink(producer, settings.topic_scores, settings.topic_dlq, max_record_bytes=limit)


def fit_dead_letter(letter: DeadLetterRecord, max_bytes: int) -> DeadLetterRecord:
    """`letter` itself when its JSON fits in `max_bytes`, else the same letter with `original` cut to
    the longest prefix that fits and the cut stated in `detail`."""
    if len(letter.to_json_bytes()) <= max_bytes:
        return letter
    original = letter.original_bytes()
    note = (f" [original cut to its first {{kept}} of {len(original)} bytes: the whole record is over the "
            f"dead-letter topic's {max_bytes}-byte limit]")  # fmt: skip
    envelope = len(letter.model_copy(update={"original": "", "detail": letter.detail + note}).to_json_bytes())
    kept = max(0, (max_bytes - envelope - 32) // 4 * 3)  # 32: the digits of {kept}, JSON escapes
    while True:
        cut = letter.model_copy(update={
            "original": base64.b64encode(original[:kept]).decode("ascii"),
            "detail": letter.detail + note.format(kept=kept),
        })  # fmt: skip
        if len(cut.to_json_bytes()) <= max_bytes or kept == 0:
            return cut
        kept = max(0, kept - 1024)

"""The outcome sink: one record per outcome, and a dead letter that always fits its topic.

A dead letter carries the original value base64-encoded (+33%): an input near the input topic's
record limit makes a dead letter over the DLQ topic's limit, which the broker refuses, and a
refused write is retried forever (the partition stalls behind it). The sink cuts `original` to
fit instead, and says so in `detail`; the project's own DLQ topic is created large enough that
no cut is needed for inputs within Kafka's default limit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest

from rci.core.errors import RejectCode, RejectedEvent
from rci.core.settings import Settings
from rci.streams.contracts import DeadLetterRecord
from rci.streams.kafka import DLQ_MAX_MESSAGE_BYTES, ensure_topics
from rci.streams.pipeline import InputRecord, Outcome, dead_letter
from rci.streams.readback import read_until
from rci.streams.sink import RECORD_OVERHEAD_BYTES, OutcomeSink, fit_dead_letter, open_sink

BIG = 900_000  # under Kafka's default 1 MB record limit; its dead letter (base64) is not


class RecordingProducer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: object) -> None:
        self.records.append((topic, key, value))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def _outcome(value: bytes, key: bytes = b"vid-1", offset: int = 7) -> Outcome:
    record = InputRecord(key=key, value=value, topic="video.published", partition=0, offset=offset, timestamp_ms=0)
    return Outcome(record=record, dead_letter=dead_letter(record, RejectedEvent(RejectCode.INVALID_JSON, "not JSON")))


def test_small_dead_letters_are_written_whole() -> None:
    letter = _outcome(b"\xff not json").dead_letter
    assert fit_dead_letter(letter, 10_000) is letter


@pytest.mark.parametrize("limit", [1_000_000, 300_000, 4_000])
def test_an_oversized_dead_letter_is_cut_to_fit_and_says_so(limit: int) -> None:
    original = bytes(range(256)) * (BIG // 256)
    letter = _outcome(original).dead_letter
    cut = fit_dead_letter(letter, limit)
    value = cut.to_json_bytes()
    assert len(value) <= limit
    kept = cut.original_bytes()
    assert original.startswith(kept) and len(kept) > limit * 0.7 - 2_000  # nearly all the room is used
    assert f"original cut to its first {len(kept)} of {len(original)} bytes" in cut.detail
    assert (cut.error, cut.partition, cut.offset) == (letter.error, letter.partition, letter.offset)
    DeadLetterRecord.model_validate_json(value)  # still a valid contract record


async def test_sink_applies_its_record_limit_to_dead_letters_with_their_key() -> None:
    producer = RecordingProducer()
    sink = OutcomeSink(producer, "scores", "dlq", max_record_bytes=1_000_000)
    await sink.write([_outcome(b"x" * BIG, key=b"k" * 100), _outcome(b"small", offset=8)])
    (topic, key, big), (_, _, small) = producer.records
    assert topic == "dlq" and key == b"k" * 100
    assert len(big) + len(key) + RECORD_OVERHEAD_BYTES <= 1_000_000
    assert base64.b64decode(json.loads(small)["original"]) == b"small"


@pytest.mark.integration
def test_the_projects_dlq_topic_takes_a_whole_dead_letter_of_a_default_size_input(rci_settings: Settings) -> None:
    sink = open_sink(rci_settings)  # as the worker opens it
    assert sink.max_record_bytes == DLQ_MAX_MESSAGE_BYTES
    original = bytes(range(256)) * (BIG // 256)
    asyncio.run(sink.write([_outcome(original)]))
    [(_, key, value)] = read_until(rci_settings, [rci_settings.topic_dlq], done=lambda got: len(got) >= 1, timeout_s=60)
    assert key == b"vid-1" and DeadLetterRecord.model_validate_json(value).original_bytes() == original


@pytest.mark.integration
def test_a_default_limit_dlq_topic_gets_a_cut_dead_letter_instead_of_a_stall(rci_settings: Settings) -> None:
    topic = f"dlq-default-{uuid.uuid4().hex[:8]}"
    ensure_topics(rci_settings, partitions=1, topics=(topic,))  # not the configured DLQ: Kafka's default limit
    sink = open_sink(rci_settings.model_copy(update={"topic_dlq": topic}))
    assert sink.max_record_bytes < DLQ_MAX_MESSAGE_BYTES
    asyncio.run(sink.write([_outcome(b"y" * BIG)]))  # the broker would refuse the whole letter (SinkError)
    [(_, _, value)] = read_until(rci_settings, [topic], done=lambda got: len(got) >= 1, timeout_s=60)
    letter = DeadLetterRecord.model_validate_json(value)
    assert letter.original_bytes() == b"y" * len(letter.original_bytes()) and "original cut" in letter.detail

"""Read a topic from the beginning until a condition holds: for the demo, tests and benchmarks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import KafkaError

from rci.core.settings import Settings
from rci.streams.kafka import make_consumer


def read_until(
    settings: Settings,
    topics: list[str],
    done: Callable[[list[tuple[str, bytes | None, bytes | None]]], bool],
    timeout_s: float = 120.0,
    on_record: Callable[[str, bytes | None, bytes | None], None] | None = None,
) -> list[tuple[str, bytes | None, bytes | None]]:
    """(topic, key, value) records from the start of `topics` until done(records) or the timeout."""
    consumer = make_consumer(
        settings, f"readback-{uuid.uuid4().hex[:12]}", **{"auto.offset.reset": "earliest"}
    )
    consumer.subscribe(topics)
    records: list[tuple[str, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(records):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consume failed: {msg.error()}")
            records.append((msg.topic(), msg.key(), msg.value()))
            if on_record:
                on_record(msg.topic(), msg.key(), msg.value())
    finally:
        consumer.close()
    return records

"""Small helpers shared by tests that talk to the real broker."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, Message

from rci.core.settings import Settings
from rci.streams.kafka import make_consumer


def settings_env(settings: Settings) -> dict[str, str]:
    """RCI_* variables pointing a CLI process at the same broker and topics as `settings`."""
    return {
        "RCI_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "RCI_TOPIC_PUBLISHED": settings.topic_published,
        "RCI_TOPIC_SCORES": settings.topic_scores,
        "RCI_TOPIC_DLQ": settings.topic_dlq,
        "RCI_TOPIC_SHADOW": settings.topic_shadow,
        "RCI_DATA_DIR": str(settings.data_dir),
        "RCI_LOG_FORMAT": "json",
    }


def consume_all(settings: Settings, topic: str, expected: int, timeout_s: float = 60.0) -> list[Message]:
    """Read `topic` from the beginning until `expected` records came (or the timeout: then fewer)."""
    consumer = make_consumer(settings, group=f"test-readback-{topic}-{time.monotonic_ns()}")
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=500, timeout=0.5)
            for message in batch:
                if message.error() and message.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consume error: {message.error()}")
                if not message.error():
                    messages.append(message)
    finally:
        consumer.close()
    return messages

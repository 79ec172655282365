"""Writes a batch's outcomes to `rci.scores` / `video.published.dlq` and waits for the broker's ack.

The worker commits input offsets only after `write` returns, so a crash before that point
re-delivers the batch (at least once) and nothing is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from rci.errors import TransientError
from streams.pipeline import Outcome


class SinkError(TransientError):
    """The broker did not acknowledge every output record (retry the batch)."""


class Producer(Protocol):
    """The part of confluent_kafka.Producer the sink uses."""

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: object) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


class OutcomeSink:
    def __init__(self, producer: Producer, scores_topic: str, dlq_topic: str, flush_timeout_s: float = 30.0) -> None:
        self._producer = producer
        self._scores_topic = scores_topic
        self._dlq_topic = dlq_topic
        self._flush_timeout_s = flush_timeout_s

    async def write(self, outcomes: Sequence[Outcome]) -> None:
        """Produce one record per outcome, keyed like its input; return once all are acknowledged."""
        await asyncio.get_running_loop().run_in_executor(None, self._write_blocking, list(outcomes))

    def _write_blocking(self, outcomes: list[Outcome]) -> None:
        failures: list[str] = []

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                failures.append(str(err))

        for outcome in outcomes:
            topic, key, value = self._route(outcome)
            self._produce(topic, value, key, on_delivery)
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining or failures:
            raise SinkError(f"{remaining} records unacknowledged, {len(failures)} failed: {failures[:3]}")

    def _route(self, outcome: Outcome) -> tuple[str, bytes, bytes | None]:
        """Scores are keyed by video_id (CONTRACT.md); dead letters keep the original key."""
        if outcome.score is not None:
            return self._scores_topic, outcome.score.video_id.encode("utf-8"), outcome.score.to_json_bytes()
        return self._dlq_topic, outcome.record.key, outcome.dead_letter.to_json_bytes()

    def _produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: object) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain, then retry

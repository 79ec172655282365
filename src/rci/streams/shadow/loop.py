"""The shadow's consumer loop: poll a batch of `rci.scores`, hand it to the runner, commit after its
records were acknowledged (what faust does for the worker in `rci.streams.worker`)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from rci.core.logs import get_logger
from rci.streams.retry import retry_transient
from rci.streams.shadow.runner import ShadowRunner

log = get_logger(__name__)

POLL_TIMEOUT_S = 0.5


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

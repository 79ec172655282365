"""Is the worker making progress on the partitions it owns? Readiness for a worker stuck with no batch in flight.

A batch that retries or hangs turns `/ready` to 503 on its own (rci.streams.worker.BatchRunner). A worker can
also be stuck between batches: faust's fetcher stopped, the agent gone, a partition it owns never handed out.
Then nothing is in flight and nothing looks wrong from inside; what shows it is the group's committed offset
on an owned partition that has records waiting and has not moved for RCI_READY_STALL_S.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from rci.core.logs import get_logger
from rci.core.settings import Settings

log = get_logger(__name__)
Offsets = dict[int, tuple[int, int]]  # partition -> (committed offset, end offset)
LAGGING = "lagging"  # the readiness trouble this module raises


@dataclass
class PartitionProgress:
    """Which owned partitions have records waiting and a committed offset unchanged for `stall_s`."""

    stall_s: float
    _unchanged_since: dict[int, tuple[int, float]] = field(default_factory=dict)  # partition -> (committed, since)

    def observe(self, now: float, offsets: Offsets) -> set[int]:
        """`offsets` of the partitions owned now; -> the stuck ones. A partition with no commit yet (a new
        group) cannot be judged and is never stuck; one caught up to its end never is either."""
        stuck = set()
        for partition, (committed, end) in offsets.items():
            seen = self._unchanged_since.get(partition)
            if seen is None or seen[0] != committed or committed < 0 or committed >= end:
                self._unchanged_since[partition] = (committed, now)
            elif now - seen[1] >= self.stall_s:
                stuck.add(partition)
        for partition in set(self._unchanged_since) - set(offsets):  # given away in a rebalance
            del self._unchanged_since[partition]
        return stuck


class GroupOffsets:
    """The worker group's committed offsets and the end offsets of video.published, read with a consumer of
    the same group id that never subscribes (so it never joins the group or takes partitions)."""

    def __init__(self, settings: Settings, make_consumer: Callable[[Settings, str], Consumer]) -> None:
        self._topic = settings.topic_published
        self._consumer = make_consumer(settings, settings.worker_group)

    def partitions(self, timeout_s: float = 30.0) -> list[int]:
        """Every partition of the topic, from the cluster's metadata."""
        return sorted(self._consumer.list_topics(self._topic, timeout=timeout_s).topics[self._topic].partitions)

    def read(self, partitions: Collection[int], timeout_s: float = 5.0) -> Offsets:
        """Blocking; raises KafkaException when the broker does not answer in time."""
        owned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        committed = self._consumer.committed(owned, timeout=timeout_s)
        ends = [self._consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)[1] for tp in owned]
        return {tp.partition: (tp.offset, end) for tp, end in zip(committed, ends, strict=True)}

    def close(self) -> None:
        self._consumer.close()


async def check_progress(
    progress: PartitionProgress, offsets: GroupOffsets, owned: Collection[int], now: float,
    mark_trouble: Callable[[str, bool], None],
) -> set[int]:  # fmt: skip
    """One check: read the offsets off the event loop, mark the worker not ready while a partition is stuck.
    A broker that does not answer changes nothing here: an outage has its own signals (retries, alerts)."""
    if not owned:
        mark_trouble(LAGGING, False)
        return set()
    try:
        read = await asyncio.to_thread(offsets.read, owned)
    except KafkaException as exc:
        log.debug("partition progress unknown", error=str(exc))
        return set()
    stuck = progress.observe(now, read)
    if stuck:
        log.warning("owned partitions without progress", partitions=sorted(stuck), stall_s=progress.stall_s)
    mark_trouble(LAGGING, bool(stuck))
    return stuck

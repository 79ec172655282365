"""Readiness for a worker stuck between batches: an owned partition with records waiting whose committed
offset does not move for RCI_READY_STALL_S (rci.streams.progress)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException, TopicPartition

from rci.core.settings import Settings
from rci.streams.kafka import make_consumer, make_producer
from rci.streams.progress import LAGGING, GroupOffsets, PartitionProgress, check_progress


def test_a_partition_is_stuck_after_stall_s_with_records_waiting_and_no_commit() -> None:
    progress = PartitionProgress(stall_s=10)
    assert progress.observe(0, {0: (5, 9), 1: (3, 3)}) == set()
    assert progress.observe(9, {0: (5, 9), 1: (3, 3)}) == set()
    assert progress.observe(10, {0: (5, 9), 1: (3, 3)}) == {0}  # 10 s without a commit, 4 records waiting
    assert progress.observe(11, {0: (6, 9), 1: (3, 3)}) == set()  # the commit moved: the clock restarts
    assert progress.observe(20, {0: (6, 9), 1: (3, 3)}) == set()
    assert progress.observe(21, {0: (6, 9), 1: (3, 3)}) == {0}


def test_caught_up_uncommitted_and_given_away_partitions_are_never_stuck() -> None:
    progress = PartitionProgress(stall_s=10)
    progress.observe(0, {0: (9, 9), 1: (-1001, 50), 2: (4, 8)})
    assert progress.observe(30, {0: (9, 9), 1: (-1001, 50), 2: (4, 8)}) == {2}
    assert progress.observe(31, {0: (9, 9), 1: (-1001, 50)}) == set()  # partition 2 went to another worker
    assert progress.observe(50, {0: (9, 9), 1: (-1001, 50), 2: (4, 8)}) == set()  # back: its clock starts again


class FakeOffsets:
    """The broker boundary: offsets as given, or the error a broker that does not answer raises."""

    def __init__(self, offsets: dict[int, tuple[int, int]] | None) -> None:
        self.offsets = offsets

    def read(self, partitions: object) -> dict[int, tuple[int, int]]:
        if self.offsets is None:
            raise KafkaException("timed out")
        return {p: self.offsets[p] for p in partitions}


async def test_check_progress_marks_the_worker_not_ready_while_stuck_and_ready_again_after() -> None:
    marks: list[tuple[str, bool]] = []
    progress = PartitionProgress(stall_s=10)
    offsets = FakeOffsets({0: (5, 9)})
    mark = lambda trouble, present: marks.append((trouble, present))  # noqa: E731
    assert await check_progress(progress, offsets, {0}, 0, mark) == set()
    assert await check_progress(progress, offsets, {0}, 12, mark) == {0}
    offsets.offsets = None  # the broker does not answer: nothing changes
    assert await check_progress(progress, offsets, {0}, 13, mark) == set()
    offsets.offsets = {0: (9, 9)}
    assert await check_progress(progress, offsets, {0}, 14, mark) == set()
    assert await check_progress(progress, offsets, set(), 15, mark) == set()  # owns nothing: nothing to lag
    assert marks == [(LAGGING, False), (LAGGING, True), (LAGGING, False), (LAGGING, False)]


@pytest.mark.integration
def test_group_offsets_reads_the_groups_commits_without_joining_it(rci_settings: Settings) -> None:
    settings = rci_settings
    producer = make_producer(settings)
    for i in range(3):
        producer.produce(settings.topic_published, key=b"k", value=b"v%d" % i, partition=0)
    assert producer.flush(20) == 0
    member = make_consumer(settings, settings.worker_group)  # the group commits offset 1 on partition 0
    member.commit(offsets=[TopicPartition(settings.topic_published, 0, 1)], asynchronous=False)
    member.close()
    offsets = GroupOffsets(settings, make_consumer)
    try:
        read = offsets.read({0, 1})
    finally:
        offsets.close()
    assert read[0] == (1, 3)
    assert read[1][1] == 0 and read[1][0] < 0  # nothing there, nothing committed

"""Durable counting of the records in flight when a worker process died (rci.streams.crashes), on the
local object store; a death is simulated by a BaseException that nothing in the worker catches, and a
restart by a new BatchRunner (fresh memory) over the same store and the same re-delivered records."""

from __future__ import annotations

import pytest

from rci.core.errors import RejectCode
from rci.storage.objects import LocalObjectStore
from rci.streams.crashes import CrashLedger
from rci.streams.metrics import WorkerMetrics
from rci.streams.pipeline import ScoringPipeline
from rci.streams.worker import BatchRunner
from tests.streams.test_pipeline import CosineScorer, ExactIndex, MemoryFeatures, ModelInfo, event_record, make_features
from tests.streams.test_worker import MemorySink


class ProcessDied(BaseException):
    """What a segfault or an OOM kill is to the batch: nothing catches it, nothing after it runs."""


class Killer(MemoryFeatures):
    def __init__(self, table, deadly: str) -> None:
        super().__init__(table)
        self.deadly = deadly

    async def features_for(self, event):
        if event.video_id == self.deadly:
            raise ProcessDied(event.video_id)
        return await super().features_for(event)


async def test_the_ledger_counts_a_death_only_against_the_records_being_processed(tmp_path):
    ledger = CrashLedger(LocalObjectStore(tmp_path), "rci-worker")
    a, b, c = (event_record(v, offset, second=offset) for offset, v in enumerate("abc"))
    assert await ledger.crashes([a, b, c]) == [0, 0, 0]
    await ledger.begin([(a, 0), (b, 2)], waiting=[(c, 1)])  # then the process dies
    assert await ledger.crashes([a, b, c]) == [1, 3, 1]
    await ledger.end([a, b, c])
    assert await ledger.crashes([a, b, c]) == [0, 0, 0]
    (tmp_path / ledger.key(("video.published", 0))).write_text("{not json")  # a torn marker says nothing
    assert await ledger.crashes([a]) == [0]


async def test_a_record_that_kills_the_process_is_dead_lettered_after_max_crashes_and_the_rest_scored(tmp_path):
    ids = ["a", "x", "c"]
    table = {vid: make_features(vid, i) for i, vid in enumerate(ids)}
    records = [event_record(vid, offset, second=offset) for offset, vid in enumerate(ids)]
    store, sink, deaths = LocalObjectStore(tmp_path), MemorySink(), 0
    while True:  # the broker re-delivers the un-acked batch to each restarted worker
        metrics = WorkerMetrics()
        pipeline = ScoringPipeline(Killer(table, deadly="x"), ExactIndex(), CosineScorer(), ModelInfo("m1", 0.9), metrics)
        runner = BatchRunner(pipeline, sink, metrics, poison_max_attempts=3, poison_retry_delay_s=0,
                             crash_ledger=CrashLedger(store, "rci-worker"))
        try:
            outcomes = await runner.handle(records)
            break
        except ProcessDied:
            deaths += 1
            assert deaths <= 3, "without a durable count the worker dies on this record forever"
    assert deaths == 3
    assert [o.score.video_id if o.score else o.dead_letter.error for o in outcomes] == ["a", RejectCode.INTERNAL_ERROR, "c"]
    assert "died 3 times" in outcomes[1].dead_letter.detail
    assert {o.score.video_id for o in sink.written if o.score} == {"a", "c"}  # "c" only once it was tried alone
    assert await CrashLedger(store, "rci-worker").crashes(records) == [0, 0, 0]  # the batch is done: no marker


@pytest.mark.parametrize("ledger", [False, True])
async def test_a_batch_without_deaths_is_scored_once_with_or_without_the_ledger(tmp_path, ledger):
    ids = ["a", "b"]
    table = {vid: make_features(vid, i) for i, vid in enumerate(ids)}
    metrics, sink = WorkerMetrics(), MemorySink()
    pipeline = ScoringPipeline(MemoryFeatures(table), ExactIndex(), CosineScorer(), ModelInfo("m1", 0.9), metrics)
    runner = BatchRunner(pipeline, sink, metrics,
                         crash_ledger=CrashLedger(LocalObjectStore(tmp_path), "g") if ledger else None)
    outcomes = await runner.handle([event_record(v, i, second=i) for i, v in enumerate(ids)])
    assert [o.score.video_id for o in outcomes] == ids and len(sink.written) == 2

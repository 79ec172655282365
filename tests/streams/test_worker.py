"""The worker's BatchRunner with the real ScoringPipeline on in-memory parts (no broker): a record whose
scoring raises something unexpected is dead-lettered as internal_error, the rest of its batch is scored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rci.core.errors import RejectCode, TransientError
from rci.streams.metrics import WorkerMetrics
from rci.streams.pipeline import Outcome, ScoringPipeline
from rci.streams.worker import BatchRunner
from tests.streams.test_pipeline import CosineScorer, ExactIndex, MemoryFeatures, ModelInfo, event_record, make_features


class MemorySink:
    def __init__(self) -> None:
        self.written: list[Outcome] = []

    async def write(self, outcomes: Sequence[Outcome]) -> None:
        self.written.extend(outcomes)


class FlakyFeatures(MemoryFeatures):
    """Raises `failures[video_id]`'s errors one per call, then serves the features."""

    def __init__(self, table, failures: dict[str, list[Exception]]) -> None:
        super().__init__(table)
        self.failures = failures
        self.calls: dict[str, int] = {}

    async def features_for(self, event):
        self.calls[event.video_id] = self.calls.get(event.video_id, 0) + 1
        pending = self.failures.get(event.video_id)
        if pending:
            raise pending.pop(0)
        return await super().features_for(event)


def runner(features: MemoryFeatures, attempts: int = 3) -> tuple[BatchRunner, MemorySink, WorkerMetrics]:
    metrics, sink = WorkerMetrics(), MemorySink()
    pipeline = ScoringPipeline(features, ExactIndex(), CosineScorer(), ModelInfo("m1", 0.9), metrics)
    return BatchRunner(pipeline, sink, metrics, poison_max_attempts=attempts, poison_retry_delay_s=0), sink, metrics


async def test_an_unexpected_error_on_one_record_dead_letters_it_and_scores_the_rest():
    ids = [f"v{i}" for i in range(6)]
    table = {vid: make_features(vid, i) for i, vid in enumerate(ids)}
    table["v3"] = OverflowError("date value out of range")  # e.g. a time that overflows a conversion
    features = MemoryFeatures(table)
    run, sink, metrics = runner(features, attempts=3)
    records = [event_record(vid, offset, second=offset) for offset, vid in enumerate(ids)]

    outcomes = await run.handle(records)  # before isolation: OverflowError escaped, the worker exited 70

    assert [o.record.offset for o in outcomes] == list(range(6)) and sink.written == outcomes
    assert [o.score is not None for o in outcomes] == [True, True, True, False, True, True]
    letter = outcomes[3].dead_letter
    assert letter.error == RejectCode.INTERNAL_ERROR
    assert letter.detail == "failed 3 times on its own: OverflowError: date value out of range"
    assert (letter.partition, letter.offset) == (0, 3)
    assert metrics.poison_records.labels("OverflowError")._value.get() == 1
    assert metrics.dead_letters.labels("internal_error")._value.get() == 1
    assert outcomes[4].score.video_id == "v4"


async def test_a_transient_error_still_retries_the_whole_batch_and_dead_letters_nothing():
    ids = ["a", "b", "c"]
    table = {vid: make_features(vid, i) for i, vid in enumerate(ids)}
    features = FlakyFeatures(table, {"b": [TransientError("object store unreachable")] * 2})
    run, sink, metrics = runner(features)

    outcomes = await run.handle([event_record(vid, offset, second=offset) for offset, vid in enumerate(ids)])

    assert all(o.score is not None for o in outcomes)
    assert metrics.retries._value.get() == 2
    assert features.calls["b"] == 3  # tried with its batch each time, never alone
    assert len(run.isolator.ledger) == 0


class ReadinessProbe(FlakyFeatures):
    """FlakyFeatures that notes /ready's answer at each call, after `delay_s` of work."""

    def __init__(self, table, failures, metrics: WorkerMetrics, delay_s: float = 0.0) -> None:
        super().__init__(table, failures)
        self.metrics, self.delay_s = metrics, delay_s
        self.seen: list[bool] = []

    async def features_for(self, event):
        await asyncio.sleep(self.delay_s)
        self.seen.append(self.metrics.is_ready)
        return await super().features_for(event)


def ready_runner(failures: dict, delay_s: float = 0.0, stall_s: float = 60.0):
    metrics = WorkerMetrics()
    metrics.mark_ready(condition="serving")
    metrics.mark_ready(condition="joined")
    features = ReadinessProbe({"a": make_features("a", 1)}, failures, metrics, delay_s)
    pipeline = ScoringPipeline(features, ExactIndex(), CosineScorer(), ModelInfo("m1", 0.9), metrics)
    return BatchRunner(pipeline, MemorySink(), metrics, poison_retry_delay_s=0, stall_s=stall_s), features, metrics


async def test_not_ready_while_a_batch_retries_an_outage_and_ready_again_once_it_is_scored():
    run, features, metrics = ready_runner({"a": [TransientError("object store unreachable")] * 2})
    [outcome] = await run.handle([event_record("a", 0, second=0)])
    assert outcome.score is not None
    assert features.seen == [True, False, False]  # the first try, then the two retries
    assert metrics.is_ready and metrics.ready._value.get() == 1


async def test_not_ready_while_one_batch_takes_longer_than_the_stall_bound():
    run, features, metrics = ready_runner({}, delay_s=0.3, stall_s=0.1)  # e.g. a decode that hangs
    [outcome] = await run.handle([event_record("a", 0, second=0)])
    assert outcome.score is not None and features.seen == [False]
    assert metrics.is_ready
    quick, features, _ = ready_runner({}, delay_s=0.0, stall_s=0.1)
    await quick.handle([event_record("a", 0, second=0)])
    assert features.seen == [True]


class BrokenIndex(ExactIndex):
    """Indexing any batch holding `bad` raises, as a value a store cannot take would."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad

    async def add(self, items):
        if any(event.video_id == self.bad for event, _ in items):
            raise ValueError("value out of range for the store")
        await super().add(items)


async def test_a_video_that_cannot_be_indexed_stays_scored_and_the_rest_are_indexed():
    ids = ["a", "b", "c", "d"]
    table = {vid: make_features(vid, i) for i, vid in enumerate(ids)}
    metrics, sink, index = WorkerMetrics(), MemorySink(), BrokenIndex("c")
    pipeline = ScoringPipeline(MemoryFeatures(table), index, CosineScorer(), ModelInfo("m1", 0.9), metrics)
    run = BatchRunner(pipeline, sink, metrics, poison_max_attempts=2, poison_retry_delay_s=0)

    outcomes = await run.handle([event_record(vid, offset, second=offset) for offset, vid in enumerate(ids)])

    assert [o.score.video_id for o in outcomes] == ids and sink.written == outcomes  # before: ValueError, exit 70
    assert sorted(index.rows) == ["a", "b", "d"]
    assert metrics.index_failures.labels("ValueError")._value.get() == 1

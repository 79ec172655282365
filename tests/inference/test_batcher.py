"""The asyncio micro-batcher: batching, per-request results and failures, shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from rci.inference.batcher import BatcherClosed, MicroBatcher
from rci.inference.onnx_export import export_onnx
from rci.inference.runtime import InvalidFeatures, OnnxPairScorer, Pair, PairScore
from tests.inference.matchlite_fakes import make_features, small_model


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    path = export_onnx(small_model(seed=8), tmp_path_factory.mktemp("batcher") / "m.onnx")
    return OnnxPairScorer(path, device="cpu", intra_op_threads=1)


class RecordingScorer:
    """Wraps a real scorer: records batch sizes and threads, can fail whole batches (a fake boundary)."""

    def __init__(self, inner: OnnxPairScorer, poison: str | None = None) -> None:
        self.inner = inner
        self.config, self.model_version, self.threshold = inner.config, inner.model_version, inner.threshold
        self.poison = poison  # video_id whose presence makes score_batch raise
        self.batch_sizes: list[int] = []
        self.threads: set[int] = set()

    def check_pair(self, query, candidate) -> None:
        self.inner.check_pair(query, candidate)

    def score_batch(self, pairs: Sequence[Pair]) -> list[PairScore]:
        self.threads.add(threading.get_ident())
        self.batch_sizes.append(len(pairs))
        if any(q.video_id == self.poison for q, _ in pairs):
            raise RuntimeError(f"model blew up on {self.poison}")
        return self.inner.score_batch(pairs)


def random_pairs(n: int) -> list[Pair]:
    rng = np.random.default_rng(0)
    pairs = []
    for k in range(n):
        query = make_features(f"q{k}", k, frames=int(rng.integers(1, 33)), tokens=int(rng.integers(0, 65)),
                              audio=bool(k % 3))  # fmt: skip
        candidate = query if k % 7 == 0 else make_features(f"c{k}", 1000 + k, frames=int(rng.integers(1, 33)))
        pairs.append((query, candidate))
    return pairs


async def test_200_concurrent_requests_match_scoring_each_alone(scorer):
    pairs = random_pairs(200)
    recording = RecordingScorer(scorer)
    async with MicroBatcher(recording, max_batch_size=32, max_wait_ms=20) as batcher:
        results = await asyncio.gather(*(batcher.score(q, c) for q, c in pairs))
    alone = [scorer.score_batch([p])[0] for p in pairs]
    np.testing.assert_allclose([r.score for r in results], [a.score for a in alone], atol=1e-5, rtol=0)
    assert [r.matched_segments for r in results] == [a.matched_segments for a in alone]
    assert max(recording.batch_sizes) > 1 and len(recording.batch_sizes) < 200  # it did batch
    assert max(recording.batch_sizes) <= 32 and sum(recording.batch_sizes) == 200
    assert threading.get_ident() not in recording.threads  # the model ran off the event loop


async def test_invalid_request_fails_alone_before_batching(scorer):
    recording = RecordingScorer(scorer)
    pairs = random_pairs(6)
    bad = replace(pairs[2][0], visual=np.full_like(pairs[2][0].visual, np.nan))
    pairs[2] = (bad, pairs[2][1])
    async with MicroBatcher(recording, max_batch_size=8, max_wait_ms=20) as batcher:
        results = await asyncio.gather(*(batcher.score(q, c) for q, c in pairs), return_exceptions=True)
    assert isinstance(results[2], InvalidFeatures)
    assert all(isinstance(r, PairScore) for i, r in enumerate(results) if i != 2)
    assert sum(recording.batch_sizes) == 5  # the bad request never reached the model


async def test_failing_batch_falls_back_to_single_requests(scorer):
    recording = RecordingScorer(scorer, poison="q3")
    pairs = random_pairs(8)
    async with MicroBatcher(recording, max_batch_size=8, max_wait_ms=50) as batcher:
        results = await asyncio.gather(*(batcher.score(q, c) for q, c in pairs), return_exceptions=True)
    assert isinstance(results[3], RuntimeError) and "q3" in str(results[3])
    good = [(i, r) for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, PairScore) for _, r in good)
    expected = [scorer.score_batch([pairs[i]])[0].score for i, _ in good]
    np.testing.assert_allclose([r.score for _, r in good], expected, atol=1e-5)
    assert recording.batch_sizes[0] == 8 and recording.batch_sizes[1:] == [1] * 8  # batch, then one by one


async def test_lone_request_is_sent_after_max_wait(scorer):
    recording = RecordingScorer(scorer)
    async with MicroBatcher(recording, max_batch_size=64, max_wait_ms=5) as batcher:
        result = await asyncio.wait_for(batcher.score(*random_pairs(1)[0]), timeout=10)
    assert 0.0 <= result.score <= 1.0 and recording.batch_sizes == [1]


async def test_aclose_drains_pending_requests_and_refuses_new_ones(scorer):
    batcher = MicroBatcher(RecordingScorer(scorer), max_batch_size=4, max_wait_ms=1000)
    tasks = [asyncio.create_task(batcher.score(q, c)) for q, c in random_pairs(10)]
    await asyncio.sleep(0)  # let every request reach the queue
    await batcher.aclose()
    assert all(t.done() and isinstance(t.result(), PairScore) for t in tasks)
    assert batcher.requests_scored == 10
    with pytest.raises(BatcherClosed):
        await batcher.score(*random_pairs(1)[0])
    await batcher.aclose()  # idempotent


async def test_cancelled_caller_does_not_disturb_the_others(scorer):
    async with MicroBatcher(RecordingScorer(scorer), max_batch_size=8, max_wait_ms=30) as batcher:
        pairs = random_pairs(4)
        tasks = [asyncio.create_task(batcher.score(q, c)) for q, c in pairs]
        await asyncio.sleep(0)
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert all(isinstance(done[i], PairScore) for i in (0, 2, 3))


def test_invalid_settings_are_refused(scorer):
    with pytest.raises(ValueError):
        MicroBatcher(scorer, max_batch_size=0)

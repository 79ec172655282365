"""Asyncio micro-batcher: many coroutines score single pairs, the model sees batches.

    async with MicroBatcher(scorer, max_batch_size=16, max_wait_ms=50) as batcher:
        result = await batcher.score(query, candidate)   # PairScore

A batch closes when it has `max_batch_size` requests or `max_wait_ms` after its first request
arrived, whichever comes first. `scorer.score_batch` runs in a thread executor so the event loop
keeps serving. Failure isolation: each request is validated before it joins a batch (a bad one
fails at once, alone); if a batch still raises, its requests are re-scored one by one so only
the offending one gets the exception. `aclose()` stops intake and drains what is queued.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

from rci.inference.features import VideoFeatures
from rci.inference.runtime import PairScore, PairScorer
from rci.core.errors import RCIError
from rci.core.logs import get_logger

log = get_logger(__name__)


class BatcherClosed(RCIError):
    """score() was called after aclose()."""


@dataclass
class _Request:
    query: VideoFeatures
    candidate: VideoFeatures
    future: asyncio.Future[PairScore]
    enqueued: float = field(default_factory=time.perf_counter)


_STOP = object()  # queue sentinel put by aclose()


class MicroBatcher:
    def __init__(
        self,
        scorer: PairScorer,
        max_batch_size: int = 16,
        max_wait_ms: float = 50.0,
        executor: Executor | None = None,
    ) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_ms >= 0")
        self._scorer = scorer
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_ms / 1000.0
        # One worker thread by default: batches run one after another on the model.
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="matchlite")
        self._queue: asyncio.Queue[_Request | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches_run = 0  # counters for metrics and tests
        self.requests_scored = 0

    @property
    def scorer(self) -> PairScorer:
        return self._scorer

    async def __aenter__(self) -> MicroBatcher:
        self._ensure_started()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _ensure_started(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="matchlite-batcher")

    async def score(self, query: VideoFeatures, candidate: VideoFeatures) -> PairScore:
        """Score one pair; raises InvalidFeatures for this request only."""
        if self._closed:
            raise BatcherClosed("micro-batcher is closed")
        self._scorer.check_pair(query, candidate)  # a bad request fails here, before any batch
        self._ensure_started()
        future: asyncio.Future[PairScore] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(query, candidate, future))
        return await future

    async def aclose(self) -> None:
        """Refuse new requests, finish every queued one, stop the worker (idempotent)."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_STOP)
        if self._task is not None:
            await self._task
        if self._own_executor:
            self._executor.shutdown(wait=True)

    # --- worker ------------------------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                break
            batch, stopping = await self._collect(first)
            await self._score(batch)
        # requests queued after the sentinel cannot exist (score() refuses once closed)

    async def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        """Fill a batch from the queue until it is full or the first request's wait is over."""
        batch = [first]
        deadline = first.enqueued + self._max_wait_s
        while len(batch) < self._max_batch_size:
            timeout = deadline - time.perf_counter()
            try:
                item = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    async def _score(self, batch: list[_Request]) -> None:
        live = [r for r in batch if not r.future.done()]  # skip callers that were cancelled
        if not live:
            return
        loop = asyncio.get_running_loop()
        pairs = [(r.query, r.candidate) for r in live]
        try:
            results = await loop.run_in_executor(self._executor, self._scorer.score_batch, pairs)
        except Exception as exc:
            if len(live) == 1:
                _settle(live[0], exc=exc)
                return
            log.warning("batch failed, scoring its requests one by one", size=len(live), error=repr(exc))
            await self._score_alone(live)
            return
        self.batches_run += 1
        self.requests_scored += len(live)
        for request, result in zip(live, results, strict=True):
            _settle(request, result=result)

    async def _score_alone(self, requests: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        for request in requests:
            try:
                [result] = await loop.run_in_executor(
                    self._executor, self._scorer.score_batch, [(request.query, request.candidate)]
                )
            except Exception as exc:
                _settle(request, exc=exc)
            else:
                self.batches_run += 1
                self.requests_scored += 1
                _settle(request, result=result)


def _settle(request: _Request, result: PairScore | None = None, exc: BaseException | None = None) -> None:
    if request.future.done():  # the caller gave up (cancelled) meanwhile
        return
    if exc is not None:
        request.future.set_exception(exc)
    else:
        request.future.set_result(result)

"""`rci worker`: the faust-streaming app that turns `video.published` into `rci.scores`.

The agent only iterates micro-batches and hands them to `BatchRunner`; all scoring logic is
in `rci.streams.pipeline`, testable without a broker.

Delivery guarantees:
* faust acks a batch's events when the agent asks for the next batch, i.e. after
  `BatchRunner.handle` returned: outputs written and acknowledged by the broker, videos
  indexed. faust then commits acked offsets, so a crash (even kill -9) re-delivers at most
  the batches in flight: at least once.
* infrastructure failures (TransientError) are retried with backoff inside `handle`; the
  batch is never acked while they last.
* any other exception raised while scoring is isolated (rci.streams.isolation): the batch is
  split until the failing record is alone; a record that fails alone RCI_POISON_MAX_ATTEMPTS
  times is dead-lettered with code `internal_error`, the rest of the batch is scored. Indexing,
  after the outputs are written, is isolated the same way: a video whose indexing fails alone that
  many times stays scored but unindexed (logged, `rci_index_failures`), so later videos cannot
  match it; the batch is not re-delivered for it (that would write its scores again, forever). An
  unexpected exception while writing still exits the process without acking, so the records are
  re-delivered to the restarted worker.
* a record that kills the process itself (no exception to isolate) is counted durably
  (rci.streams.crashes): once it was being processed at RCI_POISON_MAX_ATTEMPTS deaths it is
  dead-lettered `internal_error` unprocessed; the others of its batch are scored.
* SIGTERM or SIGINT while a batch is in flight: the batch finishes (outputs written), then the
  worker stops; no new batch is started. If it has not finished within RCI_WORKER_DRAIN_TIMEOUT_S
  (e.g. it is retrying an outage), or the agent is cancelled while a batch is in flight for any
  other reason, the process exits at once with EXIT_INTERRUPTED and commits nothing more: faust's
  `take_events` acknowledges the batch it handed out in a `finally`, so letting faust's shutdown run
  would commit records that were never scored. They are re-delivered to the next worker.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn, TypeVar

import faust
from faust.exceptions import ConsumerNotStarted

from rci.core.errors import ConfigError, ModelError, RejectCode, RejectedEvent, TransientError
from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.streams.crashes import CrashLedger
from rci.streams.isolation import PoisonIsolator, describe_exception
from rci.streams.metrics import WorkerMetrics
from rci.streams.pipeline import InputRecord, Outcome, ScoringPipeline, dead_letter
from rci.streams.progress import GroupOffsets, PartitionProgress, check_progress
from rci.streams.retry import retry_transient
from rci.streams.sink import OutcomeSink

log = get_logger(__name__)
T = TypeVar("T")
EXIT_BUG = 70  # EX_SOFTWARE: unexpected error, records left un-acked for the restarted worker
EXIT_CONFIG = 2  # as for invalid settings (rci.cli.context): fix the configuration, restarting will not help
MIN_SHUTDOWN_S = 5.0  # faust's own stop (commit, leave the group) gets at least this after a drained batch
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped with a batch unfinished, left un-acked for the next worker
POISON_RETRY_DELAY_S = 0.2  # before a lone record's 2nd try, doubling after


def record_identity(record: InputRecord) -> tuple[str, int, int]:
    """What a record's unexpected failures are counted by: where it sits in the log."""
    return (record.topic, record.partition, record.offset)


def internal_error(record: InputRecord, exc: Exception, attempts: int) -> Outcome:
    """The dead letter of a record whose processing kept raising something unexpected (CONTRACT.md)."""
    return _internal_error_letter(record, f"failed {attempts} times on its own: {describe_exception(exc)[:1500]}")


def crashed(record: InputRecord, crashes: int) -> Outcome:
    """The dead letter of a record that was being processed each of `crashes` times a worker process died."""
    detail = (f"a worker process died {crashes} times while processing this record on its own or in its batch "
              "(a crash or a kill, not an exception: see the workers' logs and exit codes)")
    log.error("record took the worker down repeatedly: dead-lettering it unprocessed", partition=record.partition,
              offset=record.offset, crashes=crashes)  # fmt: skip
    return _internal_error_letter(record, detail)


def _internal_error_letter(record: InputRecord, detail: str) -> Outcome:
    return Outcome(record=record, dead_letter=dead_letter(record, RejectedEvent(RejectCode.INTERNAL_ERROR, detail)))


def not_indexed(outcome: Outcome, exc: Exception, attempts: int) -> bool:
    """A scored video whose indexing failed alone `attempts` times: left out of the index, said loudly."""
    log.error("scored but not indexed: later videos cannot match it", video_id=outcome.score and outcome.score.video_id,
              partition=outcome.record.partition, offset=outcome.record.offset, attempts=attempts,
              error=describe_exception(exc))  # fmt: skip
    return False


class BatchRunner:
    """One micro-batch: score -> write and wait for acks -> index. Retries transient failures,
    isolates records whose scoring raises anything else."""

    def __init__(
        self,
        pipeline: ScoringPipeline,
        sink: OutcomeSink,
        metrics: WorkerMetrics,
        poison_max_attempts: int = 3,
        poison_retry_delay_s: float = POISON_RETRY_DELAY_S,
        stall_s: float = 120.0,
        crash_ledger: CrashLedger | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.metrics = metrics
        self.stall_s = stall_s  # RCI_READY_STALL_S
        self.crash_ledger = crash_ledger  # durable: records in flight when a process died (rci.streams.crashes)
        self.max_crashes = poison_max_attempts
        self.in_flight = False
        self.isolator: PoisonIsolator[InputRecord, Outcome] = PoisonIsolator(
            key=record_identity,
            poisoned=internal_error,
            max_attempts=poison_max_attempts,
            retry_delay_s=poison_retry_delay_s,
            on_poison=lambda _record, exc: metrics.poison_records.labels(type(exc).__name__).inc(),
        )
        self.index_isolator: PoisonIsolator[Outcome, bool] = PoisonIsolator(
            key=lambda outcome: record_identity(outcome.record),
            poisoned=not_indexed,
            max_attempts=poison_max_attempts,
            retry_delay_s=poison_retry_delay_s,
            on_poison=lambda _outcome, exc: metrics.index_failures.labels(type(exc).__name__).inc(),
        )

    async def handle(self, records: Sequence[InputRecord]) -> list[Outcome]:
        """Not ready (/ready 503) from the first transient retry, or once the batch has taken `stall_s`,
        until it is done: stuck is not ready, though the process stays up and keeps trying."""
        self.in_flight = True
        stall = asyncio.get_running_loop().call_later(self.stall_s, self.metrics.mark_trouble, "stalled")
        try:
            self.metrics.events_in.inc(len(records))
            self.metrics.batch_size.observe(len(records))

            if self.crash_ledger is None:
                return await self._process(records)
            return await self._process_watching_crashes(records, self.crash_ledger)
        finally:
            self.in_flight = False
            stall.cancel()
            self.metrics.mark_trouble("retrying", False)
            self.metrics.mark_trouble("stalled", False)

    async def _process_watching_crashes(self, records: Sequence[InputRecord], ledger: CrashLedger) -> list[Outcome]:
        """`_process` with the records' process deaths counted durably (rci.streams.crashes): a record in
        flight at `max_crashes` deaths is dead-lettered unprocessed, one in flight at fewer is processed alone."""
        crashes = await self._retried(lambda: ledger.crashes(records), "crash ledger")
        done: dict[tuple[str, int, int], Outcome] = {}
        doomed = [(r, c) for r, c in zip(records, crashes, strict=True) if c >= self.max_crashes]
        if doomed:  # no further try: they took the process down with them every time
            for outcome in await self._write_and_count([crashed(r, c) for r, c in doomed]):
                done[record_identity(outcome.record)] = outcome
        live = [(r, c) for r, c in zip(records, crashes, strict=True) if c < self.max_crashes]
        # the never-suspected together, then each suspect alone: a death now names one record
        groups = [g for g in [[(r, c) for r, c in live if c == 0]] if g] + [[(r, c)] for r, c in live if c > 0]
        for i, group in enumerate(groups):
            waiting = doomed + [item for later in groups[i + 1:] for item in later]
            await self._retried(lambda: ledger.begin(group, waiting), "crash ledger")  # noqa: B023
            for outcome in await self._process([r for r, _ in group]):
                done[record_identity(outcome.record)] = outcome
        await self._clear_crash_marks(ledger, records)
        return [done[record_identity(r)] for r in records]

    @staticmethod
    async def _clear_crash_marks(ledger: CrashLedger, records: Sequence[InputRecord]) -> None:
        """Best effort, not retried: the batch is written and indexed, and its acknowledgement must not wait
        on the store. A marker left behind matters only if these records are re-delivered (a death before
        the commit), and then counts one death against them; the next batch of the partition replaces it."""
        try:
            await ledger.end(records)
        except TransientError as exc:
            log.warning("could not clear the in-flight marker; continuing", error=str(exc))

    async def _process(self, records: Sequence[InputRecord]) -> list[Outcome]:
        """Score (poison-isolated), write and wait for the acks, index (isolated too)."""
        outcomes = await self._retried(lambda: self.isolator.run(records, self.pipeline.process), "score")
        await self._write_and_count(outcomes)
        with self.metrics.stage("index"):
            await self._retried(lambda: self.index_isolator.run(outcomes, self._index), "index")
        return outcomes

    async def _write_and_count(self, outcomes: list[Outcome]) -> list[Outcome]:
        with self.metrics.stage("write"):
            await self._retried(lambda: self.sink.write(outcomes), "write")
        self._count(outcomes)  # written and acknowledged: counted now, not after indexing
        return outcomes

    async def _retried(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """TransientError retried with backoff for as long as it lasts, not ready meanwhile."""

        def retried(_exc: Exception) -> None:
            self.metrics.retries.inc()
            self.metrics.mark_trouble("retrying")

        return await retry_transient(operation, what=what, on_retry=retried)

    async def _index(self, outcomes: Sequence[Outcome]) -> list[bool]:
        await self.pipeline.index(outcomes)
        return [True] * len(outcomes)

    def _count(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.score is not None:
                self.metrics.scores_out.labels(str(outcome.score.deboost).lower()).inc()
                self.metrics.end_to_end_seconds.observe(outcome.score.latency_ms / 1000)
            else:
                self.metrics.dead_letters.labels(outcome.dead_letter.error.value).inc()
                log.info("dead-lettered", error=outcome.dead_letter.error.value, detail=outcome.dead_letter.detail,
                         partition=outcome.record.partition, offset=outcome.record.offset)


def to_input_record(message: object) -> InputRecord:
    """faust's message (key/value raw bytes) -> the pipeline's broker-neutral record."""
    timestamp = getattr(message, "timestamp", None) or 0.0
    return InputRecord(
        key=message.key,
        value=message.value,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(timestamp * 1000),
    )


def build_app(settings: Settings, open_runner: Callable[[], Awaitable[BatchRunner]]) -> tuple[faust.App, dict]:
    """The faust app and its agent. `open_runner` loads models and clients on the worker's loop."""
    from rci.streams.kafka import faust_broker_kwargs, make_consumer

    datadir = settings.data_dir.absolute() / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # faust makes only the last folder, and a failed start exits 1 silently
    app = faust.App(
        settings.worker_group,
        **faust_broker_kwargs(settings),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_allow_declaring=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset=settings.kafka_auto_offset_reset,  # where a new group starts
        broker_commit_interval=1.0,
        datadir=str(datadir),
    )
    topic = app.topic(settings.topic_published, key_type=bytes, value_type=bytes, value_serializer="raw")
    state: dict = {"runner": None, "joined": False, "draining": False, "stopped": asyncio.Event()}
    wait_s = settings.batch_max_wait_ms / 1000

    @app.on_partitions_assigned.connect
    async def joined(_app: faust.App, _assigned: object, **_kwargs: object) -> None:
        # The group gave this worker its share (possibly none: more workers than partitions): half of /ready.
        state["joined"] = True
        if state["runner"] is not None:
            state["runner"].metrics.mark_ready(condition="joined")

    progress = PartitionProgress(settings.ready_stall_s)

    @app.timer(interval=max(1.0, settings.ready_stall_s / 4))
    async def watch_progress() -> None:
        # Not ready while an owned partition with records waiting sees no commit for RCI_READY_STALL_S,
        # even with no batch in flight (rci.streams.progress).
        runner = state["runner"]
        if runner is None:
            return
        if "offsets" not in state:
            state["offsets"] = GroupOffsets(settings, make_consumer)
        try:
            owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic_published}
        except ConsumerNotStarted:
            return
        await check_progress(progress, state["offsets"], owned, time.monotonic(), runner.metrics.mark_trouble)

    @app.agent(topic, name="score-published")
    async def score_published(stream: faust.StreamT) -> None:
        state["runner"] = runner = await _open_or_exit(open_runner)  # marks "serving" (rci.streams.service)
        if state["joined"]:  # the assignment came while the models were loading
            runner.metrics.mark_ready(condition="joined")
        async for events in stream.take_events(settings.batch_max_size, within=wait_s):
            await _handle_or_exit(runner, [to_input_record(e.message) for e in events])
            _record_lag(app, runner.metrics, events)
            if state["draining"]:
                # Ack the finished batch now: faust's shutdown waits for every delivered event
                # to be acked before its final commit, so leaving them to take_events' cleanup
                # (which runs only when the agent is cancelled, later) would deadlock the stop.
                # Then park, so no further batch is taken.
                for event in events:
                    await stream.ack(event)
                state["stopped"].set()
                await asyncio.Event().wait()

    return app, state


async def _open_or_exit(open_runner: Callable[[], Awaitable[BatchRunner]]) -> BatchRunner:
    """The runner, or the process ends before consuming anything: faust would otherwise log the crashed
    agent and keep the process up, in the group, holding partitions it never scores."""
    try:
        return await open_runner()
    except (ConfigError, ModelError) as exc:  # e.g. a model file that is there but corrupt
        log.error("worker cannot start", error=str(exc), exit_code=EXIT_CONFIG)
        os._exit(EXIT_CONFIG)
    except Exception:
        log.exception("unexpected error while opening the serving parts", exit_code=EXIT_BUG)
        os._exit(EXIT_BUG)


async def _handle_or_exit(runner: BatchRunner, records: list[InputRecord]) -> None:
    try:
        await runner.handle(records)
    except asyncio.CancelledError:  # faust's shutdown; its cleanup would ack this unfinished batch
        exit_unacked(EXIT_INTERRUPTED, "stopped with a batch in flight; exiting without acknowledging it",
                     records=len(records))
    except Exception:  # a bug, not a transient failure: keep the records un-acked
        log.exception("unexpected error while scoring a batch; exiting without committing")
        exit_unacked(EXIT_BUG)


def exit_unacked(code: int, message: str | None = None, **fields: object) -> NoReturn:
    """End the process now, before faust acknowledges or commits anything more: what is in flight is
    re-delivered. The log is flushed first (os._exit skips Python's own flushing)."""
    if message:
        log.warning(message, exit_code=code, **fields)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _record_lag(app: faust.App, metrics: WorkerMetrics, events: Sequence[object]) -> None:
    last = {}
    for event in events:
        last[event.message.tp] = event.message.offset
    for tp, offset in last.items():
        try:
            metrics.consumer_lag.labels(str(tp.partition)).set(max(0, app.consumer.highwater(tp) - offset - 1))
        except Exception:  # highwater unknown right after assignment: skip this sample
            continue


class DrainingWorker(faust.Worker):
    """faust's worker, but SIGTERM and SIGINT let the batch in flight finish, within the drain timeout."""

    def __init__(self, app: faust.App, state: dict, drain_timeout_s: float, **kwargs: object) -> None:
        super().__init__(app, **kwargs)
        self._state = state
        self._drain_timeout_s = drain_timeout_s

    def _on_sigterm(self) -> None:
        self._drain_then_stop(signal.SIGTERM)

    def _on_sigint(self) -> None:  # faust alone stops at once, and its cleanup acks the batch in flight
        self._drain_then_stop(signal.SIGINT)

    def _drain_then_stop(self, signum: signal.Signals) -> None:
        runner = self._state["runner"]
        if runner is not None:
            runner.metrics.mark_ready(False)  # stopping: /ready answers 503 while the batch drains
        if self._state["draining"]:  # a second signal: stop now, the unfinished batch is re-delivered
            exit_unacked(EXIT_INTERRUPTED, "second signal while draining; exiting without acknowledging the batch",
                         signal=signum.name)
        deadline = self.loop.time() + self._drain_timeout_s
        if runner is None or not runner.in_flight:
            self._stop_leaving_unread(signum, deadline)
            return
        log.info("draining the batch in flight", signal=signum.name, timeout_s=self._drain_timeout_s)
        self._state["draining"] = True
        asyncio.ensure_future(self._stop_when_drained(signum, deadline))

    async def _stop_when_drained(self, signum: signal.Signals, deadline: float) -> None:
        try:
            await asyncio.wait_for(self._state["stopped"].wait(), self._drain_timeout_s)
        except TimeoutError:  # e.g. retrying an outage: the batch is re-delivered to the next worker
            exit_unacked(EXIT_INTERRUPTED, "batch still in flight after the drain timeout; exiting without "
                                           "acknowledging it", timeout_s=self._drain_timeout_s)
        self._stop_leaving_unread(signum, deadline)

    def _stop_leaving_unread(self, signum: signal.Signals, deadline: float) -> None:
        """faust's own stop, bounded by the drain deadline, and without waiting for records read ahead.

        faust fetches ahead of the agent: records in its queues were never handed to a batch, so nothing
        acknowledges them, and its stop would wait for them forever (`stream_wait_empty`, seen hanging a
        SIGINT'd worker). Without that wait it commits only what was acknowledged, leaves the group, and
        the records read ahead are delivered again to the next worker. Past the deadline the process
        exits EXIT_INTERRUPTED, committing nothing more.
        """
        with warnings.catch_warnings():  # faust warns that the setting is changed after start-up: on purpose
            warnings.simplefilter("ignore")
            self.app.conf.stream_wait_empty = False
        self.loop.call_at(max(deadline, self.loop.time() + MIN_SHUTDOWN_S), functools.partial(
            exit_unacked, EXIT_INTERRUPTED, "stop not finished within the drain timeout; exiting",
            signal=signum.name))  # fmt: skip
        self._schedule_shutdown(signum)


def run_worker(settings: Settings, open_runner: Callable[[], Awaitable[BatchRunner]]) -> None:
    """Block running the worker until SIGTERM/SIGINT."""
    app, state = build_app(settings, open_runner)
    worker = DrainingWorker(app, state, settings.worker_drain_timeout_s, loglevel="WARNING", override_logging=False, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()

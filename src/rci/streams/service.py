"""Entry point of the scoring worker process: metrics, serving parts, pipeline, sink, faust app."""

from __future__ import annotations

import asyncio

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.streams.crashes import CrashLedger
from rci.streams.components import ObjectStoreScoreMemo, ServingParts, open_serving_parts
from rci.streams.metrics import WorkerMetrics, serve_metrics
from rci.streams.pipeline import ScoringPipeline
from rci.streams.preflight import run_preflight
from rci.streams.reviews import follow_reviews
from rci.streams.sink import open_sink
from rci.streams.worker import BatchRunner, run_worker

log = get_logger(__name__)


async def open_scoring_pipeline(settings: Settings, metrics: WorkerMetrics) -> tuple[ScoringPipeline, ServingParts]:
    """The worker's scoring pipeline and the parts it holds open (`rci replay` scores through it too)."""
    parts = await open_serving_parts(settings)
    memo = ObjectStoreScoreMemo(parts.cache.store)  # a re-delivered event gets its first score again
    # moderators' verdicts, read to the end before the first batch, then followed (a daemon thread)
    reviewed, follower = await asyncio.to_thread(follow_reviews, settings)
    if follower is not None:
        parts.background.append(follower.stop)
    pipeline = ScoringPipeline(parts.features, parts.index, parts.scorer, parts.model, metrics, memo,
                               score_top=settings.retrieval_score_top,
                               credit_margin=settings.retrieval_credit_margin,
                               overturned=reviewed.overturned)  # fmt: skip
    return pipeline, parts


def run_scoring_worker(settings: Settings) -> None:
    """Block serving until SIGTERM. Models and clients open on the worker's own event loop.

    First the start-up check (rci.streams.preflight): a configuration fault raises ConfigError /
    ModelError before anything is consumed; SIGTERM during its outage retries returns at once."""
    metrics = WorkerMetrics()
    serve_metrics(metrics, settings.metrics_host, settings.metrics_port)  # alive, /ready 503, through the check's retries
    if not run_preflight(settings):
        return

    async def open_runner() -> BatchRunner:
        pipeline, parts = await open_scoring_pipeline(settings, metrics)
        sink = await asyncio.to_thread(open_sink, settings)
        log.info("worker ready", group=settings.worker_group, topic=settings.topic_published,
                 dlq_max_record_bytes=sink.max_record_bytes)  # fmt: skip
        metrics.mark_ready()  # /ready answers 200 from now on
        return BatchRunner(pipeline, sink, metrics, poison_max_attempts=settings.poison_max_attempts,
                           stall_s=settings.ready_stall_s,
                           crash_ledger=CrashLedger(parts.cache.store, settings.worker_group))

    run_worker(settings, open_runner)

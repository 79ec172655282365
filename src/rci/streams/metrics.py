"""Prometheus metrics of the worker (the shadow consumer's are in `rci.streams.shadow.metrics`).

One registry per process, exposed by `serve_metrics` on settings.metrics_host (loopback
by default) : settings.metrics_port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ProcessMetrics:
    """One process's registry and its per-stage timer (the worker's and the shadow's metrics are both)."""

    registry: CollectorRegistry
    stage_seconds: Histogram  # labelled by "stage"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block into `stage_seconds{stage=name}`, also when it raises."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(name).observe(time.perf_counter() - start)


class WorkerMetrics(ProcessMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter("rci_events_in", "video.published records consumed", registry=r)
        self.scores_out = Counter("rci_scores_out", "rci.scores records written", ["deboost"], registry=r)
        self.dead_letters = Counter("rci_dead_letters", "records sent to the DLQ", ["code"], registry=r)
        self.retries = Counter("rci_transient_retries", "batches retried after a transient error", registry=r)
        self.poison_records = Counter(
            "rci_poison_records", "records dead-lettered as internal_error after failing alone (rci.streams.isolation)",
            ["exception"], registry=r,
        )
        self.stage_seconds = Histogram(
            "rci_stage_seconds", "time per pipeline stage per batch", ["stage"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.end_to_end_seconds = Histogram(
            "rci_end_to_end_seconds", "Kafka timestamp of the input to score written", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "rci_batch_size", "records per micro-batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.consumer_lag = Gauge("rci_consumer_lag", "high watermark minus position", ["partition"], registry=r)


def serve_metrics(metrics: ProcessMetrics, host: str, port: int) -> WSGIServer | None:
    """Expose /metrics over HTTP on host:port (settings: loopback unless configured); None when port is 0."""
    if not port:
        return None
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
